// Duet's browser page: join a room on this server (/#room) or call by paste, with the same
// paste format as `duet call` (base64 of {"type","sdp"} JSON). Prefers H.264 42e01f.
// `window.duet` exposes the call's state to people debugging and to Duet's tests.
"use strict";

const $ = (id) => document.getElementById(id);
const duet = (window.duet = {
  state: "idle",
  endReason: null,
  messages: [],
  keyframeRequests: 0,
  // Stamps read on received frames; `frames` holds [frame, captured, presented, rtp] of each
  // (wall-clock ms, RTP timestamp; captured is null until the browser can tell it, and rtp
  // where it has none; see watchRemoteFrames).
  stamps: { read: 0, outOfOrder: 0, last: -1, latencies: [], frames: [] },
  pc: null,
  // performance.timeOrigin-based wall-clock times (ms) of the steps of a call.
  timeline: {},
});

// Query options: audio=raw (no audio processing), size=WxH and kbps=N (what the camera is
// asked for and the most the video may use; for comparisons with Duet at the same settings).
const params = new URLSearchParams(location.search);
const wallNow = () => performance.timeOrigin + performance.now();

let ws = null;
let channel = null;
let localStream = null;
let pendingCandidates = [];
let remoteDescriptionSet = false;
let iceServers = [];

function setState(state, detail) {
  duet.state = state;
  const words = {
    idle: "Not in a call",
    waiting: "Waiting for the other person",
    connecting: "Connecting",
    connected: "In a call",
    ended: "Call ended",
  };
  $("state").textContent = (words[state] || state) + (detail ? `: ${detail}` : "");
  const inCall = state === "connecting" || state === "connected" || state === "waiting";
  $("hangup").disabled = !inCall;
  $("mute").disabled = !localStream;
  $("camera").disabled = !localStream;
}

async function getMedia() {
  if (localStream) return localStream;
  try {
    // `?audio=raw` turns off echo cancellation, noise suppression and gain control: a test
    // tone passes untouched (they would treat a steady tone as noise).
    const raw = params.get("audio") === "raw";
    const audio = raw ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false } : true;
    const [width, height] = (params.get("size") || "640x480").split("x").map(Number);
    localStream = await navigator.mediaDevices.getUserMedia({
      audio,
      video: { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 } },
    });
    $("local").srcObject = localStream;
  } catch (e) {
    note(`No camera or microphone (${e.name}): receiving only`);
    localStream = null;
  }
  return localStream;
}

function note(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("messages").append(li);
}

function preferH264(transceiver) {
  if (!RTCRtpReceiver.getCapabilities || !transceiver.setCodecPreferences) return;
  const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
  const rank = (c) => {
    const fmtp = (c.sdpFmtpLine || "").toLowerCase();
    if (c.mimeType === "video/H264" && fmtp.includes("profile-level-id=42e01f") && fmtp.includes("packetization-mode=1")) return 0;
    if (c.mimeType === "video/H264") return 1;
    if (c.mimeType === "video/rtx" || c.mimeType === "video/red" || c.mimeType === "video/ulpfec") return 2;
    return 3;
  };
  transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
}

// Holds the picture size and caps the bitrate when asked (kbps=N), as Duet's --bitrate does.
function limitVideo(sender) {
  const kbps = Number(params.get("kbps"));
  if (!kbps) return;
  senderNegotiated(sender).then(() => {
    const p = sender.getParameters();
    if (!p.encodings || !p.encodings.length) p.encodings = [{}];
    p.encodings[0].maxBitrate = kbps * 1000;
    p.degradationPreference = "maintain-resolution";
    return sender.setParameters(p);
  }).catch((e) => note(`Could not cap the bitrate: ${e.message}`));
}

function senderNegotiated(sender) {
  return new Promise((resolve) => {
    const check = () => (sender.transport ? resolve() : setTimeout(check, 50));
    check();
  });
}

