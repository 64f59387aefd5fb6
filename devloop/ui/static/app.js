// devloop's dashboard: one EventSource on /events; every view is derived from the event stream.
"use strict";
(function () {
  const TOKEN = document.querySelector('meta[name="devloop-token"]').content;
  const MAX_LINES = 5000, MAX_EDITS = 10, MAX_BUILDS = 10, EDIT_WINDOW_S = 300;
  const CRASH_COUNT = 2, CRASH_WINDOW_S = 120;  // crashed this often: "crashing" even once back
  const services = new Map();   // name -> row state
  const builds = new Map();     // name -> [build]
  const edits = [];             // newest last
  const lines = [];             // {svc, cls, text}
  let lastChange = null, paused = false, lastSeq = 0;
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, props, ...kids) => {
    const n = document.createElement(tag);
    Object.assign(n, props || {});
    for (const k of kids) if (k != null) n.append(k);
    return n;
  };
  const ms = (v) => (v == null ? "" : v < 1000 ? `${v.toFixed(1)} ms` : `${(v / 1000).toFixed(2)} s`);
  const hue = (name) => { let h = 0; for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 360; return h; };

  function service(name) {
    if (!services.has(name)) {
      services.set(name, { name, state: "pending", image: "", replicas: null, urls: [],
        sync: null, restarts: 0, error: "", pending: 0, deploying: false, crashes: [], local: null });
      const opt = el("option", { value: name, textContent: name });
      $("#log-service").append(opt);
    }
    return services.get(name);
  }

  // -- the edit timeline ------------------------------------------------------------------
  function currentEdit(ev) {
    const e = edits[edits.length - 1];
    return e && ev.ts - e.ts < EDIT_WINDOW_S ? e : null;
  }
  function lane(edit, svc) {
    if (!edit.lanes.has(svc)) edit.lanes.set(svc, { stages: [] });
    return edit.lanes.get(svc);
  }
  function stage(edit, svc, name, at) {
    if (at == null) return;
    const l = lane(edit, svc);
    if (!l.stages.some((s) => s.name === name)) l.stages.push({ name, at });
  }
  const sinceSeen = (edit, ev) => Math.max(0, (ev.ts - edit.seen) * 1000);

  // -- the event reducer --------------------------------------------------------------------
  function take(ev) {
    const svc = ev.service ? service(ev.service) : null;
    const edit = currentEdit(ev);
    switch (ev.event) {
      case "watching":
        $("#watching").textContent = `watching ${ev.files} files`;
        break;
      case "changes": {
        lastChange = ev;
        const seen = ev.ts - (ev.ms || 0) / 1000;
        edits.push({ ts: ev.ts, seen, paths: ev.paths, files: ev.files, quiet: ev.ms, lanes: new Map() });
        if (edits.length > MAX_EDITS) edits.shift();
        break;
      }
      case "sync":
        if (ev.replay) break;
        svc.sync = { files: ev.files + ev.deleted, ms: ev.ms };
        svc.state = svc.state === "failed" || svc.state === "crashing" ? svc.state : "ready";
        if (edit) {
          stage(edit, ev.service, "batched", edit.quiet || 0);
          stage(edit, ev.service, "planned", ev.planned_ms);
          stage(edit, ev.service, "sent", ev.sent_ms);
          stage(edit, ev.service, "applied", ev.ms);
        }
        break;
      case "restart":
        svc.restarts += 1;
        if (edit) stage(edit, ev.service, "restarted", ev.ms != null ? ev.ms : sinceSeen(edit, ev));
        break;
      case "build_started": {
        svc.state = "building";
        svc.image = ev.image;
        const list = builds.get(ev.service) || [];
        const trigger = lastChange && edit ? lastChange.paths[0] || "" : "(first build)";
        list.push({ image: ev.image, ts: ev.ts, trigger, result: "running", ms: null, cached: 0, log: [] });
        if (list.length > MAX_BUILDS) list.shift();
        builds.set(ev.service, list);
        break;
      }
      case "build_step": {
        const b = (builds.get(ev.service) || []).slice(-1)[0];
        if (b) {
          b.log.push(ev.line);
          if (/\bCACHED\b|Using cache/.test(ev.line)) b.cached += 1;
        }
        break;
      }
      case "build_done": {
        const b = (builds.get(ev.service) || []).slice(-1)[0];
        if (b && b.result === "running") { b.result = "ok"; b.ms = ev.ms; }
        if (edit) stage(edit, ev.service, "built", sinceSeen(edit, ev));
        svc.image = ev.image;
        svc.state = "deploying";
        break;
      }
      case "build_skipped": {
        const list = builds.get(ev.service) || [];
        list.push({ image: ev.image, ts: ev.ts, trigger: lastChange && edit ? lastChange.paths[0] : "(first build)",
          result: "skipped", ms: 0, cached: 0, log: [ev.reason] });
        builds.set(ev.service, list.slice(-MAX_BUILDS));
        svc.image = ev.image;
        break;
      }
      case "deploy":
        svc.deploying = true;
        svc.crashes = [];
        svc.image = ev.image;
        svc.state = "deploying";
        if (edit) stage(edit, ev.service, "deployed", sinceSeen(edit, ev));
        break;
      case "ready":
        svc.deploying = false;
        svc.crashes = svc.crashes.filter((t) => ev.ts - t < CRASH_WINDOW_S);
        svc.state = svc.crashes.length >= CRASH_COUNT ? "crashing" : "ready";
        svc.urls = ev.urls || [];
        if (ev.replicas != null) svc.replicas = ev.replicas;
        if (edit && edit.lanes.has(ev.service)) stage(edit, ev.service, "ready", ev.ms != null ? ev.ms : sinceSeen(edit, ev));
        break;
      case "crashed":
        // the runtime saw a container exit without devloop asking
        svc.restarts += 1;
        svc.crashes.push(ev.ts);
        svc.state = "crashing";
        svc.error = `${ev.container} ${ev.exit_code != null ? `exited with code ${ev.exit_code}` : "exited"}`;
        break;
      case "error":
        if (svc) { svc.error = ev.message; svc.state = "failed"; }
        for (const [name, list] of builds) {
          const b = list[list.length - 1];
          if (b && b.result === "running") {
            b.result = "failed"; b.ms = (ev.ts - b.ts) * 1000; b.log.push(ev.message);
            const s = service(name); s.state = "failed"; s.error = ev.message;
          }
        }
        break;
      case "request": {
        // a button or key: what follows is its edit, not the last save's
        const what = `${ev.command} requested${ev.service ? "" : " (all)"}`;
        lastChange = { paths: [what] };
        edits.push({ ts: ev.ts, seen: ev.ts, paths: [what], files: 1, quiet: 0, lanes: new Map() });
        if (edits.length > MAX_EDITS) edits.shift();
        break;
      }
      case "paused": case "resumed": {
        paused = ev.event === "paused";
        const b = $("#pause");
        b.textContent = paused ? "resume" : "pause";
        b.dataset.command = paused ? "resume" : "pause";
        break;
      }
      case "pending":
        svc.pending = ev.files;
        break;
      case "intercept_started":
        // `dev --local`: the service runs on this machine, the relay took its place
        svc.local = { pid: ev.pid, command: ev.command, header: ev.header, ports: ev.ports, relayed: 0 };
        break;
      case "intercept_relayed":
        if (svc.local) svc.local.relayed = ev.total;
        break;
      case "intercept_ended":
        svc.local = null;
        break;
    }
    addLine(ev);
  }

  // -- logs ---------------------------------------------------------------------------------
  function describe(ev) {
    switch (ev.event) {
      case "log": case "build_step": return ev.line;
      case "changes": return `changed: ${ev.paths.join(", ")}${ev.files > ev.paths.length ? ` and ${ev.files - ev.paths.length} more` : ""}`;
      case "sync": return `${ev.replay ? "replayed" : "synced"} ${ev.paths.slice(0, 3).join(", ")} (${ev.files} files, ${ev.deleted} deleted) in ${ms(ev.ms)}`;
      case "build_started": return `building ${ev.image}`;
      case "build_done": return `built ${ev.image} in ${ms(ev.ms)}`;
      case "build_skipped": return `build skipped: ${ev.image} ${ev.reason}`;
      case "deploy": return `deployed ${ev.image}`;
      case "ready": return `ready ${(ev.urls || []).join(" ")}${ev.ms != null ? ` (${ms(ev.ms)} after the save)` : ""}`;
      case "crashed": return `crashed: ${ev.container} ${ev.exit_code != null ? `exited with code ${ev.exit_code}` : "exited"} (${ev.restarts} time(s)); started again`;
      case "restart": return `restarted process in ${ev.container}${ev.ms != null ? ` (${ms(ev.ms)} after the save)` : ""}`;
      case "watching": return `watching ${ev.roots.length} roots, ${ev.files} files`;
      case "request": return `${ev.command} requested${ev.service ? "" : " (all services)"}`;
      case "pending": return `${ev.files} change(s) wait for a trigger: ${ev.paths.join(", ")}`;
      case "paused": return `paused: ${ev.files} changed file(s) kept until resume`;
      case "resumed": return `resumed: ${ev.files} changed file(s) kept while paused`;
      case "dashboard": return `dashboard ${ev.url}`;
      case "intercept_started": return `local pid ${ev.pid}: ${ev.command}; receives ${ev.header ? `requests with ${ev.header} (HTTP/1.x)` : "all its traffic"} on ${ev.ports.join(", ")}`;
      case "intercept_relayed": return `relayed connection ${ev.total} on port ${ev.port}`;
      case "intercept_ended": return `intercept ended: ${ev.relayed} connection(s) relayed${ev.failed ? `, ${ev.failed} failed` : ""}; the original serves again`;
      default: return ev.message || ev.event;
    }
  }
  function addLine(ev) {
    const isLog = ev.event === "log";
    const cls = isLog ? "" : ev.event === "error" ? "event error" : ev.event === "warning" ? "event warning" : "event";
    const line = { svc: ev.service || "", cls, text: describe(ev), log: isLog };
    lines.push(line);
    if (lines.length > MAX_LINES) lines.shift();
    if (shown(line)) appendLine(line);
  }
  function shown(line) {
    const svc = $("#log-service").value, q = $("#log-search").value.toLowerCase();
    if (!line.log && !$("#log-events").checked) return false;
    if (svc && line.svc !== svc) return false;
    return !q || line.text.toLowerCase().includes(q) || line.svc.toLowerCase().includes(q);
  }
  function lineNode(line) {
    const n = el("div", { className: `line ${line.cls}` });
    if (line.svc) {
      const tag = el("span", { className: "svc", textContent: `[${line.svc}]` });
      tag.style.color = `hsl(${hue(line.svc)} 70% 65%)`;
      n.append(tag);
    }
    n.append(document.createTextNode(line.text));
    n.dataset.service = line.svc;
    return n;
  }
  function appendLine(line) {
    const box = $("#logs");
    box.append(lineNode(line));
    while (box.childElementCount > MAX_LINES) box.firstChild.remove();
    if ($("#log-follow").checked) box.scrollTop = box.scrollHeight;
  }
  function redrawLogs() {
    const box = $("#logs");
    box.replaceChildren(...lines.filter(shown).map(lineNode));
    box.scrollTop = box.scrollHeight;
  }

  // -- rendering (at most once per frame) ---------------------------------------------------
  // what an event changed: only those parts are drawn again
  const PARTS = { rows: drawRows, timeline: drawTimeline, builds: drawBuilds };
  const AFFECTS = { changes: ["timeline"], request: ["timeline"], build_step: ["builds"],
    build_started: ["rows", "builds"], build_done: ["rows", "builds", "timeline"],
    build_skipped: ["rows", "builds"], error: ["rows", "builds"], intercept_relayed: ["rows"],
    intercept_started: ["rows"], intercept_ended: ["rows"] };
  const dirty = new Set();
  function later(ev) {
    if (ev.event === "log") return;
    const parts = AFFECTS[ev.event] || ["rows", "timeline"];
    if (!dirty.size) requestAnimationFrame(draw);
    for (const p of parts) dirty.add(p);
  }
  function draw() {
    for (const p of dirty) PARTS[p]();
    dirty.clear();
  }
  function drawRows() {
    const body = $("#services tbody");
    body.replaceChildren(...[...services.values()].map((s) => {
      const tr = el("tr");
      tr.dataset.service = s.name;
      const urls = el("td", { className: "urls" }, ...s.urls.map((u) => el("a", { href: u, textContent: u, target: "_blank", rel: "noreferrer" })));
      const act = el("td", { className: "actions" });
      for (const c of ["rebuild", "restart", "trigger"]) {
        const b = el("button", { textContent: c, title: `${c} ${s.name}` });
        b.dataset.command = c; b.dataset.service = s.name;
        act.append(b);
      }
      tr.append(
        el("td", { className: "name", textContent: s.name }),
        el("td", { className: `state ${s.state}`, textContent: s.state +
          (s.pending ? ` (${s.pending} waiting)` : "") + (paused ? " (paused)" : "") +
          (s.local ? ` · local pid ${s.local.pid}${s.local.header ? ` (${s.local.header})` : ""}, ${s.local.relayed} relayed` : "") }),
        el("td", { className: "image", textContent: s.image }),
        el("td", { className: "replicas", textContent: s.replicas == null ? "" : String(s.replicas) }),
        urls,
        el("td", { className: "sync", textContent: s.sync ? `${s.sync.files} files, ${ms(s.sync.ms)}` : "" }),
        el("td", { className: "restarts", textContent: String(s.restarts) }),
        el("td", { className: "error", textContent: s.error }),
        act);
      return tr;
    }));
  }
  function drawTimeline() {
    const list = $("#timeline");
    list.replaceChildren(...edits.slice().reverse().filter((e) => e.lanes.size).map((e) => {
      const li = el("li", { className: "edit" });
      const when = new Date(e.seen * 1000).toLocaleTimeString();
      li.append(el("div", { className: "edit-head" },
        el("strong", { textContent: when }),
        el("span", { textContent: e.paths.join(", ") + (e.files > e.paths.length ? ` +${e.files - e.paths.length}` : "") })));
      for (const [svc, l] of e.lanes) {
        const stages = l.stages.slice().sort((a, b) => a.at - b.at);
        const total = Math.max(1, ...stages.map((s) => s.at));
        const bars = el("div", { className: "bars" });
        let prev = 0;
        for (const s of stages) {
          const seg = el("div", { className: `stage ${s.name}`, title: `${s.name}: ${ms(s.at)} after the save (+${ms(s.at - prev)})` });
          seg.style.flex = `${Math.max(s.at - prev, total / 100)} 0 0`;
          seg.dataset.stage = s.name;
          seg.dataset.ms = String(s.at);
          prev = s.at;
          bars.append(seg);
        }
        // each stage's own milliseconds; the total since the save at the end
        const text = stages.map((s, i) => `${s.name} ${i ? "+" : ""}${ms(s.at - (i ? stages[i - 1].at : 0))}`).join(" → ") +
          `  (${ms(total)} in all)`;
        const row = el("div", { className: "lane" }, el("span", { className: "svc", textContent: svc }),
          el("div", {}, bars, el("div", { className: "stages-text", textContent: text })));
        row.dataset.service = svc;
        li.append(row);
      }
      return li;
    }));
  }
  function drawBuilds() {
    const box = $("#builds");
    box.replaceChildren(...[...builds.entries()].map(([name, list]) => {
      const div = el("div", { className: "build-svc" }, el("h3", { textContent: name }));
      div.dataset.service = name;
      for (const b of list.slice().reverse()) {
        const d = el("details", { className: "build", open: !!b.open });
        d.addEventListener("toggle", () => { b.open = d.open; });  // kept across redraws
        d.append(el("summary", {},
          el("span", { className: `result ${b.result}`, textContent: b.result }),
          el("span", { textContent: new Date(b.ts * 1000).toLocaleTimeString() }),
          el("span", { textContent: `trigger: ${b.trigger}` }),
          el("span", { textContent: b.ms == null ? "" : ms(b.ms) }),
          el("span", { textContent: `${b.cached} cached steps` }),
          el("span", { className: "dim", textContent: b.image })),
          el("pre", { textContent: b.log.join("\n") }));
        div.append(d);
      }
      return div;
    }));
  }

  // -- actions: POST with the session's token -----------------------------------------------
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-command]");
    if (!b) return;
    const body = { command: b.dataset.command, service: b.dataset.service || null };
    const r = await fetch("/api/action", { method: "POST", headers: { "Content-Type": "application/json", "X-Devloop-Token": TOKEN }, body: JSON.stringify(body) });
    const notice = $("#notice");
    if (r.ok) { notice.hidden = true; return; }
    const answer = await r.json().catch(() => ({}));
    notice.textContent = `${body.command}: ${answer.error || r.statusText}`;
    notice.hidden = false;
  });
  for (const id of ["#log-service", "#log-search", "#log-events"]) $(id).addEventListener("input", redrawLogs);

  // -- the stream: EventSource reconnects by itself and sends Last-Event-ID ----------------
  const source = new EventSource("/events");
  source.onopen = () => { $("#link").textContent = "live"; $("#link").className = "pill on"; };
  source.onerror = () => { $("#link").textContent = "reconnecting"; $("#link").className = "pill off"; };
  source.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.seq <= lastSeq) return;
    lastSeq = ev.seq;
    take(ev);
    later(ev);
  };
})();
