//! One call's WebRTC connection (webrtc-rs 0.21), and nothing of the rest of the app: codecs
//! and interceptors registered, local tracks that send encoded samples, remote tracks drained
//! on their own tasks, keyframe requests both ways, a data channel for call control, stats.

pub mod congestion;
mod goodbye;
pub mod h264_assembler;
mod keyframe_requests;
pub mod reorder;
pub mod verification;

use bytes::Bytes;
use h264_assembler::{AccessUnit, Assembled, H264Assembler};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{CongestionControlBuilder, Registry, Slot, TwccReceiverBuilder};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_sender_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::{RTCConfigurationBuilder, RTCIceTransportPolicy};
use rtc::peer_connection::sdp::{RTCSdpType, RTCSessionDescription};
use rtc::peer_connection::transport::RTCIceServer;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{PayloadType, SSRC};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCStatsReportEntry, StatsSelector,
};
use webrtc::rtp_transceiver::RtpSender;

pub use keyframe_requests::KeyframeRequestForwarder;

/// Payload types we offer; an answer adopts the offerer's.
const PT_OPUS: PayloadType = 111;
const PT_H264: PayloadType = 102;
const PT_H264_RTX: PayloadType = 103;
/// The H.264 that every browser speaks: Constrained Baseline 3.1, non-interleaved.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
const DATA_CHANNEL_LABEL: &str = "duet";
/// Keyframe requests are not sent more often than this: one IDR answers many losses.
const PLI_MIN_INTERVAL: Duration = Duration::from_millis(300);
/// How long a description that must carry every candidate (paste mode) waits for ICE
/// gathering; then it goes with what was found. A backstop: the stack gives up on a STUN
/// server that never answers after about 10 s (seen here), but nothing bounds the rest.
pub const GATHERING_TIMEOUT: Duration = Duration::from_secs(15);

/// Access units waiting for the decoder; beyond this the oldest is dropped.
pub const REMOTE_QUEUE: usize = 8;

/// A peer connection failed; the message is the library's own.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("WebRTC: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error("the session description is malformed: {0}")]
    BadDescription(String),
    #[error("the peer connection stopped before ICE gathering completed")]
    GatheringAborted,
    #[error("the peer connection has no local description")]
    NoLocalDescription,
}

/// What the transport (the peer connection) says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportState {
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// Which half of the offer/answer exchange a description is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescriptionKind {
    Offer,
    Answer,
}

/// A session description as the peer connection makes and takes it (the call turns it
/// into a paste token or a room message at its edge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    pub kind: DescriptionKind,
    pub sdp: String,
}

impl Description {
    /// Parsed and checked, in the form the peer connection takes.
    fn to_rtc(&self) -> Result<RTCSessionDescription, PeerError> {
        // SDP lines end in CRLF on the wire; a hand-edited paste may have lost the CR.
        let sdp = if self.sdp.contains("\r\n") {
            self.sdp.clone()
        } else {
            self.sdp.replace('\n', "\r\n")
        };
        let parsed = match self.kind {
            DescriptionKind::Offer => RTCSessionDescription::offer(sdp),
            DescriptionKind::Answer => RTCSessionDescription::answer(sdp),
        };
        parsed.map_err(|e| PeerError::BadDescription(e.to_string()))
    }

    fn from_rtc(desc: &RTCSessionDescription) -> Option<Self> {
        let kind = match desc.sdp_type {
            RTCSdpType::Offer => DescriptionKind::Offer,
            RTCSdpType::Answer => DescriptionKind::Answer,
            _ => return None,
        };
        Some(Self {
            kind,
            sdp: desc.sdp.clone(),
        })
    }
}

/// An ICE candidate, as `RTCIceCandidateInit` carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
    pub username_fragment: Option<String>,
}

/// How to build the connection.
#[derive(Clone, Debug, Default)]
pub struct PeerConfig {
    /// Keep every ICE candidate on this address (tests use 127.0.0.1).
    pub bind: Option<IpAddr>,
    pub ice_servers: Vec<RTCIceServer>,
    pub send_video: bool,
    pub send_audio: bool,
    /// Use TURN relays only (`iceTransportPolicy: "relay"`).
    pub relay_only: bool,
    /// How long ICE stays disconnected before it calls the path failed (`None`: 25 s).
    pub ice_failed_timeout: Option<Duration>,
    /// Send-side congestion control and pacing; `None` sends at whatever the encoder makes.
    pub congestion: Option<CongestionConfig>,
}

