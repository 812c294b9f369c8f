// Staff console. Data only from /console/api/* and /console/ws; every value is put in the page with
// textContent (never as HTML). The feed remembers the last audit id it saw and asks for what it
// missed when it reconnects.
"use strict";

const REASONS = {
  unbooked_face: "Unbooked person in view", too_many_faces: "Too many people in view",
  face_not_visible: "Face not fully visible", no_face: "Nobody in view", poor_lighting: "Poor lighting",
  capture_attempt: "Recording / screenshot attempt", staff_pause: "Paused by staff",
  analysis_error: "Analysis failed", time_up: "Time up", staff_end: "Ended by staff",
  identity_unconfirmed: "Face not confirmed", store_error: "Records cannot be written",
  recording_error: "Recording cannot be written", camera_moving: "Camera moving (guidance)",
  busy_background: "Busy background (guidance)",
};
const RESULT_SHOWN_MS = 8000;  // how long an action's reply stays under the buttons
const $ = (id) => document.getElementById(id);
const state = {
  me: null, ws: null, lastId: 0, calls: new Map(), records: [], acked: new Set(), open: null, store: { ok: true },
  retry: 500, audio: null, clockSkew: 0, boardTimer: null, watch: null, resultTimer: null,
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}
const reasonText = (r) => REASONS[r] || r;
const clock = (s) => new Date(s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const hhmm = (s) => new Date(s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
function left(s) {
  s = Math.max(0, Math.round(s));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
const now = () => Date.now() / 1000 + state.clockSkew;

// -- login ---------------------------------------------------------------------------------------
async function whoAmI() {
  const r = await fetch("/console/api/me", { credentials: "same-origin" });
  if (!r.ok) return null;
  return r.json();
}

// A refused WebSocket handshake (the server answers 401/403 instead of opening it) reaches the page
// only as close code 1006, the same as a server that is down: ask the server whether the session
// still holds. True only on a definite 401 (a server that cannot be reached: try again later).
async function sessionGone() {
  try {
    const r = await fetch("/console/api/me", { credentials: "same-origin" });
    return r.status === 401;
  } catch (e) {
    return false;
  }
}

function sessionEnded() {
  const ws = state.ws;
  state.ws = null;  // signing in again opens a new feed (start() connects when there is none)
  if (ws) ws.close();
  stopWatching();
  showLogin("Your session ended. Please sign in again.");
}

async function login(event) {
  event.preventDefault();
  unlockAudio();
  const user = $("login-user").value.trim(), password = $("login-password").value;
  const encoded = btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${password}`)));
  const r = await fetch("/console/login", {
    method: "POST", credentials: "same-origin", headers: { Authorization: `Basic ${encoded}` },
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { $("login-error").textContent = body.error || `sign-in failed (${r.status})`; return; }
  $("login-password").value = "";
  $("login-error").textContent = "";
  start(await whoAmI());
}

async function logout() {
  await fetch("/console/logout", { method: "POST", credentials: "same-origin" });
  if (state.ws) state.ws.close();
  location.reload();
}

function showLogin(message = "") {
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("login-user").focus();
}

// -- sound and badge -------------------------------------------------------------------------------
function unlockAudio() {
  if (!state.audio) {
    try { state.audio = new AudioContext(); } catch (e) { state.audio = null; }
  }
  if (state.audio && state.audio.state === "suspended") state.audio.resume();
}
function beep() {
  const ctx = state.audio;
  if (!ctx) return;
  const osc = ctx.createOscillator(), gain = ctx.createGain();
  osc.type = "sine"; osc.frequency.value = 880;
  gain.gain.setValueAtTime(0.0001, ctx.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.3, ctx.currentTime + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.35);
  osc.connect(gain).connect(ctx.destination);
  osc.start(); osc.stop(ctx.currentTime + 0.4);
  document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
}
// recording_failed and mail_failed are not policy decisions, but staff must act on them like on an alert
const ALERT_KINDS = new Set(["alert", "recording_failed", "mail_failed"]);
function isAlert(r) { return ALERT_KINDS.has(r.kind); }
function alertTitle(r) {
  if (r.kind === "mail_failed") return "An email to a family was not sent";
  return r.kind === "recording_failed" ? "Recording failed (the call goes on unrecorded)" : reasonText(r.data.reason);
}
function updateBadge() {
  const open = state.records.filter((r) => isAlert(r) && !state.acked.has(r.audit_id)).length;
  const badge = $("alert-badge");
  badge.textContent = String(open);
  badge.hidden = open === 0;
  document.title = open ? `(${open}) Call monitor` : "Call monitor — staff console";
}

// -- board ------------------------------------------------------------------------------------------
function dayValue() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

async function loadBoard() {
  const day = $("day-picker").value || dayValue();
  const offset = -new Date().getTimezoneOffset();
  const r = await fetch(`/console/api/calls?day=${encodeURIComponent(day)}&utc_offset_min=${offset}`,
    { credentials: "same-origin" });
  if (r.status === 401) { sessionEnded(); return; }
  if (!r.ok) return;
  const body = await r.json();
  state.clockSkew = body.now - Date.now() / 1000;
  state.calls = new Map(body.calls.map((c) => [c.call_id, c]));
  if (body.store) state.store = showStore(body.store);
  renderBoard();
}

function stateCell(call) {
  const cell = el("td", {}, el("span", { class: `pill state-${call.state}`, text: call.state }));
  const reasons = call.state === "paused" || call.state === "ended" ? call.reasons.map(reasonText).join(", ") : "";
  if (call.interrupted) cell.append(el("span", { class: "reasons", text: "interrupted (server restart)" }));
  if (call.records_waiting) cell.append(el("span", { class: "reasons records-waiting", text: "records waiting (store error)" }));
  if (reasons) cell.append(el("span", { class: "reasons", text: reasons }));
  return cell;
}

function renderBoard() {
  const body = $("board-body");
  body.replaceChildren();
  for (const call of state.calls.values()) {
    const present = call.present.length
      ? call.present.map((p) => `${p.participant || p.source} (${p.role === "prisoner" ? "prison side" : "visitor side"})`).join(", ")
      : "—";
    const row = el("tr", { "data-call": call.call_id, onclick: () => openCall(call.call_id) },
      el("td", { text: `${hhmm(call.starts_at)}–${hhmm(call.ends_at)}` }),
      el("td", { text: call.call_id }),
      el("td", { text: `${call.prisoner.name} (${call.prisoner.id})` }),
      el("td", { text: call.visitors.map((v) => v.name + (v.main_caller ? " ★" : "")).join(", ") }),
      stateCell(call),
      el("td", { class: "side", text: present }),
      el("td", { class: "time-left", "data-ends": String(call.ends_at), "data-starts": String(call.starts_at),
        "data-state": call.state, text: "" }),
      el("td", { text: call.unacknowledged ? `${call.unacknowledged} new / ${call.alerts}` : String(call.alerts) }));
    if (state.open === call.call_id) row.classList.add("selected");
    body.append(row);
  }
  $("board-empty").hidden = state.calls.size > 0;
  tickTimes();
}

function tickTimes() {
  for (const cell of document.querySelectorAll("td.time-left")) {
    const ends = Number(cell.dataset.ends), starts = Number(cell.dataset.starts), t = now();
    if (cell.dataset.state === "ended" || t >= ends) cell.textContent = "—";
    else if (t < starts) cell.textContent = `starts in ${left(starts - t)}`;
    else cell.textContent = left(ends - t);
  }
}

function scheduleBoard() {
  clearTimeout(state.boardTimer);
  state.boardTimer = setTimeout(() => { loadBoard(); if (state.open) openCall(state.open, false); }, 150);
}

// -- alert feed -------------------------------------------------------------------------------------
function guidanceFor(alert) {
  const warnings = state.records.filter((r) => r.kind === "warning" && r.call_id === alert.call_id
    && r.audit_id < alert.audit_id && (!alert.data.source || r.data.source === alert.data.source));
  return warnings.length ? warnings[warnings.length - 1].data.guidance : "";
}

function sideOf(callId, source) {
  const call = state.calls.get(callId);
  if (!call || !source) return "";
  return source === call.prisoner.id ? "prison side" : "visitor side";
}

function whoText(record) {
  const d = record.data;
  // for an unbooked face the participant is only the closest booked guess: do not name them
  const named = d.participant && !["unbooked_face", "too_many_faces"].includes(d.reason);
  const side = sideOf(record.call_id, d.source);
  return [named && `participant ${d.participant}`, d.source && `device ${d.source}${side ? ` (${side})` : ""}`]
    .filter(Boolean).join(", ");
}

function alertItem(record) {
  const d = record.data, acked = state.acked.has(record.audit_id);
  const ack = el("button", { class: "secondary", text: acked ? "Acknowledged" : "Acknowledge",
    onclick: () => send({ type: "ack", audit_id: record.audit_id }) });
  ack.disabled = acked;
  const who = whoText(record);
  const item = el("li", { class: `alert${acked ? " acknowledged" : ""}`, "data-audit": String(record.audit_id) },
    el("div", { class: "alert-head" },
      el("span", { class: "alert-reason", text: alertTitle(record) }), ack),
    el("div", { class: "alert-meta",
      text: `${clock(record.at)}${record.call_id ? ` · call ${record.call_id}` : ""}${typeof d.t === "number" ? ` at ${d.t.toFixed(1)} s` : ""}${who ? " · " + who : ""}${d.needs_staff ? " · needs staff approval" : ""}` }));
  const guidance = guidanceFor(record);
  item.append(el("div", { class: "alert-guidance", text: guidance ? `Participant was told: “${guidance}”` : (d.detail || (d.file ? `${d.file}: ${d.error}` : "")) }));
  if (record.kind === "alert" && d.reason === "identity_unconfirmed") item.append(identityPanel(record, state.records, el, send, renderFeed));  // its frame beside the booked photos
  else if (record.evidence) item.append(el("img", { src: `/console/api/evidence/${record.evidence}.jpg`, alt: "evidence frame", class: "evidence" }));
  if (record.call_id) item.addEventListener("dblclick", () => openCall(record.call_id));
  return item;
}

function renderFeed() {
  const alerts = state.records.filter((r) => isAlert(r)).slice(-100).reverse();
  $("alert-feed").replaceChildren(...alerts.map(alertItem));
  $("feed-empty").hidden = alerts.length > 0;
  updateBadge();
}

function takeRecords(records, live) {
  let alerted = false, boardChanged = false;
  for (const r of records) {
    if (r.audit_id <= state.lastId) continue;
    state.lastId = r.audit_id;
    state.records.push(r);
    if (r.kind === "staff_action" && ANSWER_ACTIONS.has(r.data.action)) state.acked.add(r.data.alert_id);
    if (isAlert(r) && live) alerted = true;
    if (r.call_id) boardChanged = true;
  }
  if (state.records.length > 5000) state.records = state.records.slice(-5000);
  renderFeed();
  if (alerted) beep();
  if (boardChanged) scheduleBoard();
}

// -- WebSocket --------------------------------------------------------------------------------------
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/console/ws`);
  state.ws = ws;
  let welcomed = false;
  ws.onopen = () => ws.send(JSON.stringify({ type: "hello", after: state.lastId || null }));
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "welcome") {
      welcomed = true; state.retry = 500;
      $("connection").textContent = "live"; $("connection").className = "conn conn-on";
    } else if (msg.type === "store") {
      if (msg.ok !== state.store.ok) scheduleBoard();  // the board marks the calls whose records wait
      state.store = showStore(msg);
    } else if (msg.type === "records") {
      takeRecords(msg.records, welcomed && (!msg.backlog || state.lastId > 0));
    } else if (identityReply(msg)) { renderFeed();  // a verdict's answer, shown on its alert (identity.js)
    } else if (msg.type === "done" || msg.type === "error") {
      $("action-result").textContent = msg.message;
      $("action-result").className = msg.type === "error" ? "error" : "muted";
      // a reply ("pause sent to …") is about the moment it was sent: it goes after a while, so it
      // is never read as the call's state (the state pill and the history say that)
      clearTimeout(state.resultTimer);
      state.resultTimer = setTimeout(() => { $("action-result").textContent = ""; }, RESULT_SHOWN_MS);
      if (msg.type === "done") scheduleBoard();
    }
  };
  ws.onclose = async (event) => {
    if (state.ws !== ws) return;  // replaced, or closed on purpose
    $("connection").textContent = "offline"; $("connection").className = "conn conn-off";
    if (event.code === 4401) { sessionEnded(); return; }
    if (!welcomed && await sessionGone()) {  // refused at the handshake (the page sees 1006)
      if (state.ws === ws) sessionEnded();
      return;
    }
    if (state.ws !== ws) return;
    setTimeout(() => { if (state.ws === ws) connect(); }, state.retry);
    state.retry = Math.min(state.retry * 2, 10000);
  };
}
function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
  else $("action-result").textContent = "not connected; retrying…";
}

