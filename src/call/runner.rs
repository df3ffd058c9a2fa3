//! Drives one call: feeds the state machine with commands, transport events and ticks, and
//! carries out its effects on the peer connection and the media pipelines. The window and
//! `duet call` both talk to it through the same two channels.

use crate::call::adapt::PictureAdapter;
use crate::call::live::{LiveStats, Reading, median};
use crate::call::pipeline::{
    DeviceNotes, MediaSettings, ReceivePipeline, SendCounters, SendPipeline, VideoOut,
};
use crate::call::state::{Call, CallEvent, CallState, Effect, EndReason, Role, TransportState};
use crate::call::summary::{
    AudioPlayed, AudioReceived, AudioSent, CallSummary, Percentiles, ProcessUsage, TimelinePoint,
    VideoReceived, VideoSent,
};
use crate::media::echo::AudioProcessor;
use crate::media::frame::AUDIO_SAMPLE_RATE;
use crate::media::sound::SoundDevice;
use crate::peer::congestion::DEFAULT_START_BPS;
use crate::peer::congestion::Limitation;
use crate::peer::{CongestionConfig, Peer, PeerConfig, PeerEvent, TransportStats};
use crate::signaling::protocol::CandidateInit;
use crate::signaling::token::PasteToken;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the user (or the command line) asks of the call.
#[derive(Debug)]
pub enum CallCommand {
    /// Make an offer; its token comes back as [`CallUpdate::LocalToken`].
    StartOffer,
    /// Answer this offer; the answer's token comes back as [`CallUpdate::LocalToken`].
    AcceptOffer(PasteToken),
    /// Apply the far side's answer to our offer.
    AcceptAnswer(PasteToken),
    /// An ICE candidate the far side trickled (room mode).
    RemoteCandidate(CandidateInit),
    /// The far side said goodbye through the signaling server.
    RemoteHungUp,
    /// The call cannot go on (e.g. the signaling server vanished before it connected).
    Fail(String),
    /// Send a chat line on the data channel.
    SendChat(String),
    SetVideoBitrate(u32),
    /// Send silence (true) or the microphone again.
    MuteMicrophone(bool),
    /// Send black pictures (true) or the camera again.
    CameraOff(bool),
    /// Record the far side into this directory, from now on.
    StartRecording(std::path::PathBuf),
    /// Stop recording (the files are closed and the note says what was written).
    StopRecording,
    HangUp,
}

/// What the call tells the user.
#[derive(Debug)]
pub enum CallUpdate {
    /// Where the newest decoded remote picture waits (one slot, latest wins): for a screen.
    RemotePictures(Arc<crate::media::mailbox::Mailbox<crate::media::frame::VideoFrame>>),
    LocalToken(PasteToken),
    /// A local ICE candidate to trickle to the far side (room mode).
    LocalCandidate(CandidateInit),
    /// Where each picture we send is left too (one slot, latest wins): for a self-view.
    LocalPictures(Arc<crate::media::mailbox::Mailbox<crate::media::frame::VideoFrame>>),
    /// The far side introduced itself with this name.
    Greeting(String),
    /// A chat line from the far side.
    Chat(String),
    /// Something to tell the person that is not the call's own (e.g. from the room).
    Note(String),
    /// The room is joined; this side makes the offer (the other person is there) or waits.
    InRoom {
        we_offer: bool,
    },
    /// The short code made from both DTLS fingerprints, to compare aloud.
    Verification(String),
    /// How the call is doing now, once a second while connected.
    Stats(LiveStats),
    State(CallState),
    Ended {
        reason: EndReason,
        summary: Box<CallSummary>,
    },
}

impl CallUpdate {
    /// The end of a call that could not begin (no room, no peer connection), with a summary
    /// that says why.
    pub fn never_began(why: String) -> Self {
        let reason = EndReason::FailedToConnect(why);
        let summary = CallSummary {
            end_reason: reason.to_string(),
            ..Default::default()
        };
        CallUpdate::Ended {
            reason,
            summary: Box::new(summary),
        }
    }
}

