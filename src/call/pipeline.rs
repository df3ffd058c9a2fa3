//! The media threads of a call. Sending: capture (camera, file or pattern; microphone,
//! file or tone) on its own thread, a one-slot mailbox, the encoder on its own thread, a
//! short bounded queue to the network task. Receiving: the network task hands whole frames
//! or packets through bounded queues to decoder threads, which read the stamps and marks
//! back. No queue in the path is unbounded.

use crate::call::adapt::PictureAdapter;
use crate::codec::{H264Decoder, H264Encoder, OpusDecoder, OpusEncoder, VideoEncoderSettings};
use crate::media::echo::{AudioProcessor, ProcessingSwitches};
use crate::media::file::read_wav;
use crate::media::frame::{AUDIO_FRAME_SAMPLES, AudioFrame, VideoFrame, wall_clock_us};
use crate::media::jitter::{JitterBuffer, Playout};
use crate::media::mailbox::Mailbox;
use crate::media::microphone::Microphone;
use crate::media::pattern::read_frame_stamp;
use crate::media::scale::Downscaler;
use crate::media::sound::SoundDevice;
use crate::media::source::PictureSource;
use crate::media::speaker::Speaker;
use crate::media::tone::{StampedTone, ToneAnalyzer};
use crate::peer::congestion::SendRate;
use crate::peer::{OutgoingTrack, REMOTE_QUEUE, RemoteAudio, RemoteSinks, RemoteVideo};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What this end sends.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub video_bitrate_bps: u32,
    pub audio_bitrate_bps: i32,
    pub send_video: bool,
    pub send_audio: bool,
    pub tone_hz: f64,
    /// Where the sound we send comes from: the test tone, or a microphone.
    pub microphone: SoundDevice,
    /// Where the far side's sound is played: nowhere (it is only measured), or a speaker.
    pub speaker: SoundDevice,
    /// Where the pictures we send come from.
    pub camera: VideoSource,
    /// Record the far side's pictures and sound into this directory.
    pub record: Option<std::path::PathBuf>,
    /// Echo cancellation, noise suppression, gain control of a real microphone.
    pub processing: ProcessingSwitches,
    /// Follow the path's capacity (send-side congestion control and pacing); off, video
    /// goes at `video_bitrate_bps` whatever the path does.
    pub congestion_control: bool,
    /// Where congestion control starts, bits/s for everything sent (`None`: its default).
    pub start_bitrate_bps: Option<u32>,
}

pub use crate::media::source::VideoSource;

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            fps: 30,
            video_bitrate_bps: 1_000_000,
            audio_bitrate_bps: 32_000,
            send_video: true,
            send_audio: true,
            tone_hz: 440.0,
            microphone: SoundDevice::Synthetic,
            speaker: SoundDevice::Synthetic,
            camera: VideoSource::Pattern,
            record: None,
            processing: ProcessingSwitches::default(),
            congestion_control: true,
            start_bitrate_bps: None,
        }
    }
}

/// Counters of the sending side.
#[derive(Default, Debug)]
pub struct SendCounters {
    pub video_frames_captured: AtomicU64,
    pub video_frames_sent: AtomicU64,
    pub video_keyframes_sent: AtomicU64,
    pub video_keyframes_on_request: AtomicU64,
    /// Keyframes forced because this side dropped an encoded frame (the network was behind).
    pub video_keyframes_after_drop: AtomicU64,
    pub video_frames_dropped: AtomicU64,
    pub video_bytes_sent: AtomicU64,
    pub encode_errors: AtomicU64,
    pub audio_packets_sent: AtomicU64,
    pub keyframe_requests_received: AtomicU64,
    /// Set by a keyframe request from the far side; the encoder answers with an IDR.
    pub keyframe_requested: AtomicBool,
    /// The most video may use (`--bitrate`, the window's setting), bits/s; congestion
    /// control keeps it under this. 0 until the pipeline starts.
    pub video_ceiling_bps: AtomicU32,
    /// What the encoder was last told, and the size it was last given.
    pub video_encoder_bps: AtomicU32,
    pub video_sent_width: AtomicU32,
    pub video_sent_height: AtomicU32,
    /// Frames not encoded because the pacer was behind, and frames the encoder's own rate
    /// control skipped.
    pub video_frames_skipped_for_pacer: AtomicU64,
    pub video_frames_skipped_by_encoder: AtomicU64,
    /// Why the picture is less than asked for, as [`crate::peer::congestion::Limitation::code`].
    pub video_limitation: std::sync::atomic::AtomicU8,
    /// The person muted the microphone: silence is sent (the stream stays up, as a
    /// browser's disabled track does).
    pub microphone_muted: AtomicBool,
    /// The person turned the camera off: black pictures are sent.
    pub camera_off: AtomicBool,
    /// Size and rate of what the camera (or the file playing as one) actually sends.
    pub video_width: AtomicU32,
    pub video_height: AtomicU32,
    pub video_fps: AtomicU32,
}