// -- call view --------------------------------------------------------------------------------------
function personText(call, id) {
  if (call.prisoner.id === id) return `${call.prisoner.name} (${id})`;
  const visitor = call.visitors.find((v) => v.id === id);
  return visitor ? `${visitor.name} (${id})` : id || "";
}

function describe(r, call) {
  const d = r.data;
  switch (r.kind) {
    case "state": return [`${d.previous || "?"} → ${d.state}`, (d.reasons || []).map(reasonText).join(", ")];
    case "alert": return [`alert: ${reasonText(d.reason)}`, [whoText(r), d.detail].filter(Boolean).join(" · ")];
    case "warning": return [`guidance: ${reasonText(d.reason)}`, `${d.source ? d.source + ": " : ""}${d.guidance}`];
    case "warning_cleared": return [`cleared: ${reasonText(d.reason)}`, d.source || ""];
    case "identity": return ["identity", `track ${d.track} on ${d.source}: ${d.participant || "not booked"}${d.distance != null ? ` (${d.distance})` : ""}`];
    case "recheck": return ["security check passed", d.awaiting_staff ? "waiting for staff approval" : ""];
    case "staff_action": return [`staff: ${String(d.action).replace("_", " ")}`, `${r.actor.replace("staff:", "")}${d.note ? ": " + d.note : ""}${IDENTITY_ACTIONS.has(d.action) ? ": " + identityActionText({ ...d, participant: personText(call, d.participant) }) : ""}${d.alert_id ? ` (alert ${d.alert_id})` : ""}`];
    case "recording_failed": return ["recording failed", `${d.file || ""}: ${d.error || ""}`];
    case "joined": case "left": {
      const side = { prisoner: "prison side", visitor: "visitor side" }[d.role] || "";
      const dropped = r.kind === "left" && r.actor === "system" ? "disconnected by the server" : "";
      return [r.kind, [personText(call, d.participant || d.source), side, dropped].filter(Boolean).join(", ")];
    }
    default: return [r.kind, JSON.stringify(d)];
  }
}

