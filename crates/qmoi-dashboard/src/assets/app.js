// QMOI dashboard. Plain browser JavaScript; no framework, nothing fetched from elsewhere.
// All text from the server is inserted with textContent (never as HTML).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { range: 3600, token: sessionStorage.getItem("qmoi-token") || "", overview: null, chartTimer: null };

function authHeaders() {
  const t = state.token;
  if (!t) return {};
  if (t.includes(":")) return { Authorization: "Basic " + btoa(t) };
  return { Authorization: "Bearer " + t };
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, authHeaders(), opts.headers || {});
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  let body = null;
  const type = r.headers.get("content-type") || "";
  if (type.includes("json")) body = await r.json(); else body = await r.text();
  if (!r.ok) {
    const msg = body && body.error ? body.error : ("HTTP " + r.status);
    const e = new Error(msg);
    e.status = r.status;
    throw e;
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "onclick") e.addEventListener("click", v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function age(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
  const s = Math.max(0, Math.round(seconds));
  if (s >= 86400) return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  if (s >= 3600) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  if (s >= 60) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return s + "s";
}

function since(iso) {
  const t = typeof iso === "number" ? iso * 1000 : Date.parse(iso);
  return isNaN(t) ? "-" : age((Date.now() - t) / 1000) + " ago";
}

function message(text, ok) {
  const m = $("#message");
  m.textContent = text;
  m.className = "message" + (ok ? " ok" : "");
  m.hidden = !text;
  if (text) setTimeout(() => { if (m.textContent === text) m.hidden = true; }, 6000);
}

// ---- status: verdict and component cards ----

function renderOverview(o) {
  state.overview = o;
  const v = o.verdict.overall;
  const ve = $("#verdict");
  ve.textContent = v;
  ve.className = "verdict " + v;
  ve.dataset.verdict = v;
  if (o.supervisor) $("#host").textContent = "supervisor pid " + o.supervisor.pid + " · up " + since(o.supervisor.started_at).replace(" ago", "");
  // A reload whose configuration was invalid: the previous one keeps running; say why.
  const r = o.supervisor && o.supervisor.reload;
  const rf = $("#reload-failed");
  rf.hidden = !(r && !r.ok);
  if (r && !r.ok) {
    rf.replaceChildren(
      el("strong", {}, "Configuration reload failed at " + new Date(r.at).toLocaleString() + "; the previous configuration keeps running."),
      el("ul", {}, ...r.errors.map((e) => el("li", {}, e))),
    );
  }
  const reasons = $("#reasons");
  reasons.replaceChildren(...o.verdict.reasons.map((r) => el("li", { class: v === "critical" ? "critical" : "" }, r)));
  const cards = $("#cards");
  cards.replaceChildren(...o.components.map(card));
  fillMaintenanceComponents(o);
  // A window opened or ended elsewhere (the CLI, the API, a schedule): list it now.
  const inMaintenance = o.components.map((c) => (c.maintenance || "") + (c.maintenance_subjects || []).join(",")).join("|");
  if (state.inMaintenance !== undefined && state.inMaintenance !== inMaintenance) loadMaintenance();
  state.inMaintenance = inMaintenance;
}

function card(c) {
  const status = c.report_status || (c.state === "failed" ? "critical" : "unknown");
  const summary = c.state === "running" || !c.note ? (c.summary || "") : c.note;
  const started = c.started_at && c.pid ? since(c.started_at).replace(" ago", "") : "-";
  // In a maintenance window: it counts for nothing in the verdict; say so, with who and why.
  const maintenance = c.maintenance ? el("div", { class: "maintenance" }, "in maintenance " + c.maintenance) : null;
  // Windows of one endpoint or check: only those count for nothing.
  const subjects = (c.maintenance_subjects || []).map((m) => el("div", { class: "maintenance subject" }, "in maintenance: " + m));
  return el("div", { class: "card " + status, "data-component": c.id },
    el("h3", {}, c.id, el("span", { class: "pill " + c.state }, c.state)),
    maintenance,
    ...subjects,
    el("div", { class: "summary" }, summary),
    el("dl", {},
      el("dt", {}, "status"), el("dd", {}, el("span", { class: "pill " + status }, status)),
      el("dt", {}, "report age"), el("dd", { class: "report-age" }, age(c.report_age_s)),
      el("dt", {}, "restarts"), el("dd", { class: "restarts" }, String(c.restarts)),
      el("dt", {}, "pid"), el("dd", { class: "pid" }, c.pid ? String(c.pid) : "-"),
      el("dt", {}, "uptime"), el("dd", {}, started),
      el("dt", {}, "priority"), el("dd", {}, c.priority)));
}

// ---- alerts ----

async function loadAlerts() {
  let data;
  try { data = await api("/api/alerts"); } catch (e) { return; }
  const tbody = $("#alerts tbody");
  tbody.replaceChildren(...data.active.map(alertRow));
  $("#no-alerts").hidden = data.active.length > 0;
  $("#alert-count").textContent = data.active.length ? "(" + data.active.length + ")" : "";
  $("#recent tbody").replaceChildren(...data.recent.slice(0, 20).map((a) =>
    el("tr", {}, el("td", {}, el("span", { class: "pill " + a.level }, a.level)),
      el("td", {}, a.title, el("div", { class: "detail" }, a.fingerprint)),
      el("td", {}, a.component), el("td", {}, since(a.started_at)), el("td", {}, since(a.ended_at)))));
}

function alertRow(a) {
  const st = [];
  if (a.acknowledged) st.push("acknowledged by " + a.acknowledged.by);
  if (a.silenced_by) st.push("silenced (#" + a.silenced_by + ")");
  const ack = el("button", { type: "button", class: "ack", onclick: () => acknowledge(a.fingerprint) }, "Acknowledge");
  ack.disabled = !!a.acknowledged;
  const sil = el("select", { class: "silence-for", title: "silence for" },
    el("option", { value: "1h" }, "1 h"), el("option", { value: "4h" }, "4 h"), el("option", { value: "1d" }, "1 day"));
  const silBtn = el("button", { type: "button", class: "silence", onclick: () => silence(a.fingerprint, sil.value) }, "Silence");
  return el("tr", { "data-fingerprint": a.fingerprint },
    el("td", {}, el("span", { class: "pill " + a.level }, a.level)),
    el("td", {}, a.title, el("div", { class: "detail" }, a.detail)),
    el("td", {}, a.component),
    el("td", {}, since(a.since)),
    el("td", { class: "alert-state" }, st.join(", ") || "firing"),
    el("td", { class: "actions" }, ack, sil, silBtn));
}

async function acknowledge(fp) {
  try {
    await api("/api/alerts/" + encodeURIComponent(fp) + "/ack", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    message("Acknowledged " + fp, true);
  } catch (e) {
    message(e.status === 401 || e.status === 403 ? "Sign in with an admin token to acknowledge: " + e.message : e.message);
  }
  loadAlerts();
}

async function silence(fp, duration) {
  try {
    const r = await api("/api/silences", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ fingerprint: fp, duration }) });
    message("Silenced " + fp + " (#" + r.id + ") for " + duration, true);
  } catch (e) {
    message(e.status === 401 || e.status === 403 ? "Sign in with an admin token to silence: " + e.message : e.message);
  }
  loadAlerts();
}