/// Carries out an effect that waits on the network as a task of its own; what it comes to
/// is fed back to the call as an event.
fn report(
    results: &mpsc::Sender<CallEvent>,
    work: impl std::future::Future<Output = CallEvent> + Send + 'static,
) {
    let results = results.clone();
    tokio::spawn(async move {
        let _ = results.send(work.await).await;
    });
}

/// Control messages on the data channel.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ControlMessage {
    Bye,
    Hello { name: String },
    Chat { text: String },
}

/// Keep at most this many received messages, each cut to this length, for the summary.
const KEPT_MESSAGES: usize = 50;
const KEPT_MESSAGE_CHARS: usize = 500;
/// The per-second timeline keeps the first two hours.
const KEPT_TIMELINE_POINTS: usize = 7200;

/// Everything one call needs to start.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    pub peer: PeerConfig,
    pub media: MediaSettings,
    /// Hand out descriptions at once and candidates as they come (room mode), instead of
    /// waiting for every candidate (paste mode).
    pub trickle: bool,
    /// How this end introduces itself on the data channel.
    pub name: String,
    /// How long a call whose path went silent keeps reconnecting before it is lost
    /// (`None`: [`crate::call::state::RECONNECT_TIMEOUT`]).
    pub reconnect_timeout: Option<Duration>,
    /// New descriptions reach the far side mid-call (a room): ICE can be restarted.
    pub ice_restart: bool,
}

struct Timeline {
    negotiated: Option<Instant>,
    connected: Option<Instant>,
    ended: Option<Instant>,
    /// This process's CPU seconds when the call connected and when it ended.
    cpu_at_connected: Option<f64>,
    cpu_at_end: Option<f64>,
}

