// Staff verdicts on an undecided face ("identity_unconfirmed" alerts). Loaded before console.js,
// whose alert feed calls identityPanel for such an alert: the frame the call saw and the reference
// photos of the people booked on that side, side by side, a "This is <name>" button for each of
// them and "Not booked". A verdict is sent on the feed's WebSocket; what was decided (or why it was
// not applied) comes back as a staff_action record and is shown in place of the buttons. Every
// value goes into the page with textContent.
"use strict";

// staff actions that answer an alert (monitor/console/board.py ANSWERS)
const ANSWER_ACTIONS = new Set(["acknowledge", "confirm_identity", "reject_identity"]);
const IDENTITY_ACTIONS = new Set(["confirm_identity", "reject_identity", "identity_refused"]);
const identityFaces = new Map();  // alert id -> GET /console/api/identity/<id> (null: not available)
const identityRefusals = new Map();  // alert id -> why the server refused this page's last verdict

// console.js hands every answer here first: true when it answers a verdict (its ref names the alert)
function identityReply(msg) {
  const match = /^identity:(\d+)$/.exec(msg.ref || "");
  if ((msg.type !== "done" && msg.type !== "error") || !match) return false;
  if (msg.type === "error") identityRefusals.set(Number(match[1]), msg.message);
  else identityRefusals.delete(Number(match[1]));
  return true;
}

function identityVerdict(records, alertId) {
  const said = records.filter((r) => r.kind === "staff_action" && r.data.alert_id === alertId
    && IDENTITY_ACTIONS.has(r.data.action));
  return said.length ? said[said.length - 1] : null;
}

function personName(face, id) {
  const person = face && face.people.find((p) => p.id === id);
  return person ? person.name : id;
}

function identityActionText(data, face = null) {
  const who = `face ${data.track} on ${data.source}`;
  if (data.action === "confirm_identity") return `${who} confirmed as ${personName(face, data.participant)}`;
  if (data.action === "reject_identity") return `${who} rejected: not booked`;
  if (data.action === "identity_refused") return `not applied: ${data.reason}`;
  return "";
}

function figure(el, src, alt, caption) {
  return el("figure", { class: "identity-picture" }, el("img", { src, alt }), el("figcaption", { text: caption }));
}

function renderIdentity(box, record, face, records, el, send) {
  const seen = record.evidence
    ? figure(el, `/console/api/evidence/${record.evidence}.jpg`, "face seen on the call", `Seen on the call (face ${face.track})`)
    : el("p", { class: "muted", text: "No frame of the call was kept." });
  const booked = face.people.map((p) => p.photos.length
    ? figure(el, p.photos[0], `booked reference photo of ${p.name}`, `${p.name}: booked photo`)
    : el("p", { class: "muted", text: `${p.name}: no reference photo` }));
  const verdict = identityVerdict(records, record.audit_id);
  const ref = `identity:${record.audit_id}`;
  const buttons = el("div", { class: "identity-actions" },
    ...face.people.map((p) => el("button", { class: "confirm", "data-participant": p.id, text: `This is ${p.name}`,
      onclick: () => send({ type: "confirm_identity", alert_id: record.audit_id, participant: p.id, ref }) })),
    el("button", { class: "danger reject", text: "Not booked",
      onclick: () => send({ type: "reject_identity", alert_id: record.audit_id, ref }) }));
  const refused = identityRefusals.get(record.audit_id);
  // a verdict holds for the rest of the call: shown, and the buttons stay for a correction
  const said = verdict
    ? el("p", { class: "identity-verdict", text: `${identityActionText(verdict.data, face)} (by ${verdict.actor.replace("staff:", "")})` })
    : el("p", { class: "identity-verdict muted", text: "Is this someone booked on the call?" });
  box.replaceChildren(el("div", { class: "identity-pictures" }, seen, ...booked), said, buttons,
    el("p", { class: "identity-refused error", role: "status", text: refused ? `Not done: ${refused}` : "" }));
}

// ``rerender`` redraws the feed once the alert's photos are known (asked for once per alert)
function identityPanel(record, records, el, send, rerender) {
  const box = el("div", { class: "identity", "data-alert": String(record.audit_id) });
  const face = identityFaces.get(record.audit_id);
  if (face) {
    renderIdentity(box, record, face, records, el, send);
    return box;
  }
  box.append(el("p", { class: "muted", text: face === null ? "The booked photos cannot be shown." : "Loading the booked photos…" }));
  if (face === undefined) {
    identityFaces.set(record.audit_id, false);
    fetch(`/console/api/identity/${record.audit_id}`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null), () => null)
      .then((loaded) => { identityFaces.set(record.audit_id, loaded); rerender(); });
  }
  return box;
}
