/* The view, dedup-rule and workflow designers: one generic script.
   The page holds the document being edited (#ed-document). Inputs name the part they
   edit with a JSON pointer (data-path) and how to read it (data-type); buttons with
   data-op change the document's structure, after which the server re-draws the body
   (/render) — forms are rendered in one place, Jinja, and this script stays small.
   Errors come back as JSON pointers and are shown beside the input they point to. */
(function () {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function call(method, url, body) {
    const res = await fetch(url, {method, credentials: "same-origin",
      headers: {"Accept": "application/json", "Content-Type": "application/json", "X-CSRFToken": csrf()},
      body: body === undefined ? undefined : JSON.stringify(body)});
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return {ok: res.ok, status: res.status, data};
  }

  // ------------------------------------------------------------------ "new" forms on list pages
  const newForm = $("#ed-new-form");
  if (newForm) newForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const entity = $("#ed-new-entity").value, name = $("#ed-new-name").value.trim();
    const base = newForm.dataset.base;
    window.location = newForm.dataset.kind === "view"
      ? `${base}/${encodeURIComponent(entity)}/${encodeURIComponent(name)}?new=1`
      : `${base}/${encodeURIComponent(name)}?new=1&entity=${encodeURIComponent(entity)}`;
  });

  const editor = $("#ed-editor");
  if (!editor) return;
  const body = $("#ed-body");
  let doc = JSON.parse($("#ed-document").textContent);
  let builder = null;

  // ------------------------------------------------------------------ JSON pointers
  const parts = (ptr) => ptr.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  const isIndex = (k) => /^\d+$/.test(k);
  function parentOf(ptr, create) {
    const ps = parts(ptr);
    let node = doc;
    for (let i = 0; i < ps.length - 1; i++) {
      const k = ps[i];
      if (node[k] === undefined || node[k] === null || typeof node[k] !== "object") {
        if (!create) return [null, null];
        node[k] = isIndex(ps[i + 1]) ? [] : {};
      }
      node = node[k];
    }
    return [node, ps[ps.length - 1]];
  }
  function getPtr(ptr) { const [p, k] = parentOf(ptr, false); return p ? p[k] : undefined; }
  function setPtr(ptr, value) { const [p, k] = parentOf(ptr, true); p[k] = value; }
  function removePtr(ptr) {
    const [p, k] = parentOf(ptr, false);
    if (!p) return;
    if (Array.isArray(p)) p.splice(Number(k), 1); else delete p[k];
  }

  // ------------------------------------------------------------------ reading the inputs
  const DROP = Symbol("drop");
  function readInput(el) {
    const type = el.dataset.type || "text", optional = el.hasAttribute("data-optional");
    if (type === "bool") return el.checked ? true : (optional ? DROP : false);
    if (type === "select-multi") {
      const v = Array.from(el.selectedOptions).map((o) => o.value);
      return v.length || !optional ? v : DROP;
    }
    const raw = (el.value ?? "").trim();
    if (raw === "") return optional ? DROP : (type === "csv" ? [] : "");
    if (type === "int") return Number.isInteger(Number(raw)) ? Number(raw) : raw;
    if (type === "number") return isNaN(Number(raw)) ? raw : Number(raw);
    if (type === "csv") return raw.split(",").map((s) => s.trim()).filter(Boolean).map((s) => /^\d+$/.test(s) ? Number(s) : s);
    if (type === "json") {
      try { return JSON.parse(raw); } catch (e) { throw {path: el.dataset.path, message: e.message}; }
    }
    return raw;
  }
  function collect() {
    const values = new Map();
    for (const el of $$("[data-path]", body)) {
      if (el.dataset.op !== undefined || el.dataset.anchor !== undefined) continue;
      const path = el.dataset.path;
      if (el.dataset.type === "filters") { values.set(path, builder ? builder.collect() : []); continue; }
      if (el.dataset.type === "multi") {
        const list = values.get(path) instanceof Array ? values.get(path) : [];
        if (el.checked) list.push(el.value);
        values.set(path, list);
        continue;
      }
      if (el.type === "radio") { if (el.checked) values.set(path, el.value); continue; }
      if (!["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName)) continue;
      values.set(path, readInput(el));
    }
    for (const [path, value] of values) {
      const multiOptional = Array.isArray(value) && !value.length &&
        $$(`[data-path="${CSS.escape(path)}"][data-type="multi"]`, body).some((e) => e.hasAttribute("data-optional"));
      if (value === DROP || multiOptional) removePtr(path); else setPtr(path, value);
    }
    prune(doc);
    return doc;
  }
  function prune(node) {
    // A label with neither language filled is no label (the schema wants at least one).
    if (!node || typeof node !== "object") return;
    for (const [k, v] of Object.entries(node)) {
      if (k === "label" && v && typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length) delete node[k];
      else prune(v);
    }
  }

  // ------------------------------------------------------------------ errors beside inputs
  function target(path) {
    let p = path;
    while (p) {
      const el = $$(`[data-path="${CSS.escape(p)}"], [data-anchor="${CSS.escape(p)}"]`, body)
        .find((e) => e.dataset.op === undefined);
      if (el) return el;
      p = p.slice(0, p.lastIndexOf("/"));
    }
    return null;
  }
  function showErrors(errors) {
    $$(".ed-err", body).forEach((e) => e.remove());
    $$(".is-invalid", body).forEach((e) => e.classList.remove("is-invalid"));
    const box = $("#ed-errors"), list = $("#ed-error-list");
    list.replaceChildren();
    const own = editor.dataset.source;
    for (const err of errors) {
      const li = document.createElement("li");
      li.dataset.path = err.path;
      const code = document.createElement("code");
      const mine = !own || !err.source || err.source === own;
      code.textContent = mine ? err.path : `${err.source}${err.path}`;
      li.append(code, " ", err.message);
      list.append(li);
      if (!mine) continue;
      const el = target(err.path);
      if (!el) continue;
      const note = document.createElement("div");
      note.className = "ed-err text-danger small";
      note.dataset.errorFor = err.path;
      note.textContent = err.message;
      if (["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName)) {
        el.classList.add("is-invalid");
        (el.closest(".form-check") || el).after(note);
      } else {
        el.prepend(note);
      }
      const panel = el.closest(".ed-panel.d-none");
      if (panel && !$(".ed-panel:not(.d-none) .ed-err", body)) select(panel.dataset.panel);
    }
    box.classList.toggle("d-none", !errors.length);
  }
  const status = (key, n) => {
    const el = $("#ed-status");
    el.textContent = (el.dataset[key] || "").replace("{n}", n);
  };

  // ------------------------------------------------------------------ re-drawing and selection
  function select(name) {
    const hidden = $("#ed-selected");
    if (!hidden) return;
    hidden.value = name;
    $$(".ed-panel", body).forEach((p) => p.classList.toggle("d-none", p.dataset.panel !== name));
    const [kind, key] = name.split(":");
    $$(".mc-wf-state", body).forEach((g) => g.classList.toggle("mc-selected", kind === "state" && g.dataset.state === key));
    $$(".mc-wf-edge", body).forEach((g) => g.classList.toggle("mc-selected", kind === "transition" && g.dataset.transition === key));
    $$(".ed-pick", body).forEach((b) => {
      const on = b.dataset.select === name;
      b.classList.toggle("btn-primary", on);
      b.classList.toggle(b.dataset.select.startsWith("state:") ? "btn-outline-secondary" : "btn-outline-info", !on);
    });
  }
  async function render(selected) {
    const r = await call("POST", editor.dataset.render, {document: doc, selected: selected ?? $("#ed-selected")?.value ?? null});
    if (!r.ok) { showErrors((r.data && r.data.error && (r.data.error.errors || [{path: "", message: r.data.error.message}])) || []); return; }
    body.innerHTML = r.data.html;
    doc = r.data.document;
    wire();
    showErrors(r.data.errors);
  }
  function safely(fn) {
    return async (...args) => {
      try { await fn(...args); } catch (err) {
        if (err && err.path) showErrors([{path: err.path, message: err.message}]); else throw err;
      }
    };
  }

  body.addEventListener("click", safely(async (e) => {
    const pick = e.target.closest("[data-select]:not([data-op]), .mc-wf-state, .mc-wf-edge[data-transition]");
    if (pick && body.contains(pick)) {
      select(pick.dataset.select || (pick.dataset.state ? `state:${pick.dataset.state}` : `transition:${pick.dataset.transition}`));
      return;
    }
    const btn = e.target.closest("[data-op]");
    if (!btn) return;
    collect();
    const path = btn.dataset.path, op = btn.dataset.op;
    if (op === "append") {
      const from = btn.dataset.valueFrom ? $(btn.dataset.valueFrom, body) : null;
      if (from && !from.value) return;
      const value = from ? from.value : JSON.parse(btn.dataset.value);
      const list = getPtr(path);
      if (Array.isArray(list)) list.push(value); else setPtr(path, [value]);
    } else if (op === "put") {
      setPtr(path, JSON.parse(btn.dataset.value));
    } else if (op === "remove") {
      removePtr(path);
    } else if (op === "move") {
      const [list, k] = parentOf(path, false), i = Number(k), j = i + Number(btn.dataset.dir);
      if (!Array.isArray(list) || j < 0 || j >= list.length) return;
      [list[i], list[j]] = [list[j], list[i]];
    }
    await render(btn.dataset.select);
  }));
  body.addEventListener("change", safely(async (e) => {
    const el = e.target;
    if (el.hasAttribute("data-reset-parent")) {
      const p = el.dataset.path, parent = p.slice(0, p.lastIndexOf("/"));
      collect();
      setPtr(parent, {type: el.value});
      await render();
    } else if (el.hasAttribute("data-rerender")) {
      collect();
      await render();
    }
  }));

  // ------------------------------------------------------------------ per-editor wiring
  function wire() {
    // View: the list page's filter builder, fed this entity's fields.
    const metaEl = $("#ed-filter-meta", body), box = $("#ed-filter-box", body);
    builder = null;
    if (metaEl && box && window.metacrmFilterBuilder) {
      const meta = JSON.parse(metaEl.textContent);
      builder = window.metacrmFilterBuilder(meta, box);
      (meta.filters || []).forEach((c) => box.append(builder.row(c)));
      $("#ed-add-filter", body).addEventListener("click", () => box.append(builder.row([meta.fields[0].name, "="])));
    }
    // View: columns dragged into order.
    let dragged = null;
    $$(".ed-draggable", body).forEach((li) => {
      li.addEventListener("dragstart", (e) => { dragged = li; e.dataTransfer.effectAllowed = "move"; e.dataTransfer.setData("text/plain", li.dataset.index); });
      li.addEventListener("dragover", (e) => { e.preventDefault(); li.classList.add("ed-drop"); });
      li.addEventListener("dragleave", () => li.classList.remove("ed-drop"));
      li.addEventListener("drop", safely(async (e) => {
        e.preventDefault();
        if (!dragged || dragged === li) return;
        collect();
        const list = getPtr(li.dataset.list), from = Number(dragged.dataset.index), to = Number(li.dataset.index);
        const [item] = list.splice(from, 1);
        list.splice(to, 0, item);
        await render();
      }));
    });
  }
  wire();
  showErrors(JSON.parse($("#ed-initial-errors").textContent));

  $("#ed-check").addEventListener("click", safely(async () => {
    const r = await call("POST", editor.dataset.check, collect());
    if (!r.ok) return;
    showErrors(r.data.errors);
    status(r.data.valid ? "valid" : "invalid", r.data.errors.length);
  }));
  $("#ed-save").addEventListener("click", safely(async () => {
    const r = await call("PUT", editor.dataset.save, collect());
    if (r.ok) {
      showErrors([]);
      status("saved", "");
      const badge = $("#dz-draft-count");
      if (badge) {
        badge.dataset.count = r.data.changes;
        badge.textContent = $("#ed-status").dataset.changes.replace("{n}", r.data.changes);
        badge.classList.toggle("text-bg-warning", r.data.changes > 0);
        badge.classList.toggle("text-bg-light", !r.data.changes);
      }
      return;
    }
    const err = (r.data && r.data.error) || {};
    const errors = err.errors || [{path: "", message: err.message || String(r.status)}];
    showErrors(errors);
    status("invalid", errors.length);
  }));

  /* A panel's call that failed: its errors beside their inputs and its message in `out`; true then. */
  function refused(r, out) {
    if (r.ok) return false;
    const err = (r.data && r.data.error) || {};
    if (err.errors) showErrors(err.errors);
    out.textContent = err.message || String(r.status);
    return true;
  }

  // ------------------------------------------------------------------ dedup: test this rule
  document.addEventListener("click", safely(async (e) => {
    const btn = e.target.closest("#ed-run-test");
    if (!btn) return;
    const out = $("#ed-test-result");
    out.textContent = "…";
    const r = await call("POST", btn.dataset.url, {document: collect()});
    if (refused(r, out)) return;
    const d = r.data;
    const head = document.createElement("p");
    head.className = "mb-2";
    head.textContent = btn.dataset.summary.replace("{groups}", d.total_groups).replace("{sampled}", d.sampled).replace("{total}", d.total_records);
    const list = document.createElement("ol");
    list.className = "ps-3 mb-0";
    for (const g of d.groups) {
      const li = document.createElement("li");
      li.className = "mb-1 ed-test-group";
      li.dataset.score = g.score;
      li.append(`${Math.round(g.score * 100)}% `);
      g.records.forEach((rec, i) => {
        const a = document.createElement("a");
        a.href = `/r/${rec.entity}/${rec.id}`;
        a.dataset.entity = rec.entity;
        a.target = "_blank";
        a.dataset.id = rec.id;
        const where = rec.entity === d.entity ? "" : `${rec.entity}: `;
        a.textContent = `${where}${rec.title ?? "#" + rec.id} (${Object.values(rec.values).filter((v) => v).join(", ")})`;
        li.append(...(i ? [" · ", a] : [a]));
      });
      list.append(li);
    }
    out.replaceChildren(head, d.groups.length ? list : Object.assign(document.createElement("p"), {textContent: btn.dataset.none}));
  }));

  // ------------------------------------------------------------------ workflow: simulation
  document.addEventListener("click", safely(async (e) => {
    const btn = e.target.closest("#ed-sim-run");
    if (!btn) return;
    const out = $("#ed-sim-result"), L = JSON.parse(out.dataset.labels);
    const record = {};
    $$(".ed-sim-field", body).forEach((el) => { if (el.value.trim() !== "") record[el.name] = el.value.trim(); });
    const r = await call("POST", btn.dataset.url, {document: collect(), user: $("#ed-sim-user").value, record});
    if (refused(r, out)) return;
    const d = r.data;
    const head = document.createElement("p");
    head.className = "mb-2 fw-medium";
    head.textContent = `${d.user.name || d.user.username}: ${d.from.label} → ${d.transition.label} → ${d.waits_in.label}`;
    const nodes = [head];
    if (d.transition.blocked.length) {
      const p = document.createElement("p");
      p.className = "text-danger ed-sim-blocked";
      p.textContent = d.transition.blocked.map((b) => L["blocked_" + b]).join(" ");
      nodes.push(p);
    }
    const list = document.createElement("ol");
    list.className = "list-group list-group-numbered mb-2";
    for (const s of d.steps) {
      const li = document.createElement("li");
      li.className = "list-group-item py-1 ed-sim-step" + (s.status === "skipped" ? " text-body-secondary" : "");
      li.dataset.step = s.name;
      li.dataset.status = s.status;
      const who = s.approvers.map((a) => a.user_name || `#${a.user}`).join(", ");
      const badge = document.createElement("span");
      badge.className = "badge ms-2 " + (s.status === "skipped" ? "text-bg-light border" : s.status === "will_run" ? "text-bg-primary" : "text-bg-warning");
      badge.textContent = L[s.status] || s.status;
      li.append(`${s.label} `, badge, s.status === "skipped" ? "" : ` ${who || (s.reason === "submitter_choice" ? L.choice : L.nobody)}`);
      if (s.cc.length) li.append(` · ${L.cc}: ${s.cc.map((c) => c.user_name).join(", ")}`);
      list.append(li);
    }
    if (d.steps.length) nodes.push(list);
    if (d.ends_in) {
      const p = document.createElement("p");
      p.className = "mb-0 ed-sim-end";
      p.textContent = `${L.ends} ${d.ends_in.label}`;
      nodes.push(p);
    }
    out.replaceChildren(...nodes);
  }));
})();