/// What became of the devices a call asked for, in words ("microphone: ...", or why it
/// could not be used); the runner tells the person.
pub type DeviceNotes = Arc<Mutex<Vec<String>>>;

fn note(notes: &DeviceNotes, text: String) {
    tracing::info!("{text}");
    notes.lock().unwrap_or_else(|e| e.into_inner()).push(text);
}

/// Where our pictures go: the track, and what congestion control allows it.
pub struct VideoOut {
    pub track: Arc<OutgoingTrack>,
    pub rate: Arc<SendRate>,
}

/// The sending threads and tasks of a connected call.
pub struct SendPipeline {
    running: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub counters: Arc<SendCounters>,
}

struct EncodedOut {
    data: Bytes,
    duration: Duration,
    captured: Instant,
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> Option<JoinHandle<()>> {
    match std::thread::Builder::new().name(name.to_owned()).spawn(f) {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!("could not start thread {name}: {e}");
            None
        }
    }
}

/// Sleeps until `deadline`; if the thread fell far behind, starts the cadence afresh rather
/// than bursting to catch up.
fn pace(next: &mut Instant, period: Duration) {
    *next += period;
    let now = Instant::now();
    if *next > now {
        std::thread::sleep(*next - now);
    } else if now - *next > period * 2 {
        *next = now;
    }
}

