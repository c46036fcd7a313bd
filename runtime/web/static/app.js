/* metacrm screens: small progressive enhancements over server-rendered pages.
   Every page works without this file; with it, forms re-check conditions and formulas
   as the user types (asking the server: one source of truth), lookups search as you
   type, the filter builder edits the `filter` parameter, rows can be bulk-actioned and
   kanban cards dragged. */
(function () {
  "use strict";
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const lang = document.body.dataset.lang || "en";

  function toast(message, ok) {
    const el = $("#mc-toast");
    if (!el || !window.bootstrap) { alert(message); return; }
    el.classList.toggle("text-bg-success", !!ok);
    el.classList.toggle("text-bg-danger", !ok);
    $(".toast-body", el).textContent = message;
    bootstrap.Toast.getOrCreateInstance(el).show();
  }

  async function api(method, url, body) {
    const res = await fetch(url, {
      method, credentials: "same-origin",
      headers: Object.assign({"Accept": "application/json", "X-CSRFToken": csrf()},
                             body !== undefined ? {"Content-Type": "application/json"} : {}),
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return {ok: res.ok, status: res.status, data};
  }
  window.metacrmApi = api;  // JSON with the CSRF header: the designer's scripts call it too
  const errorText = (data) => {
    const err = data && data.error;
    if (!err) return "?";
    // The message already names the first problem; other fields are added once each.
    const extra = Object.entries(err.fields || {}).map(([, v]) => [].concat(v).join(" "))
      .filter((text) => !err.message.includes(text));
    return [err.message].concat(extra).join(" ");
  };

  // ---------------------------------------------------------------- notifications bell
  const bell = $("#mc-bell");
  if (bell) bell.addEventListener("show.bs.dropdown", async () => {
    const menu = $(".mc-bell-menu"), list = $(".mc-bell-list", menu);
    const r = await api("GET", menu.dataset.src);
    if (!r.ok || !r.data.items.length) return;
    list.classList.remove("p-3");
    list.replaceChildren(...r.data.items.slice(0, 8).map((n) => {
      const a = document.createElement("a");
      a.className = "dropdown-item small text-wrap" + (n.read ? "" : " fw-semibold");
      a.href = n.link || "#";
      a.textContent = (n.title && (n.title[lang] || n.title.en)) || n.kind;
      return a;
    }));
  });

  // ---------------------------------------------------------------- lookups (type-ahead)
  function lookupSource(box) {
    const kind = box.dataset.kind, target = box.dataset.target;
    if (kind === "user") return (q) => `/api/v1/lookup/users?q=${encodeURIComponent(q)}`;
    if (kind === "department") return (q) => `/api/v1/lookup/departments?q=${encodeURIComponent(q)}`;
    return (q) => `/api/v1/lookup/records/${target}?q=${encodeURIComponent(q)}`;
  }
  function initLookup(box) {
    const text = $(".mc-lookup-text", box), hidden = $(".mc-lookup-value", box), menu = $(".mc-lookup-menu", box);
    if (!text || text.readOnly) return;
    const url = lookupSource(box);
    let timer = null, seq = 0;
    const search = async () => {
      const mine = ++seq;
      const r = await api("GET", url(text.value.trim()));
      if (mine !== seq || !r.ok) return;
      menu.replaceChildren(...r.data.items.map((item) => {
        const b = document.createElement("button");
        b.type = "button"; b.className = "dropdown-item"; b.textContent = item.title;
        b.dataset.id = item.id;
        b.addEventListener("mousedown", (e) => {
          e.preventDefault();
          hidden.value = item.id; text.value = item.title; menu.classList.remove("show");
          hidden.dispatchEvent(new Event("change", {bubbles: true}));
        });
        return b;
      }));
      menu.classList.toggle("show", r.data.items.length > 0);
    };
    text.addEventListener("input", () => {
      if (!text.value.trim()) { hidden.value = ""; hidden.dispatchEvent(new Event("change", {bubbles: true})); }
      clearTimeout(timer); timer = setTimeout(search, 200);
    });
    text.addEventListener("focus", () => { clearTimeout(timer); timer = setTimeout(search, 50); });
    text.addEventListener("blur", () => setTimeout(() => menu.classList.remove("show"), 150));
  }
  $$(".mc-lookup").forEach(initLookup);

  // ---------------------------------------------------------------- forms: live state
  const form = $("form.mc-form");
  if (form) {
    let timer = null, seq = 0;
    // Decimals arrive as JSON strings ("7200.00"): shown grouped, money with ¥, as the server does.
    const shown = (value, el) => {
      if (value === null || value === undefined) return "—";
      const text = String(value);
      if (!/^-?\d+(\.\d+)?$/.test(text)) return text;
      const decimals = (text.split(".")[1] || "").length;
      const grouped = Number(text).toLocaleString("en-US", {minimumFractionDigits: decimals, maximumFractionDigits: decimals});
      return el.dataset.money ? "¥" + grouped : grouped;
    };
    const applyState = (state) => {
      for (const [name, visible] of Object.entries(state.visible || {})) {
        const box = form.querySelector(`.mc-field[data-field="${name}"]`);
        if (box) box.classList.toggle("d-none", !visible);
      }
      for (const [name, required] of Object.entries(state.required || {})) {
        const mark = form.querySelector(`.mc-field[data-field="${name}"] .mc-required`);
        if (mark) mark.classList.toggle("d-none", !required);
      }
      for (const [name, value] of Object.entries(state.values || {})) {
        const out = form.querySelector(`.mc-field[data-field="${name}"] .mc-computed`);
        if (out) out.textContent = shown(value, out);
      }
      for (const [table, rows] of Object.entries(state.lines || {})) {
        const lines = $$(`table.mc-lines[data-table="${table}"] tbody tr.mc-line`, form)
          .filter((tr) => $$("input,select", tr).some((i) => i.type !== "hidden" && i.value !== ""));
        rows.forEach((row, i) => {
          if (!lines[i]) return;
          for (const [name, value] of Object.entries(row)) {
            const out = lines[i].querySelector(`.mc-computed[data-formula="${name}"]`);
            if (out) out.textContent = shown(value, out);
          }
        });
      }
    };
    const refresh = async () => {
      const mine = ++seq;
      const res = await fetch(form.dataset.stateUrl, {method: "POST", body: new FormData(form),
        credentials: "same-origin", headers: {"X-CSRFToken": csrf(), "Accept": "application/json"}});
      if (mine !== seq || !res.ok) return;
      applyState(await res.json());
    };
    const schedule = () => { clearTimeout(timer); timer = setTimeout(refresh, 150); };
    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
    refresh();

    // Child tables (contract lines): add and remove rows; totals come from refresh().
    $$("table.mc-lines", form).forEach((table) => {
      const template = table.closest(".mc-field").querySelector("template.mc-line-template");
      let next = $$("tbody tr.mc-line", table).length;
      $(".mc-add-line", table).addEventListener("click", () => {
        const html = template.innerHTML.replaceAll("__i__", String(next++));
        const tbody = $("tbody", table);
        tbody.insertAdjacentHTML("beforeend", html);
        $$(".mc-lookup", tbody.lastElementChild).forEach(initLookup);
        $$(".mc-file", tbody.lastElementChild).forEach(initFile);
        schedule();
      });
      table.addEventListener("click", (e) => {
        if (e.target.classList.contains("mc-remove-line")) { e.target.closest("tr").remove(); schedule(); }
      });
    });
  }

  // ---------------------------------------------------------------- filter builder
  // One condition row per [field, operator, value]; `collect()` reads them back. The list
  // page and the view designer (window.metacrmFilterBuilder) both build on it.
  function filterBuilder(meta, box) {
    const fieldsByName = Object.fromEntries(meta.fields.map((f) => [f.name, f]));
    const valueInput = (f, op, value) => {
      const arity = meta.operators[op];
      if (arity === "none") return null;
      if (f && f.options.length && arity !== "two") {
        const sel = document.createElement("select");
        sel.className = "form-select form-select-sm mc-cond-value"; sel.multiple = arity === "many";
        f.options.forEach((o) => {
          const opt = new Option(o.label, o.value);
          opt.selected = [].concat(value ?? []).includes(o.value);
          sel.add(opt);
        });
        return sel;
      }
      const input = document.createElement("input");
      input.className = "form-control form-control-sm mc-cond-value";
      input.value = Array.isArray(value) ? value.join(",") : (value ?? "");
      if (f && (f.kind === "date" || f.kind === "datetime")) {
        input.setAttribute("list", "mc-ranges");
        input.placeholder = arity === "two" ? "2026-01-01,2026-12-31" : "this_month / 2026-11-23";
      } else if (arity === "two" || arity === "many") {
        input.placeholder = "a,b";
      }
      return input;
    };
    const row = (cond) => {
      const [name, op, value] = cond;
      const div = document.createElement("div");
      div.className = "d-flex flex-wrap gap-2 mc-condition";
      const fsel = document.createElement("select");
      fsel.className = "form-select form-select-sm w-auto mc-cond-field"; fsel.setAttribute("aria-label", meta.labels.field);
      meta.fields.forEach((f) => fsel.add(new Option(f.label, f.name, false, f.name === name)));
      const osel = document.createElement("select");
      osel.className = "form-select form-select-sm w-auto mc-cond-op"; osel.setAttribute("aria-label", meta.labels.operator);
      Object.keys(meta.operators).forEach((o) => osel.add(new Option(o, o, false, o === op)));
      const holder = document.createElement("div"); holder.className = "mc-cond-holder";
      const redraw = (v) => { const el = valueInput(fieldsByName[fsel.value], osel.value, v); holder.replaceChildren(...(el ? [el] : [])); };
      fsel.addEventListener("change", () => redraw(null));
      osel.addEventListener("change", () => redraw(null));
      const del = document.createElement("button");
      del.type = "button"; del.className = "btn btn-sm btn-outline-danger"; del.textContent = "×";
      del.addEventListener("click", () => div.remove());
      div.append(fsel, osel, holder, del);
      redraw(value);
      return div;
    };
    const parseValue = (f, op, el) => {
      const arity = meta.operators[op];
      if (arity === "none" || !el) return undefined;
      if (el.tagName === "SELECT") {
        const chosen = Array.from(el.selectedOptions).map((o) => o.value);
        return arity === "many" ? chosen : chosen[0];
      }
      const raw = el.value.trim();
      const num = (s) => (f && ["integer", "number"].includes(f.kind) && s !== "" && !isNaN(Number(s))) ? Number(s) : s;
      if (arity === "two" || arity === "many") return raw.split(",").map((s) => num(s.trim())).filter((s) => s !== "");
      return num(raw);
    };
    const collect = () => $$(".mc-condition", box).map((div) => {
      const name = $(".mc-cond-field", div).value, op = $(".mc-cond-op", div).value;
      const value = parseValue(fieldsByName[name], op, $(".mc-cond-value", div));
      return value === undefined ? [name, op] : [name, op, value];
    });
    if (!$("#mc-ranges")) {
      const ranges = document.createElement("datalist");
      ranges.id = "mc-ranges";
      meta.ranges.concat(["$today"]).forEach((r) => ranges.append(new Option(r, r)));
      document.body.append(ranges);
    }
    return {row, collect, fieldsByName};
  }
  window.metacrmFilterBuilder = filterBuilder;

  // ---------------------------------------------------------------- list: filter builder
  const metaEl = $("#mc-filter-meta");
  if (metaEl && $("#mc-filter-json")) {
    const meta = JSON.parse(metaEl.textContent);
    const hidden = $("#mc-filter-json"), box = $("#mc-conditions"), chips = $("#mc-chips");
    let filters = [];
    try { filters = hidden.value ? JSON.parse(hidden.value) : []; } catch (e) { filters = []; }
    const {row, collect, fieldsByName} = filterBuilder(meta, box);
    const simple = filters.every((c) => Array.isArray(c));
    if (simple) filters.forEach((c) => box.append(row(c)));
    $("#mc-add-condition").addEventListener("click", () => box.append(row([meta.fields[0].name, "="])));
    $("#mc-apply-filters").addEventListener("click", () => {
      const list = collect();
      hidden.value = list.length ? JSON.stringify(list) : "";
      const page = $("#mc-list-form input[name=page]"); if (page) page.remove();
      $("#mc-list-form").submit();
    });
    // Chips: the active conditions, each removable.
    filters.forEach((c, i) => {
      if (!Array.isArray(c)) return;
      const f = fieldsByName[c[0]];
      const chip = document.createElement("span");
      chip.className = "badge rounded-pill text-bg-primary d-inline-flex align-items-center gap-1 mc-chip";
      const shown = c.length > 2 ? [].concat(c[2]).map((v) => (f && f.options.find((o) => o.value === v)?.label) || v).join(", ") : "";
      chip.textContent = `${f ? f.label : c[0]} ${c[1]} ${shown}`;
      const x = document.createElement("button");
      x.type = "button"; x.className = "btn-close btn-close-white"; x.style.fontSize = ".6rem";
      x.addEventListener("click", () => {
        const rest = filters.filter((_, j) => j !== i);
        hidden.value = rest.length ? JSON.stringify(rest) : "";
        $("#mc-list-form").submit();
      });
      chip.append(x); chips.append(chip);
    });
  }

  // ---------------------------------------------------------------- list: selection + bulk actions
  const table = $("table.mc-list");
  if (table) {
    const bar = $("#mc-bulk-bar"), count = $("#mc-bulk-count");
    const selected = () => $$(".mc-row-check:checked", table).map((c) => Number(c.value));
    const labels = JSON.parse($("#mc-filter-meta").textContent).labels;
    const update = () => {
      const ids = selected();
      bar.classList.toggle("d-none", ids.length === 0);
      bar.classList.toggle("d-flex", ids.length > 0);
      count.textContent = labels.selected.replace("{n}", ids.length);
      const exp = $("#mc-bulk-export");
      if (exp) exp.href = `${exp.dataset.base}&ids=${ids.join(",")}`;
    };
    table.addEventListener("change", update);
    $("#mc-check-all")?.addEventListener("change", (e) => { $$(".mc-row-check", table).forEach((c) => { c.checked = e.target.checked; }); update(); });
    const run = async (action, extra) => {
      const r = await api("POST", table.dataset.bulkUrl, Object.assign({action, ids: selected()}, extra || {}));
      if (!r.ok) { toast(errorText(r.data), false); return; }
      sessionStorage.setItem("mc-flash", JSON.stringify({message: r.data.message + (r.data.refused.length ? " " + r.data.refused.map((x) => `#${x.id}: ${x.message}`).join("; ") : ""), ok: !r.data.refused.length}));
      location.reload();
    };
    $("#mc-bulk-delete")?.addEventListener("click", (e) => { if (confirm(e.target.dataset.confirm)) run("delete"); });
    $("#mc-bulk-transfer")?.addEventListener("click", () => {
      const to = Number($("#mc-bulk-user").value);
      if (!to) { $("#mc-bulk-user").focus(); return; }
      run("transfer", {to_user: to});
    });
    const picker = $("#mc-bulk-user");
    if (picker) api("GET", "/api/v1/lookup/users?q=").then((r) => {
      if (r.ok) r.data.items.forEach((u) => picker.add(new Option(u.title, u.id)));
    });
  }
  // A link or redirect to #timeline (or any tab) opens that tab.
  if (location.hash && window.bootstrap) {
    const tab = document.querySelector(`[data-bs-target="${CSS.escape(location.hash)}"]`);
    if (tab) bootstrap.Tab.getOrCreateInstance(tab).show();
  }

  const pending = sessionStorage.getItem("mc-flash");
  if (pending) { sessionStorage.removeItem("mc-flash"); const m = JSON.parse(pending); toast(m.message, m.ok); }

  // ---------------------------------------------------------------- record page: workflow buttons
  $$(".mc-transition").forEach((button) => button.addEventListener("click", async () => {
    const box = button.closest(".mc-actions");
    const comment = window.prompt(button.dataset.comment, "");
    if (comment === null) return;  // cancelled
    button.disabled = true;
    const r = await api("POST", `/api/v1/records/${box.dataset.entity}/${box.dataset.id}/transitions/${button.dataset.name}`,
                        {comment: comment || undefined, version: Number(box.dataset.version)});
    if (r.ok) { location.reload(); return; }
    button.disabled = false;
    toast(errorText(r.data), false);
  }));

  // ---------------------------------------------------------------- file and image fields
  // Choosing a file uploads it at once (POST /api/v1/files) and keeps its key in the hidden
  // input; the form then posts only keys. (Without this script the form posts the file.)
  function initFile(box) {
    const pick = $(".mc-file-pick", box), hidden = $(".mc-file-value", box);
    const current = $(".mc-file-current", box), link = $(".mc-file-link", box);
    if (!pick || pick.dataset.ready) return;
    pick.dataset.ready = "1";
    pick.removeAttribute("name");  // live form checks post the form: never the file itself
    const show = (key, name) => {
      hidden.value = key;
      link.textContent = name; link.href = key ? `/api/v1/files/${key.split("/").map(encodeURIComponent).join("/")}` : "#";
      current.classList.toggle("d-none", !key);
      hidden.dispatchEvent(new Event("change", {bubbles: true}));
    };
    pick.addEventListener("change", async () => {
      const file = pick.files[0];
      if (!file) return;
      const body = new FormData();
      body.append("file", file);
      body.append("entity", box.dataset.entity);
      body.append("field", box.dataset.field);
      pick.disabled = true;
      pick.classList.remove("is-invalid");
      const res = await fetch("/api/v1/files", {method: "POST", body, credentials: "same-origin",
                                                headers: {"Accept": "application/json", "X-CSRFToken": csrf()}});
      let data = null;
      try { data = await res.json(); } catch (e) { data = null; }
      pick.disabled = false;
      pick.value = "";
      if (res.ok) { show(data.key, data.name); return; }
      pick.classList.add("is-invalid");
      toast(`${box.dataset.uploadFailed || ""} ${data && data.error ? data.error.message : res.status}`, false);
    });
    const clear = $(".mc-file-clear", box);
    if (clear) clear.addEventListener("click", () => show("", ""));
  }
  $$(".mc-file").forEach(initFile);

  // ---------------------------------------------------------------- approval inbox: the detail drawer
  // Each "Details" link is a page of its own; with this script its body opens in the drawer.
  const drawer = $("#mc-approval-drawer");
  if (drawer && window.bootstrap) $$(".mc-drawer-open").forEach((link) => link.addEventListener("click", async (e) => {
    e.preventDefault();
    const body = $(".mc-drawer-body", drawer);
    body.replaceChildren();
    bootstrap.Offcanvas.getOrCreateInstance(drawer).show();
    const url = new URL(link.href, location.href);
    url.searchParams.set("partial", "1");
    const res = await fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}});
    if (!res.ok) { toast(`${res.status}`, false); return; }
    body.innerHTML = await res.text();  // rendered (and escaped) by the server's template
  }));

  // ---------------------------------------------------------------- kanban: drag a card to another stage
  const board = $(".mc-kanban");
  if (board) {
    let dragged = null, from = null;
    // The server's money format (screen_support.format_number): ¥1,234.50 in both languages.
    const fmt = (n) => "¥" + n.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
    const retotal = (lane, sign, card) => {
      const c = $(".mc-lane-count", lane); c.textContent = Number(c.textContent) + sign;
      const a = $(".mc-lane-amount", lane);
      if (a && card.dataset.amount !== undefined) {
        a.dataset.amount = Number(a.dataset.amount || 0) + sign * Number(card.dataset.amount || 0);
        a.textContent = fmt(Number(a.dataset.amount));
      }
    };
    board.addEventListener("dragstart", (e) => {
      dragged = e.target.closest(".mc-card"); if (!dragged) return;
      from = dragged.closest(".mc-lane"); dragged.classList.add("mc-dragging");
      e.dataTransfer.effectAllowed = "move"; e.dataTransfer.setData("text/plain", dragged.dataset.id);
    });
    board.addEventListener("dragend", () => { dragged?.classList.remove("mc-dragging"); $$(".mc-drop", board).forEach((l) => l.classList.remove("mc-drop")); });
    board.addEventListener("dragover", (e) => { const lane = e.target.closest(".mc-lane"); if (lane && dragged) { e.preventDefault(); lane.classList.add("mc-drop"); } });
    board.addEventListener("dragleave", (e) => { const lane = e.target.closest(".mc-lane"); if (lane && !lane.contains(e.relatedTarget)) lane.classList.remove("mc-drop"); });
    board.addEventListener("drop", async (e) => {
      const lane = e.target.closest(".mc-lane"); if (!lane || !dragged) return;
      e.preventDefault(); lane.classList.remove("mc-drop");
      if (lane === from) return;
      const card = dragged, source = from;
      $(".mc-lane-cards", lane).prepend(card); retotal(lane, 1, card); retotal(source, -1, card);
      const r = await api("POST", `/api/v1/records/${board.dataset.entity}/${card.dataset.id}/move`,
                          {field: board.dataset.field, value: lane.dataset.value, version: Number(card.dataset.version)});
      if (r.ok) {
        card.dataset.version = r.data.version;
        toast(board.dataset.moved.replace("{stage}", lane.dataset.label), true);
      } else {  // refused: the card snaps back and the reason is shown
        $(".mc-lane-cards", source).prepend(card); retotal(lane, -1, card); retotal(source, 1, card);
        card.classList.add("border-danger");
        toast(board.dataset.refused.replace("{reason}", errorText(r.data)), false);
      }
    });
  }
})();