/// Runs one call to its end. Returns when the call has ended and its summary was sent.
pub async fn run_call(
    options: CallOptions,
    mut commands: mpsc::Receiver<CallCommand>,
    updates: mpsc::Sender<CallUpdate>,
) {
    let device_notes: DeviceNotes = Arc::default();
    let mut notes_told = 0;
    // Echo cancellation and the rest, for a real microphone: the speaker's half listens to
    // what is played, the microphone's half cleans what is sent.
    let real_microphone = matches!(
        options.media.microphone,
        SoundDevice::System | SoundDevice::Named(_) | SoundDevice::Index(_)
    );
    let wanted = real_microphone && options.media.processing.any();
    let (echo_reference, mut microphone_processor) =
        match wanted.then(|| AudioProcessor::new(options.media.processing)) {
            Some(Ok((render, capture))) => (Some(render), Some(capture)),
            Some(Err(e)) => {
                device_notes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("no echo cancellation: {e}"));
                (None, None)
            }
            None => (None, None),
        };
    let receive = ReceivePipeline::start(
        &options.media.speaker,
        options.media.record.as_deref(),
        device_notes.clone(),
        echo_reference,
    );
    let _ = updates
        .send(CallUpdate::RemotePictures(receive.latest_picture.clone()))
        .await;
    let local_pictures = Arc::new(crate::media::mailbox::Mailbox::new());
    let _ = updates
        .send(CallUpdate::LocalPictures(local_pictures.clone()))
        .await;
    let reconnect_timeout = options
        .reconnect_timeout
        .unwrap_or(crate::call::state::RECONNECT_TIMEOUT);
    let peer_config = PeerConfig {
        send_video: options.media.send_video,
        send_audio: options.media.send_audio,
        // ICE must not give up before the call does: it keeps checking the path while the
        // call reconnects.
        ice_failed_timeout: Some(reconnect_timeout + Duration::from_secs(10)),
        congestion: options.media.congestion_control.then(|| {
            let adapter = PictureAdapter::new(
                options.media.audio_bitrate_bps as f64,
                options.media.fps as f64,
            );
            let ceiling_bps = adapter.total_for(options.media.video_bitrate_bps as f64) as u64;
            CongestionConfig {
                start_bps: options
                    .media
                    .start_bitrate_bps
                    .map_or(DEFAULT_START_BPS, u64::from)
                    .min(ceiling_bps),
                ceiling_bps,
            }
        }),
        ..options.peer.clone()
    };
    let (peer, mut peer_events) = match Peer::new(peer_config, receive.sinks.clone()).await {
        Ok(built) => built,
        Err(e) => {
            let _ = updates.send(CallUpdate::never_began(e.to_string())).await;
            receive.stop();
            return;
        }
    };
    let peer = Arc::new(peer);
    let mut call =
        Call::with_reconnect_timeout(reconnect_timeout).with_ice_restart(options.ice_restart);
    let mut addresses = crate::peer::local_addresses();
    let send_counters = Arc::new(SendCounters::default());
    let mut sending: Option<SendPipeline> = None;
    let mut timeline = Timeline {
        negotiated: None,
        connected: None,
        ended: None,
        cpu_at_connected: None,
        cpu_at_end: None,
    };
    // Effects that wait on the network (making a description, which may wait for ICE
    // gathering; applying one; the goodbye) run as tasks of their own and report back here,
    // so a hang-up is read while they work.
    let (results_tx, mut results) = mpsc::channel::<CallEvent>(16);
    // Device notes and the live stats are the runner's own business, not the call's.
    let mut chores = tokio::time::interval(Duration::from_millis(250));
    chores.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut end_reason = None;
    let mut messages_received: Vec<String> = Vec::new();
    let wait_for_candidates = !options.trickle;
    let mut chore_ticks: u64 = 0;
    let mut last_reading: Option<(Reading, usize)> = None;
    let mut per_second: Vec<TimelinePoint> = Vec::new();

    while end_reason.is_none() {
        let deadline = call.deadline();
        let wake = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            command = commands.recv() => match command {
                Some(CallCommand::StartOffer) => CallEvent::StartOffer,
                Some(CallCommand::AcceptOffer(offer)) => CallEvent::OfferReceived((&offer).into()),
                Some(CallCommand::AcceptAnswer(answer)) => CallEvent::AnswerReceived((&answer).into()),
                Some(CallCommand::RemoteCandidate(candidate)) => CallEvent::RemoteCandidate(candidate.into()),
                Some(CallCommand::RemoteHungUp) => CallEvent::RemoteBye,
                Some(CallCommand::Fail(why)) => CallEvent::NegotiationFailed(why),
                Some(CallCommand::SendChat(text)) => {
                    let chat = serde_json::to_string(&ControlMessage::Chat { text }).unwrap_or_default();
                    peer.send_message(&chat).await;
                    continue;
                }
                Some(CallCommand::SetVideoBitrate(bps)) => {
                    send_counters.video_ceiling_bps.store(bps, Ordering::Relaxed);
                    continue;
                }
                Some(CallCommand::MuteMicrophone(muted)) => {
                    send_counters.microphone_muted.store(muted, Ordering::Relaxed);
                    continue;
                }
                Some(CallCommand::CameraOff(off)) => {
                    send_counters.camera_off.store(off, Ordering::Relaxed);
                    continue;
                }
                Some(CallCommand::StartRecording(dir)) => {
                    receive.recording.start(&dir, &device_notes);
                    continue;
                }
                Some(CallCommand::StopRecording) => {
                    // Closing the files waits for the writer: not on the call's task.
                    let (recording, notes) = (receive.recording.clone(), device_notes.clone());
                    tokio::task::spawn_blocking(move || recording.stop(&notes));
                    continue;
                }
                // The user side is gone: nobody is left to talk to.
                Some(CallCommand::HangUp) | None => CallEvent::HangUp,
            },
            event = peer_events.recv() => match event {
                Some(PeerEvent::Transport(state)) => CallEvent::Transport(state),
                Some(PeerEvent::Message(text)) => match serde_json::from_str::<ControlMessage>(&text) {
                    Ok(ControlMessage::Bye) => CallEvent::RemoteBye,
                    Ok(message @ (ControlMessage::Hello { .. } | ControlMessage::Chat { .. })) => {
                        let (line, greeting) = match message {
                            ControlMessage::Hello { name } => (name, true),
                            ControlMessage::Chat { text } => (text, false),
                            ControlMessage::Bye => continue,
                        };
                        let line: String = line.chars().take(KEPT_MESSAGE_CHARS).collect();
                        if messages_received.len() < KEPT_MESSAGES {
                            messages_received.push(line.clone());
                        }
                        let update = if greeting { CallUpdate::Greeting(line) } else { CallUpdate::Chat(line) };
                        let _ = updates.send(update).await;
                        continue;
                    }
                    Err(_) => continue,
                },
                Some(PeerEvent::LocalCandidate(candidate)) => {
                    if options.trickle {
                        let _ = updates.send(CallUpdate::LocalCandidate(candidate.into())).await;
                    }
                    continue;
                }
                Some(PeerEvent::ChannelOpen) => CallEvent::ChannelOpen,
                Some(PeerEvent::ChannelClosed) => CallEvent::ChannelClosed,
                Some(PeerEvent::RemoteGoodbye) => CallEvent::RemoteBye,
                None => CallEvent::Transport(TransportState::Closed),
            },
            Some(result) = results.recv() => result,
            _ = wake => CallEvent::Timeout,
            _ = chores.tick() => {
                chore_ticks += 1;
                let fresh: Vec<String> = device_notes.lock().unwrap_or_else(|e| e.into_inner())[notes_told..].to_vec();
                notes_told += fresh.len();
                for text in fresh {
                    let _ = updates.send(CallUpdate::Note(text)).await;
                }
                // A laptop that moved to another network: its old addresses are gone.
                let mut moved = false;
                // Only a call that can restart ICE has a use for knowing.
                if options.ice_restart && matches!(call.state(), CallState::Connected { .. }) {
                    let now_addresses = crate::peer::local_addresses();
                    moved = now_addresses != addresses;
                    addresses = now_addresses;
                }
                if chore_ticks.is_multiple_of(4) && matches!(call.state(), CallState::Connected { .. }) {
                    let transport = peer.transport_stats().await;
                    let now = live_reading(&transport, &receive, &send_counters);
                    if let Some((before, seen)) = &last_reading {
                        let stats = live_stats(before, *seen, &now, transport, &receive, &send_counters, &peer);
                        if per_second.len() < KEPT_TIMELINE_POINTS {
                            let at = since(timeline.connected, Some(Instant::now())).unwrap_or(0.0) / 1000.0;
                            per_second.push(TimelinePoint::of((at * 10.0).round() / 10.0, &stats));
                        }
                        // The overlay can miss a second; the call must not wait for it.
                        let _ = updates.try_send(CallUpdate::Stats(stats));
                    }
                    let seen = receive.video.lock().unwrap_or_else(|e| e.into_inner()).latencies_ms.len();
                    last_reading = Some((now, seen));
                }
                if moved {
                    CallEvent::LocalAddressesChanged
                } else {
                    continue;
                }
            }
        };

        let before = call.state().clone();
        let effects = call.step(event, Instant::now());
        if matches!(call.state(), CallState::Connecting { .. })
            && !matches!(before, CallState::Connecting { .. })
        {
            timeline.negotiated = Some(Instant::now());
        }
        for effect in effects {
            match effect {
                Effect::CreateOffer => {
                    let peer = peer.clone();
                    report(&results_tx, async move {
                        match peer.create_offer(wait_for_candidates).await {
                            Ok(offer) => CallEvent::LocalDescription(offer),
                            Err(e) => CallEvent::NegotiationFailed(e.to_string()),
                        }
                    });
                }
                Effect::CreateAnswer(offer) => {
                    let peer = peer.clone();
                    report(&results_tx, async move {
                        match peer.accept_offer(&offer, wait_for_candidates).await {
                            Ok(answer) => CallEvent::LocalDescription(answer),
                            Err(e) => CallEvent::NegotiationFailed(e.to_string()),
                        }
                    });
                }
                Effect::RestartIce => {
                    let _ = updates
                        .send(CallUpdate::Note("restarting ICE through the room".into()))
                        .await;
                    let peer = peer.clone();
                    report(&results_tx, async move {
                        match peer.restart_ice().await {
                            Ok(offer) => CallEvent::LocalDescription(offer),
                            Err(e) => CallEvent::NegotiationFailed(e.to_string()),
                        }
                    });
                }
                Effect::ApplyAnswer(answer) => {
                    let peer = peer.clone();
                    report(&results_tx, async move {
                        match peer.accept_answer(&answer).await {
                            Ok(()) => CallEvent::AnswerApplied,
                            Err(e) => CallEvent::NegotiationFailed(e.to_string()),
                        }
                    });
                }
                Effect::AddCandidates(candidates) => {
                    let peer = peer.clone();
                    tokio::spawn(async move { add_candidates(&peer, candidates).await });
                }
                Effect::SendDescription(description) => {
                    let _ = updates
                        .send(CallUpdate::LocalToken(description.into()))
                        .await;
                }
                Effect::StartMedia => {
                    timeline.connected = Some(Instant::now());
                    timeline.cpu_at_connected = ProcessUsage::of_this_process().cpu_seconds;
                    sending = Some(SendPipeline::start(
                        &options.media,
                        peer.video.clone().map(|track| VideoOut {
                            track,
                            rate: peer.send_rate.clone(),
                        }),
                        peer.audio.clone(),
                        send_counters.clone(),
                        Some(local_pictures.clone()),
                        device_notes.clone(),
                        microphone_processor.take(),
                    ));
                    if let Some(code) = peer.verification_code().await {
                        let _ = updates.send(CallUpdate::Verification(code)).await;
                    }
                }
                Effect::SendGreeting => {
                    let hello = ControlMessage::Hello {
                        name: options.name.clone(),
                    };
                    peer.send_message(&serde_json::to_string(&hello).unwrap_or_default())
                        .await;
                }
                Effect::SendBye => {
                    let peer = peer.clone();
                    report(&results_tx, async move {
                        peer.say_goodbye().await;
                        let bye = serde_json::to_string(&ControlMessage::Bye).unwrap_or_default();
                        CallEvent::ByeSent(peer.send_message(&bye).await)
                    });
                }
                Effect::Close => {
                    timeline.ended = Some(Instant::now());
                    timeline.cpu_at_end = ProcessUsage::of_this_process().cpu_seconds;
                    if let Some(pipeline) = sending.take() {
                        tokio::task::spawn_blocking(move || pipeline.stop())
                            .await
                            .ok();
                    }
                }
                Effect::Ended(reason) => end_reason = Some(reason),
            }
        }
        if call.state() != &before {
            let _ = updates.send(CallUpdate::State(call.state().clone())).await;
        }
    }

    let transport = peer.transport_stats().await;
    peer.close().await;
    let reason = end_reason.unwrap_or(EndReason::LocalHangUp);
    let mut summary = summarize(&options, &call, &timeline, &send_counters, &peer, &receive);
    summary.timeline = per_second;
    summary.end_reason = reason.to_string();
    summary.messages_received = messages_received;
    receive.recording.stop(&device_notes);
    summary.devices = device_notes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    summary.rtt_ms = transport.rtt_ms;
    summary.path = transport.path;
    summary.bytes_sent = transport.bytes_sent;
    summary.bytes_received = transport.bytes_received;
    tokio::task::spawn_blocking(move || receive.stop())
        .await
        .ok();
    summary.process = ProcessUsage::of_this_process();
    summary.process.cpu_seconds_connected = timeline
        .cpu_at_connected
        .zip(timeline.cpu_at_end)
        .map(|(from, to)| to - from);
    let _ = updates
        .send(CallUpdate::Ended {
            reason,
            summary: Box::new(summary),
        })
        .await;
}

