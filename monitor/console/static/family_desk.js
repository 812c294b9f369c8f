// The families desk: the console's section for the families' side. Data only from /console/desk
// (one answer per message) and /console/api/family/* (a document or photo, each read audited by
// the server, fetched only when a member of staff presses "Show documents"); every value is put in
// the page with textContent. The server checks every rule and role; the page only hides what a
// role cannot use.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const DAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"],
    ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];
  const KINDS = { id_document: "Photo ID", proof_of_address: "Proof of address" };
  const POLL_MS = 60000;
  const desk = { ws: null, opening: null, sent: 0, waiting: new Map(), skew: 0, role: "staff", month: "",
    timer: null, shown: false };

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }
  const when = (s) => new Date(s * 1000).toLocaleString([], { weekday: "short", day: "numeric", month: "short",
    hour: "2-digit", minute: "2-digit" });
  function duration(s) {
    s = Math.abs(Math.round(s / 60));
    const h = Math.floor(s / 60), m = s % 60;
    return h ? `${h} h ${m} min` : `${m} min`;
  }

  // -- the socket: one answer per message ---------------------------------------------------------
  function open() {
    if (desk.ws && desk.ws.readyState === WebSocket.OPEN) return Promise.resolve(desk.ws);
    if (desk.opening) return desk.opening;
    desk.opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/console/desk`);
      ws.onopen = () => { desk.ws = ws; desk.opening = null; resolve(ws); };
      ws.onmessage = (event) => {
        const answer = JSON.parse(event.data);
        const done = desk.waiting.get(answer.ref);
        if (done) { desk.waiting.delete(answer.ref); done(answer); }
      };
      ws.onclose = (event) => {
        desk.ws = null; desk.opening = null;
        for (const done of desk.waiting.values()) done({ type: "error", message: "the connection to the server was lost; try again" });
        desk.waiting.clear();
        if (event.code === 4401) location.reload();  // the session ended: the console asks to sign in
        reject(new Error("closed"));
      };
    });
    return desk.opening;
  }

  async function ask(type, fields = {}) {
    let ws;
    try { ws = await open(); } catch (e) { return { type: "error", message: "cannot reach the server; try again" }; }
    const ref = `d${++desk.sent}`;
    return new Promise((resolve) => {
      desk.waiting.set(ref, resolve);
      ws.send(JSON.stringify({ type, ref, ...fields }));
    });
  }

  function say(text, good) {
    const result = $("desk-result");
    result.textContent = text;
    result.className = `desk-result ${good ? "good" : "bad"}`;
  }

  async function act(type, fields, done) {
    const answer = await ask(type, fields);
    if (answer.type !== "ok") { say(answer.message, false); return null; }
    say(done, true);
    await refresh();
    return answer;
  }

  // -- documents (each view audited by the server) ------------------------------------------------
  function showDocuments(person, place) {
    place.replaceChildren();
    if (person.face_photo) {
      place.append(el("figure", {}, el("img", { src: `/console/api/family/photos/${person.id}`, alt: `Face photo of ${person.name}` }),
        el("figcaption", { text: "Face photo (enrolled)" })));
    }
    for (const d of person.documents) {
      const label = KINDS[d.kind] || d.kind;
      const url = `/console/api/family/documents/${d.id}`;
      if (d.deleted) place.append(el("p", { class: "muted", text: `${label}: deleted after the retention period` }));
      else if (d.content_type === "application/pdf") place.append(el("a", { href: url, text: `Download ${label.toLowerCase()} (PDF)` }));
      else place.append(el("figure", {}, el("img", { src: url, alt: `${label} of ${person.name}` }), el("figcaption", { text: label })));
    }
  }

  function personView(person) {
    const facts = el("div", { class: "facts" },
      el("span", { text: `Born ${person.date_of_birth} (${person.adult ? "adult" : "child"})` }),
      el("span", { text: `Address: ${person.address}` }),
      el("span", { text: `Face photo: ${person.face_photo ? "enrolled" : "missing"}` }));
    for (const d of person.documents) {
      const label = KINDS[d.kind] || d.kind;
      if (d.kind !== "id_document" || d.face_distance === null) { facts.append(el("span", { text: `${label}: received` })); continue; }
      const near = d.face_distance < 0.5;
      facts.append(el("span", {}, `${label}: face on the ID vs face photo `,
        el("span", { class: near ? "distance-near" : "distance-far",
          text: `${d.face_distance.toFixed(2)} (${near ? "likely the same person" : "check carefully: may not be the same person"})` })));
    }
    const place = el("div", { class: "documents" });
    const show = el("button", { class: "secondary", type: "button", text: `Show documents of ${person.name}`,
      onclick: () => { showDocuments(person, place); show.hidden = true; } });
    return el("div", { class: "person" }, el("strong", { text: `${person.name}${person.holder ? " (account holder)" : ""}` }),
      facts, show, place);
  }

  function decide(label, type, field, id, refuseType, what) {
    const reason = el("input", { "aria-label": `Reason for refusing ${what} (the family sees it)`, maxlength: "500",
      placeholder: "Reason for refusing (the family sees it)" });
    return el("div", { class: "decide" },
      el("button", { type: "button", text: label, onclick: () => act(type, { [field]: id }, `${label}: done`) }),
      reason,
      el("button", { type: "button", class: "danger", text: "Refuse",
        onclick: () => act(refuseType, { [field]: id, reason: reason.value }, `Refused ${what}`) }));
  }

  // -- the queues ---------------------------------------------------------------------------------
  function fill(listId, items, render) {
    $(listId).replaceChildren(...items.map(render));
    $(`${listId}-empty`).hidden = items.length > 0;
  }

  function dueText(item) {
    const left = item.due_at - (Date.now() / 1000 + desk.skew);
    return left >= 0 ? { text: `${duration(left)} left of the ${desk.hours} h`, late: false }
      : { text: `late by ${duration(left)}`, late: true };
  }

  function accountView(item) {
    const due = dueText(item);
    const holder = item.people.find((p) => p.holder) || item.people[0];
    const contacts = item.contacts.map((c) => `${c.prisoner_name} (${c.prisoner_id}): ${c.status}`).join("; ");
    return el("li", { class: "desk-item", "data-account": item.account },
      el("h3", { text: `${holder ? holder.name : item.account} — ${item.email}` }),
      el("div", { class: "facts" },
        el("span", { text: `Sent for checking ${when(item.submitted_at)}` }),
        el("span", { class: `due${due.late ? " late" : ""}`, "data-due": String(item.due_at), text: due.text }),
        el("span", { text: `Photo ID shows the address: ${item.id_shows_address ? "yes" : "no (proof of address given)"}` }),
        el("span", { text: `Wants to call: ${contacts}` })),
      ...item.people.map(personView),
      decide("Verify account", "verify", "account", item.account, "refuse_account", "this account"));
  }

  function peopleView(item) {
    return el("li", { class: "desk-item" }, el("h3", { text: `Account ${item.account}` }),
      ...item.people.map((p) => el("div", {}, personView(p),
        decide(`Approve ${p.name}`, "approve_person", "person", p.id, "refuse_person", p.name))));
  }

  function contactView(item) {
    const names = item.people.filter((p) => p.status === "approved").map((p) => p.name).join(", ") || "nobody approved yet";
    return el("li", { class: "desk-item" },
      el("h3", { text: `${item.prisoner_name} (${item.prisoner_id})` }),
      el("p", { text: `Family account ${item.account}; on the visitor list if approved: ${names}` }),
      decide("Approve", "approve_contact", "contact", item.id, "refuse_contact", `the contact with ${item.prisoner_name}`));
  }

  function requestView(item) {
    const first = (item.preferred && item.preferred[0]) || "";
    const at = el("input", { type: "datetime-local", value: first.slice(0, 16), "aria-label": `Time of the call with ${item.prisoner_id} (prison time)` });
    const reason = el("input", { maxlength: "500", "aria-label": "Reason for declining (the family sees it)",
      placeholder: "Reason for declining (the family sees it)" });
    return el("li", { class: "desk-item" },
      el("h3", { text: `Call with ${item.prisoner_id}` }),
      el("div", { class: "facts" },
        el("span", { text: `Who: ${item.people.map((p) => p.name).join(", ")}` }),
        el("span", { text: `Times that suit: ${(item.preferred || []).map((t) => t.replace("T", " ").slice(0, 16)).join("; ")}` }),
        el("span", { text: item.note ? `Note: ${item.note}` : "No note" })),
      el("div", { class: "decide" }, at,
        el("button", { type: "button", text: "Book this time", onclick: () => act("book_request", { request: item.id, starts_at: at.value }, "Booked: the family is e-mailed the join links") }),
        reason,
        el("button", { type: "button", class: "danger", text: "Decline", onclick: () => act("decline_request", { request: item.id, reason: reason.value }, "Request declined") })));
  }

  async function refresh() {
    const answer = await ask("overview");
    if (answer.type !== "ok") { say(answer.message, false); return; }
    desk.skew = answer.now - Date.now() / 1000;
    desk.hours = answer.verification_hours;
    fill("desk-verify", answer.verification, accountView);
    fill("desk-people", answer.people, peopleView);
    fill("desk-contacts", answer.contacts, contactView);
    fill("desk-requests", answer.requests, requestView);
    const waiting = answer.verification.length + answer.people.length + answer.contacts.length + answer.requests.length;
    $("desk-badge").textContent = String(waiting);
    $("desk-badge").hidden = waiting === 0;
    if (desk.shown) { await loadSettings(); await loadAllowances(); }
  }

  // -- calls each month, settings ------------------------------------------------------------------
  async function loadAllowances() {
    const month = $("desk-month").value || desk.month;
    if (!month) return;
    const answer = await ask("allowances", { month });
    if (answer.type !== "ok") { say(answer.message, false); return; }
    $("desk-allowances").replaceChildren(...answer.prisoners.map((p) => el("tr", {},
      el("td", { text: p.name }), el("td", { text: p.id }), el("td", { text: String(p.free) }),
      el("td", { text: String(p.extra) }), el("td", { text: String(p.used) }), el("td", { text: String(p.left) }))));
    const select = $("grant-prisoner"), chosen = select.value;
    select.replaceChildren(...answer.prisoners.map((p) => el("option", { value: p.id, text: `${p.name} (${p.id})` })));
    if (chosen) select.value = chosen;
    $("desk-grants").replaceChildren(...answer.grants.map((g) => el("li", {
      text: `${g.prisoner_id}: ${g.extra_calls} extra (${g.reason}) by ${g.governor}, ${when(g.at)}` })));
    if (!answer.grants.length) $("desk-grants").append(el("li", { class: "muted", text: "None" }));
  }

  async function loadSettings() {
    const answer = await ask("settings");
    if (answer.type !== "ok") { say(answer.message, false); return; }
    desk.role = answer.role;
    desk.month = answer.month;
    if (!$("desk-month").value) $("desk-month").value = answer.month;
    const s = answer.settings, governor = answer.role === "governor";
    $("settings-mode").value = s.mode;
    $("settings-concurrent").value = s.concurrent_calls;
    $("settings-zone").value = s.time_zone;
    $("settings-cutoff").value = s.cancel_cutoff_hours;
    $("settings-days").replaceChildren(...DAYS.map(([key, name]) => el("label", {}, el("span", { text: name }),
      el("input", { id: `settings-${key}`, value: (s.timetable[key] || []).join(", "), "aria-label": `${name} call start times` }))));
    for (const control of $("settings-form").querySelectorAll("input, select, button")) control.disabled = !governor;
    for (const control of $("grant-form").querySelectorAll("input, select, button")) control.disabled = !governor;
    $("settings-note").textContent = governor ? `Settings of ${s.name}.`
      : `Settings of ${s.name}. Only a governor can change them or grant extra calls.`;
  }

  async function saveSettings(event) {
    event.preventDefault();
    const timetable = {};
    for (const [key] of DAYS) {
      const times = $(`settings-${key}`).value.split(/[\s,]+/).filter(Boolean);
      if (times.length) timetable[key] = times;
    }
    await act("change_settings", {
      mode: $("settings-mode").value, time_zone: $("settings-zone").value.trim(),
      concurrent_calls: Number($("settings-concurrent").value), cancel_cutoff_hours: Number($("settings-cutoff").value),
      timetable,
    }, "Settings saved");
  }

  async function grant(event) {
    event.preventDefault();
    const month = $("desk-month").value || desk.month;
    const answer = await act("grant", { prisoner: $("grant-prisoner").value, month,
      extra_calls: Number($("grant-extra").value), reason: $("grant-reason").value }, `Extra calls granted for ${month}`);
    if (answer) $("grant-reason").value = "";
  }

  // -- the section --------------------------------------------------------------------------------
  function show(desktop) {
    desk.shown = desktop;
    $("family-desk").hidden = !desktop;
    document.querySelector("main.layout").hidden = desktop;
    $("show-desk").setAttribute("aria-pressed", String(desktop));
    $("show-calls").setAttribute("aria-pressed", String(!desktop));
    if (desktop) refresh();
  }

  function signedIn() {
    if (desk.timer) return;
    refresh();
    desk.timer = setInterval(() => { if (!$("app-view").hidden) refresh(); }, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("show-desk").addEventListener("click", () => show(true));
    $("show-calls").addEventListener("click", () => show(false));
    $("desk-refresh").addEventListener("click", () => { say("", true); refresh(); });
    $("desk-month").addEventListener("change", loadAllowances);
    $("settings-form").addEventListener("submit", saveSettings);
    $("grant-form").addEventListener("submit", grant);
    // the console shows #app-view once signed in (console.js): the desk starts then
    const app = $("app-view");
    new MutationObserver(() => { if (!app.hidden) signedIn(); }).observe(app, { attributes: true, attributeFilter: ["hidden"] });
    if (!app.hidden) signedIn();
  });
})();