/// Where congestion control starts and the most it may use, bits/s for everything sent.
#[derive(Clone, Copy, Debug)]
pub struct CongestionConfig {
    pub start_bps: u64,
    pub ceiling_bps: u64,
}

/// What the connection reports to the call.
#[derive(Debug)]
pub enum PeerEvent {
    Transport(TransportState),
    /// A local ICE candidate, for trickling to the far side.
    LocalCandidate(Candidate),
    /// The data channel can carry messages now.
    ChannelOpen,
    /// A message on the data channel.
    Message(String),
    /// The data channel closed: the far side closed its connection (its DTLS close_notify
    /// or SCTP shutdown), or this side did.
    ChannelClosed,
    /// Every stream of the far side said goodbye (RTCP BYE): it hung up.
    RemoteGoodbye,
}

/// A complete picture from the far side, not yet decoded.
#[derive(Debug)]
pub struct RemoteVideo {
    pub unit: AccessUnit,
    /// When its last packet arrived, wall-clock microseconds.
    pub arrival_us: u64,
}

/// One packet of sound from the far side.
#[derive(Debug)]
pub struct RemoteAudio {
    pub payload: Bytes,
    pub sequence_number: u16,
    pub arrival_us: u64,
}

/// Where remote media goes: bounded queues read by the decoder threads. A full queue drops
/// (video: and asks for a keyframe) rather than blocking the network.
#[derive(Clone)]
pub struct RemoteSinks {
    pub video: std::sync::mpsc::SyncSender<RemoteVideo>,
    pub audio: std::sync::mpsc::SyncSender<RemoteAudio>,
    /// The decoder sets this when it cannot go on without an IDR.
    pub keyframe_wanted: Arc<AtomicBool>,
}

/// Counters kept by the network side, read for the summary.
#[derive(Default, Debug)]
pub struct PeerCounters {
    pub video_packets_received: AtomicU64,
    pub video_frames_assembled: AtomicU64,
    pub video_frames_dropped_in_queue: AtomicU64,
    pub keyframe_requests_sent: AtomicU64,
    pub audio_packets_received: AtomicU64,
}

/// A local track and what the negotiation chose for it.
pub struct OutgoingTrack {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: SSRC,
    /// The retransmission stream's, when it has one.
    rtx_ssrc: Option<SSRC>,
    payload_type: Mutex<Option<PayloadType>>,
    /// The negotiated codec's MIME type ("video/H264"), once negotiated.
    codec: Mutex<Option<String>>,
}

impl OutgoingTrack {
    /// Packetizes and sends one encoded frame.
    pub async fn send(
        &self,
        data: Bytes,
        duration: Duration,
        captured: Instant,
    ) -> Result<(), PeerError> {
        let payload_type = match *self.payload_type.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(pt) => pt,
            None => return Ok(()),
        };
        let sample = Sample {
            data,
            duration,
            ..Sample::new(captured)
        };
        self.track
            .sample_writer(self.ssrc, payload_type)
            .write_sample(&sample)
            .await?;
        Ok(())
    }

    async fn resolve_payload_type(&self) {
        let chosen = self
            .sender
            .get_parameters()
            .await
            .ok()
            .and_then(|p| p.rtp_parameters.codecs.first().cloned());
        *self.payload_type.lock().unwrap_or_else(|e| e.into_inner()) =
            chosen.as_ref().map(|c| c.payload_type);
        *self.codec.lock().unwrap_or_else(|e| e.into_inner()) =
            chosen.map(|c| c.rtp_codec.mime_type);
    }

    /// The negotiated codec's MIME type ("video/H264"), once the descriptions are applied.
    pub fn codec(&self) -> Option<String> {
        self.codec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Tells the far side this track's streams end (RTCP BYE, RFC 3550 6.6).
    async fn say_goodbye(&self) {
        let bye = rtc::rtcp::goodbye::Goodbye {
            sources: std::iter::once(self.ssrc).chain(self.rtx_ssrc).collect(),
            reason: Bytes::from_static(b"hang up"),
        };
        if let Err(e) = self.track.write_rtcp(vec![Box::new(bye)]).await {
            tracing::debug!("RTCP BYE: {e}");
        }
    }

    /// Waits for the next keyframe request (PLI or FIR) from the far side. `None` when the
    /// connection is gone.
    pub async fn next_keyframe_request(&self) -> Option<()> {
        loop {
            if let webrtc::media_stream::track_local::TrackLocalEvent::OnRtcpPacket(packets) =
                self.track.poll().await?
                && !packets.is_empty()
            {
                return Some(());
            }
        }
    }
}