// ---- trend charts (canvas) ----

const CHARTS = [
  { title: "CPU busy", metric: "qmoi_cpu_usage_ratio", unit: "%", scale: 100 },
  { title: "Memory used", metric: "qmoi_memory_used_ratio", unit: "%", scale: 100 },
  { title: "Disk used", metric: "qmoi_disk_used_ratio", unit: "%", scale: 100 },
  { title: "Load per core", metric: "qmoi_load1_per_core", unit: "", scale: 1 },
  { title: "Endpoint latency", metric: "qmoi_endpoint_last_latency_seconds", unit: "ms", scale: 1000 },
  { title: "Connectivity latency", metric: "qmoi_connectivity_latency_seconds", unit: "ms", scale: 1000 },
];
const COLORS = ["#2f6fde", "#d64545", "#1f9d55", "#d99a06", "#8b5cf6", "#0ea5e9"];

async function loadCharts() {
  const now = Math.floor(Date.now() / 1000);
  const from = now - state.range;
  const boxes = [];
  for (const c of CHARTS) {
    let data;
    try { data = await api("/api/history?metric=" + encodeURIComponent(c.metric) + "&from=" + from + "&to=" + now); } catch (e) { continue; }
    if (!data.series.length || !data.series.some((s) => s.points.length)) continue;
    boxes.push(chart(c, data.series, from, now));
  }
  $("#charts").replaceChildren(...boxes);
  $("#no-charts").hidden = boxes.length > 0;
}

