// The inspector page: polls the mock's control routes (relative to /__mock/) and renders what changed.
// Everything shown is set with textContent, never parsed as HTML: paths and bodies come from clients.
"use strict";

(function () {
  const POLL_MS = 400; // the newest request shows within a second
  const HIDDEN_POLL_MS = 2000; // a tab in the background asks less often
  const SIDE_POLL_MS = 2000; // violations, and the state while its tab is open
  const TOKEN_KEY = "mockserver.controlToken";

  const $ = (id) => document.getElementById(id);
  const rows = new Map(); // seq -> {entry, tr}; rows are added and dropped, never all rebuilt
  let after = 0; // the newest seq the page holds
  let selected = null;
  let waitingForToken = false;
  let stateSeen = -1; // the journal's last seq when the state tab was last refreshed

  // -- calls ------------------------------------------------------------------------------------

  class NeedsToken extends Error {}

  async function call(path, options) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, Object.assign({ cache: "no-store", headers }, options || {}));
    const challenge = response.headers.get("WWW-Authenticate") || "";
    if (response.status === 401 && challenge.includes("mockserver control")) {
      askForToken(token ? "The mock refused that token." : "");
      throw new NeedsToken("control token needed");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error && body.error.message ? body.error.message : response.statusText;
      throw new Error(response.status + ": " + message);
    }
    return body;
  }

  function askForToken(message) {
    waitingForToken = true;
    sessionStorage.removeItem(TOKEN_KEY);
    $("token-error").textContent = message;
    $("token-prompt").hidden = false;
    $("token-input").focus();
    setLive("needs the control token", "off");
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value);
    $("token-input").value = "";
    $("token-prompt").hidden = true;
    waitingForToken = false;
    refreshAll();
  });

  // -- small helpers ----------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setLive(text, mode) {
    const live = $("live");
    live.textContent = text;
    live.dataset.mode = mode;
  }

  let toastTimer = null;
  function toast(text, bad) {
    const node = $("toast");
    node.textContent = text;
    node.classList.toggle("bad", !!bad);
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (node.hidden = true), 4000);
  }

  function clock(seconds) {
    const t = new Date(seconds * 1000);
    const two = (n) => String(n).padStart(2, "0");
    return two(t.getHours()) + ":" + two(t.getMinutes()) + ":" + two(t.getSeconds()) + "." + String(t.getMilliseconds()).padStart(3, "0");
  }

  function statusClass(status) {
    return "s" + String(status).charAt(0);
  }

  function reason(entry) {
    if (!entry.refused_by) return "";
    return "refused by the " + entry.refused_by + " check: " + (entry.error || "");
  }

  function fullPath(entry) {
    const parts = [];
    for (const [key, values] of Object.entries(entry.query || {})) {
      for (const value of values) parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(value));
    }
    return entry.path + (parts.length ? "?" + parts.join("&") : "");
  }

  // -- requests ---------------------------------------------------------------------------------

  function rowFor(entry) {
    const tr = el("tr", "row " + statusClass(entry.status) + (entry.refused_by ? " refused" : ""));
    tr.dataset.seq = entry.seq;
    tr.tabIndex = 0;
    tr.append(el("td", "time", clock(entry.time)), el("td", "instance", entry.instance || ""), el("td", "method", entry.method));
    const where = el("td", "path");
    where.append(el("div", "where", fullPath(entry)));
    if (entry.refused_by) where.append(el("div", "reason", reason(entry)));
    tr.append(where, el("td", "op", entry.operation_id || "—"));
    const status = el("td", "status");
    status.append(el("span", "badge " + statusClass(entry.status), entry.status));
    tr.append(status, el("td", "num", entry.duration_ms.toFixed(1)));
    return tr;
  }

  function addEntries(entries) {
    const fresh = entries.filter((entry) => !rows.has(entry.seq));
    if (!fresh.length) return;
    if (fresh.some((entry) => entry.instance)) {
      addShared(fresh);
      return;
    }
    const made = [];
    for (const entry of fresh) {
      // The map stays oldest first (dropOlderThan relies on it); the table shows the newest on top.
      const tr = rowFor(entry);
      tr.hidden = !matches(entry);
      rows.set(entry.seq, { entry, tr });
      made.push(tr);
    }
    const fragment = document.createDocumentFragment();
    for (let i = made.length - 1; i >= 0; i--) fragment.append(made[i]);
    const body = $("rows");
    body.insertBefore(fragment, body.firstChild);
  }

  function addShared(fresh) {
    // A shared state's journal: every instance writes its entries in batches, so one that arrives now
    // may be older than rows shown already. Each goes where its time puts it (almost always on top);
    // the map still takes them in seq order, which is the order they become visible.
    $("requests").classList.add("shared");
    for (const entry of fresh.slice().sort((a, b) => a.seq - b.seq)) {
      const tr = rowFor(entry);
      tr.hidden = !matches(entry);
      rows.set(entry.seq, { entry, tr });
    }
    const body = $("rows");
    for (const entry of fresh.slice().sort((a, b) => a.time - b.time || a.seq - b.seq)) {
      let next = body.firstChild;
      while (next && rows.get(Number(next.dataset.seq)).entry.time > entry.time) next = next.nextSibling;
      body.insertBefore(rows.get(entry.seq).tr, next);
    }
  }

  function dropOlderThan(oldest) {
    // The journal keeps the newest entries only (or was cleared): drop what it no longer holds.
    for (const [seq, row] of rows) {
      if (seq >= oldest) break; // a Map iterates in insertion order, which is seq order
      row.tr.remove();
      rows.delete(seq);
      if (selected === seq) showDetailsGone(seq);
    }
  }

  function matches(entry) {
    const status = $("filter-status").value;
    if (status === "refused" && !entry.refused_by) return false;
    if (status && status !== "refused" && String(entry.status).charAt(0) !== status) return false;
    const operation = $("filter-operation").value;
    if (operation === "-" && entry.operation_id) return false;
    if (operation && operation !== "-" && entry.operation_id !== operation && entry.canonical_id !== operation) {
      return false;
    }
    const text = $("filter-text").value.trim().toLowerCase();
    if (text && !(fullPath(entry) + " " + reason(entry)).toLowerCase().includes(text)) return false;
    return true;
  }

  function applyFilters() {
    for (const { entry, tr } of rows.values()) tr.hidden = !matches(entry);
    updateCounts();
  }

  function updateCounts() {
    let shown = 0;
    for (const { tr } of rows.values()) if (!tr.hidden) shown++;
    $("requests-count").textContent = rows.size;
    $("shown").textContent = shown === rows.size ? rows.size + " requests" : shown + " of " + rows.size + " requests";
    $("no-requests").hidden = rows.size > 0;
  }

  async function pollJournal() {
    const data = await call("journal?after=" + after);
    dropOlderThan(data.oldest);
    addEntries(data.entries);
    for (const entry of data.entries) after = Math.max(after, entry.seq);
    after = Math.max(after, data.last);
    updateCounts();
    showDropped(data);
  }

  function showDropped(data) {
    // The journal keeps its newest entries within two bounds; say when older ones went, and why.
    const note = $("dropped");
    const dropped = data.dropped || 0;
    note.hidden = dropped === 0;
    if (!dropped || !data.bounds) return;
    const mib = Math.round(data.bounds.bytes / 1048576);
    note.textContent = dropped.toLocaleString("en") + " older request" + (dropped === 1 ? " was" : "s were") +
      " dropped: the journal keeps the last " + data.bounds.entries.toLocaleString("en") +
      " requests of each session, and " + mib + " MiB for all sessions together (--journal-mb).";
  }

  for (const id of ["filter-status", "filter-operation"]) $(id).addEventListener("change", applyFilters);
  $("filter-text").addEventListener("input", applyFilters);
  $("filters").addEventListener("submit", (event) => event.preventDefault());

  $("clear-journal").addEventListener("click", async () => {
    try {
      await call("journal", { method: "DELETE" });
      await pollJournal();
    } catch (error) {
      report(error);
    }
  });

  // -- details ----------------------------------------------------------------------------------

  $("rows").addEventListener("click", (event) => {
    const tr = event.target.closest("tr.row");
    if (tr) select(Number(tr.dataset.seq));
  });
  $("rows").addEventListener("keydown", (event) => {
    const tr = event.target.closest("tr.row");
    if (tr && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      select(Number(tr.dataset.seq));
    }
  });

  async function select(seq) {
    if (selected !== null && rows.has(selected)) rows.get(selected).tr.classList.remove("selected");
    selected = seq;
    if (rows.has(seq)) rows.get(seq).tr.classList.add("selected");
    try {
      const details = await call("journal/" + seq);
      if (selected === seq) showDetails(details);
    } catch (error) {
      if (error instanceof NeedsToken) return;
      if (selected === seq) showDetailsGone(seq, error.message);
    }
  }

  function showDetailsGone(seq, message) {
    const pane = $("details");
    pane.replaceChildren(el("p", "hint", "Request " + seq + " is no longer in the journal." + (message ? " (" + message + ")" : "")));
  }

  function pairsTable(pairs, empty) {
    if (!pairs.length) return el("p", "none", empty);
    const table = el("table", "pairs");
    for (const [name, value] of pairs) {
      const tr = el("tr");
      tr.append(el("th", null, name), el("td", null, value));
      table.append(tr);
    }
    return table;
  }

  function bodyBlock(body) {
    if (!body.bytes) return el("p", "none", "no body");
    let text = body.text;
    if (!body.cut) {
      try {
        text = JSON.stringify(JSON.parse(body.text), null, 2);
      } catch (e) {
        text = body.text; // not JSON: shown as sent
      }
    }
    const block = el("div", "body");
    if (body.cut) {
      block.append(el("p", "cut", "Cut: the journal keeps the first " + body.text.length + " characters of " + body.bytes + " bytes."));
    }
    block.append(el("pre", "json", text));
    return block;
  }

  function showDetails(d) {
    const pane = $("details");
    const parts = [];
    const head = el("div", "head");
    head.append(el("span", "badge " + statusClass(d.status), d.status), el("span", "method", d.method), el("code", "where", fullPath(d)));
    parts.push(head);
    parts.push(
      el(
        "p",
        "meta",
        clock(d.time) + (d.instance ? " · " + d.instance : "") + " · " + (d.operation_id || "no operation") +
          (d.canonical_id && d.canonical_id !== d.operation_id ? " (" + d.canonical_id + ")" : "") +
          " · " + d.duration_ms.toFixed(1) + " ms · #" + d.seq
      )
    );
    if (d.refused_by) {
      const box = el("div", "refusal");
      const title = el("p", "check");
      title.append("Refused by the ", el("strong", null, d.refused_by), " check");
      if (d.param) title.append(" · field ", el("code", "param", d.param));
      box.append(title, el("p", "message", d.error || ""));
      parts.push(box);
    }
    const query = [];
    for (const [key, values] of Object.entries(d.request.query)) for (const value of values) query.push([key, value]);
    parts.push(el("h3", null, "Request"));
    parts.push(el("h4", null, "Query"), pairsTable(query, "no query"));
    parts.push(el("h4", null, "Headers"), pairsTable(d.request.headers, "no headers"));
    parts.push(el("h4", null, "Body"), bodyBlock(d.request.body));
    parts.push(el("h3", null, "Answer " + d.answer.status));
    parts.push(el("h4", null, "Headers"), pairsTable(d.answer.headers, "no headers"));
    parts.push(el("h4", null, "Body"), bodyBlock(d.answer.body));
    pane.replaceChildren(...parts);
  }

  // -- violations -------------------------------------------------------------------------------

  let violationsShown = null; // the JSON last rendered, so an unchanged list is not redrawn

  async function pollViolations() {
    const data = await call("violations");
    const text = JSON.stringify(data);
    if (text === violationsShown) return;
    violationsShown = text;
    const list = data.violations || [];
    $("violations-count").textContent = list.length;
    $("violations-count").classList.toggle("bad", list.length > 0);
    const box = $("violations");
    if (!list.length) {
      box.replaceChildren(el("p", "healthy", "No contract violations: every answer the mock sent kept the contract."));
      return;
    }
    const items = el("ol", "violations");
    for (const v of list) {
      const li = el("li");
      const head = el("p", "where");
      head.append(
        el("code", null, v.method + " " + v.path),
        " " + (v.operation_id || "(no operation)") + (v.status !== null && v.status !== undefined ? " answered " + v.status : "")
      );
      const problems = el("ul", "problems");
      for (const problem of v.problems || []) problems.append(el("li", null, problem));
      li.append(head, problems);
      items.append(li);
    }
    const parts = [items];
    if (data.dropped) parts.unshift(el("p", "hint", data.dropped + " older violations were dropped."));
    box.replaceChildren(...parts);
  }

  // -- state ------------------------------------------------------------------------------------

  const COUNT_LABELS = [
    ["profiles", "profiles"],
    ["versions", "versions"],
    ["audit_logs", "audit rows"],
    ["roles", "roles"],
    ["role_attachments", "role attachments"],
    ["users", "users"],
    ["user_copies", "users' copies"],
    ["virtual_keys", "virtual keys"],
  ];

  async function refreshState() {
    const [counts, profiles, snapshots] = await Promise.all([call("state/counts"), call("state/profiles"), call("snapshots")]);
    stateSeen = after;
    const dl = $("counts");
    const cells = [];
    for (const [key, label] of COUNT_LABELS) {
      const cell = el("div", "count");
      cell.dataset.count = key;
      cell.append(el("dt", null, label), el("dd", null, counts[key]));
      cells.push(cell);
    }
    dl.replaceChildren(...cells);

    const list = $("profiles");
    const items = [];
    for (const p of profiles.profiles) {
      const li = el("li");
      const link = el("a", null, p.name);
      link.href = "state/profiles/" + p.id;
      link.dataset.id = p.id;
      li.append(el("span", "id", "#" + p.id), link, el("span", "meta", "v" + p.version + (p.is_active ? "" : " · inactive")));
      items.push(li);
    }
    list.replaceChildren(...(items.length ? items : [el("li", "none", "no profiles")]));

    const snaps = $("snapshots");
    const rowsOut = [];
    for (const s of snapshots.snapshots) {
      const li = el("li");
      li.dataset.name = s.name;
      const restore = el("button", "restore", "Restore");
      restore.type = "button";
      restore.addEventListener("click", () => act("snapshots/" + encodeURIComponent(s.name) + "/restore", "POST", "Restored snapshot " + s.name));
      const remove = el("button", "delete", "Delete");
      remove.type = "button";
      remove.addEventListener("click", () => act("snapshots/" + encodeURIComponent(s.name), "DELETE", "Deleted snapshot " + s.name));
      li.append(el("strong", "name", s.name), el("span", "meta", s.profiles + " profiles · " + s.created_at), restore, remove);
      rowsOut.push(li);
    }
    snaps.replaceChildren(...(rowsOut.length ? rowsOut : [el("li", "none", "no snapshots yet")]));
  }

  async function act(path, method, done) {
    try {
      await call(path, { method });
      toast(done);
      await refreshState();
    } catch (error) {
      report(error);
    }
  }

  $("profiles").addEventListener("click", async (event) => {
    const link = event.target.closest("a[data-id]");
    if (!link) return;
    event.preventDefault(); // fetched here, so the control token goes with it
    try {
      const profile = await call(link.getAttribute("href"));
      $("profile-title").textContent = "Profile #" + link.dataset.id;
      const pre = $("profile-json");
      pre.className = "json";
      pre.textContent = JSON.stringify(profile, null, 2);
    } catch (error) {
      report(error);
    }
  });

  $("snapshot-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("snapshot-name").value.trim();
    if (!name) return;
    act("snapshots/" + encodeURIComponent(name), "POST", "Saved snapshot " + name);
  });

  $("reset").addEventListener("click", () => {
    if (window.confirm("Reset the whole state to the fixtures? Profiles, history and copies made since are lost (snapshots stay).")) {
      act("reset", "POST", "State reset to the fixtures");
    }
  });

  // -- header, tabs, the loop -------------------------------------------------------------------

  async function loadHeader() {
    const health = await call("health");
    const spec = health.spec || {};
    if (health.mode === "proxy") {
      // A proxy keeps no state of its own: requests and violations only.
      $("served").textContent = (spec.title || "API") + " " + (spec.version || "") + " · proxy to " + health.upstream;
      document.querySelector('.tab[data-tab="state"]').hidden = true;
    } else {
      $("served").textContent = (spec.title || "API") + " " + (spec.version || "") + " · " + health.auth + " auth";
    }
    const document_ = await fetch("../openapi.json").then((r) => r.json());
    const ids = [];
    for (const item of Object.values(document_.paths || {})) {
      for (const operation of Object.values(item)) if (operation && operation.operationId) ids.push(operation.operationId);
    }
    const select = $("filter-operation");
    for (const id of ids.sort()) select.append(new Option(id, id));
    if (health.mode !== "proxy") await loadSessions();
  }

  // The page shows one session at a time: the default state at /__mock/, session NAME at
  // /__session/NAME/__mock/, where every call of the page (relative URLs) lands in that session.
  const SESSION_PAGE = /^\/__session\/([^/]+)\/__mock\//;

  async function loadSessions() {
    const found = SESSION_PAGE.exec(location.pathname);
    const current = found ? decodeURIComponent(found[1]) : "";
    const listing = await call("sessions");
    const names = listing.sessions.map((s) => s.name);
    if (current && !names.includes(current)) names.push(current);
    const picker = $("session");
    for (const name of names.sort()) picker.append(new Option(name, name));
    picker.value = current;
    picker.addEventListener("change", () => {
      const name = picker.value;
      location.href = name ? "/__session/" + encodeURIComponent(name) + "/__mock/" : "/__mock/";
    });
    $("session-picker").hidden = false;
  }

  function currentTab() {
    return document.querySelector(".tab[aria-selected=true]").dataset.tab;
  }

  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tab")) other.setAttribute("aria-selected", String(other === tab));
      for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.dataset.panel !== tab.dataset.tab;
      if (tab.dataset.tab === "state") refreshState().catch(report);
    });
  }

  function report(error) {
    if (error instanceof NeedsToken) return;
    toast(error.message, true);
  }

  let headerLoaded = false;
  async function refreshAll() {
    try {
      if (!headerLoaded) {
        await loadHeader();
        headerLoaded = true;
      }
      await pollJournal();
      await pollViolations();
      if (currentTab() === "state") await refreshState();
    } catch (error) {
      report(error);
    }
  }

  async function loop() {
    if (!waitingForToken) {
      try {
        if (!headerLoaded) {
          await loadHeader();
          headerLoaded = true;
        }
        await pollJournal();
        setLive("live", "on");
      } catch (error) {
        if (!(error instanceof NeedsToken)) setLive("the mock does not answer", "off");
      }
    }
    setTimeout(loop, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  let sideTicks = 0;
  async function sideLoop() {
    if (!waitingForToken) {
      try {
        await pollViolations();
        // The state changes with the API's requests (the journal moves) and with control calls from
        // elsewhere (a reset by curl, say), which the journal does not show: those within 10 s.
        sideTicks++;
        if (currentTab() === "state" && (stateSeen !== after || sideTicks % 5 === 0)) await refreshState();
      } catch (error) {
        // the main loop shows whether the mock answers
      }
    }
    setTimeout(sideLoop, document.hidden ? 5 * SIDE_POLL_MS : SIDE_POLL_MS);
  }

  updateCounts();
  loop().then(() => sideLoop());
})();