/// One call's peer connection.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    gathered: tokio::sync::watch::Receiver<bool>,
    data_channel: Arc<Mutex<Option<Arc<dyn DataChannel>>>>,
    events_tx: mpsc::Sender<PeerEvent>,
    pub video: Option<Arc<OutgoingTrack>>,
    pub audio: Option<Arc<OutgoingTrack>>,
    pub counters: Arc<PeerCounters>,
    /// What congestion control allows now (disabled when the config had none).
    pub send_rate: Arc<congestion::SendRate>,
    /// One stream for both tracks, so a browser plays them in sync.
    stream_id: String,
}

struct Handler {
    events: mpsc::Sender<PeerEvent>,
    gathered: tokio::sync::watch::Sender<bool>,
    sinks: RemoteSinks,
    counters: Arc<PeerCounters>,
    data_channel: Arc<Mutex<Option<Arc<dyn DataChannel>>>>,
    /// The round trip congestion control measures, for how long a gap waits for its
    /// retransmission.
    send_rate: Arc<congestion::SendRate>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let candidate = Candidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
                username_fragment: init.username_fragment,
            };
            let _ = self.events.send(PeerEvent::LocalCandidate(candidate)).await;
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = match state {
            RTCPeerConnectionState::Connecting => TransportState::Connecting,
            RTCPeerConnectionState::Connected => TransportState::Connected,
            RTCPeerConnectionState::Disconnected => TransportState::Disconnected,
            RTCPeerConnectionState::Failed => TransportState::Failed,
            RTCPeerConnectionState::Closed => TransportState::Closed,
            _ => return,
        };
        tracing::debug!(?state, "transport");
        let _ = self.events.send(PeerEvent::Transport(state)).await;
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        *self.data_channel.lock().unwrap_or_else(|e| e.into_inner()) = Some(channel.clone());
        let _ = self.events.send(PeerEvent::ChannelOpen).await;
        tokio::spawn(drain_data_channel(channel, self.events.clone()));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let sinks = self.sinks.clone();
        let counters = self.counters.clone();
        match kind {
            RtpCodecKind::Video => {
                let rate = self.send_rate.clone();
                tokio::spawn(drain_remote_video(track, sinks, counters, rate));
            }
            RtpCodecKind::Audio => {
                tokio::spawn(drain_remote_audio(track, sinks, counters));
            }
            _ => {}
        }
    }
}

async fn drain_data_channel(channel: Arc<dyn DataChannel>, events: mpsc::Sender<PeerEvent>) {
    while let Some(event) = channel.poll().await {
        match event {
            DataChannelEvent::OnMessage(message) => {
                // Control messages are small JSON; anything else is ignored.
                if message.data.len() <= 64 * 1024
                    && let Ok(text) = std::str::from_utf8(&message.data)
                {
                    let _ = events.send(PeerEvent::Message(text.to_owned())).await;
                }
            }
            DataChannelEvent::OnOpen => {
                let _ = events.send(PeerEvent::ChannelOpen).await;
            }
            DataChannelEvent::OnClose => {
                let _ = events.send(PeerEvent::ChannelClosed).await;
                break;
            }
            _ => {}
        }
    }
}