function chart(c, series, from, to) {
  const canvas = el("canvas", { width: 640, height: 220 });
  const legend = el("div", { class: "legend" });
  const box = el("div", { class: "chart", "data-metric": c.metric }, el("h4", {}, c.title), canvas, legend);
  const g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 52, R = 10, T = 10, B = 24;
  let max = 0;
  for (const s of series) for (const p of s.points) max = Math.max(max, p[1] * c.scale);
  if (c.unit === "%") max = Math.max(max, 100) > 100 ? max : 100;
  if (max <= 0) max = 1;
  const x = (t) => L + ((t - from) / (to - from)) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  g.font = "20px system-ui, sans-serif";
  g.fillStyle = "#667085";
  g.strokeStyle = "#e3e7ec";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    g.beginPath(); g.moveTo(L, y(v)); g.lineTo(W - R, y(v)); g.stroke();
    g.fillText(fmt(v) + c.unit, 2, y(v) + 6);
  }
  g.fillText(new Date(from * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), L, H - 2);
  const right = new Date(to * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  g.fillText(right, W - R - g.measureText(right).width, H - 2);
  const names = [];
  series.forEach((s, i) => {
    g.strokeStyle = COLORS[i % COLORS.length];
    g.lineWidth = 3;
    g.beginPath();
    s.points.forEach((p, j) => (j ? g.lineTo(x(p[0]), y(p[1] * c.scale)) : g.moveTo(x(p[0]), y(p[1] * c.scale))));
    g.stroke();
    // Mark the latest point, so a series with one sample is visible too.
    const lp = s.points[s.points.length - 1];
    if (lp) { g.fillStyle = COLORS[i % COLORS.length]; g.beginPath(); g.arc(x(lp[0]), y(lp[1] * c.scale), 4, 0, 2 * Math.PI); g.fill(); }
    const last = s.points.length ? s.points[s.points.length - 1][1] * c.scale : NaN;
    const label = (s.metric.match(/\{(.*)\}/) || [null, s.component])[1];
    names.push(label + ": " + fmt(last) + c.unit);
  });
  legend.textContent = names.join(" · ");
  return box;
}

function fmt(v) {
  if (!isFinite(v)) return "-";
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

// ---- live updates: Server-Sent Events read with fetch, so the auth header can be sent ----

async function live() {
  let delay = 1000;
  for (;;) {
    try {
      const r = await fetch("/api/events", { headers: authHeaders() });
      if (!r.ok) throw new Error("HTTP " + r.status);
      setLive(true);
      delay = 1000;
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (data) onEvent(JSON.parse(data));
        }
      }
    } catch (e) {
      // fall through to reconnect
    }
    setLive(false);
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 2, 30000);
  }
}

function setLive(on) {
  const l = $("#live");
  l.className = "live " + (on ? "on" : "off");
  l.textContent = on ? "live" : "reconnecting";
}

function onEvent(ev) {
  if (ev.type === "overview") renderOverview(ev.data);
  else if (ev.type === "alert") loadAlerts();
  else if (ev.type === "report") {
    updateCard(ev.data);
    if (ev.data.component === "notification") loadNotifications();
    if (ev.data.component === "backup") loadBackups();
    if (ev.data.component === "performance") loadPerformance();
    if (ev.data.component === "security") loadSecurity();
    if (ev.data.component === "cloud_resources") loadCloud();
  }
}

function updateCard(r) {
  const c = document.querySelector('.card[data-component="' + CSS.escape(r.component) + '"]');
  if (!c) return;
  c.querySelector(".summary").textContent = r.summary;
  c.querySelector(".report-age").textContent = "0s";
  c.className = "card " + r.status;
}

// ---- sign in, config ----

function setupSignin() {
  const form = $("#signin");
  $("#signin-open").addEventListener("click", () => { form.hidden = false; $("#signin-token").focus(); });
  $("#signin-note").textContent = state.token ? "signed in" : "read-only until signed in";
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("#signin-token").value.trim();
    sessionStorage.setItem("qmoi-token", state.token);
    $("#signin-token").value = "";
    $("#signin-note").textContent = "signed in";
    form.hidden = true;
    reloadAll();
  });
  $("#signout").addEventListener("click", () => {
    state.token = "";
    sessionStorage.removeItem("qmoi-token");
    $("#signin-note").textContent = "read-only until signed in";
    reloadAll();
  });
}