/// The counters the live stats are made from, now.
fn live_reading(
    transport: &TransportStats,
    receive: &ReceivePipeline,
    sent: &SendCounters,
) -> Reading {
    let frames_decoded = receive
        .video
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .frames_decoded;
    Reading {
        at_seconds: crate::media::frame::wall_clock_us() as f64 / 1e6,
        frames_decoded,
        bytes_received: transport.bytes_received,
        bytes_sent: transport.bytes_sent,
        video_packets_received: transport.video_packets_received,
        video_packets_lost: transport.video_packets_lost,
        frames_sent: sent.video_frames_sent.load(Ordering::Relaxed),
    }
}

/// The live stats between two readings; `seen` is how many stamp latencies the earlier
/// reading had, `transport` what the connection said at the later one.
fn live_stats(
    before: &Reading,
    seen: usize,
    now: &Reading,
    transport: TransportStats,
    receive: &ReceivePipeline,
    sent: &SendCounters,
    peer: &Peer,
) -> LiveStats {
    let video = receive.video.lock().unwrap_or_else(|e| e.into_inner());
    let rate = &peer.send_rate;
    let load = |c: &std::sync::atomic::AtomicU32| c.load(Ordering::Relaxed);
    let sent_size = match (load(&sent.video_sent_width), load(&sent.video_sent_height)) {
        (0, _) | (_, 0) => None,
        (w, h) => Some((w as usize, h as usize)),
    };
    LiveStats {
        remote_size: video.size,
        rtt_ms: transport.rtt_ms,
        path: transport.path,
        stamp_latency_ms: median(video.latencies_ms.get(seen..).unwrap_or_default()),
        sent_size,
        target_kbps: rate.enabled.then(|| rate.target_bps() as f64 / 1000.0),
        encoder_kbps: load(&sent.video_encoder_bps) as f64 / 1000.0,
        sent_loss_percent: rate.enabled.then(|| rate.loss() * 100.0),
        queue_delay_ms: rate.enabled.then(|| rate.queue_delay_ms() as f64),
        pacer_delay_ms: rate.enabled.then(|| rate.pacer_delay_ms() as f64),
        limitation: Limitation::from_code(sent.video_limitation.load(Ordering::Relaxed)),
        ..LiveStats::between(before, now)
    }
}

