// The family pages: one page, several views, everything over /family/ws (see monitor/family/api.py).
// No framework. Text from the server is always put in with textContent, never as HTML.
"use strict";

const MAX_UPLOAD = 10 * 1024 * 1024;
const $ = (id) => document.getElementById(id);
let socket = null;
let opening = null;
let sent = 0;
const waiting = new Map(); // ref -> resolve
let state = null; // the last status answer
let chosenContact = null;

// ---- the socket -----------------------------------------------------------------------------------

function connect() {
  if (socket && socket.readyState === WebSocket.OPEN) return Promise.resolve();
  if (opening) return opening;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  opening = new Promise((resolve, reject) => {
    const ws = new WebSocket(`${scheme}//${location.host}/family/ws`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { socket = ws; opening = null; resolve(); };
    ws.onerror = () => { opening = null; reject(new Error("We cannot reach the server. Check your connection and try again.")); };
    ws.onclose = () => {
      if (socket === ws) socket = null;
      for (const resolve of waiting.values()) resolve({ type: "error", code: "closed", message: "The connection was lost. Please try again." });
      waiting.clear();
    };
    ws.onmessage = (event) => {
      let answer;
      try { answer = JSON.parse(event.data); } catch { return; }
      const resolve = waiting.get(answer.ref);
      if (resolve) { waiting.delete(answer.ref); resolve(answer); }
    };
  });
  return opening;
}

function reconnect() {
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  return connect();
}

async function ask(type, fields = {}) {
  await connect();
  const ref = `r${++sent}`;
  const answer = new Promise((resolve) => waiting.set(ref, resolve));
  socket.send(JSON.stringify({ type, ref, ...fields }));
  return answer;
}

async function sendFile(kind, person, file) {
  if (file.size > MAX_UPLOAD) {
    const mb = (file.size / 1024 / 1024).toFixed(1);
    return { type: "error", message: `This file is ${mb} MB; the most we take is 10 MB. Send a smaller photo or scan.` };
  }
  const ready = await ask("upload", { kind, person, bytes: file.size, content_type: file.type || "" });
  if (ready.type !== "ok") return ready;
  const answer = new Promise((resolve) => waiting.set(ready.ref, resolve));
  socket.send(await file.arrayBuffer());
  return answer;
}

// ---- views and messages ---------------------------------------------------------------------------

function show(name) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  $("signout").hidden = !["home", "person", "contact", "book", "request"].includes(name);
  const heading = document.querySelector(`#view-${name} h2`);
  if (heading) heading.focus();
}

function notice(text) {
  const box = $("notice");
  box.textContent = text || "";
  box.hidden = !text;
  if (text) box.scrollIntoView({ block: "nearest" });
}

function formError(form, text) {
  const box = $(`${form}-error`);
  box.textContent = text || "";
  box.hidden = !text;
}

