/* metacrm designer: the draft bar and the helpers every designer page shares.
   Pages are server-rendered; this file validates the draft, discards it, and gives the
   page scripts `Designer.api` (JSON with the CSRF header) and `Designer.showErrors`
   (an error next to the input whose data-pointer matches its JSON pointer). */
(function () {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  // app.js (loaded first by the shell's base.html) makes the JSON calls: {ok, status, data}.
  const api = (method, url, body) => window.metacrmApi(method, url, body);

  function clearErrors(root) {
    $$(".is-invalid", root).forEach((el) => el.classList.remove("is-invalid"));
    $$(".dz-error", root).forEach((el) => el.remove());
  }

  /* Put each error under the input whose data-pointer is the longest prefix of the
     error's path (so "/fields/3/options/1/value" lands on the options editor if there
     is no input for that exact value); the rest go to the summary box. */
  function showErrors(root, errors, summary) {
    clearErrors(root);
    const inputs = $$("[data-pointer]", root);
    const rest = [];
    (errors || []).forEach((err) => {
      let best = null;
      inputs.forEach((el) => {
        const p = el.dataset.pointer;
        if ((err.path === p || err.path.startsWith(p + "/")) && (!best || p.length > best.dataset.pointer.length)) best = el;
      });
      const msg = document.createElement("div");
      msg.className = "dz-error invalid-feedback d-block";
      msg.dataset.path = err.path;
      msg.textContent = best ? err.message : `${err.source}: ${err.path}: ${err.message}`;
      if (best) {
        best.classList.add("is-invalid");
        best.insertAdjacentElement("afterend", msg);
      } else rest.push(msg);
    });
    if (summary) {
      summary.replaceChildren(...rest);
      summary.classList.toggle("d-none", !rest.length);
    }
  }

  function errorsOf(data) {
    const err = data && data.error;
    if (!err) return [{source: "", path: "/", message: "?"}];
    return err.errors || [{source: "", path: "/", message: err.message}];
  }

  function setCount(changes) {
    const badge = $("#dz-draft-count");
    if (!badge || !changes) return;
    badge.dataset.count = changes.count;
    const lang = document.body.dataset.lang;
    const words = changes.count ? (lang === "zh" ? `${changes.count} 处更改` : `${changes.count} changes`)
                                : (lang === "zh" ? "无更改" : "no changes");
    badge.textContent = (lang === "zh" ? "草稿 — " : "Draft — ") + words;
    badge.classList.toggle("text-bg-warning", !!changes.count);
    badge.classList.toggle("text-bg-light", !changes.count);
  }

  const bar = $("#dz-bar");
  if (bar) {
    const out = $("#dz-bar-result");
    $("#dz-validate").addEventListener("click", async () => {
      const r = await api("POST", bar.dataset.validate);
      out.classList.remove("d-none", "text-success", "text-danger");
      if (r.ok && r.data.ok) {
        out.classList.add("text-success");
        out.textContent = bar.dataset.ok;
      } else {
        const errors = r.ok ? r.data.errors : errorsOf(r.data);
        out.classList.add("text-danger");
        out.replaceChildren(document.createTextNode(bar.dataset.bad.replace("{n}", errors.length)));
        const list = document.createElement("ul");
        list.className = "mb-0";
        errors.slice(0, 20).forEach((e) => {
          const li = document.createElement("li");
          li.textContent = `${e.source}: ${e.path}: ${e.message}`;
          list.appendChild(li);
        });
        out.appendChild(list);
      }
    });
    const discard = $("#dz-discard");
    if (discard) discard.addEventListener("click", async () => {
      if (!confirm(bar.dataset.confirmDiscard)) return;
      const r = await api("POST", bar.dataset.discard);
      if (r.ok) location.reload();
    });
  }

  /* el("div", {class: "x", text: "…", onclick: fn, dataset: {…}}, ...children): a DOM node. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === undefined || v === null || v === false) return;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    children.flat().forEach((c) => c !== null && c !== undefined && node.append(c));
    return node;
  }
  /* A bilingual label ({"en", "zh"} or a plain string) in `lang`. */
  const labelOf = (label, lang) => (label && typeof label === "object") ? (label[lang] || label.en || "") : (label || "");

  window.Designer = {api, showErrors, clearErrors, errorsOf, setCount, el, labelOf, $, $$};
})();