/// Feeds packets, in order, to the assembler and hands whole pictures to the decoder.
fn assemble(
    packets: Vec<(u16, (u32, bool, Bytes))>,
    assembler: &mut H264Assembler,
    sinks: &RemoteSinks,
    counters: &PeerCounters,
) {
    for (sequence_number, (timestamp, marker, payload)) in packets {
        match assembler.push(sequence_number, timestamp, marker, &payload) {
            Some(Assembled::Frame(unit)) => {
                counters
                    .video_frames_assembled
                    .fetch_add(1, Ordering::Relaxed);
                let remote = RemoteVideo {
                    unit,
                    arrival_us: crate::media::frame::wall_clock_us(),
                };
                if sinks.video.try_send(remote).is_err() {
                    // The decoder fell behind: what follows references the dropped frame.
                    counters
                        .video_frames_dropped_in_queue
                        .fetch_add(1, Ordering::Relaxed);
                    assembler.require_keyframe();
                    sinks.keyframe_wanted.store(true, Ordering::Relaxed);
                }
            }
            Some(Assembled::NeedKeyframe) => sinks.keyframe_wanted.store(true, Ordering::Relaxed),
            None => {}
        }
    }
}

/// Reads one remote video track as fast as packets come (the driver's channel drops when
/// full), rebuilds frames and hands them to the decoder thread.
async fn drain_remote_video(
    track: Arc<dyn TrackRemote>,
    sinks: RemoteSinks,
    counters: Arc<PeerCounters>,
    rate: Arc<congestion::SendRate>,
) {
    let media_ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let mut assembler = H264Assembler::new();
    let mut reorder: reorder::ReorderBuffer<(u32, bool, Bytes)> = Default::default();
    let mut last_pli: Option<Instant> = None;
    loop {
        // While packets wait behind a gap, wake when it is due to be given up on.
        let event = match reorder.deadline() {
            Some(due) => {
                let wait = due.saturating_duration_since(Instant::now());
                match tokio::time::timeout(wait, track.poll()).await {
                    Ok(event) => event,
                    Err(_) => {
                        let released = reorder.release(Instant::now());
                        assemble(released, &mut assembler, &sinks, &counters);
                        continue;
                    }
                }
            }
            None => track.poll().await,
        };
        let Some(event) = event else { break };
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            if matches!(event, TrackRemoteEvent::OnEnded) {
                break;
            }
            continue;
        };
        counters
            .video_packets_received
            .fetch_add(1, Ordering::Relaxed);
        let header = &packet.header;
        reorder.set_max_wait(reorder::wait_for(rate.min_rtt_ms()));
        let released = reorder.push(
            header.sequence_number,
            Instant::now(),
            (header.timestamp, header.marker, packet.payload.clone()),
        );
        assemble(released, &mut assembler, &sinks, &counters);
        let now = Instant::now();
        if last_pli.is_none_or(|t| now.duration_since(t) >= PLI_MIN_INTERVAL)
            && sinks.keyframe_wanted.swap(false, Ordering::Relaxed)
        {
            last_pli = Some(now);
            counters
                .keyframe_requests_sent
                .fetch_add(1, Ordering::Relaxed);
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if track.write_rtcp(vec![Box::new(pli)]).await.is_err() {
                break;
            }
        }
    }
}

async fn drain_remote_audio(
    track: Arc<dyn TrackRemote>,
    sinks: RemoteSinks,
    counters: Arc<PeerCounters>,
) {
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                counters
                    .audio_packets_received
                    .fetch_add(1, Ordering::Relaxed);
                let remote = RemoteAudio {
                    payload: packet.payload.clone(),
                    sequence_number: packet.header.sequence_number,
                    arrival_us: crate::media::frame::wall_clock_us(),
                };
                // A full queue means the audio thread is stuck; dropping is what a jitter
                // buffer would do with sound this late.
                let _ = sinks.audio.try_send(remote);
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// NACK and PLI as the stack's `configure_nack` sets them up, but with the generator
/// bounded: it tracks the last 128 packets and asks for each at most five times. The default
/// (512 packets, asked for until they come) answered the gap of a 12 s outage with a storm
/// of NACKs for hundreds of stale packets, and the far side's retransmissions of them cost
/// pictures in the second after the path returned. A packet that old is of no use to a
/// picture that completes on its marker anyway: a keyframe request repairs the picture.
fn configure_bounded_nack(registry: Registry, engine: &mut MediaEngine) -> Registry {
    use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder};
    engine.register_feedback(feedback("nack", ""), RtpCodecKind::Video);
    engine.register_feedback(feedback("nack", "pli"), RtpCodecKind::Video);
    registry
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_size(128)
                // Asked for within 30 ms of the gap, up to five times (the sender answers
                // once a round trip): the reorder buffer holds a gap 300 ms for it.
                .with_interval(Duration::from_millis(30))
                .with_max_nacks_per_packet(5)
                .build(),
        )
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: vec![feedback("ccm", "fir")],
    }
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn media_engine() -> Result<MediaEngine, PeerError> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: PT_OPUS,
        },
        RtpCodecKind::Audio,
    )?;
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: h264_codec(),
            payload_type: PT_H264,
        },
        RtpCodecKind::Video,
    )?;
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_RTX.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!("apt={PT_H264}"),
                rtcp_feedback: vec![],
            },
            payload_type: PT_H264_RTX,
        },
        RtpCodecKind::Video,
    )?;
    Ok(engine)
}