function makePeer() {
  const pc = new RTCPeerConnection({ iceServers });
  duet.pc = pc;
  remoteDescriptionSet = false;
  pendingCandidates = [];
  // addTrack (not addTransceiver), so that an incoming offer's m-lines adopt our tracks.
  for (const track of localStream ? localStream.getTracks() : []) {
    const sender = pc.addTrack(track, localStream);
    if (track.kind === "video") limitVideo(sender);
  }
  pc.ontrack = (event) => {
    const remote = $("remote");
    if (!remote.srcObject) remote.srcObject = new MediaStream();
    remote.srcObject.addTrack(event.track);
    if (event.track.kind === "video") watchRemoteFrames();
  };
  pc.onicecandidate = (event) => {
    if (event.candidate && ws && ws.readyState === WebSocket.OPEN) {
      send({ type: "candidate", candidate: event.candidate.toJSON() });
    }
  };
  pc.onconnectionstatechange = () => {
    const s = pc.connectionState;
    if (s === "connected") setState("connected");
    else if (s === "failed") end("connection lost");
    else if (s === "connecting" && duet.state !== "connected") setState("connecting");
  };
  pc.ondatachannel = (event) => useChannel(event.channel);
  return pc;
}

function useChannel(dc) {
  channel = dc;
  dc.onopen = () => dc.send(JSON.stringify({ type: "hello", name: "browser" }));
  dc.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "bye") end("remote hung up", false);
    else if (message.type === "hello" || message.type === "chat") {
      const text = String(message.name ?? message.text ?? "").slice(0, 500);
      duet.messages.push(text);
      note(`${message.type === "hello" ? "Connected to" : "They say"}: ${text}`);
    }
  };
}

duet.sendChat = (text) => {
  if (channel && channel.readyState === "open") channel.send(JSON.stringify({ type: "chat", text }));
};

function send(message) {
  ws.send(JSON.stringify(message));
}

async function applyRemote(description) {
  await duet.pc.setRemoteDescription(description);
  if (description.type === "answer") duet.timeline.answerApplied = wallNow();
  remoteDescriptionSet = true;
  for (const c of pendingCandidates.splice(0)) await duet.pc.addIceCandidate(c).catch(() => {});
}

async function offer(waitForCandidates) {
  const pc = duet.pc;
  for (const kind of ["audio", "video"]) {
    if (!pc.getTransceivers().some((t) => t.receiver.track.kind === kind)) pc.addTransceiver(kind, { direction: "recvonly" });
  }
  for (const t of pc.getTransceivers()) if (t.receiver.track.kind === "video") preferH264(t);
  useChannel(pc.createDataChannel("duet"));
  await pc.setLocalDescription(await pc.createOffer());
  if (waitForCandidates) await gathered(pc);
  return pc.localDescription;
}

async function answer(description, waitForCandidates) {
  const pc = duet.pc;
  await applyRemote(description);
  for (const t of pc.getTransceivers()) if (t.receiver.track.kind === "video") preferH264(t);
  await pc.setLocalDescription(await pc.createAnswer());
  duet.timeline.answerApplied = wallNow();
  if (waitForCandidates) await gathered(pc);
  return pc.localDescription;
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

// ---- rooms -------------------------------------------------------------------------------

async function joinRoom(room) {
  await getMedia();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${scheme}//${location.host}/ws`);
  ws.onopen = () => send({ type: "join", room });
  ws.onclose = () => {
    if (duet.state === "waiting" || duet.state === "idle") end("the signaling server closed the connection");
  };
  ws.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    switch (message.type) {
      case "joined":
        iceServers = message.iceServers || [];
        makePeer();
        if (message.peers >= 2) {
          setState("connecting");
          const desc = await offer(false);
          send({ type: "offer", sdp: desc.sdp });
        } else {
          setState("waiting");
        }
        break;
      case "peer-joined":
        note("The other person joined");
        break;
      case "offer": {
        setState("connecting");
        const desc = await answer({ type: "offer", sdp: message.sdp }, false);
        send({ type: "answer", sdp: desc.sdp });
        break;
      }
      case "answer":
        await applyRemote({ type: "answer", sdp: message.sdp });
        break;
      case "candidate":
        if (remoteDescriptionSet) await duet.pc.addIceCandidate(message.candidate).catch(() => {});
        else pendingCandidates.push(message.candidate);
        break;
      case "bye":
        end("remote hung up", false);
        break;
      case "error":
        if (String(message.message).startsWith("room busy")) end("room busy");
        else note(`Server: ${message.message}`);
        break;
    }
  };
}

