/* Entity designer: palette (left), fields (centre), properties (right).
   The page holds the entity document; every edit changes it in place, "Save" sends it
   whole (PUT) and the server's errors come back with JSON pointers that land next to
   the matching input. Expressions are checked live against the fields as edited. */
(function () {
  "use strict";
  const D = window.Designer;
  const {$, $$} = D;
  const S = JSON.parse($("#dz-setup").textContent);
  const T = (k) => S.text[k] || k;
  const lang = S.lang;
  let doc = S.document;
  let selected = null;          // index into doc.fields, or null for the entity's own properties
  let lastErrors = [];
  const published = new Set(S.published_fields);

  const TEXTUAL = ["text", "textarea", "email", "phone", "url"];
  const NUMERIC = ["integer", "decimal", "currency", "percent"];
  const NO_REQUIRED = ["formula", "autonumber"];
  const NO_DEFAULT = ["formula", "autonumber", "table", "file", "image", "location"];

  const el = D.el;
  const labelOf = (label) => D.labelOf(label, lang);

  // ------------------------------------------------------------------ palette
  function renderPalette() {
    const box = $("#dz-palette-types");
    box.replaceChildren(...S.palette.map((group) => el("div", {class: "mb-1"},
      group.types.map((type) => el("button", {type: "button", class: "btn btn-sm btn-outline-secondary w-100 mb-1 dz-type",
                                                dataset: {type}, title: type, onclick: () => addField(type)},
                                                "+ " + (S.type_labels[type] || type))))));
  }

  function uniqueName(base) {
    const names = new Set(doc.fields.map((f) => f.name));
    let n = 1;
    while (names.has(`${base}_${n}`)) n += 1;
    return `${base}_${n}`;
  }

  function addField(type) {
    const f = {name: uniqueName("field"), type, label: {en: "New field", zh: "新字段"}};
    const firstEntity = (S.entities.find((e) => e.name !== doc.name && !e.child_of) || S.entities[0] || {}).name;
    if (type === "select" || type === "multiselect") f.options = [{value: "a", label: {en: "A", zh: "A"}}];
    if (type === "lookup") f.target = firstEntity;
    if (type === "table") f.target = (S.entities.find((e) => e.child_of === doc.name) || {}).name || firstEntity;
    if (type === "reference") f.targets = firstEntity ? [firstEntity] : [];
    if (type === "formula") { f.expression = "1"; f.result_type = "integer"; }
    if (type === "autonumber") f.format = "{YYYY}{#####}";
    doc.fields.push(f);
    lastErrors = [];
    select(doc.fields.length - 1);
    const name = $("#dz-prop-name");
    if (name) { name.focus(); name.select(); }
  }

  // ------------------------------------------------------------------ canvas
  function move(from, to) {
    if (to < 0 || to >= doc.fields.length || from === to) return;
    const [f] = doc.fields.splice(from, 1);
    doc.fields.splice(to, 0, f);
    lastErrors = [];
    selected = to;
    render();
  }

  function renderCanvas() {
    const bad = new Set(lastErrors.map((e) => (e.source === `entity/${doc.name}` ? e.path : "").split("/")[2]).filter(Boolean));
    $("#dz-canvas").replaceChildren(...doc.fields.map((f, i) => {
      const badges = [el("span", {class: "badge text-bg-light border", title: f.type, text: S.type_labels[f.type] || f.type})];
      if (f.required) badges.push(el("span", {class: "badge text-bg-info", text: T("required")}));
      if (f.archived) badges.push(el("span", {class: "badge text-bg-secondary", text: T("archived")}));
      if (bad.has(String(i))) badges.push(el("span", {class: "badge text-bg-danger", text: "!"}));
      const li = el("li", {class: `list-group-item d-flex align-items-center gap-2 dz-field-row${i === selected ? " active" : ""}${f.archived ? " archived" : ""}`,
                           draggable: "true", dataset: {field: f.name, index: i},
                           onclick: (ev) => { if (!ev.target.closest("button")) select(i); }},
        el("span", {class: "text-body-secondary", text: "⋮⋮"}),
        el("div", {class: "flex-grow-1"}, el("div", {text: labelOf(f.label) || f.name}), el("code", {class: "small", text: f.name})),
        el("div", {class: "d-flex gap-1 flex-wrap justify-content-end"}, badges),
        el("button", {type: "button", class: "btn btn-sm btn-link p-0 dz-up", title: T("move_up"), "aria-label": T("move_up"), text: "↑", onclick: () => move(i, i - 1)}),
        el("button", {type: "button", class: "btn btn-sm btn-link p-0 dz-down", title: T("move_down"), "aria-label": T("move_down"), text: "↓", onclick: () => move(i, i + 1)}));
      li.addEventListener("dragstart", (ev) => { ev.dataTransfer.setData("text/plain", String(i)); li.classList.add("dz-dragging"); });
      li.addEventListener("dragend", () => li.classList.remove("dz-dragging"));
      li.addEventListener("dragover", (ev) => ev.preventDefault());
      li.addEventListener("drop", (ev) => { ev.preventDefault(); move(Number(ev.dataTransfer.getData("text/plain")), i); });
      return li;
    }));
  }

  // ------------------------------------------------------------------ properties
  function setKey(obj, key, value) {
    if (value === "" || value === undefined || value === null || value === false) delete obj[key];
    else obj[key] = value;
  }

  function group(label, input, pointer, hint) {
    const id = input.id || `dz-in-${Math.random().toString(36).slice(2)}`;
    input.id = id;
    if (pointer) input.dataset.pointer = pointer;
    return el("div", {class: "mb-2"}, el("label", {class: "form-label small mb-0", for: id, text: label}), input, hint || null);
  }

  function textInput(value, onChange, attrs) {
    return el("input", Object.assign({class: "form-control form-control-sm", value: value ?? "",
                                      oninput: (ev) => { onChange(ev.target.value); renderCanvas(); }}, attrs || {}));
  }

  function checkbox(label, checked, onChange, name, pointer) {
    const id = `dz-prop-${name}`;
    const input = el("input", {class: "form-check-input", type: "checkbox", id, name: `prop-${name}`, checked: !!checked,
                               onchange: (ev) => { onChange(ev.target.checked); renderCanvas(); }});
    if (pointer) input.dataset.pointer = pointer;
    return el("div", {class: "form-check form-check-inline"}, input, el("label", {class: "form-check-label small", for: id, text: label}));
  }

  function bilingual(obj, key, pointer, names) {
    const value = (l) => { const c = obj[key]; return (c && typeof c === "object") ? (c[l] || "") : (c || ""); };
    const update = (l, v) => {
      const next = {en: value("en"), zh: value("zh")};
      next[l] = v;
      if (!next.en && !next.zh) delete obj[key];
      else obj[key] = {en: next.en || next.zh, zh: next.zh || next.en};
    };
    return [group(T(names[0]), textInput(value("en"), (v) => update("en", v), {name: `prop-${key}-en`}), pointer),
            group(T(names[1]), textInput(value("zh"), (v) => update("zh", v), {name: `prop-${key}-zh`}), pointer)];
  }

  let timer = null;
  function expressionInput(f, key, pointer, formula) {
    const input = el("textarea", {class: "form-control form-control-sm font-monospace", rows: 2, name: `prop-${key}`,
                                  id: `dz-prop-${key}`, text: f[key] || ""});
    const live = el("div", {class: "small dz-live", dataset: {for: key}});
    const check = async () => {
      const r = await D.api("POST", S.urls.expression, {document: doc, expression: input.value, field: formula ? f.name : null});
      live.replaceChildren();
      input.classList.remove("is-invalid");
      if (!r.ok) return;
      if (r.data.errors.length) {
        input.classList.add("is-invalid");
        live.append(el("div", {class: "text-danger dz-live-error", text: r.data.errors.join(" ")}));
      }
      live.append(el("div", {class: "text-body-secondary dz-names"}, T("names_available") + ": ",
                         r.data.names.map((n) => el("code", {text: n}))));
    };
    input.addEventListener("input", () => { setKey(f, key, input.value.trim()); clearTimeout(timer); timer = setTimeout(check, 300); });
    input.addEventListener("focus", check, {once: true});
    return group(T(key === "expression" ? "expression" : key), input, pointer, live);
  }

  function select(i) { selected = i; render(); }

  function entityProps() {
    const box = $("#dz-props");
    const titles = doc.fields.filter((f) => !f.archived && !["table", "formula"].includes(f.type));
    const title = el("select", {class: "form-select form-select-sm", name: "prop-title_field",
                                onchange: (ev) => setKey(doc, "title_field", ev.target.value)},
                     el("option", {value: "", text: "—"}),
                     titles.map((f) => el("option", {value: f.name, text: `${labelOf(f.label)} (${f.name})`, selected: f.name === doc.title_field})));
    box.replaceChildren(el("h2", {class: "h6", text: T("entity_properties")}),
                        ...bilingual(doc, "label", "/label", ["label_en", "label_zh"]),
                        group(T("title_field"), title, "/title_field"));
  }

  function optionsEditor(f, base) {
    const rows = el("div", {class: "dz-options", dataset: {pointer: `${base}/options`}});
    const draw = () => rows.replaceChildren(...(f.options || []).map((o, n) => {
      const lab = (l) => (o.label && typeof o.label === "object") ? (o.label[l] || "") : (o.label || "");
      const setLab = (l, v) => { const next = {en: lab("en"), zh: lab("zh")}; next[l] = v; o.label = {en: next.en || next.zh || o.value, zh: next.zh || next.en || o.value}; };
      const value = textInput(o.value, (v) => { o.value = v; }, {name: `option-${n}-value`, placeholder: T("option_value")});
      value.dataset.pointer = `${base}/options/${n}/value`;
      return el("div", {class: "d-flex gap-1 mb-1 dz-option"},
        value,
        textInput(lab("en"), (v) => setLab("en", v), {name: `option-${n}-en`, placeholder: "English"}),
        textInput(lab("zh"), (v) => setLab("zh", v), {name: `option-${n}-zh`, placeholder: "中文"}),
        el("button", {type: "button", class: "btn btn-sm btn-outline-danger", text: "×", title: T("remove"),
                      onclick: () => { f.options.splice(n, 1); draw(); }}));
    }));
    draw();
    const add = el("button", {type: "button", class: "btn btn-sm btn-outline-secondary", id: "dz-add-option", text: "+ " + T("add_option"),
                              onclick: () => { f.options = f.options || []; const v = `option_${f.options.length + 1}`; f.options.push({value: v, label: {en: v, zh: v}}); draw(); }});
    return el("div", {class: "mb-2"}, el("div", {class: "form-label small mb-0", text: T("options")}), rows, add);
  }

  function defaultInput(f, base) {
    let input;
    const parse = (v) => {
      if (v === "") return undefined;
      if (f.type === "integer") return /^-?\d+$/.test(v) ? Number(v) : v;
      if (f.type === "boolean") return v === "true";
      if (f.type === "multiselect") return v.split(",").map((s) => s.trim()).filter(Boolean);
      return v;
    };
    const onChange = (v) => { const p = parse(v); if (p === undefined) delete f.default; else f.default = p; };
    if (f.type === "boolean" || f.type === "select") {
      const choices = f.type === "boolean" ? [["true", "✓"], ["false", "✗"]] : (f.options || []).map((o) => [o.value, labelOf(o.label) || o.value]);
      input = el("select", {class: "form-select form-select-sm", name: "prop-default", onchange: (ev) => onChange(ev.target.value)},
                 el("option", {value: "", text: "—"}),
                 choices.map(([v, l]) => el("option", {value: v, text: l, selected: String(f.default) === v})));
    } else {
      const shown = Array.isArray(f.default) ? f.default.join(", ") : (f.default ?? "");
      input = textInput(shown, onChange, {name: "prop-default"});
    }
    return group(T("default_value"), input, `${base}/default`);
  }

  function fieldProps(i) {
    const f = doc.fields[i];
    const base = `/fields/${i}`;
    const box = $("#dz-props");
    const parts = [];
    const locked = published.has(f.name);
    parts.push(group(T("field_name"), textInput(f.name, (v) => { f.name = v.trim(); }, {name: "prop-name", id: "dz-prop-name", readonly: locked}), `${base}/name`));
    const typeSelect = el("select", {class: "form-select form-select-sm", name: "prop-type", disabled: locked,
                                     onchange: (ev) => { f.type = ev.target.value; render(); }},
                          S.palette.flatMap((g) => g.types).map((type) => el("option", {value: type, text: `${S.type_labels[type] || type} (${type})`, selected: type === f.type})));
    parts.push(group(T("field_type"), typeSelect, `${base}/type`));
    parts.push(...bilingual(f, "label", `${base}/label`, ["label_en", "label_zh"]));
    const flags = el("div", {class: "mb-2"});
    if (!NO_REQUIRED.includes(f.type)) flags.append(checkbox(T("required"), f.required, (v) => setKey(f, "required", v), "required", `${base}/required`));
    if (TEXTUAL.includes(f.type) || f.type === "integer") flags.append(checkbox(T("unique"), f.unique, (v) => setKey(f, "unique", v), "unique", `${base}/unique`));
    if (TEXTUAL.includes(f.type) || f.type === "richtext") flags.append(checkbox(T("searchable"), f.searchable, (v) => setKey(f, "searchable", v), "searchable", `${base}/searchable`));
    parts.push(flags);
    if (["text", "textarea", "email", "phone", "url"].includes(f.type)) {
      parts.push(group(T("max_length"), textInput(f.max_length, (v) => setKey(f, "max_length", /^\d+$/.test(v) ? Number(v) : v), {name: "prop-max_length", inputmode: "numeric"}), `${base}/max_length`));
    }
    if (NUMERIC.includes(f.type)) {
      const num = (key) => textInput(f[key], (v) => setKey(f, key, v === "" ? "" : (isNaN(Number(v)) ? v : Number(v))), {name: `prop-${key}`, inputmode: "decimal"});
      parts.push(el("div", {class: "row g-2"}, el("div", {class: "col"}, group(T("min_value"), num("min"), `${base}/min`)),
                                                el("div", {class: "col"}, group(T("max_value"), num("max"), `${base}/max`))));
    }
    if (f.type === "select" || f.type === "multiselect") parts.push(optionsEditor(f, base));
    if (f.type === "lookup" || f.type === "table") {
      const target = el("select", {class: "form-select form-select-sm", name: "prop-target", onchange: (ev) => setKey(f, "target", ev.target.value)},
                        el("option", {value: "", text: "—"}),
                        S.entities.map((e) => el("option", {value: e.name, text: `${e.label} (${e.name})`, selected: e.name === f.target})));
      parts.push(group(T("lookup_target"), target, `${base}/target`));
    }
    if (f.type === "reference") {
      const wrap = el("div", {dataset: {pointer: `${base}/targets`}});
      S.entities.forEach((e) => wrap.append(checkbox(e.label, (f.targets || []).includes(e.name), (v) => {
        const set = new Set(f.targets || []);
        if (v) set.add(e.name); else set.delete(e.name);
        f.targets = [...set];
      }, `target-${e.name}`)));
      parts.push(el("div", {class: "mb-2"}, el("div", {class: "form-label small mb-0", text: T("targets")}), wrap));
    }
    if (f.type === "formula") {
      parts.push(expressionInput(f, "expression", `${base}/expression`, true));
      const rt = el("select", {class: "form-select form-select-sm", name: "prop-result_type", onchange: (ev) => setKey(f, "result_type", ev.target.value)},
                    S.result_types.map((r) => el("option", {value: r, text: r, selected: r === (f.result_type || "text")})));
      parts.push(group(T("result_type"), rt, `${base}/result_type`));
    }
    if (f.type === "autonumber") parts.push(group(T("autonumber_format"), textInput(f.format, (v) => setKey(f, "format", v), {name: "prop-format"}), `${base}/format`));
    if (!NO_DEFAULT.includes(f.type)) parts.push(defaultInput(f, base));
    parts.push(...bilingual(f, "help", `${base}/help`, ["help_text", "help_text"]).map((g, n) => { g.querySelector("label").textContent = `${T("help_text")} (${n ? "中文" : "English"})`; return g; }));
    ["visible_when", "required_when", "readonly_when"].forEach((key) => parts.push(expressionInput(f, key, `${base}/${key}`, false)));
    const archive = f.archived
      ? el("button", {type: "button", class: "btn btn-sm btn-outline-success", id: "dz-restore", text: T("restore"), onclick: () => { delete f.archived; save(); }})
      : el("button", {type: "button", class: "btn btn-sm btn-outline-danger", id: "dz-archive", text: T("archive"), onclick: () => archiveField(f.name)});
    parts.push(el("div", {class: "mt-3 border-top pt-2"}, archive));
    box.replaceChildren(el("h2", {class: "h6", text: `${labelOf(f.label) || f.name}`}), ...parts);
  }

  function render() {
    renderCanvas();
    if (selected === null || !doc.fields[selected]) entityProps(); else fieldProps(selected);
    applyErrors();
  }

  function applyErrors() {
    const mine = lastErrors.filter((e) => e.source === `entity/${doc.name}`);
    const here = selected === null ? mine.filter((e) => !e.path.startsWith("/fields/"))
                                   : mine.filter((e) => e.path === `/fields/${selected}` || e.path.startsWith(`/fields/${selected}/`));
    const summary = $("#dz-summary");
    D.showErrors($("#dz-props"), here, null);
    const rest = lastErrors.filter((e) => !here.includes(e));
    summary.replaceChildren(...rest.map((e) => {
      const m = e.path.match(/^\/fields\/(\d+)/);
      const where = e.source === `entity/${doc.name}` && m ? (doc.fields[Number(m[1])] || {}).name : e.source;
      return el("div", {class: "dz-error", dataset: {path: e.path}}, el("code", {text: where + " " + e.path}), " " + e.message);
    }));
    summary.classList.toggle("d-none", !rest.length);
  }

  // ------------------------------------------------------------------ saving and archiving
  async function save() {
    const r = await D.api("PUT", S.urls.save, doc);
    if (r.ok) {
      doc = r.data.document;
      lastErrors = [];
      D.setCount(r.data.changes);
      render();
      flash(T("saved_to_draft"), "success");
    } else {
      lastErrors = D.errorsOf(r.data);
      render();
    }
  }

  function flash(text, kind) {
    const box = $("#dz-impact");
    box.className = `alert alert-${kind} small`;
    box.replaceChildren(el("span", {id: "dz-flash", text}));
  }

  async function archiveField(name) {
    const box = $("#dz-impact");
    const r = await D.api("POST", S.urls.archive, {document: doc, field: name});
    if (!r.ok) { lastErrors = D.errorsOf(r.data); render(); return; }
    const refs = r.data.references;
    const confirmArchive = async () => {
      const c = await D.api("POST", S.urls.archive, {document: doc, field: name, confirm: true});
      if (c.ok) {
        doc = c.data.document;
        lastErrors = [];
        D.setCount(c.data.changes);
        render();
        flash(T("saved_to_draft"), "success");
      } else {
        box.className = "alert alert-danger small";
        box.replaceChildren(el("div", {class: "fw-semibold", text: T("archive_blocked")}),
          el("ul", {class: "mb-0", id: "dz-archive-blocked"}, D.errorsOf(c.data).map((e) => el("li", {}, el("code", {text: `${e.source} ${e.path}`}), " " + e.message))));
      }
    };
    if (!refs.length) { await confirmArchive(); return; }
    box.className = "alert alert-warning small";
    box.replaceChildren(
      el("div", {class: "fw-semibold", text: T("archive_impact").replace("{field}", name)}),
      el("ul", {class: "mb-2", id: "dz-archive-refs"}, refs.map((ref) => el("li", {dataset: {key: ref.key}}, el("code", {text: ref.key}), ` — ${ref.what} `, el("span", {class: "text-body-secondary", text: ref.path})))),
      el("button", {type: "button", class: "btn btn-sm btn-danger me-2", id: "dz-archive-confirm", text: T("archive_and_remove"), onclick: confirmArchive}),
      el("button", {type: "button", class: "btn btn-sm btn-link", text: "×", onclick: () => box.classList.add("d-none")}));
  }

  $("#dz-save").addEventListener("click", save);
  $("#dz-entity-props-link").addEventListener("click", () => select(null));
  renderPalette();
  render();
})();