async fn build_connection(
    config: &PeerConfig,
    mdns: MulticastDnsMode,
    handler: Arc<Handler>,
    send_rate: &Arc<congestion::SendRate>,
) -> Result<Arc<dyn PeerConnection>, PeerError> {
    let mut engine = media_engine()?;
    let registry = Registry::new();
    let registry = configure_bounded_nack(registry, &mut engine);
    configure_simulcast_extension_headers(&mut engine)?;
    // Transport-wide feedback every 50 ms rather than the stack's 100: the far side's
    // estimator hears of a queue building half as late (a 4x capacity drop adds a frame's
    // worth of queue every frame until it does).
    let registry = configure_twcc_sender_only(registry, &mut engine)?.with(
        Slot::TwccReceiver,
        TwccReceiverBuilder::new()
            .with_interval(Duration::from_millis(50))
            .build(),
    );
    let registry = configure_rtcp_reports(registry);
    // Wire-most, the send history the estimator reads; above it the pacer, so what it holds
    // back is not charged to the network.
    let registry = if send_rate.enabled {
        registry
            .with(
                Slot::CongestionControl,
                CongestionControlBuilder::new(congestion::DelayLossEstimator::new(
                    send_rate.clone(),
                ))
                .build(),
            )
            .with(
                Slot::Pacer,
                congestion::PriorityPacer::new(send_rate.clone()),
            )
    } else {
        registry
    };
    // A far side whose every stream says goodbye hung up, whatever else gets through.
    let events = handler.events.clone();
    let registry = registry.with(
        Slot::from(13_900),
        goodbye::GoodbyeWatcher::new(move || {
            let _ = events.try_send(PeerEvent::RemoteGoodbye);
        }),
    );
    // App-most: lets PLI/FIR through to the local track, where the encoder hears it.
    let registry = registry.with(Slot::from(14_000), KeyframeRequestForwarder::default());

    let mut settings = SettingEngineBuilder::new()
        .with_ice_timeouts(
            Some(Duration::from_secs(3)),
            Some(config.ice_failed_timeout.unwrap_or(Duration::from_secs(25))),
            Some(Duration::from_secs(1)),
        )
        // Checks every 50 ms (RFC 8445's Ta) rather than the library's 200: on a LAN the
        // first check that gets through connects the call, so this is setup time. 28
        // attempts keep the library's 1.4 s per pair.
        .with_ice_connection_attempts(Some(Duration::from_millis(20)), Some(70))
        // A peer-reflexive pair is what a browser's first check creates when it reaches us
        // before its candidate does (trickle): it is as good as the host pair it stands for,
        // and the library's 1 s wait for it was most of the setup time against Chromium.
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        // An ICE restart binds new sockets on the addresses there are then: after a move
        // to another network the old ones are gone.
        .with_discard_local_candidates_during_ice_restart(true)
        .with_multicast_dns_mode(mdns);
    if config.bind.is_some_and(|ip| ip.is_loopback()) {
        settings = settings.with_include_loopback_candidate(true);
    }
    if config.relay_only {
        // Nothing better than a relay will turn up: take the first that works.
        settings = settings.with_relay_acceptance_min_wait(Some(Duration::ZERO));
    }
    let mut rtc_config =
        RTCConfigurationBuilder::new().with_ice_servers(config.ice_servers.clone());
    if config.relay_only {
        rtc_config = rtc_config.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
    }
    let rtc_config = rtc_config.build();
    let bind = match config.bind {
        Some(ip) => std::net::SocketAddr::new(ip, 0).to_string(),
        None => "0.0.0.0:0".to_owned(),
    };
    let runtime = webrtc::runtime::default_runtime()
        .ok_or_else(|| PeerError::WebRtc(webrtc::error::Error::Other("no async runtime".into())))?;
    let pc = PeerConnectionBuilder::new()
        .with_configuration(rtc_config)
        .with_media_engine(engine)
        .with_setting_engine(settings.build())
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_runtime(runtime)
        .with_udp_addrs(vec![bind])
        .build()
        .await?;
    Ok(Arc::new(pc))
}