// ---- paste -------------------------------------------------------------------------------

function encodeToken(desc) {
  const json = JSON.stringify({ type: desc.type, sdp: desc.sdp });
  return btoa(String.fromCharCode(...new TextEncoder().encode(json)));
}

// Accepts the token, the plain JSON, or raw SDP; refuses anything else with a hint.
function decodeToken(text, expected) {
  const trimmed = text.trim().replace(/^["'`]+|["'`]+$/g, "").trim();
  const what = `expected ${expected === "offer" ? "an offer" : "an answer"} token (one line of base64 starting with "eyJ"), the JSON {"type":"${expected}","sdp":"v=0..."}, or SDP text`;
  if (!trimmed) throw new Error(`Nothing was pasted: ${what}`);
  if (trimmed.startsWith("v=0")) return { type: expected, sdp: trimmed.replace(/\r?\n/g, "\r\n") + "\r\n" };
  let json = trimmed;
  if (!trimmed.startsWith("{")) {
    const compact = trimmed.replace(/\s+/g, "").replace(/-/g, "+").replace(/_/g, "/");
    if (!/^eyJ[A-Za-z0-9+/=]*$/.test(compact)) throw new Error(`This is not a Duet token: ${what}`);
    try {
      const padded = compact + "=".repeat((4 - (compact.length % 4)) % 4);
      json = new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)));
    } catch {
      throw new Error(`The token looks cut off: copy the whole line`);
    }
  }
  let desc;
  try {
    desc = JSON.parse(json);
  } catch {
    throw new Error(`The token looks cut off or damaged: ${what}`);
  }
  if (!desc || (desc.type !== "offer" && desc.type !== "answer") || typeof desc.sdp !== "string") {
    throw new Error(`The JSON is not a session description: ${what}`);
  }
  if (desc.type !== expected) throw new Error(`This is ${desc.type === "offer" ? "an offer" : "an answer"}, but ${expected === "offer" ? "an offer" : "an answer"} is expected here`);
  if (!/^m=/m.test(desc.sdp)) throw new Error(`The session description has no media (no m= line)`);
  return desc;
}

duet.createOffer = async () => {
  await getMedia();
  makePeer();
  setState("waiting", "send your token, then paste their answer");
  const desc = await offer(true);
  const token = encodeToken(desc);
  $("my-token").value = token;
  $("copy").disabled = false;
  return token;
};

// Takes the other side's token: answers an offer (returning our answer token) or applies
// an answer to our offer (returning null).
duet.acceptToken = async (text) => {
  $("paste-error").textContent = "";
  try {
    if (duet.pc && duet.pc.signalingState === "have-local-offer") {
      await applyRemote(decodeToken(text, "answer"));
      setState("connecting");
      return null;
    }
    const desc = decodeToken(text, "offer");
    await getMedia();
    makePeer();
    setState("connecting");
    const token = encodeToken(await answer(desc, true));
    $("my-token").value = token;
    $("copy").disabled = false;
    return token;
  } catch (e) {
    $("paste-error").textContent = e.message;
    throw e;
  }
};

// ---- ending ------------------------------------------------------------------------------