// ---- notifications (qmoi-notify's report: dead letters, recent deliveries) ----

async function loadNotifications() {
  let data;
  try { data = await api("/api/monitor/components/notification"); } catch (e) { return; }
  const d = data.report && data.report.details;
  $("#notifications").hidden = !d;
  if (!d) return;
  const dead = d.dead_letters || [];
  $("#notify-summary").textContent = "(" + (d.pending || []).length + " pending)";
  $("#dead-count").textContent = dead.length ? "(" + dead.length + ")" : "";
  $("#no-dead").hidden = dead.length > 0;
  $("#dead tbody").replaceChildren(...dead.map((x) => el("tr", {},
    el("td", {}, x.channel), el("td", {}, x.description), el("td", {}, since(x.failed_at)),
    el("td", {}, String(x.attempts)), el("td", { class: "detail" }, x.last_error))));
  $("#deliveries tbody").replaceChildren(...(d.recent || []).slice().reverse().map((h) => el("tr", {},
    el("td", {}, since(h.at)), el("td", {}, el("span", { class: "pill " + (h.result === "sent" ? "ok" : h.result === "dead" ? "critical" : "warning") }, h.result)),
    el("td", {}, h.channel), el("td", {}, h.target), el("td", {}, h.description), el("td", { class: "detail" }, h.detail))));
}

// ---- backups (qmoi-backup's report: newest backup, verification, recovery procedure) ----

function fmtBytes(b) {
  if (b === null || b === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : String(b)) + " " + units[i];
}

async function loadBackups() {
  let data;
  try { data = await api("/api/monitor/components/backup"); } catch (e) { return; }
  const d = data.report && data.report.details;
  const targets = (d && d.targets) || [];
  $("#backups").hidden = targets.length === 0;
  $("#backup-summary").textContent = "(" + targets.length + " target" + (targets.length === 1 ? "" : "s") + ")";
  $("#backup-table tbody").replaceChildren(...targets.map((t) => {
    const n = t.newest;
    const levels = Object.entries(t.verification || {}).map(([level, v]) =>
      el("span", { class: "pill " + v.status, title: v.message + " (" + since(v.at) + ")" }, level));
    return el("tr", {},
      el("td", {}, t.name),
      el("td", {}, el("span", { class: "pill " + t.status }, t.status)),
      el("td", { class: "detail" }, n ? n.name : (t.error || "none")),
      el("td", {}, n ? since(n.time) : "-"),
      el("td", {}, n ? fmtBytes(n.size) : "-"),
      el("td", {}, ...levels),
      el("td", {}, t.restore_command ? el("code", { class: "restore" }, t.restore_command) : el("span", { class: "muted" }, "not documented (restore_command)")));
  }));
}

// ---- maintenance windows: listed, opened and ended from the page (admin) ----

async function loadMaintenance() {
  let d;
  try { d = await api("/api/maintenance"); } catch (e) { return; }
  const ws = d.windows || [];
  $("#maint-count").textContent = ws.length ? "(" + ws.length + ")" : "";
  $("#no-maint").hidden = ws.length > 0;
  const when = (w) => (w.active ? "until " : new Date(w.starts_at * 1000).toLocaleString() + " to ") + new Date(w.ends_at * 1000).toLocaleString();
  $("#maint-table tbody").replaceChildren(...ws.map((w) => el("tr", { "data-window": String(w.id) },
    el("td", {}, String(w.id)),
    el("td", {}, scopeOf(w), w.active ? el("span", { class: "pill warning" }, "in force") : null),
    el("td", {}, when(w)),
    el("td", { class: "detail" }, w.reason),
    el("td", {}, w.created_by),
    el("td", {}, el("button", { type: "button", class: "end-maint", onclick: () => endMaintenance(w.id) }, "End")))));
}

/// `api_endpoints / checkout {team=payments}`; `*` is every component.
function scopeOf(w) {
  const labels = Object.entries(w.labels || {}).map(([k, v]) => k + "=" + v).join(", ");
  return (w.component === "*" ? "every component" : w.component) + (w.subject ? " / " + w.subject : "") + (labels ? " {" + labels + "}" : "");
}