impl SendPipeline {
    /// `preview`, when given, gets each picture sent, for a self-view.
    pub fn start(
        settings: &MediaSettings,
        video: Option<VideoOut>,
        audio: Option<Arc<OutgoingTrack>>,
        counters: Arc<SendCounters>,
        preview: Option<Arc<Mailbox<VideoFrame>>>,
        notes: DeviceNotes,
        processor: Option<AudioProcessor>,
    ) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let mut pipeline = SendPipeline {
            running: running.clone(),
            threads: Vec::new(),
            tasks: Vec::new(),
            counters: counters.clone(),
        };
        if let (true, Some(VideoOut { track, rate })) = (settings.send_video, video) {
            pipeline.start_video(settings, rate, track, preview, notes.clone());
        }
        if let (true, Some(track)) = (settings.send_audio, audio) {
            pipeline.start_audio(settings, track, notes, processor);
        }
        pipeline
    }

    fn start_video(
        &mut self,
        settings: &MediaSettings,
        send_rate: Arc<SendRate>,
        track: Arc<OutgoingTrack>,
        preview: Option<Arc<Mailbox<VideoFrame>>>,
        notes: DeviceNotes,
    ) {
        let mailbox: Arc<Mailbox<VideoFrame>> = Arc::new(Mailbox::new());
        let period = Duration::from_secs_f64(1.0 / settings.fps.max(1) as f64);
        let wanted = crate::media::camera::Wanted {
            width: settings.width as u32,
            height: settings.height as u32,
            fps: settings.fps,
        };
        let camera = settings.camera.clone();

        let (running, slot, counters) =
            (self.running.clone(), mailbox.clone(), self.counters.clone());
        self.threads.extend(spawn_named("video-capture", move || {
            // Pictures as they come from the camera's own thread, or the pattern or a file
            // at their rate; the pattern stands in for a camera that is not there.
            let mut say = |text: String| note(&notes, text);
            let mut source = PictureSource::open(&camera, wanted, &mut say);
            while running.load(Ordering::Relaxed) {
                let off = counters.camera_off.load(Ordering::Relaxed);
                let frame = source.next_frame(off, &mut say);
                if let (false, Some(preview)) = (off, &preview) {
                    preview.put(frame.clone());
                }
                counters
                    .video_width
                    .store(frame.width as u32, Ordering::Relaxed);
                counters
                    .video_height
                    .store(frame.height as u32, Ordering::Relaxed);
                counters
                    .video_fps
                    .store(source.fps().round() as u32, Ordering::Relaxed);
                slot.put(frame);
                counters
                    .video_frames_captured
                    .fetch_add(1, Ordering::Relaxed);
            }
        }));

        let (tx, mut rx) = mpsc::channel::<EncodedOut>(4);
        let encoder_settings = VideoEncoderSettings {
            bitrate_bps: settings.video_bitrate_bps,
            fps: settings.fps as f32,
        };
        let (running, counters) = (self.running.clone(), self.counters.clone());
        // The window may have set a ceiling before the call connected; else the settings'.
        let _ = counters.video_ceiling_bps.compare_exchange(
            0,
            settings.video_bitrate_bps,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let mut adapter =
            PictureAdapter::new(settings.audio_bitrate_bps as f64, settings.fps as f64);
        self.threads.extend(spawn_named("video-encode", move || {
            let mut encoder = match H264Encoder::new(encoder_settings) {
                Ok(encoder) => encoder,
                Err(e) => {
                    tracing::error!("video is off: {e}");
                    return;
                }
            };
            let mut downscaler = Downscaler::default();
            // The RTP clock follows the capture times (a camera slows down in the dark, the
            // mailbox drops what the encoder had no time for): each frame advances it by the
            // time since the frame sent before it.
            let mut last_sent_us: Option<u64> = None;
            while running.load(Ordering::Relaxed) {
                let Some(frame) = mailbox.take_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let ceiling = counters.video_ceiling_bps.load(Ordering::Relaxed) as f64;
                send_rate.set_ceiling_bps(adapter.total_for(ceiling) as u64);
                let decision = adapter.decide(
                    Instant::now(),
                    &send_rate,
                    ceiling,
                    (frame.width, frame.height),
                );
                counters
                    .video_limitation
                    .store(decision.limitation.code(), Ordering::Relaxed);
                if let Some(bps) = decision.bitrate_bps {
                    match encoder.set_bitrate(bps) {
                        Ok(()) => counters.video_encoder_bps.store(bps, Ordering::Relaxed),
                        Err(e) => tracing::warn!("{e}"),
                    }
                }
                if decision.skip {
                    // Waiting in the pacer it would only be late; the next frame goes
                    // instead (nothing references a frame never encoded).
                    counters
                        .video_frames_skipped_for_pacer
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if counters.keyframe_requested.swap(false, Ordering::Relaxed) {
                    encoder.request_keyframe();
                    counters
                        .video_keyframes_on_request
                        .fetch_add(1, Ordering::Relaxed);
                }
                let started = Instant::now();
                let frame = downscaler.scale(frame, decision.size);
                counters
                    .video_sent_width
                    .store(frame.width as u32, Ordering::Relaxed);
                counters
                    .video_sent_height
                    .store(frame.height as u32, Ordering::Relaxed);
                let encoded = match encoder.encode(&frame) {
                    Ok(encoded) if !encoded.data.is_empty() => encoded,
                    Ok(_) => {
                        counters
                            .video_frames_skipped_by_encoder
                            .fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(e) => {
                        counters.encode_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("{e}");
                        continue;
                    }
                };
                adapter.encoded_in(Instant::now(), started.elapsed());
                let size = encoded.data.len() as u64;
                let duration = last_sent_us.map_or(period, |last| {
                    Duration::from_micros(frame.capture_time_us.saturating_sub(last))
                        .clamp(Duration::from_millis(1), Duration::from_secs(1))
                });
                let out = EncodedOut {
                    data: Bytes::from(encoded.data),
                    duration,
                    captured: Instant::now(),
                };
                if tx.try_send(out).is_err() {
                    // The network is behind: later frames would reference this one.
                    counters
                        .video_frames_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    encoder.request_keyframe();
                    counters
                        .video_keyframes_after_drop
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                last_sent_us = Some(frame.capture_time_us);
                counters.video_frames_sent.fetch_add(1, Ordering::Relaxed);
                counters.video_bytes_sent.fetch_add(size, Ordering::Relaxed);
                if encoded.keyframe {
                    counters
                        .video_keyframes_sent
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }));

        let writer = track.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                if let Err(e) = writer.send(out.data, out.duration, out.captured).await {
                    tracing::debug!("video send: {e}");
                }
            }
        }));
        let counters = self.counters.clone();
        self.tasks.push(tokio::spawn(async move {
            while track.next_keyframe_request().await.is_some() {
                counters
                    .keyframe_requests_received
                    .fetch_add(1, Ordering::Relaxed);
                counters.keyframe_requested.store(true, Ordering::Relaxed);
            }
        }));
    }

    fn start_audio(
        &mut self,
        settings: &MediaSettings,
        track: Arc<OutgoingTrack>,
        notes: DeviceNotes,
        mut processor: Option<AudioProcessor>,
    ) {
        let (tx, mut rx) = mpsc::channel::<EncodedOut>(8);
        let (running, counters) = (self.running.clone(), self.counters.clone());
        let (tone_hz, bitrate) = (settings.tone_hz, settings.audio_bitrate_bps);
        let microphone = settings.microphone.clone();
        self.threads.extend(spawn_named("audio-capture", move || {
            let mut encoder = match OpusEncoder::new(bitrate) {
                Ok(encoder) => encoder,
                Err(e) => {
                    tracing::error!("sound is off: {e}");
                    return;
                }
            };
            let period = Duration::from_millis(20);
            let mut send = |mut frame: AudioFrame| {
                if counters.microphone_muted.load(Ordering::Relaxed) {
                    frame.samples.fill(0);
                }
                match encoder.encode(&frame.samples) {
                    Ok(packet) => {
                        let out = EncodedOut {
                            data: Bytes::from(packet),
                            duration: period,
                            captured: Instant::now(),
                        };
                        if tx.try_send(out).is_ok() {
                            counters.audio_packets_sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            };
            // The microphone's frames come from its own thread through a short queue; a
            // full queue drops (the encoder fell behind), never blocks the device.
            let (frames_tx, frames_rx) = std::sync::mpsc::sync_channel::<AudioFrame>(8);
            if let SoundDevice::File(path) = &microphone {
                match read_wav(path).and_then(|(sound, rate)| {
                    let mut resampler = crate::media::resample::MonoResampler::new(rate, 48_000)
                        .map_err(|e| crate::media::file::FileError::BadWav {
                            path: path.display().to_string(),
                            why: e.to_string(),
                        })?;
                    let mut at_48k = Vec::new();
                    resampler.push(&sound, &mut at_48k);
                    Ok(at_48k)
                }) {
                    Ok(sound) if sound.len() >= AUDIO_FRAME_SAMPLES => {
                        note(
                            &notes,
                            format!(
                                "microphone: {} ({:.1} s, looped)",
                                path.display(),
                                sound.len() as f64 / 48_000.0
                            ),
                        );
                        let mut position = 0;
                        let mut next = Instant::now();
                        while running.load(Ordering::Relaxed) {
                            let samples: Vec<i16> = (0..AUDIO_FRAME_SAMPLES)
                                .map(|i| {
                                    let s = sound[(position + i) % sound.len()];
                                    (s.clamp(-1.0, 1.0) * 32767.0) as i16
                                })
                                .collect();
                            position = (position + AUDIO_FRAME_SAMPLES) % sound.len();
                            send(AudioFrame {
                                samples,
                                capture_time_us: wall_clock_us(),
                            });
                            pace(&mut next, period);
                        }
                        return;
                    }
                    Ok(_) => note(
                        &notes,
                        format!(
                            "{} is shorter than 20 ms: sending the test tone instead",
                            path.display()
                        ),
                    ),
                    Err(e) => note(&notes, format!("{e}: sending the test tone instead")),
                }
            }
            let opened = match &microphone {
                SoundDevice::Synthetic | SoundDevice::File(_) => None,
                choice => match Microphone::open(
                    choice,
                    Box::new(move |frame| {
                        let _ = frames_tx.try_send(frame);
                    }),
                ) {
                    Ok(mic) => {
                        note(&notes, format!("microphone: {}", mic.description));
                        Some(mic)
                    }
                    Err(e) => {
                        note(&notes, format!("{e}: sending the test tone instead"));
                        None
                    }
                },
            };
            if let Some(microphone) = opened {
                // The microphone never stops delivering: look at `running` every frame.
                while running.load(Ordering::Relaxed) {
                    match frames_rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(mut frame) => {
                            if let Some(processor) = processor.as_mut() {
                                processor.capture(&mut frame.samples);
                            }
                            send(frame)
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                // Closing a PulseAudio record stream can wait on the server for good (cpal
                // 0.18 joins a thread that waits for a reply): close it aside, so that
                // hanging up never waits on it.
                let closing = std::thread::Builder::new()
                    .name("microphone-close".into())
                    .spawn(move || drop(microphone));
                if let Err(e) = closing {
                    tracing::debug!("microphone left open: {e}");
                }
                return;
            }
            let mut tone = StampedTone::new(tone_hz);
            let mut next = Instant::now();
            while running.load(Ordering::Relaxed) {
                send(tone.next_frame(wall_clock_us()));
                pace(&mut next, period);
            }
        }));
        self.tasks.push(tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                if let Err(e) = track.send(out.data, out.duration, out.captured).await {
                    tracing::debug!("audio send: {e}");
                }
            }
        }));
    }

    /// Stops capture and encoding and waits for the threads, but not for ever: hanging up
    /// must not wait on a camera that stopped delivering (the capture loop waits up to a
    /// few seconds for its next picture).
    pub fn stop(self) {
        self.running.store(false, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(2);
        for thread in self.threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!(
                    "{} did not stop; left behind",
                    thread.thread().name().unwrap_or("a media thread")
                );
            }
        }
        for task in self.tasks {
            task.abort();
        }
    }
}

/// What the video decoder saw.
#[derive(Default, Debug, Clone)]
pub struct VideoReceiveStats {
    pub frames_decoded: u64,
    pub decode_errors: u64,
    pub first_decoded_at: Option<Instant>,
    pub last_decoded_at: Option<Instant>,
    pub size: Option<(usize, usize)>,
    /// Stamp frame number of the first and last stamped picture.
    pub first_stamp_frame: Option<u32>,
    pub last_stamp_frame: Option<u32>,
    pub stamps_read: u64,
    pub stamps_out_of_order: u64,
    pub frames_without_stamp: u64,
    /// Stamps whose capture time is far from now: the sender replays a recording.
    pub stamps_not_live: u64,
    /// Capture-to-decoded latency of each stamped frame, milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Each live stamped picture (the first [`KEPT_PICTURES`]).
    pub stamped: Vec<crate::call::summary::StampedPicture>,
}

/// Keep at most this many stamped pictures (20 minutes at 30 fps).
const KEPT_PICTURES: usize = 36_000;

/// What the audio decoder saw.
#[derive(Default)]
pub struct AudioReceiveStats {
    pub packets_decoded: u64,
    pub packets_recovered: u64,
    pub decode_errors: u64,
    pub analyzer: ToneAnalyzer,
}

/// What the speaker played.
#[derive(Default, Debug)]
pub struct PlayedStats {
    pub device: Option<String>,
    /// Sound waiting in the jitter buffer (the frame taken included) each time the
    /// speaker took a frame, ms (the first hour's worth).
    pub delays_ms: Vec<f64>,
    pub target_ms: f64,
    pub counters: crate::media::jitter::JitterCounters,
}

/// Keep at most this many jitter-buffer delay samples (an hour of 20 ms frames).
const KEPT_DELAYS: usize = 180_000;

/// The speaker's sound source: 20 ms frames from the jitter buffer, decoded (or rebuilt,
/// or concealed) as the speaker asks for them.
fn playout_source(
    buffer: Arc<Mutex<JitterBuffer>>,
    played: Arc<Mutex<PlayedStats>>,
    mut echo_reference: Option<AudioProcessor>,
) -> Result<crate::media::speaker::SoundSource, crate::codec::CodecError> {
    let mut decoder = OpusDecoder::new()?;
    let mut ready: std::collections::VecDeque<i16> = std::collections::VecDeque::new();
    Ok(Box::new(move |out: &mut [i16]| {
        while ready.len() < out.len() {
            let (playout, delay, target, counters) = {
                let mut jb = buffer.lock().unwrap_or_else(|e| e.into_inner());
                // What waits, counting the frame about to play.
                let delay = jb.delay();
                let playout = jb.pop();
                (playout, delay, jb.target(), jb.counters)
            };
            let decoded = match &playout {
                Playout::Packet(packet) => decoder.decode(packet).map(|s| s.to_vec()),
                Playout::FromFec(next) => decoder.recover(Some(next)).map(|s| s.to_vec()),
                Playout::Conceal => decoder.recover(None).map(|s| s.to_vec()),
                Playout::Silence => Ok(vec![0; AUDIO_FRAME_SAMPLES]),
            };
            let decoded = decoded.unwrap_or_else(|_| vec![0; AUDIO_FRAME_SAMPLES]);
            // What is about to be played is what the microphone may hear back.
            if let Some(reference) = echo_reference.as_mut() {
                reference.render(&decoded);
            }
            ready.extend(decoded);
            let mut p = played.lock().unwrap_or_else(|e| e.into_inner());
            if playout != Playout::Silence && p.delays_ms.len() < KEPT_DELAYS {
                p.delays_ms.push(delay.as_secs_f64() * 1000.0);
            }
            p.target_ms = target.as_secs_f64() * 1000.0;
            p.counters = counters;
        }
        let wanted = out.len();
        for (slot, sample) in out.iter_mut().zip(ready.drain(..wanted)) {
            *slot = sample;
        }
    }))
}

/// The recording of the far side in progress, if any. It can start and stop during the
/// call (the window's Record button); the decoder threads look here for each picture and
/// sound.
#[derive(Clone, Default)]
pub struct RecordingSlot(Arc<Mutex<Option<Arc<crate::media::recorder::Recorder>>>>);

impl RecordingSlot {
    pub fn current(&self) -> Option<Arc<crate::media::recorder::Recorder>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts recording into `dir` (a recording already going on goes on); the note says
    /// where, or why not.
    pub fn start(&self, dir: &std::path::Path, notes: &DeviceNotes) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return;
        }
        match crate::media::recorder::Recorder::start(dir) {
            Ok(recorder) => {
                *slot = Some(Arc::new(recorder));
                drop(slot);
                note(
                    notes,
                    format!("recording the far side into {}", dir.display()),
                );
            }
            Err(e) => {
                drop(slot);
                note(notes, e);
            }
        }
    }

    /// Ends the recording, if one goes on, and says what was written. Waits for the files
    /// to be closed.
    pub fn stop(&self, notes: &DeviceNotes) {
        let taken = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(recorder) = taken else { return };
        let recorded = recorder.finish();
        let files: Vec<String> = [recorded.video, recorded.audio]
            .iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        let mut line = format!(
            "recorded {} pictures and {} s of sound: {}",
            recorded.pictures_written,
            recorded.seconds_of_sound,
            files.join(", ")
        );
        if let Some(e) = recorded.error {
            line = format!("{line} ({e})");
        }
        note(notes, line);
    }
}