async function end(reason, sayBye = true) {
  if (duet.state === "ended") return;
  duet.state = "ending";
  // Keep the last numbers: a closed connection reports none.
  duet.finalStats = await duet.stats().catch(() => null);
  if (sayBye) {
    if (channel && channel.readyState === "open") channel.send(JSON.stringify({ type: "bye" }));
    if (ws && ws.readyState === WebSocket.OPEN) send({ type: "bye" });
  }
  duet.endReason = reason;
  setState("ended", reason);
  setTimeout(() => duet.pc && duet.pc.close(), 200);
}

duet.hangUp = () => end("you hung up");

// ---- stamps: read Duet's stamped pattern back from decoded frames --------------------------

const COLUMNS = 24;
const ROWS = 4;

function crc16(bytes) {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

// Returns {frame, captureMs} or null; `rgba` is the top band of a w x h picture.
function readStamp(rgba, w, h) {
  const cellW = Math.floor(w / COLUMNS);
  const cellH = Math.min(cellW, Math.floor(h / (ROWS * 3)));
  if (cellW < 2 || cellH < 2) return null;
  const bytes = new Uint8Array(12);
  for (let i = 0; i < COLUMNS * ROWS; i++) {
    const row = Math.floor(i / COLUMNS);
    const col = i % COLUMNS;
    const x0 = col * cellW + Math.floor(cellW / 4), x1 = col * cellW + Math.ceil((cellW * 3) / 4);
    const y0 = row * cellH + Math.floor(cellH / 4), y1 = row * cellH + Math.ceil((cellH * 3) / 4);
    let sum = 0, n = 0;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const p = (y * w + x) * 4;
        sum += 0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2];
        n++;
      }
    }
    const mean = sum / Math.max(n, 1);
    if (mean >= 80 && mean < 176) return null;
    if (mean >= 128) bytes[i >> 3] |= 0x80 >> (i & 7);
  }
  if (crc16(bytes.subarray(0, 10)) !== ((bytes[10] << 8) | bytes[11])) return null;
  const frame = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  let captureMs = 0;
  for (let i = 4; i < 10; i++) captureMs = captureMs * 256 + bytes[i];
  return { frame, captureMs };
}

// Calls onStamp(stamp, metadata) for each stamped picture `video` shows; `metadata` is the
// requestVideoFrameCallback metadata, or null where the browser has none.
function stampReader(video, onStamp) {
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const read = (_now, metadata) => {
    const w = video.videoWidth, h = video.videoHeight;
    if (w && h) {
      const band = Math.min(h, Math.ceil((Math.floor(w / COLUMNS) * ROWS) + 2));
      canvas.width = w;
      canvas.height = band;
      ctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
      const stamp = readStamp(ctx.getImageData(0, 0, w, band).data, w, h);
      if (stamp) onStamp(stamp, metadata || null);
    }
    schedule();
  };
  const schedule = () =>
    video.requestVideoFrameCallback ? video.requestVideoFrameCallback(read) : setTimeout(() => read(performance.now(), null), 10);
  schedule();
}

let watchingRemote = false;
function watchRemoteFrames() {
  if (watchingRemote) return;
  watchingRemote = true;
  const s = duet.stamps;
  stampReader($("remote"), (stamp, metadata) => {
    const now = wallNow();
    if (!duet.timeline.firstFrame) duet.timeline.firstFrame = now;
    // When the decoded picture was handed to the compositor: the nearest to "decoded".
    const presented = metadata && metadata.presentationTime ? performance.timeOrigin + metadata.presentationTime : now;
    // The same picture can be presented twice; only a step back is out of order.
    if (stamp.frame === s.last) return;
    s.read++;
    if (stamp.frame < s.last && s.last - stamp.frame < 1000) s.outOfOrder++;
    s.last = stamp.frame;
    // A live stamp (Duet's sender) carries its capture time.
    const latency = now - stamp.captureMs;
    if (latency > -1000 && latency < 5000) s.latencies.push(latency);
    // A stamp from a file (a browser's fake camera) does not: take the capture time the
    // receiver knows, the sender's capture clock carried by RTP timestamps and mapped through
    // RTCP sender reports (absent until the first reports have come), and the RTP timestamp
    // itself, from which the capture time of a picture before them can be counted back.
    const captured = metadata && metadata.captureTime ? performance.timeOrigin + metadata.captureTime : null;
    const rtp = metadata && metadata.rtpTimestamp !== undefined ? metadata.rtpTimestamp : null;
    if (s.frames.length < 20000) s.frames.push([stamp.frame, captured, presented, rtp]);
  });
}