async fn add_candidates(peer: &Peer, candidates: Vec<crate::peer::Candidate>) {
    for candidate in candidates {
        // A candidate the stack cannot use (another transport, a stale generation) is not
        // a reason to end the call.
        if let Err(e) = peer.add_remote_candidate(candidate).await {
            tracing::debug!("remote candidate refused: {e}");
        }
    }
}

fn since(from: Option<Instant>, to: Option<Instant>) -> Option<f64> {
    Some(to?.checked_duration_since(from?)?.as_secs_f64() * 1000.0)
}

fn summarize(
    options: &CallOptions,
    call: &Call,
    timeline: &Timeline,
    sent: &SendCounters,
    peer: &Peer,
    receive: &ReceivePipeline,
) -> CallSummary {
    let video = receive
        .video
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let audio = receive.audio.lock().unwrap_or_else(|e| e.into_inner());
    let played = receive.played.lock().unwrap_or_else(|e| e.into_inner());
    let played = played.device.as_ref().map(|_| AudioPlayed {
        jitter_delay_ms: Percentiles::of(&played.delays_ms),
        jitter_target_ms: played.target_ms,
        frames_played: played.counters.played,
        recovered_by_fec: played.counters.recovered_by_fec,
        concealed: played.counters.concealed,
        late: played.counters.late,
        skipped: played.counters.skipped,
    });
    let counters = &peer.counters;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let fps = match (video.first_decoded_at, video.last_decoded_at) {
        (Some(first), Some(last)) if video.frames_decoded > 1 && last > first => {
            Some((video.frames_decoded - 1) as f64 / (last - first).as_secs_f64())
        }
        _ => None,
    };
    let media = &options.media;
    CallSummary {
        role: match call.role() {
            Some(Role::Offerer) => "offerer".into(),
            Some(Role::Answerer) => "answerer".into(),
            None => "idle".into(),
        },
        end_reason: String::new(),
        connected_seconds: since(timeline.connected, timeline.ended).unwrap_or(0.0) / 1000.0,
        connect_ms: since(timeline.negotiated, timeline.connected),
        first_frame_ms: since(timeline.negotiated, video.first_decoded_at),
        video_sent: VideoSent {
            codec: peer.video.as_ref().and_then(|track| track.codec()),
            // What was sent, once sending began (a file plays at its own size and rate).
            width: match sent.video_width.load(Ordering::Relaxed) {
                0 => media.width,
                w => w as usize,
            },
            height: match sent.video_height.load(Ordering::Relaxed) {
                0 => media.height,
                h => h as usize,
            },
            fps: match sent.video_fps.load(Ordering::Relaxed) {
                0 => media.fps,
                fps => fps,
            },
            frames_captured: load(&sent.video_frames_captured),
            frames_sent: load(&sent.video_frames_sent),
            frames_dropped: load(&sent.video_frames_dropped),
            keyframes: load(&sent.video_keyframes_sent),
            keyframes_on_request: load(&sent.video_keyframes_on_request),
            keyframes_after_drop: load(&sent.video_keyframes_after_drop),
            keyframe_requests_received: load(&sent.keyframe_requests_received),
            bytes: load(&sent.video_bytes_sent),
            frames_skipped_for_pacer: load(&sent.video_frames_skipped_for_pacer),
            frames_skipped_by_encoder: load(&sent.video_frames_skipped_by_encoder),
            backoffs: peer.send_rate.backoffs(),
        },
        video_received: VideoReceived {
            packets: load(&counters.video_packets_received),
            frames_assembled: load(&counters.video_frames_assembled),
            frames_decoded: video.frames_decoded,
            decode_errors: video.decode_errors,
            frames_dropped_before_decode: load(&counters.video_frames_dropped_in_queue),
            keyframe_requests_sent: load(&counters.keyframe_requests_sent),
            width: video.size.map(|s| s.0),
            height: video.size.map(|s| s.1),
            fps,
            stamps_read: video.stamps_read,
            stamps_out_of_order: video.stamps_out_of_order,
            stamps_not_live: video.stamps_not_live,
            first_stamp_frame: video.first_stamp_frame,
            last_stamp_frame: video.last_stamp_frame,
            latency_ms: Percentiles::of(&video.latencies_ms),
            stamped: video.stamped,
        },
        audio_sent: AudioSent {
            tone_hz: media.send_audio.then_some(media.tone_hz),
            packets: load(&sent.audio_packets_sent),
        },
        audio_received: AudioReceived {
            packets: load(&counters.audio_packets_received),
            packets_recovered: audio.packets_recovered,
            decode_errors: audio.decode_errors,
            seconds: audio.analyzer.samples_seen() as f64 / AUDIO_SAMPLE_RATE as f64,
            rms: audio.analyzer.rms(),
            frequency_hz: audio.analyzer.dominant_frequency(),
            tone_seconds: audio.analyzer.seconds_of_tone(),
            latency_ms: Percentiles::of(audio.analyzer.mark_latencies_ms()),
        },
        played,
        ..Default::default()
    }
}