function renderRecordings(files) {
  const box = $("recordings");
  if (!files.length) { box.replaceChildren(el("p", { class: "muted", text: "No recordings for this call." })); return; }
  box.replaceChildren(...files.map((f) => {
    const start = f.first_frame_call_t != null ? ` from ${f.first_frame_call_t.toFixed(1)} s` : "";
    const label = el("div", { text: `${f.source} ${RECORDING_KINDS[f.kind] || f.kind}, part ${f.part}${start} (${f.bytes < 1048576 ? Math.ceil(f.bytes / 1024) + " KB" : (f.bytes / 1048576).toFixed(1) + " MB"})` });
    const player = el(f.kind === "audio" ? "audio" : "video", { controls: "", preload: "metadata", src: f.url, "data-file": f.file });
    return el("figure", { class: `recording recording-${f.kind}` }, label, player);
  }));
}

const RECORDING_KINDS = { camera: "camera (full rate)", video: "analysed frames", audio: "sound" };

const RESUME_HINTS = {
  automatic: "Resumes by itself when the security check passes. Pause it yourself to hold it for your approval.",
  needs_staff: "Needs your approval: you may approve now; it resumes once the security check also passes.",
  awaiting_staff: "Security check passed: waiting for your approval to resume.",
};

async function openCall(callId, scroll = true) {
  if (state.open !== callId) { stopWatching(); $("watch-status").textContent = ""; }
  const r = await fetch(`/console/api/calls/${encodeURIComponent(callId)}`, { credentials: "same-origin" });
  if (r.status === 401) { sessionEnded(); return; }
  if (!r.ok) return;
  const call = await r.json();
  state.open = callId;
  for (const id of call.acknowledged) state.acked.add(id);
  $("call-view").hidden = false;
  $("call-title").textContent = call.call_id;
  $("call-view").dataset.call = call.call_id;
  $("call-view").dataset.state = call.state;
  const meta = $("call-meta");
  meta.replaceChildren(
    el("div", { text: `Prisoner: ${call.prisoner.name} (${call.prisoner.id})` }),
    el("div", { text: `Visitors: ${call.visitors.map((v) => v.name + (v.main_caller ? " (main caller)" : "")).join(", ")}` }),
    el("div", { text: `Booked: ${hhmm(call.starts_at)}–${hhmm(call.ends_at)}` }),
    el("div", {}, "State: ", el("span", { class: `pill state-${call.state}`, id: "call-state", text: call.state }),
      call.reasons.length ? ` ${call.reasons.map(reasonText).join(", ")}` : ""),
  );
  const running = call.running && call.state !== "ended";
  const route = running && call.state === "paused" ? call.resume : null;
  // a pause that resumes by itself can still be held for staff approval with a staff pause
  $("pause-button").disabled = !running || (call.state === "paused" && route !== "automatic");
  // staff can approve only a pause that needs them; the others resume by themselves
  $("resume-button").disabled = route !== "needs_staff" && route !== "awaiting_staff";
  $("resume-hint").textContent = RESUME_HINTS[route] || "";
  $("end-button").disabled = !running;
  $("watch-button").disabled = !running;
  renderRecordings(call.recordings || []);
  const body = $("timeline-body");
  body.replaceChildren(...call.records.map((rec) => {
    const [what, details] = describe(rec, call);
    const evidence = el("td");
    if (rec.evidence) evidence.append(el("img", { src: `/console/api/evidence/${rec.evidence}.jpg`, alt: "evidence frame" }));
    return el("tr", { class: `kind-${rec.kind}` },
      el("td", { text: typeof rec.data.t === "number" ? `${rec.data.t.toFixed(1)} s` : "" }),
      el("td", { text: clock(rec.at) }), el("td", { text: what }), el("td", { text: details }), evidence);
  }));
  for (const row of document.querySelectorAll("#board-body tr")) row.classList.toggle("selected", row.dataset.call === callId);
  if (scroll) $("call-view").scrollIntoView({ behavior: "smooth", block: "start" });
}