/// `team=payments, env=prod` as an object; null when a pair is not name=value.
function parseLabels(text) {
  const out = {};
  for (const pair of text.split(/[,\s]+/).filter(Boolean)) {
    const i = pair.indexOf("=");
    if (i < 1 || i === pair.length - 1) return null;
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

/// The component choices follow the overview; a choice the user made is kept.
function fillMaintenanceComponents(o) {
  const sel = $("#maint-component");
  const ids = o.components.filter((c) => c.state !== "disabled").map((c) => c.id);
  if (sel.dataset.ids === ids.join(",")) return;
  const chosen = sel.value;
  sel.replaceChildren(...ids.map((id) => el("option", { value: id }, id)), el("option", { value: "*" }, "every component (by labels)"));
  if (ids.includes(chosen) || chosen === "*") sel.value = chosen;
  sel.dataset.ids = ids.join(",");
}

async function startMaintenance(ev) {
  ev.preventDefault();
  const body = { component: $("#maint-component").value, duration: $("#maint-duration").value, reason: $("#maint-reason").value };
  const subject = $("#maint-subject").value.trim();
  if (subject) body.subject = subject;
  const labels = parseLabels($("#maint-labels").value);
  if (labels === null) {
    message("Labels are name=value pairs, e.g. team=payments");
    return;
  }
  if (Object.keys(labels).length) body.labels = labels;
  try {
    const w = await api("/api/maintenance", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    message("Maintenance window " + w.id + " for " + scopeOf(w) + " opened", true);
    $("#maint-reason").value = "";
    $("#maint-subject").value = "";
    $("#maint-labels").value = "";
  } catch (e) {
    message(e.status === 401 || e.status === 403 ? "Sign in with an admin token to open a window: " + e.message : e.message);
  }
  loadMaintenance();
}

async function endMaintenance(id) {
  try {
    await api("/api/maintenance/" + id, { method: "DELETE" });
    message("Maintenance window " + id + " ended", true);
  } catch (e) {
    message(e.status === 401 || e.status === 403 ? "Sign in with an admin token to end a window: " + e.message : e.message);
  }
  loadMaintenance();
}

// ---- objectives: availability over a window, error budget, burn alerts ----

async function loadSlo() {
  let d;
  try { d = await api("/api/slo"); } catch (e) { return; }
  const rows = d.slos || [];
  $("#slo").hidden = rows.length === 0;
  const alerting = rows.filter((r) => r.alerting).length;
  $("#slo-summary").textContent = "(" + rows.length + (alerting ? ", " + alerting + " burning" : "") + ")";
  const pct = (v, digits) => (v === null || v === undefined) ? "-" : v.toFixed(digits) + "%";
  $("#slo-table tbody").replaceChildren(...rows.map((r) => {
    const budget = r.budget_remaining_percent;
    const cls = r.alerting ? "critical" : (budget <= 0 ? "warning" : "ok");
    const rates = Object.entries(r.burn_rates || {}).filter(([, v]) => v !== null)
      .map(([w, v]) => w + " " + v.toFixed(1) + "\u00d7").join(", ");
    // Endpoints count probes; heartbeats count seconds of being ok.
    const unit = r.component === "heartbeats" ? " s" : " probes";
    return el("tr", {},
      el("td", {}, r.name, el("span", { class: "muted" }, r.component === "heartbeats" ? " (heartbeat)" : " (endpoint)")),
      el("td", {}, r.objective_percent + "% over " + r.window),
      el("td", {}, pct(r.availability_percent, 3), el("span", { class: "muted" }, " (" + r.total + unit + (r.excluded ? ", " + r.excluded + unit + " in maintenance" : "") + ")")),
      el("td", {}, el("span", { class: "pill " + cls }, pct(budget, 1))),
      el("td", { class: "detail" }, rates || "-"),
      el("td", {}, r.alerting ? el("span", { class: "pill critical" }, r.alerting) : "-"));
  }));
}

// ---- fleet: every host as the fleet's engine sees it (only with [fleet]) ----

async function loadFleet() {
  let d;
  try { d = await api("/api/fleet"); } catch (e) {
    if (e.status === 404) { $("#fleet").hidden = true; clearInterval(state.fleetTimer); return; }
    $("#fleet").hidden = false;
    $("#fleet-engine").textContent = "Cannot ask the fleet's engine: " + e.message;
    return;
  }
  $("#fleet").hidden = false;
  const s = d.summary;
  $("#fleet-summary").textContent = "(" + s.hosts + " hosts: " + s.healthy + " healthy, " + s.degraded + " degraded, " +
    s.critical + " critical, " + s.stale + " stale)";
  $("#fleet-engine").textContent = "From " + d.engine + "; a host silent for over " + age(d.stale_after_s) + " is stale.";
  $("#fleet-hosts tbody").replaceChildren(...d.hosts.map((h) => {
    const verdict = h.stale ? "stale" : (h.verdict || "unknown");
    const notOk = h.components_not_ok.map((c) => el("span", { class: "pill " + (c.status === "down" ? "failed" : c.status) }, c.component + " " + c.status));
    return el("tr", { "data-host": h.host },
      el("td", {}, h.host),
      el("td", {}, el("span", { class: "pill " + verdict }, verdict)),
      el("td", {}, h.last_seen ? since(h.last_seen) : "-"),
      el("td", {}, ...(notOk.length ? notOk : [el("span", { class: "muted" }, "none")])),
      el("td", {}, h.critical_alerts + " critical, " + h.warning_alerts + " warning"));
  }));
}

// ---- performance (predictions, recommendations) and security (findings) ----

function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "not growing";
  return age(s);
}

async function loadPerformance() {
  let data;
  try { data = await api("/api/monitor/components/performance"); } catch (e) { return; }
  const r = data.report;
  const d = r && r.details;
  $("#performance").hidden = !d;
  if (!d) return;
  const sys = (r.checks || []).find((c) => c.name === "system");
  $("#perf-system").textContent = sys ? sys.message : "";
  const preds = d.predictions || [];
  $("#perf-summary").textContent = "(" + preds.length + " resources trended)";
  $("#perf-predictions tbody").replaceChildren(...preds.map((p) => el("tr", {},
    el("td", {}, p.resource),
    el("td", {}, p.total > 0 ? (p.used / p.total * 100).toFixed(1) + "%" : "-"),
    el("td", {}, p.resource.startsWith("inodes") ? Math.round(p.rate_per_hour) + " inodes" : fmtBytes(Math.max(0, Math.round(p.rate_per_hour)))),
    el("td", {}, fmtDuration(p.seconds_to_full)))));
  const recs = d.recommendations || [];
  $("#perf-recommendations").replaceChildren(...(recs.length ? recs.map((x) => el("li", {}, el("strong", {}, x.title), " — " + x.evidence))
    : [el("li", { class: "muted" }, "None.")]));
}

async function loadSecurity() {
  let data;
  try { data = await api("/api/monitor/components/security"); } catch (e) { return; }
  const r = data.report;
  $("#security").hidden = !r;
  if (!r) return;
  const findings = (r.checks || []).filter((c) => c.status !== "ok" && c.name.includes(":"));
  $("#security-summary").textContent = "(" + findings.length + " finding" + (findings.length === 1 ? "" : "s") + ")";
  $("#security-findings tbody").replaceChildren(...(findings.length ? findings.map((c) => el("tr", {},
    el("td", {}, el("span", { class: "pill " + c.status }, c.status)),
    el("td", {}, el("code", {}, c.name)),
    el("td", { class: "detail" }, c.message)))
    : [el("tr", {}, el("td", { class: "muted" }, "None: no change since the baselines."), el("td", {}), el("td", {}))]));
}

// ---- cloud (qmoi-cloud's report: providers, cost, waste, the instance inventory) ----

const CLOUD_ROWS = 500;
let cloudInstances = [];

function money(v, cur) {
  return (v === null || v === undefined) ? "-" : v.toFixed(2) + " " + (cur || "");
}

function renderCloudInstances() {
  const f = ($("#cloud-filter").value || "").toLowerCase();
  const rows = cloudInstances.filter((i) => !f || [i.provider, i.id, i.name, i.region, i.zone, i.state, i.type]
    .some((x) => String(x || "").toLowerCase().includes(f)));
  $("#cloud-instance-count").textContent = "(" + rows.length + (rows.length > CLOUD_ROWS ? ", first " + CLOUD_ROWS + " shown" : "") + ")";
  $("#cloud-instances tbody").replaceChildren(...rows.slice(0, CLOUD_ROWS).map((i) => {
    const sc = i.status_check;
    const failed = sc && (sc.instance === "impaired" || sc.system === "impaired");
    const stateClass = i.state === "running" ? "ok" : (i.critical ? "critical" : "unknown");
    return el("tr", {},
      el("td", {}, i.provider),
      el("td", {}, el("code", {}, i.id)),
      el("td", {}, i.name || "", i.critical ? el("span", { class: "pill critical", title: "must be running" }, "critical") : ""),
      el("td", {}, i.type || ""),
      el("td", {}, el("span", { class: "pill " + stateClass }, i.state)),
      el("td", {}, i.zone || i.region),
      el("td", {}, i.cpu === null || i.cpu === undefined ? "-" : i.cpu.toFixed(1) + "%", i.idle ? el("span", { class: "pill warning" }, "idle") : ""),
      el("td", {}, sc ? el("span", { class: "pill " + (failed ? "critical" : "ok") }, failed ? "impaired" : sc.instance) : "-"));
  }));
}

async function loadCloud() {
  let data;
  try { data = await api("/api/monitor/components/cloud_resources"); } catch (e) { return; }
  const d = data.report && data.report.details;
  const providers = (d && d.providers) || [];
  $("#cloud").hidden = providers.length === 0;
  if (!providers.length) return;
  $("#cloud-summary").textContent = "(" + providers.length + " provider" + (providers.length === 1 ? "" : "s") + ", " + (d.instances_total || 0) + " instances)";
  $("#cloud-providers tbody").replaceChildren(...providers.map((p) => {
    const c = p.cost || {};
    const errs = (p.errors || []).map((e) => e.api + " " + e.scope + ": " + e.kind);
    if (p.setup_error) errs.unshift(p.setup_error);
    if (c.error) errs.push("cost: " + c.error);
    const budget = c.budget ? money(c.forecast, c.currency) + " / " + money(c.budget, c.currency) : money(c.forecast, c.currency);
    const over = c.budget && c.forecast >= c.budget ? "critical" : (c.budget && c.forecast >= 0.8 * c.budget ? "warning" : "ok");
    return el("tr", {},
      el("td", {}, p.name + " (" + p.type + ")"),
      el("td", {}, p.instances + " (" + p.running + " running)"),
      el("td", {}, p.volumes + (p.unattached_volumes ? " (" + p.unattached_volumes + " unattached)" : "")),
      el("td", {}, p.public_ips + (p.unassociated_ips ? " (" + p.unassociated_ips + " unassociated)" : "")),
      el("td", {}, money(c.month_to_date, c.currency), c.anomaly ? el("span", { class: "pill warning", title: "yesterday far above the recent mean" }, "anomaly") : ""),
      el("td", {}, c.budget ? el("span", { class: "pill " + over }, budget) : budget),
      el("td", { class: "detail" }, errs.length ? errs.join("; ") : "none"));
  }));
  const waste = d.waste || [];
  $("#cloud-waste-count").textContent = "(" + waste.length + ")";
  $("#cloud-waste").replaceChildren(...(waste.length ? waste.slice(0, 200).map((w) => el("li", {}, el("strong", {}, w.provider), " — " + w.detail))
    : [el("li", { class: "muted" }, "None found.")]));
  cloudInstances = d.instances || [];
  renderCloudInstances();
}

async function loadConfig() {
  try { $("#config").textContent = JSON.stringify(await api("/api/config"), null, 2); } catch (e) { $("#config").textContent = e.message; }
}

async function reloadAll() {
  try {
    renderOverview(await api("/api/monitor/status"));
  } catch (e) {
    if (e.status === 401) { message("This dashboard needs a token: Sign in."); $("#signin").hidden = false; }
    else message("Cannot load the status: " + e.message);
  }
  loadAlerts();
  loadCharts();
  loadConfig();
  loadNotifications();
  loadBackups();
  loadPerformance();
  loadSecurity();
  loadCloud();
  loadFleet();
  loadSlo();
  loadMaintenance();
}

document.addEventListener("DOMContentLoaded", () => {
  setupSignin();
  document.querySelectorAll(".ranges button").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll(".ranges button").forEach((x) => x.classList.toggle("on", x === b));
    state.range = Number(b.dataset.range);
    loadCharts();
  }));
  $("#cloud-filter").addEventListener("input", renderCloudInstances);
  $("#maint-form").addEventListener("submit", startMaintenance);
  reloadAll();
  live();
  state.chartTimer = setInterval(loadCharts, 30000);
  state.notifyTimer = setInterval(loadNotifications, 10000);
  state.fleetTimer = setInterval(loadFleet, 15000);
  state.sloTimer = setInterval(loadSlo, 15000);
  state.maintTimer = setInterval(loadMaintenance, 15000);
});
