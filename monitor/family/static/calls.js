// The family pages' calls: the list with join and cancel, booking a free slot, asking for a call.
// Loaded before family.js, whose helpers ($, ask, el, when, notice, say, formError, refresh, show,
// state) these functions use when they run.
"use strict";

function renderCalls() {
  const list = $("calls");
  list.textContent = "";
  for (const call of state.calls) {
    const item = el("li");
    item.append(el("span", `${when(call.starts_at)} with ${call.prisoner_name}`, "title"));
    item.append(el("span", `${call.prison} time (${call.time_zone}). With ${call.people.map((p) => p.name).join(", ")}.`, "meta"));
    if (call.can_join) {
      for (const person of call.people) {
        const join = el("button", `Join as ${person.name}`, "secondary");
        join.type = "button";
        join.addEventListener("click", () => joinCall(call.call_id, person.id, join));
        item.append(join);
      }
    } else {
      item.append(el("span", `You can join from ${when(call.join_opens_at)}.`, "meta"));
    }
    if (call.can_cancel) {
      const cancel = el("button", "Cancel this call", "danger");
      cancel.type = "button";
      cancel.addEventListener("click", () => cancelCall(call));
      item.append(cancel);
      item.append(el("span", `You can cancel until ${when(call.cancel_until)}.`, "meta"));
    }
    list.append(item);
  }
  $("no-calls").hidden = state.calls.length > 0;

  const actions = $("call-actions");
  actions.textContent = "";
  if (state.account.status === "verified") {
    for (const contact of state.contacts.filter((c) => c.status === "approved")) {
      const book = contact.mode === "self_select";
      const button = el("button", book ? `Book a call with ${contact.prisoner_name}` : `Ask for a call with ${contact.prisoner_name}`, "secondary");
      button.type = "button";
      button.addEventListener("click", () => (book ? openBooking(contact) : openRequest(contact)));
      actions.append(button);
    }
  }
  const requests = $("requests");
  requests.textContent = "";
  const words = { open: "Waiting for the prison to book a time", booked: "Booked", declined: "Declined", withdrawn: "Withdrawn" };
  for (const request of state.requests.filter((r) => r.status !== "withdrawn")) {
    const item = el("li");
    item.append(el("span", `Request: ${words[request.status]}`, "title"));
    item.append(el("span", `Times you gave: ${request.preferred.map(when).join("; ")}`, "meta"));
    if (request.reason) item.append(el("span", `Reason: ${request.reason}`, "meta"));
    if (request.status === "open") {
      const withdraw = el("button", "Withdraw this request", "danger");
      withdraw.type = "button";
      withdraw.addEventListener("click", async () => {
        const answer = await ask("withdraw_request", { request: request.id });
        notice(answer.type === "ok" ? "Request withdrawn." : say(answer));
        await refresh();
      });
      item.append(withdraw);
    }
    requests.append(item);
  }
}

async function joinCall(callId, personId, button) {
  button.disabled = true;
  const answer = await ask("join_link", { call_id: callId, person: personId });
  button.disabled = false;
  if (answer.type === "ok") location.href = answer.url;
  else notice(say(answer));
}

async function cancelCall(call) {
  if (!confirm(`Cancel the call on ${when(call.starts_at)}?`)) return;
  const answer = await ask("cancel", { call_id: call.call_id });
  notice(answer.type === "ok" ? "The call is cancelled. We have e-mailed you." : say(answer));
  await refresh();
}

function peopleChoices(container, select, prefix) {
  container.textContent = "";
  select.textContent = "";
  for (const person of state.people.filter((p) => p.status === "approved")) {
    const row = el("div", null, "choice");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `${prefix}-${person.id}`;
    box.value = person.id;
    box.checked = person.holder;
    row.append(box, Object.assign(el("label", person.name), { htmlFor: box.id }));
    container.append(row);
    if (person.adult) select.append(Object.assign(el("option", person.name), { value: person.id }));
  }
}

function chosenPeople(container) {
  return [...container.querySelectorAll("input:checked")].map((box) => box.value);
}

async function openBooking(contact) {
  chosenContact = contact;
  notice("");
  formError("book", "");
  $("book-intro").textContent = `A 30-minute call with ${contact.prisoner_name} at ${contact.prison}. Times are the prison's.`;
  const slots = $("slots");
  slots.textContent = "Loading the free times…";
  peopleChoices($("book-people"), $("book-main"), "book");
  show("book");
  const answer = await ask("slots", { contact: contact.id });
  slots.textContent = "";
  if (answer.type !== "ok") { formError("book", say(answer)); return; }
  const days = new Map();
  for (const slot of answer.slots) {
    const day = slot.starts_at.split("T")[0];
    if (!days.has(day)) days.set(day, []);
    days.get(day).push(slot);
  }
  const picker = $("book-day");
  picker.textContent = "";
  for (const [day, list] of days) {
    const left = list.some((slot) => slot.calls_left > 0);
    picker.append(Object.assign(el("option", `${dayOf(list[0].starts_at)}${left ? "" : " (no calls left this month)"}`), { value: day }));
  }
  picker.onchange = () => showTimes(days.get(picker.value) || []);
  showTimes(days.values().next().value || []);
  $("no-slots").hidden = answer.slots.length > 0;
  picker.disabled = answer.slots.length === 0;
}

function showTimes(list) {
  const slots = $("slots");
  slots.textContent = "";
  const grid = el("div", null, "times");
  list.forEach((slot, n) => {
    const row = el("div", null, "choice");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "slot";
    radio.id = `slot-${n}`;
    radio.value = slot.starts_at;
    radio.disabled = slot.calls_left === 0;
    const label = el("label", slot.starts_at.split("T")[1].slice(0, 5));
    label.htmlFor = radio.id;
    if (radio.disabled) label.append(el("span", " (no calls left this month)", "hint"));
    row.append(radio, label);
    grid.append(row);
  });
  slots.append(grid);
}

async function book(event) {
  event.preventDefault();
  const slot = $("book-form").querySelector("input[name=slot]:checked");
  const people = chosenPeople($("book-people"));
  if (!slot) return formError("book", "Choose a time.");
  if (!people.length) return formError("book", "Choose who joins the call.");
  const answer = await ask("book", { contact: chosenContact.id, starts_at: slot.value, people, main: $("book-main").value });
  if (answer.type !== "ok") return formError("book", say(answer));
  await refresh();
  show("home");
  notice(`Booked: ${when(answer.call.starts_at)}. We have e-mailed you the details and the join link.`);
}

function openRequest(contact) {
  chosenContact = contact;
  notice("");
  formError("request", "");
  $("request-intro").textContent = `${contact.prison} books calls itself. Tell them when suits you (prison time) and they will e-mail you a time.`;
  peopleChoices($("request-people"), $("request-main"), "request");
  show("request");
}

async function requestCall(event) {
  event.preventDefault();
  const preferred = ["pref-1", "pref-2", "pref-3"].map((id) => $(id).value).filter(Boolean).map((v) => v.slice(0, 16));
  const people = chosenPeople($("request-people"));
  if (!preferred.length) return formError("request", "Give at least one time that suits you.");
  if (!people.length) return formError("request", "Choose who joins the call.");
  const answer = await ask("request_call", { contact: chosenContact.id, people, main: $("request-main").value, preferred, note: $("request-note").value });
  if (answer.type !== "ok") return formError("request", say(answer));
  await refresh();
  show("home");
  notice("Request sent. The prison will e-mail you when they have booked a time.");
}