// -- live view: receive-only WebRTC from the relay ---------------------------------------------------
function stopWatching() {
  if (state.watch) {
    const { ws, pc } = state.watch;
    state.watch = null;
    ws.close();
    if (pc) pc.close();
  }
  $("watch-videos").replaceChildren();
  $("watch-button").hidden = false;
  $("unwatch-button").hidden = true;
}

function watch() {
  stopWatching();
  unlockAudio();
  const callId = state.open;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/console/watch`);
  const watching = { ws, pc: null };
  state.watch = watching;
  let pc = null, heard = false;
  $("watch-status").textContent = "connecting…";
  ws.onopen = () => ws.send(JSON.stringify({ type: "watch", call_id: callId }));
  ws.onmessage = async (event) => {
    heard = true;
    const msg = JSON.parse(event.data);
    if (msg.type === "offer") {
      pc = new RTCPeerConnection({ iceServers: msg.ice_servers || [] });
      watching.pc = pc;
      const streams = msg.slots.map(() => new MediaStream());
      $("watch-videos").replaceChildren(...msg.slots.map((slot, i) => {
        const video = el("video", { autoplay: "", playsinline: "", "data-participant": slot.participant });
        video.srcObject = streams[i];
        const side = slot.role === "prisoner" ? "prison side" : "visitor side";
        return el("figure", {}, video, el("figcaption", { text: `${slot.name} (${side})` }));
      }));
      pc.ontrack = (e) => {
        const index = Math.floor(Number(e.transceiver.mid) / 2);
        if (streams[index]) streams[index].addTrack(e.track);
      };
      pc.onconnectionstatechange = () => {
        $("watch-status").textContent = pc.connectionState === "connected" ? "live" : pc.connectionState;
      };
      await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") resolve(); };
        setTimeout(resolve, 3000);
      });
      ws.send(JSON.stringify({ type: "answer", sdp: pc.localDescription.sdp }));
      $("watch-button").hidden = true;
      $("unwatch-button").hidden = false;
    } else if (msg.type === "watching") {
      $("watch-status").textContent = pc && pc.connectionState === "connected" ? "live" : "connecting…";
    } else if (msg.type === "ended") {
      $("watch-status").textContent = "the call has ended";
    } else if (msg.type === "error") {
      $("watch-status").textContent = msg.message;
    }
  };
  ws.onclose = async (event) => {
    if (state.watch !== watching) return;  // stopped on purpose, or another watch replaced it
    stopWatching();
    // nothing heard: refused at the handshake (the page sees 1006), or the server is unreachable
    if (event.code === 4401 || (!heard && await sessionGone())) { sessionEnded(); return; }
    if (!heard) $("watch-status").textContent = "could not connect to the server; press Watch to try again";
  };
}

// -- start ------------------------------------------------------------------------------------------
function start(me) {
  if (!me) { showLogin(); return; }
  state.me = me;
  state.clockSkew = me.now - Date.now() / 1000;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("prison-name").textContent = me.prison;
  $("staff-name").textContent = me.username;
  if (!$("day-picker").value) $("day-picker").value = dayValue();
  loadBoard();
  if (!state.ws) connect();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("logout-button").addEventListener("click", logout);
  $("day-picker").addEventListener("change", loadBoard);
  $("call-close").addEventListener("click", () => {
    stopWatching(); $("call-view").hidden = true; state.open = null; renderBoard();
  });
  $("watch-button").addEventListener("click", watch);
  $("unwatch-button").addEventListener("click", stopWatching);
  $("pause-button").addEventListener("click", () => {
    const note = $("pause-note").value.trim();
    if (!note) { $("action-result").textContent = "Give a reason for pausing."; return; }
    send({ type: "pause", call_id: state.open, note });
    $("pause-note").value = "";
  });
  $("resume-button").addEventListener("click", () => send({ type: "resume", call_id: state.open }));
  $("end-button").addEventListener("click", () => {
    if (confirm("End this call now? It cannot be resumed.")) send({ type: "end", call_id: state.open, note: $("pause-note").value.trim() });
  });
  document.addEventListener("click", unlockAudio, { once: true });
  setInterval(tickTimes, 1000);
  start(await whoAmI());
});
