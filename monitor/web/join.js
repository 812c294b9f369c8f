// Join page: camera + microphone, one WebRTC connection to the relay, call state and guidance.
// Protocol: signalling/messages.py. The prison terminal uses the same page with the prisoner's link.
//
// Capture-attempt reporting is best effort: a browser page can only see what the browser tells it
// (screen capture through getDisplayMedia, the page being hidden, the PrintScreen key). It cannot
// see an external camera pointed at the screen or an OS-level recorder; a native app reports the
// same `capture_attempt` message from what its platform can see.
"use strict";

const token = decodeURIComponent(location.pathname.split("/").pop() || "");
const $ = (id) => document.getElementById(id);
const view = { state: "connecting", reasons: [], secondsLeft: null, received: 0, errors: [] };
window.monitorCall = view; // read by tests and by kiosk wrappers
// Totals of the audio received from the relay (the call's sound, or its silence while paused).
view.audioReceived = async () => {
  const out = { packets: 0, bytes: 0, energy: 0 };
  if (!pc) return out;
  (await pc.getStats()).forEach((r) => {
    if (r.type !== "inbound-rtp" || r.kind !== "audio") return;
    out.packets += r.packetsReceived || 0;
    out.bytes += r.bytesReceived || 0;
    out.energy += r.totalAudioEnergy || 0;
  });
  return out;
};

let ws = null;
let pc = null;
let local = null;
let deadline = null; // performance.now() ms when the call ends
const STATE_WORDS = {
  connecting: "Connecting…", waiting: "Not started yet", verifying: "Security check",
  live: "Live", paused: "Paused", ended: "Call ended",
};

function setState(state, text) {
  view.state = state;
  document.body.dataset.state = state;
  $("badge").textContent = STATE_WORDS[state] || state;
  if (text !== undefined) $("notice").textContent = text;
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function reportCapture(detail) {
  send({ type: "capture_attempt", detail });
}

// --- capture attempts (best effort) ---
if (navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) {
  const original = navigator.mediaDevices.getDisplayMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getDisplayMedia = (...args) => {
    reportCapture("screen capture requested (getDisplayMedia)");
    return original(...args);
  };
}
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden" && view.state === "live") {
    reportCapture("call page hidden (visibilitychange)");
  }
});
document.addEventListener("keyup", (event) => {
  if (event.key === "PrintScreen") reportCapture("PrintScreen key");
});