function say(answer) {
  return answer.message ? answer.message.charAt(0).toUpperCase() + answer.message.slice(1) + "." : "Something went wrong.";
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// "2030-06-04T14:00:00+01:00" -> "Tue 4 Jun, 14:00" (the prison's own clock, whatever the phone's)
function when(iso) {
  const [day, time] = iso.split("T");
  const [y, m, d] = day.split("-").map(Number);
  const date = new Date(Date.UTC(y, m - 1, d));
  const text = date.toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
  return `${text}, ${time.slice(0, 5)}`;
}

function dayOf(iso) {
  const [y, m, d] = iso.split("T")[0].split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString("en-GB", { weekday: "long", day: "numeric", month: "long", timeZone: "UTC" });
}

const STATUS_WORDS = { approved: ["Approved", "ok"], new: ["Waiting for checks", "wait"], refused: ["Refused", "no"], pending: ["Waiting for the prison", "wait"] };

function tag(status) {
  const [words, kind] = STATUS_WORDS[status] || [status, ""];
  return el("span", words, `tag ${kind}`);
}

// ---- the account page -----------------------------------------------------------------------------

async function refresh() {
  const answer = await ask("status");
  if (answer.type !== "ok") {
    if (answer.code === "login_required") { show("signin"); return false; }
    notice(say(answer));
    return false;
  }
  state = answer;
  renderHome();
  return true;
}

function renderHome() {
  const account = state.account;
  const box = $("account-status");
  box.dataset.status = account.status;
  box.textContent = "";
  if (account.status === "unverified") {
    box.append(el("p", state.missing.length ? "To open your account, we still need:" : "Thank you. Everything is here."));
  } else if (account.status === "pending") {
    const due = new Date(account.due_at * 1000).toLocaleString("en-GB", { weekday: "long", hour: "2-digit", minute: "2-digit", day: "numeric", month: "long" });
    box.append(el("p", `We are checking your details. We will e-mail you within ${account.verification_hours} hours, by ${due}.`));
  } else if (account.status === "verified") {
    box.append(el("p", "Your account is verified."));
  } else {
    box.append(el("p", `We could not verify your account: ${account.refusal_reason}.`));
    box.append(el("p", "Upload a new photo ID or proof of address to ask us to check again."));
  }
  const missing = $("missing");
  missing.textContent = "";
  for (const item of state.missing) missing.append(el("li", item.charAt(0).toUpperCase() + item.slice(1)));

  renderCalls();
  renderPeople();
  renderContacts();
}

function fileButton(label, accept, capture, onFile) {
  const wrap = el("label", null, "file-button");
  wrap.append(document.createTextNode(label));
  const input = document.createElement("input");
  input.type = "file";
  input.accept = accept;
  if (capture) input.setAttribute("capture", capture);
  input.addEventListener("change", () => { if (input.files[0]) onFile(input.files[0], input); });
  wrap.append(input);
  return wrap;
}

function renderPeople() {
  const list = $("people");
  list.textContent = "";
  for (const person of state.people) {
    const item = el("li");
    item.append(el("span", person.holder ? `${person.name} (you)` : person.name, "title"));
    const meta = el("span", `Born ${person.date_of_birth}. `, "meta");
    meta.append(tag(person.status));
    item.append(meta);
    if (person.reason) item.append(el("span", `Reason: ${person.reason}`, "meta"));
    const files = el("ul", null, "files");
    // [kind, what it is, its name in a sentence, accepted types, camera, received]
    const wanted = [["face_photo", "Face photo", "face photo", "image/jpeg,image/png", "user", person.face_photo]];
    if (person.adult) wanted.push(["id_document", "Photo ID", "photo ID", "image/jpeg,image/png", "environment", person.documents.includes("id_document")]);
    if (person.holder) wanted.push(["proof_of_address", "Proof of address", "proof of address", "image/jpeg,image/png,application/pdf", "environment", person.documents.includes("proof_of_address")]);
    for (const [kind, label, name, accept, capture, have] of wanted) {
      if (kind === "proof_of_address" && state.account.id_shows_address && !have) continue;
      const row = el("li");
      row.append(el("span", have ? `${label}: received` : `${label}: needed`, have ? "have" : ""));
      if (person.status !== "approved") {
        const text = `${have ? "Replace" : "Add"} ${person.holder ? "your" : person.name + "'s"} ${name}`;
        row.append(fileButton(text, accept, capture, (file, input) => upload(kind, person, file, input)));
      }
      files.append(row);
    }
    item.append(files);
    list.append(item);
  }
  const holder = state.people.find((p) => p.holder);
  $("id-address-row").hidden = !holder || holder.status === "approved";
  $("id-address").checked = state.account.id_shows_address;
}

function renderContacts() {
  const list = $("contacts");
  list.textContent = "";
  for (const contact of state.contacts) {
    const item = el("li");
    item.append(el("span", `${contact.prisoner_name} (${contact.prisoner_number})`, "title"));
    const meta = el("span", `${contact.prison}. `, "meta");
    meta.append(tag(contact.status));
    item.append(meta);
    if (contact.reason) item.append(el("span", `Reason: ${contact.reason}`, "meta"));
    list.append(item);
  }
}

async function upload(kind, person, file, input) {
  notice(`Sending ${file.name}… Checking a photo takes a few seconds.`);
  input.disabled = true;
  const answer = await sendFile(kind, person.id, file);
  input.disabled = false;
  input.value = "";
  notice(answer.type === "ok" ? "Received. Thank you." : say(answer));
  await refresh();
}

// ---- forms ------------------------------------------------------------------------------------------

function fields(form) {
  return Object.fromEntries(new FormData(form).entries());
}

async function signIn(event) {
  event.preventDefault();
  formError("signin", "");
  const { email, password } = fields(event.target);
  if (!email || !password) return formError("signin", "Enter your e-mail address and password.");
  const basic = btoa(String.fromCharCode(...new TextEncoder().encode(`${email.trim()}:${password}`)));
  let response;
  try {
    response = await fetch("/family/login", { method: "POST", headers: { Authorization: `Basic ${basic}` }, credentials: "same-origin" });
  } catch {
    return formError("signin", "We cannot reach the server. Check your connection and try again.");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) return formError("signin", say({ message: body.error || "sign-in failed" }));
  event.target.reset();
  await reconnect(); // the socket now carries the session cookie
  if (await refresh()) show("home");
}

async function signOut() {
  await fetch("/family/logout", { method: "POST", credentials: "same-origin" }).catch(() => {});
  await reconnect();
  state = null;
  notice("You have signed out.");
  show("signin");
}

async function register(event) {
  event.preventDefault();
  formError("register", "");
  const data = fields(event.target);
  const answer = await ask("register", data);
  if (answer.type !== "ok") return formError("register", say(answer));
  event.target.reset();
  $("sent-to").textContent = answer.sent_to;
  show("sent");
}

async function addPerson(event) {
  event.preventDefault();
  formError("person", "");
  const answer = await ask("add_person", fields(event.target));
  if (answer.type !== "ok") return formError("person", say(answer));
  event.target.reset();
  await refresh();
  show("home");
  notice("Person added. Now add a photo of their face (and a photo ID if they are 18 or over).");
}

async function addContact(event) {
  event.preventDefault();
  formError("contact", "");
  const answer = await ask("add_contact", fields(event.target));
  if (answer.type !== "ok") return formError("contact", say(answer));
  event.target.reset();
  await refresh();
  show("home");
  notice(`${answer.contact.prisoner_name} is added. The prison will check it and e-mail you.`);
}

// ---- start ------------------------------------------------------------------------------------------

const HASH_NOTICES = {
  "#confirmed": "Thank you: your e-mail address is confirmed. Sign in to continue.",
  "#already": "Your e-mail address was already confirmed. Sign in to continue.",
  "#expired": "This link has expired or is not valid. Sign in and we will send you a new one.",
};

document.addEventListener("click", (event) => {
  const go = event.target.closest("[data-go]");
  if (!go) return;
  notice("");
  if (go.dataset.go === "home") refresh().then((ok) => ok && show("home"));
  else show(go.dataset.go);
});
$("signin-form").addEventListener("submit", signIn);
$("register-form").addEventListener("submit", register);
$("person-form").addEventListener("submit", addPerson);
$("contact-form").addEventListener("submit", addContact);
$("book-form").addEventListener("submit", book);
$("request-form").addEventListener("submit", requestCall);
$("signout").addEventListener("click", signOut);
$("id-address").addEventListener("change", async (event) => {
  const answer = await ask("id_shows_address", { value: event.target.checked });
  if (answer.type !== "ok") notice(say(answer));
  await refresh();
});

(async () => {
  if (HASH_NOTICES[location.hash]) {
    notice(HASH_NOTICES[location.hash]);
    history.replaceState(null, "", location.pathname);
  }
  try {
    if (await refresh()) show("home");
  } catch (error) {
    show("signin");
    formError("signin", error.message);
  }
})();