/// The receiving threads of a call, alive as long as the peer connection.
pub struct ReceivePipeline {
    pub sinks: RemoteSinks,
    pub video: Arc<Mutex<VideoReceiveStats>>,
    pub audio: Arc<Mutex<AudioReceiveStats>>,
    pub played: Arc<Mutex<PlayedStats>>,
    /// The recording of the far side, when one is made.
    pub recording: RecordingSlot,
    /// The newest decoded picture, for a screen.
    pub latest_picture: Arc<Mailbox<VideoFrame>>,
    running: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// The next item from a decoder's queue, or `None` once the pipeline stops. The peer
/// connection may outlive its close (webrtc-rs #906) and keep its senders, so a closed
/// queue cannot be the only way out.
fn next_or_stop<T>(rx: &std::sync::mpsc::Receiver<T>, running: &AtomicBool) -> Option<T> {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(item) => return Some(item),
            Err(RecvTimeoutError::Timeout) if running.load(Ordering::Relaxed) => continue,
            Err(_) => return None,
        }
    }
}

impl ReceivePipeline {
    /// `speaker` plays the far side's sound (or nothing: it is only measured).
    pub fn start(
        speaker: &SoundDevice,
        record: Option<&std::path::Path>,
        notes: DeviceNotes,
        echo_reference: Option<AudioProcessor>,
    ) -> Self {
        let recorder = RecordingSlot::default();
        if let Some(dir) = record {
            recorder.start(dir, &notes);
        }
        let (video_tx, video_rx) = std::sync::mpsc::sync_channel::<RemoteVideo>(REMOTE_QUEUE);
        let (audio_tx, audio_rx) = std::sync::mpsc::sync_channel::<RemoteAudio>(32);
        let keyframe_wanted = Arc::new(AtomicBool::new(false));
        let video = Arc::new(Mutex::new(VideoReceiveStats::default()));
        let audio = Arc::new(Mutex::new(AudioReceiveStats::default()));
        let latest_picture = Arc::new(Mailbox::new());
        let mut threads = Vec::new();

        let running = Arc::new(AtomicBool::new(true));
        let (stats, wanted, picture, recording) = (
            video.clone(),
            keyframe_wanted.clone(),
            latest_picture.clone(),
            recorder.clone(),
        );
        let running_video = running.clone();
        threads.extend(spawn_named("video-decode", move || {
            let running = running_video;
            let mut decoder = match H264Decoder::new() {
                Ok(decoder) => decoder,
                Err(e) => {
                    tracing::error!("remote video cannot be shown: {e}");
                    return;
                }
            };
            while let Some(remote) = next_or_stop(&video_rx, &running) {
                let result = decoder.decode(&remote.unit.data, remote.arrival_us);
                let decoded_us = wall_clock_us();
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(Some(mut frame)) => {
                        let now = Instant::now();
                        s.frames_decoded += 1;
                        s.first_decoded_at.get_or_insert(now);
                        s.last_decoded_at = Some(now);
                        s.size = Some((frame.width, frame.height));
                        match read_frame_stamp(&frame) {
                            Some(stamp) => {
                                s.stamps_read += 1;
                                if s.last_stamp_frame
                                    .is_some_and(|last| stamp.frame_number <= last)
                                {
                                    s.stamps_out_of_order += 1;
                                }
                                s.first_stamp_frame.get_or_insert(stamp.frame_number);
                                s.last_stamp_frame = Some(stamp.frame_number);
                                let latency =
                                    decoded_us as f64 / 1000.0 - stamp.capture_time_ms as f64;
                                // A stamp made long ago (a recording fed to a browser's fake
                                // camera) identifies the frame but says nothing of latency.
                                if (-1000.0..5000.0).contains(&latency) {
                                    s.latencies_ms.push(latency);
                                    if s.stamped.len() < KEPT_PICTURES {
                                        s.stamped.push(crate::call::summary::StampedPicture(
                                            stamp.frame_number,
                                            stamp.capture_time_ms as f64,
                                            latency,
                                        ));
                                    }
                                } else {
                                    s.stamps_not_live += 1;
                                }
                                frame.capture_time_us = stamp.capture_time_ms * 1000;
                            }
                            None => s.frames_without_stamp += 1,
                        }
                        drop(s);
                        if let Some(recorder) = recording.current() {
                            recorder.picture(&frame, decoded_us);
                        }
                        picture.put(frame);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        s.decode_errors += 1;
                        wanted.store(true, Ordering::Relaxed);
                        tracing::debug!("{e}");
                    }
                }
            }
        }));