// --- time left ---
setInterval(() => {
  if (deadline === null) return;
  const left = Math.max(0, Math.round((deadline - performance.now()) / 1000));
  view.secondsLeft = left;
  $("left").textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left`;
}, 250);

function setDeadline(secondsLeft) {
  if (typeof secondsLeft === "number") deadline = performance.now() + secondsLeft * 1000;
}

// --- guidance ---
const warnings = new Map();
function renderGuidance() {
  const list = $("guidance");
  list.replaceChildren(...[...warnings.values()].map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
}

// --- media ---
function slotFigure(index, name) {
  let figure = document.querySelector(`figure[data-slot="${index}"]`);
  if (!figure) {
    figure = document.createElement("figure");
    figure.dataset.slot = String(index);
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const caption = document.createElement("figcaption");
    caption.textContent = name;
    figure.append(video, caption);
    $("remote").append(figure);
  }
  return figure;
}

async function startCall(joined) {
  stopMedia(); // a rejoin starts from a fresh camera and connection
  local = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 480, frameRate: 30 }, audio: true,
  });
  $("self").srcObject = local;
  pc = new RTCPeerConnection({ iceServers: joined.ice_servers });
  const slots = joined.slots.length ? joined.slots : [{ participant: "", name: "" }];
  const streams = slots.map(() => new MediaStream());
  slots.forEach((slot, i) => {
    const figure = slotFigure(i, slot.name);
    figure.querySelector("video").srcObject = streams[i];
    if (i === 0) {
      pc.addTransceiver(local.getVideoTracks()[0], { direction: "sendrecv" });
      pc.addTransceiver(local.getAudioTracks()[0], { direction: "sendrecv" });
    } else {
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
  });
  pc.ontrack = (event) => {
    const index = Math.floor(pc.getTransceivers().indexOf(event.transceiver) / 2);
    if (index >= 0 && index < streams.length) streams[index].addTrack(event.track);
    view.received += 1;
  };
  pc.onconnectionstatechange = () => {
    view.connection = pc.connectionState;
    if (pc.connectionState === "failed") $("notice").textContent = "The connection failed. Reload to try again.";
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => { // the relay does not trickle: send the offer with its candidates
    if (pc.iceGatheringState === "complete") return resolve();
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
  send({ type: "offer", sdp: pc.localDescription.sdp });
}

function stopMedia() {
  if (pc) pc.close();
  if (local) local.getTracks().forEach((track) => track.stop());
}

// --- signalling ---
// A dropped connection (network, a relay restart) rejoins by itself with the same link, backing off
// up to 10 s; the call's security check then runs again. Errors that no retry can fix end it:
// the badge names the problem and the notice says what to do, in sentences.
const FINAL_ERRORS = {
  bad_token: ["Link not valid", ""],
  call_over: ["Call ended", ""],
  too_early: ["Not open yet", "Open this link again then."],
  over_capacity: ["Server busy", "Please try again in a few minutes."],
  token_in_use: ["Link in use", "Close the call on the other device, or ask for a new link."],
};
let rejoinDelay = 1000;
let finalError = false;
let redirectTo = null; // the call runs on another server of the cluster: join there next
const home = () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/call`;
let wasJoined = false; // this page was in the call: a refusal of its rejoin is retried, not final
let retryNotice = null; // what the notice says while the page waits to rejoin

// A message from the server as a sentence: capital first letter, full stop at the end.
function sentence(message) {
  return message ? message.charAt(0).toUpperCase() + message.slice(1).replace(/([^.!?])$/, "$1.") : "";
}

// An ISO time (the server's opens_at) in words, in this device's own time zone.
function inWords(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const day = when.toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long" });
  const time = when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return `${day} at ${time}`;
}

function refuse(code, message, opensAt) {
  finalError = true;
  deadline = null;
  $("left").textContent = "";
  stopMedia();
  const when = opensAt ? inWords(opensAt) : "";
  const said = code === "too_early" && when ? `This link works from ${when}.` : sentence(message);
  const [badge, next] = FINAL_ERRORS[code];
  setState("ended", [said, next].filter(Boolean).join(" "));
  $("badge").textContent = badge;
  if (ws) ws.close();
}

// A redirect (the call runs on another server) is followed at once; any later reconnection goes
// home first, where the call's server is found again (it may have moved).
function connect(url = home()) {
  ws = new WebSocket(url);
  view.server = url;
  ws.onopen = () => send({ type: "join", token });
  ws.onclose = () => {
    if (view.state === "ended" || finalError) return;
    if (redirectTo) {
      const next = redirectTo;
      redirectTo = null;
      connect(next);
      return;
    }
    stopMedia();
    view.rejoins = (view.rejoins || 0) + 1;
    setState("connecting", retryNotice || "Connection lost. Reconnecting…");
    retryNotice = null;
    setTimeout(connect, rejoinDelay);
    rejoinDelay = Math.min(rejoinDelay * 2, 10000);
  };
  ws.onmessage = async (event) => {
    const m = JSON.parse(event.data);
    switch (m.type) {
      case "joined":
        rejoinDelay = 1000;
        wasJoined = true;
        $("who").textContent = `${m.name} (${m.role})`;
        setDeadline(m.seconds_left);
        setState(m.state, "Starting your camera…");
        try {
          await startCall(m);
        } catch (err) {
          setState(view.state, `Camera or microphone unavailable: ${err.message || err}`);
        }
        break;
      case "answer":
        await pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
        break;
      case "state": {
        view.reasons = m.reasons;
        setDeadline(m.seconds_left);
        // while paused: why, in the words for this side, and what to do (or to wait)
        const text = m.state === "live" ? "You are live." : [m.explanation, m.needs].filter(Boolean).join(" ");
        setState(m.state, text);
        break;
      }
      case "warning":
        warnings.set(m.reason, m.guidance);
        renderGuidance();
        break;
      case "warning_cleared":
        warnings.delete(m.reason);
        renderGuidance();
        break;
      case "ended":
        view.reasons = m.reasons;
        deadline = null;
        $("left").textContent = "";
        setState("ended", m.explanation || "The call has ended.");
        stopMedia();
        break;
      case "redirect":
        redirectTo = m.url;
        view.redirects = (view.redirects || 0) + 1;
        break;
      case "error": {
        view.errors.push(m.code);
        const rejoining = wasJoined && m.code === "token_in_use"; // the old connection is not gone yet
        if (Object.hasOwn(FINAL_ERRORS, m.code) && !rejoining) {
          refuse(m.code, m.message, m.opens_at);
        } else if (view.state === "connecting") { // the join was refused for now: try again later
          retryNotice = `${sentence(m.message)} Trying again…`;
          $("notice").textContent = retryNotice;
          if (ws) ws.close();
        } else {
          $("notice").textContent = sentence(m.message);
        }
        break;
      }
      default:
        break;
    }
  };
}

connect();