fn local_track(
    stream_id: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    rtx: bool,
) -> Result<(Arc<TrackLocalStaticSample>, SSRC, Option<SSRC>), PeerError> {
    let ssrc = rand::random::<u32>();
    let rtx_ssrc = rtx.then(rand::random::<u32>);
    let label = match kind {
        RtpCodecKind::Video => "video",
        _ => "audio",
    };
    // Ids must be unique across both ends: webrtc-rs routes RTCP by track id, and a far
    // side's track with the same id would take our keyframe requests.
    let id: u64 = rand::random();
    let track = MediaStreamTrack::new(
        stream_id.to_owned(),
        format!("duet-{label}-{id:016x}"),
        format!("duet {label}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                rtx: rtx_ssrc.map(|ssrc| RTCRtpRtxParameters { ssrc }),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    );
    Ok((
        Arc::new(TrackLocalStaticSample::new(Instant::now(), track)?),
        ssrc,
        rtx_ssrc,
    ))
}

impl Peer {
    /// Builds the connection and its local tracks. Remote media goes to `sinks`; state
    /// changes and control messages come out of the returned receiver.
    pub async fn new(
        config: PeerConfig,
        sinks: RemoteSinks,
    ) -> Result<(Self, mpsc::Receiver<PeerEvent>), PeerError> {
        let (events_tx, events_rx) = mpsc::channel(64);
        let (gathered_tx, gathered_rx) = tokio::sync::watch::channel(false);
        let counters = Arc::new(PeerCounters::default());
        let data_channel = Arc::new(Mutex::new(None));
        let send_rate = Arc::new(match config.congestion {
            Some(c) => congestion::SendRate::new(true, c.start_bps, c.ceiling_bps),
            None => congestion::SendRate::new(false, u64::MAX, u64::MAX),
        });
        let handler = Arc::new(Handler {
            events: events_tx.clone(),
            gathered: gathered_tx,
            sinks,
            counters: counters.clone(),
            data_channel: data_channel.clone(),
            send_rate: send_rate.clone(),
        });
        // Browsers hide their addresses behind mDNS names, so resolving them is on by
        // default. A host with no multicast route (a bare network namespace) cannot open the
        // mDNS socket: then the call goes on without it.
        let loopback_only = config.bind.is_some_and(|ip| ip.is_loopback());
        let first_try = if loopback_only {
            MulticastDnsMode::Disabled
        } else {
            MulticastDnsMode::QueryOnly
        };
        let pc = match build_connection(&config, first_try, handler.clone(), &send_rate).await {
            Ok(pc) => pc,
            Err(e) if first_try != MulticastDnsMode::Disabled => {
                tracing::info!(
                    "mDNS is unavailable here ({e}); .local candidates will not resolve"
                );
                build_connection(&config, MulticastDnsMode::Disabled, handler, &send_rate).await?
            }
            Err(e) => return Err(e),
        };

        let mut peer = Peer {
            pc,
            gathered: gathered_rx,
            data_channel,
            events_tx,
            video: None,
            audio: None,
            counters,
            send_rate,
            stream_id: format!("duet-{:016x}", rand::random::<u64>()),
        };
        if config.send_video {
            peer.video = Some(
                peer.add_track(RtpCodecKind::Video, h264_codec(), true)
                    .await?,
            );
        } else {
            peer.add_receive_only(RtpCodecKind::Video).await?;
        }
        if config.send_audio {
            peer.audio = Some(
                peer.add_track(RtpCodecKind::Audio, opus_codec(), false)
                    .await?,
            );
        } else {
            peer.add_receive_only(RtpCodecKind::Audio).await?;
        }
        Ok((peer, events_rx))
    }

    async fn add_track(
        &self,
        kind: RtpCodecKind,
        codec: RTCRtpCodec,
        rtx: bool,
    ) -> Result<Arc<OutgoingTrack>, PeerError> {
        let (track, ssrc, rtx_ssrc) = local_track(&self.stream_id, kind, codec, rtx)?;
        let sender = self
            .pc
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await?;
        Ok(Arc::new(OutgoingTrack {
            track,
            sender,
            ssrc,
            rtx_ssrc,
            payload_type: Mutex::new(None),
            codec: Mutex::new(None),
        }))
    }

    async fn add_receive_only(&self, kind: RtpCodecKind) -> Result<(), PeerError> {
        use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
        self.pc
            .add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await?;
        Ok(())
    }

    /// Makes the offer. With `wait_for_candidates` it waits for ICE gathering, so the token
    /// carries every candidate (paste mode); otherwise candidates trickle as events.
    pub async fn create_offer(&self, wait_for_candidates: bool) -> Result<Description, PeerError> {
        let channel = self
            .pc
            .create_data_channel(DATA_CHANNEL_LABEL, None)
            .await?;
        *self.data_channel.lock().unwrap_or_else(|e| e.into_inner()) = Some(channel.clone());
        tokio::spawn(drain_data_channel(channel, self.events_tx.clone()));
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.local_description(wait_for_candidates).await
    }

    /// Restarts ICE (new credentials, candidates gathered afresh on fresh sockets, so a
    /// machine that moved to another network offers its new addresses) and makes the
    /// offer that carries the restart; candidates trickle.
    pub async fn restart_ice(&self) -> Result<Description, PeerError> {
        self.pc.restart_ice().await?;
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.local_description(false).await
    }

    /// Applies the far side's offer and makes the answer (waiting for gathering, as with
    /// [`Peer::create_offer`], when asked).
    pub async fn accept_offer(
        &self,
        offer: &Description,
        wait_for_candidates: bool,
    ) -> Result<Description, PeerError> {
        self.pc.set_remote_description(offer.to_rtc()?).await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        let token = self.local_description(wait_for_candidates).await?;
        self.resolve_payload_types().await;
        Ok(token)
    }

    /// Adds a candidate the far side trickled.
    pub async fn add_remote_candidate(&self, candidate: Candidate) -> Result<(), PeerError> {
        let init = rtc::peer_connection::transport::RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            username_fragment: candidate.username_fragment,
            ..Default::default()
        };
        self.pc.add_ice_candidate(init).await?;
        Ok(())
    }

    /// Applies the far side's answer to our offer.
    pub async fn accept_answer(&self, answer: &Description) -> Result<(), PeerError> {
        self.pc.set_remote_description(answer.to_rtc()?).await?;
        self.resolve_payload_types().await;
        Ok(())
    }

    async fn resolve_payload_types(&self) {
        for track in self.video.iter().chain(self.audio.iter()) {
            track.resolve_payload_type().await;
        }
    }

    async fn local_description(&self, wait_for_candidates: bool) -> Result<Description, PeerError> {
        if wait_for_candidates {
            let mut gathered = self.gathered.clone();
            match tokio::time::timeout(GATHERING_TIMEOUT, gathered.wait_for(|done| *done)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(PeerError::GatheringAborted),
                // A STUN or TURN server that never answers must not hold the call up: the
                // description goes out with the candidates found so far.
                Err(_) => tracing::warn!(
                    "ICE gathering not complete after {GATHERING_TIMEOUT:?}; going on with the candidates found so far"
                ),
            }
        }
        let desc = self
            .pc
            .local_description()
            .await
            .ok_or(PeerError::NoLocalDescription)?;
        Description::from_rtc(&desc).ok_or(PeerError::NoLocalDescription)
    }

    /// Sends a control message on the data channel, if it is open.
    /// Every stream we send says goodbye (RTCP BYE): how a far side without our data
    /// channel hears the hang-up, and one with it hears it even if the channel's message
    /// is lost.
    pub async fn say_goodbye(&self) {
        for track in self.video.iter().chain(&self.audio) {
            track.say_goodbye().await;
        }
    }

    pub async fn send_message(&self, text: &str) -> bool {
        let channel = self
            .data_channel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match channel {
            Some(channel) => channel.send_text(text).await.is_ok(),
            None => false,
        }
    }

    /// The connection's own view: round-trip time and bytes both ways.
    pub async fn transport_stats(&self) -> TransportStats {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let mut stats = TransportStats::default();
        // Candidates that came inside the remote SDP (not trickled) have no stats entry in
        // webrtc-rs 0.21; when they are all of one type, the pair's must be that one.
        let sdp_type = match self.pc.remote_description().await {
            Some(remote) => sole_candidate_type(&remote.sdp),
            None => None,
        };
        // The pair names its candidates without the prefix their own entries carry.
        let candidate_type = |id: &str| {
            [
                id.to_owned(),
                format!("RTCLocalIceCandidate_{id}"),
                format!("RTCRemoteIceCandidate_{id}"),
            ]
            .iter()
            .find_map(|key| match report.get(key) {
                Some(
                    RTCStatsReportEntry::LocalCandidate(c)
                    | RTCStatsReportEntry::RemoteCandidate(c),
                ) => Some(c.candidate_type.to_string()),
                _ => None,
            })
            .or_else(|| sdp_type.clone())
            .unwrap_or_else(|| "unknown".to_owned())
        };
        for inbound in report.inbound_rtp_streams() {
            let received = &inbound.received_rtp_stream_stats;
            if received.rtp_stream_stats.kind == RtpCodecKind::Video {
                stats.video_packets_received += received.packets_received;
                stats.video_packets_lost += received.packets_lost.max(0) as u64;
            }
        }
        for pair in report.candidate_pairs() {
            if pair.nominated || stats.rtt_ms.is_none() {
                stats.rtt_ms = Some(pair.current_round_trip_time * 1000.0);
                stats.bytes_sent = pair.bytes_sent;
                stats.bytes_received = pair.bytes_received;
                stats.path = Some(format!(
                    "{} -> {}",
                    candidate_type(&pair.local_candidate_id),
                    candidate_type(&pair.remote_candidate_id)
                ));
            }
        }
        stats
    }

    /// The short code both people can compare aloud (see [`verification`]), once both
    /// descriptions are applied.
    pub async fn verification_code(&self) -> Option<String> {
        let local = self.pc.local_description().await?;
        let remote = self.pc.remote_description().await?;
        verification::verification_code(&local.sdp, &remote.sdp)
    }

    pub async fn close(&self) {
        if let Err(e) = self.pc.close().await {
            tracing::debug!("closing the peer connection: {e}");
        }
    }
}

/// This machine's addresses that a far side could reach (not loopback, not link-local),
/// sorted: when they change, the machine moved to another network.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = rtc::shared::ifaces::ifaces()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|interface| interface.addr.map(|a| a.ip()))
        .filter(|ip| {
            !ip.is_loopback()
                && !ip.is_unspecified()
                && match ip {
                    IpAddr::V4(v4) => !v4.is_link_local(),
                    IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
                }
        })
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// The type of the candidates in `sdp` when they are all of one (`host`, `srflx`, `relay`).
fn sole_candidate_type(sdp: &str) -> Option<String> {
    let mut types = sdp.lines().filter_map(|line| {
        let fields: Vec<&str> = line
            .strip_prefix("a=candidate:")?
            .split_whitespace()
            .collect();
        let at = fields.iter().position(|f| *f == "typ")?;
        fields.get(at + 1).map(|t| t.to_string())
    });
    let first = types.next()?;
    types.all(|t| t == first).then_some(first)
}

/// What the transport says about the path.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TransportStats {
    pub rtt_ms: Option<f64>,
    /// Candidate types of the pair in use, e.g. "host -> host" or "relay -> relay".
    pub path: Option<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The far side's video: packets received and lost, as the receiver counts them.
    pub video_packets_received: u64,
    pub video_packets_lost: u64,
}

#[cfg(test)]
mod tests {
    use super::sole_candidate_type;

    #[test]
    fn the_remote_candidates_type_is_known_when_they_are_all_alike() {
        let host = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n\
                    a=candidate:2 1 udp 2130706431 127.0.0.1 50001 typ host\r\n";
        assert_eq!(sole_candidate_type(host).as_deref(), Some("host"));
        let mixed = format!(
            "{host}a=candidate:3 1 udp 16777215 10.0.0.1 3478 typ relay raddr 0.0.0.0 rport 0\r\n"
        );
        assert_eq!(sole_candidate_type(&mixed), None);
        assert_eq!(sole_candidate_type("v=0\r\n"), None);
    }
}