        let stats = audio.clone();
        let running_audio = running.clone();
        let played = Arc::new(Mutex::new(PlayedStats::default()));
        let recording = recorder.clone();
        let (played_by_speaker, speaker) = (played.clone(), speaker.clone());
        threads.extend(spawn_named("audio-decode", move || {
            let running = running_audio;
            let mut decoder = match OpusDecoder::new() {
                Ok(decoder) => decoder,
                Err(e) => {
                    tracing::error!("remote sound cannot be played: {e}");
                    return;
                }
            };
            // The speaker pulls from the jitter buffer on its own thread; this thread fills
            // it (and goes on measuring what arrives).
            let jitter = Arc::new(Mutex::new(JitterBuffer::new()));
            let _speaker = match &speaker {
                SoundDevice::Synthetic => None,
                choice => {
                    let opened =
                        playout_source(jitter.clone(), played_by_speaker.clone(), echo_reference)
                            .map_err(|e| e.to_string())
                            .and_then(|source| {
                                Speaker::open(choice, source).map_err(|e| e.to_string())
                            });
                    match opened {
                        Ok(speaker) => {
                            note(&notes, format!("speaker: {}", speaker.description));
                            played_by_speaker
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .device = Some(speaker.description.clone());
                            Some(speaker)
                        }
                        Err(e) => {
                            note(&notes, format!("{e}: the far side's sound is not played"));
                            None
                        }
                    }
                }
            };
            let playing = _speaker.is_some();
            let mut expected: Option<u16> = None;
            while let Some(packet) = next_or_stop(&audio_rx, &running) {
                if playing {
                    jitter.lock().unwrap_or_else(|e| e.into_inner()).push(
                        packet.sequence_number,
                        packet.payload.clone(),
                        Instant::now(),
                    );
                }
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                let missing = expected.map_or(0, |e| packet.sequence_number.wrapping_sub(e));
                if missing >= 0x8000 {
                    continue; // late or duplicate
                }
                expected = Some(packet.sequence_number.wrapping_add(1));
                // Rebuild what was lost: the last missing packet from this one's FEC, any
                // before it by concealment. More than 5 (100 ms) is a gap, not loss.
                if (1..=5).contains(&missing) {
                    for k in (0..missing).rev() {
                        let fec = (k == 0).then_some(&packet.payload[..]);
                        if let Ok(samples) = decoder.recover(fec) {
                            let at = packet.arrival_us.saturating_sub((k as u64 + 1) * 20_000);
                            let samples = samples.to_vec();
                            if let Some(recorder) = recording.current() {
                                recorder.sound(&samples, at);
                            }
                            s.analyzer.push(&samples, at);
                            s.packets_recovered += 1;
                        }
                    }
                }
                match decoder.decode(&packet.payload) {
                    Ok(samples) => {
                        let samples = samples.to_vec();
                        debug_assert!(samples.len() <= AUDIO_FRAME_SAMPLES * 6);
                        if let Some(recorder) = recording.current() {
                            recorder.sound(&samples, packet.arrival_us);
                        }
                        s.analyzer.push(&samples, packet.arrival_us);
                        s.packets_decoded += 1;
                    }
                    Err(_) => s.decode_errors += 1,
                }
            }
        }));

        ReceivePipeline {
            sinks: RemoteSinks {
                video: video_tx,
                audio: audio_tx,
                keyframe_wanted,
            },
            video,
            audio,
            played,
            recording: recorder,
            latest_picture,
            running,
            threads,
        }
    }

    /// Stops the decoder threads and waits for them.
    pub fn stop(self) {
        self.running.store(false, Ordering::Relaxed);
        drop(self.sinks);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