// ---- stats for tests and the curious ------------------------------------------------------

duet.stats = async () => {
  const out = { video: {}, audio: {}, outbound: {}, rttMs: null };
  if (duet.state === "ended" && duet.finalStats) return duet.finalStats;
  if (!duet.pc) return out;
  const report = await duet.pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp") {
      const codec = s.codecId && report.get(s.codecId);
      out[s.kind] = {
        framesDecoded: s.framesDecoded,
        packetsLost: s.packetsLost,
        packetsReceived: s.packetsReceived,
        bytesReceived: s.bytesReceived,
        totalAudioEnergy: s.totalAudioEnergy,
        totalSamplesDuration: s.totalSamplesDuration,
        totalSamplesReceived: s.totalSamplesReceived,
        concealedSamples: s.concealedSamples,
        audioLevel: s.audioLevel,
        jitterBufferDelay: s.jitterBufferDelay,
        jitterBufferEmittedCount: s.jitterBufferEmittedCount,
        pliCount: s.pliCount,
        firCount: s.firCount,
        nackCount: s.nackCount,
        framesDropped: s.framesDropped,
        keyFramesDecoded: s.keyFramesDecoded,
        mimeType: codec && codec.mimeType,
        sdpFmtpLine: codec && codec.sdpFmtpLine,
        frameWidth: s.frameWidth,
        frameHeight: s.frameHeight,
      };
    } else if (s.type === "outbound-rtp") {
      const codec = s.codecId && report.get(s.codecId);
      out.outbound[s.kind] = {
        framesEncoded: s.framesEncoded,
        keyFramesEncoded: s.keyFramesEncoded,
        packetsSent: s.packetsSent,
        pliCount: s.pliCount,
        encoderImplementation: s.encoderImplementation,
        mimeType: codec && codec.mimeType,
      };
    } else if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
      out.rttMs = s.currentRoundTripTime * 1000;
    }
  });
  return out;
};

// ---- wiring ------------------------------------------------------------------------------

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = $("room").value.trim();
  location.hash = room;
  joinRoom(room);
});
$("make-offer").addEventListener("click", () => duet.createOffer());
$("use-token").addEventListener("click", () => duet.acceptToken($("their-token").value).catch(() => {}));
$("copy").addEventListener("click", () => navigator.clipboard.writeText($("my-token").value));
$("hangup").addEventListener("click", () => duet.hangUp());
$("mute").addEventListener("click", () => {
  const track = localStream && localStream.getAudioTracks()[0];
  if (!track) return;
  track.enabled = !track.enabled;
  $("mute").textContent = track.enabled ? "Mute microphone" : "Unmute microphone";
});
$("camera").addEventListener("click", () => {
  const track = localStream && localStream.getVideoTracks()[0];
  if (!track) return;
  track.enabled = !track.enabled;
  $("camera").textContent = track.enabled ? "Turn camera off" : "Turn camera on";
});
window.addEventListener("beforeunload", () => duet.state !== "ended" && duet.state !== "idle" && end("you left"));

const roomFromUrl = decodeURIComponent(location.hash.slice(1));
if (/^[A-Za-z0-9._-]{1,64}$/.test(roomFromUrl)) {
  $("room").value = roomFromUrl;
  joinRoom(roomFromUrl);
} else {
  setState("idle");
}
