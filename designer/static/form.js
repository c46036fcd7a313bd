/* Form designer: sections with their columns, fields dragged between sections (HTML5
   drag and drop) or moved with buttons, the fields not on the form at the left, and a
   preview of the runtime's real form rendered from the draft after each save. */
(function () {
  "use strict";
  const D = window.Designer;
  const {$} = D;
  const S = JSON.parse($("#dz-setup").textContent);
  const T = (k) => S.text[k] || k;
  const lang = S.lang;
  let doc = S.document;
  let lastErrors = [];
  const byName = Object.fromEntries(S.fields.map((f) => [f.name, f]));

  const el = D.el;
  const labelOf = (label) => D.labelOf(label, lang);

  function placed() { return new Set(doc.sections.flatMap((s) => s.fields)); }

  /* Move a field to section `to` (-1 = off the form) at position `at` (end when omitted). */
  function moveField(name, to, at) {
    doc.sections.forEach((s) => { s.fields = s.fields.filter((f) => f !== name); });
    if (to >= 0) {
      const list = doc.sections[to].fields;
      list.splice(at === undefined ? list.length : at, 0, name);
    }
    lastErrors = [];
    render();
  }

  function chip(name, sectionIndex, position) {
    const f = byName[name] || {name, label: name};
    const controls = [];
    if (sectionIndex >= 0) {
      controls.push(el("button", {type: "button", class: "btn btn-sm btn-link p-0 dz-left", title: T("move_up"), "aria-label": T("move_up"), text: "←",
                                  onclick: () => moveField(name, sectionIndex, Math.max(0, position - 1))}));
      controls.push(el("button", {type: "button", class: "btn btn-sm btn-link p-0 dz-right", title: T("move_down"), "aria-label": T("move_down"), text: "→",
                                  onclick: () => moveField(name, sectionIndex, position + 1)}));
    }
    const target = el("select", {class: "form-select form-select-sm d-inline-block w-auto py-0 dz-move-to", "aria-label": T("move_to"),
                                 onchange: (ev) => { if (ev.target.value !== "") moveField(name, Number(ev.target.value)); }},
                      el("option", {value: "", text: T("move_to") + "…"}),
                      doc.sections.map((s, n) => n === sectionIndex ? null : el("option", {value: n, text: `${n + 1}. ${labelOf(s.label) || T("section")}`})),
                      sectionIndex >= 0 ? el("option", {value: -1, text: T("remove_from_form")}) : null);
    const node = el("div", {class: "dz-chip badge text-bg-light border text-start d-inline-flex align-items-center gap-1 m-1 p-2",
                            draggable: "true", dataset: {field: name}},
                    el("span", {text: f.label + (f.required ? " *" : "")}), el("code", {class: "small", text: name}), controls, target);
    node.addEventListener("dragstart", (ev) => { ev.dataTransfer.setData("text/plain", name); node.classList.add("dz-dragging"); });
    node.addEventListener("dragend", () => node.classList.remove("dz-dragging"));
    node.addEventListener("dragover", (ev) => ev.preventDefault());
    node.addEventListener("drop", (ev) => {
      ev.preventDefault();
      ev.stopPropagation();
      const dragged = ev.dataTransfer.getData("text/plain");
      if (dragged && dragged !== name) {
        const at = sectionIndex >= 0 ? doc.sections[sectionIndex].fields.filter((f) => f !== dragged).indexOf(name) : undefined;
        moveField(dragged, sectionIndex, at);
      }
    });
    return node;
  }

  function dropZone(zone, sectionIndex) {
    zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("dz-over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dz-over"));
    zone.addEventListener("drop", (ev) => {
      ev.preventDefault();
      zone.classList.remove("dz-over");
      const name = ev.dataTransfer.getData("text/plain");
      if (name) moveField(name, sectionIndex);
    });
  }

  function labelInputs(s, n) {
    const value = (l) => (s.label && typeof s.label === "object") ? (s.label[l] || "") : (s.label || "");
    const update = (l, v) => { const next = {en: value("en"), zh: value("zh")}; next[l] = v;
      if (!next.en && !next.zh) delete s.label; else s.label = {en: next.en || next.zh, zh: next.zh || next.en}; };
    return ["en", "zh"].map((l) => el("input", {class: "form-control form-control-sm", value: value(l), name: `section-${n}-label-${l}`,
                                                placeholder: T(l === "en" ? "label_en" : "label_zh"), dataset: {pointer: `/sections/${n}/label`},
                                                oninput: (ev) => update(l, ev.target.value)}));
  }

  function renderSections() {
    $("#dz-sections").replaceChildren(...doc.sections.map((s, n) => {
      const columns = el("select", {class: "form-select form-select-sm w-auto", name: `section-${n}-columns`, "aria-label": T("columns"),
                                    dataset: {pointer: `/sections/${n}/columns`}, onchange: (ev) => { s.columns = Number(ev.target.value); }},
                         [1, 2, 3, 4].map((c) => el("option", {value: c, text: `${c} ${T("columns")}`, selected: (s.columns || 2) === c})));
      const zone = el("div", {class: "card-body dz-section d-flex flex-wrap align-content-start", dataset: {section: n, pointer: `/sections/${n}/fields`}},
                      s.fields.length ? s.fields.map((f, i) => chip(f, n, i)) : el("span", {class: "text-body-secondary small p-2", text: T("drop_here")}));
      dropZone(zone, n);
      const head = el("div", {class: "card-header bg-white d-flex flex-wrap gap-2 align-items-center"},
                      el("strong", {class: "small", text: `${T("section")} ${n + 1}`}), ...labelInputs(s, n), columns,
                      el("button", {type: "button", class: "btn btn-sm btn-link p-0", text: "↑", title: T("move_up"), "aria-label": T("move_up"),
                                    onclick: () => { if (n > 0) { doc.sections.splice(n - 1, 0, doc.sections.splice(n, 1)[0]); render(); } }}),
                      el("button", {type: "button", class: "btn btn-sm btn-link p-0", text: "↓", title: T("move_down"), "aria-label": T("move_down"),
                                    onclick: () => { if (n < doc.sections.length - 1) { doc.sections.splice(n + 1, 0, doc.sections.splice(n, 1)[0]); render(); } }}),
                      el("button", {type: "button", class: "btn btn-sm btn-outline-danger ms-auto dz-remove-section", text: T("remove_section"),
                                    onclick: () => { doc.sections.splice(n, 1); render(); }}));
      return el("div", {class: "card border-0 shadow-sm mb-3", dataset: {index: n}}, head, zone);
    }));
    const unplaced = S.fields.map((f) => f.name).filter((name) => !placed().has(name));
    $("#dz-unplaced").replaceChildren(...unplaced.map((name) => chip(name, -1, 0)));
  }

  function render() {
    renderSections();
    D.showErrors($("#dz-form-editor"), lastErrors.filter((e) => e.source === `form/${doc.entity}/${doc.name}`), null);
    const rest = lastErrors.filter((e) => e.source !== `form/${doc.entity}/${doc.name}` || !document.querySelector(`[data-pointer="${e.path}"]`));
    const summary = $("#dz-summary");
    summary.replaceChildren(...rest.map((e) => el("div", {class: "dz-error"}, el("code", {text: `${e.source} ${e.path}`}), " " + e.message)));
    summary.classList.toggle("d-none", !rest.length);
  }

  function refreshPreview() {
    if (!$("#dz-preview-toggle").checked) return;
    $("#dz-preview").src = S.urls.preview + (S.urls.preview.includes("?") ? "&" : "?") + "t=" + Date.now();
  }

  async function save() {
    const r = await D.api("PUT", S.urls.save, doc);
    const flash = $("#dz-flash");
    if (r.ok) {
      doc = r.data.document;
      lastErrors = [];
      D.setCount(r.data.changes);
      flash.textContent = T("saved_to_draft");
      flash.classList.remove("d-none");
      render();
      refreshPreview();
    } else {
      flash.classList.add("d-none");
      lastErrors = D.errorsOf(r.data);
      render();
    }
  }

  dropZone($("#dz-unplaced"), -1);
  $("#dz-save").addEventListener("click", save);
  $("#dz-add-section").addEventListener("click", () => {
    doc.sections.push({label: {en: "New section", zh: "新分区"}, columns: 2, fields: []});
    render();
  });
  $("#dz-preview-toggle").addEventListener("change", (ev) => {
    $("#dz-preview-pane").classList.toggle("d-none", !ev.target.checked);
    refreshPreview();
  });
  render();
})();
