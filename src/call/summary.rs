//! What a call did, for the person who made it and for the tests and benchmark: printed at
//! the end of `duet call` and written as JSON with `--stats-json`.

use serde::{Deserialize, Serialize};

/// Median and 95th percentile of a set of measurements.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub median: f64,
    pub p95: f64,
    pub count: usize,
}

impl Percentiles {
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Some(Self {
            median: at(0.5),
            p95: at(0.95),
            count: sorted.len(),
        })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VideoSent {
    /// The negotiated codec's MIME type, e.g. "video/H264".
    #[serde(default)]
    pub codec: Option<String>,
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub frames_captured: u64,
    pub frames_sent: u64,
    pub frames_dropped: u64,
    pub keyframes: u64,
    /// Keyframes forced because the far side asked (PLI/FIR).
    pub keyframes_on_request: u64,
    /// Keyframes forced because this side had to drop an encoded frame.
    pub keyframes_after_drop: u64,
    pub keyframe_requests_received: u64,
    pub bytes: u64,
    /// Frames not encoded because our pacer was behind, or skipped by the encoder's own
    /// rate control.
    #[serde(default)]
    pub frames_skipped_for_pacer: u64,
    #[serde(default)]
    pub frames_skipped_by_encoder: u64,
    /// Times congestion control cut its estimate (a queue building, or loss).
    #[serde(default)]
    pub backoffs: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VideoReceived {
    pub packets: u64,
    pub frames_assembled: u64,
    pub frames_decoded: u64,
    pub decode_errors: u64,
    pub frames_dropped_before_decode: u64,
    pub keyframe_requests_sent: u64,
    pub width: Option<usize>,
    pub height: Option<usize>,
    pub fps: Option<f64>,
    pub stamps_read: u64,
    pub stamps_out_of_order: u64,
    /// Stamps from a recording (capture time far from now), left out of the latency.
    #[serde(default)]
    pub stamps_not_live: u64,
    pub first_stamp_frame: Option<u32>,
    pub last_stamp_frame: Option<u32>,
    /// Capture (far side) to decoded (this side), from the stamps.
    pub latency_ms: Option<Percentiles>,
    /// Every live stamped picture decoded (the first 20 minutes' worth): its frame
    /// number, when the far side captured it and how late it was decoded, so a test can
    /// tell which pictures came after an outage, and a benchmark can pool latencies.
    #[serde(default)]
    pub stamped: Vec<StampedPicture>,
}

/// One stamped picture as decoded: `[frame, captured (Unix ms), latency ms]` in JSON.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct StampedPicture(pub u32, pub f64, pub f64);

impl StampedPicture {
    pub fn frame(&self) -> u32 {
        self.0
    }
    /// When the far side captured it, Unix milliseconds.
    pub fn captured_ms(&self) -> f64 {
        self.1
    }
    pub fn latency_ms(&self) -> f64 {
        self.2
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AudioSent {
    pub tone_hz: Option<f64>,
    pub packets: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AudioReceived {
    pub packets: u64,
    pub packets_recovered: u64,
    pub decode_errors: u64,
    pub seconds: f64,
    pub rms: f64,
    /// The frequency heard for longest.
    pub frequency_hz: Option<f64>,
    /// Seconds of sound that carried that frequency (judged a quarter second at a time).
    #[serde(default)]
    pub tone_seconds: f64,
    /// Capture (far side) to decoded (this side), from the tone's marks.
    pub latency_ms: Option<Percentiles>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// CPU time of the whole process life, seconds.
    pub cpu_seconds: Option<f64>,
    /// CPU time from connected to the end of the call, seconds: the window a benchmark
    /// compares with another program's call.
    #[serde(default)]
    pub cpu_seconds_connected: Option<f64>,
    pub peak_rss_mb: Option<f64>,
}

impl ProcessUsage {
    /// This process's CPU time and peak resident memory so far (Linux; `None` elsewhere).
    pub fn of_this_process() -> Self {
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| {
                // Fields after the command name, which may contain spaces, closed by ')'.
                let rest = &stat[stat.rfind(')')? + 2..];
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let utime: f64 = fields.get(11)?.parse().ok()?;
                let stime: f64 = fields.get(12)?.parse().ok()?;
                Some((utime + stime) / clock_ticks_per_second())
            });
        let peak_rss_mb = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
                let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb / 1024.0)
            });
        Self {
            cpu_seconds,
            cpu_seconds_connected: None,
            peak_rss_mb,
        }
    }
}

/// USER_HZ, which is 100 on every Linux this runs on.
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// Everything a call did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CallSummary {
    pub role: String,
    pub end_reason: String,
    pub connected_seconds: f64,
    /// From both descriptions applied to connected.
    pub connect_ms: Option<f64>,
    /// From both descriptions applied to the first decoded remote picture.
    pub first_frame_ms: Option<f64>,
    pub video_sent: VideoSent,
    pub video_received: VideoReceived,
    pub audio_sent: AudioSent,
    pub audio_received: AudioReceived,
    pub rtt_ms: Option<f64>,
    /// Candidate types of the path in use, e.g. "host -> host" or "relay -> relay".
    #[serde(default)]
    pub path: Option<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Greetings and chat lines that came over the data channel.
    #[serde(default)]
    pub messages_received: Vec<String>,
    /// The sound devices used (or why not), e.g. "microphone: Built-in (48000 Hz, 1 channels)".
    #[serde(default)]
    pub devices: Vec<String>,
    /// What the speaker played, when there was one.
    #[serde(default)]
    pub played: Option<AudioPlayed>,
    pub process: ProcessUsage,
    /// One point a second while connected: how the call went, as webrtc-internals plots it.
    #[serde(default)]
    pub timeline: Vec<TimelinePoint>,
}

/// One second of a call, from the live stats.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TimelinePoint {
    /// Seconds since the call connected.
    pub at_s: f64,
    /// What congestion control allows (everything sent), and what the encoder was told.
    pub target_kbps: Option<f64>,
    pub encoder_kbps: f64,
    pub sent_kbps: f64,
    pub received_kbps: f64,
    pub rtt_ms: Option<f64>,
    /// Our packets the far side reported lost, and the far side's video packets we lost.
    pub sent_loss_percent: Option<f64>,
    pub received_loss_percent: Option<f64>,
    pub sent_fps: f64,
    pub sent_width: Option<usize>,
    pub sent_height: Option<usize>,
    pub received_fps: f64,
    pub received_width: Option<usize>,
    pub received_height: Option<usize>,
    /// Capture to decoded of the far side's stamped pictures, median of the second.
    pub latency_ms: Option<f64>,
    pub queue_delay_ms: Option<f64>,
    pub pacer_delay_ms: Option<f64>,
    pub limitation: crate::peer::congestion::Limitation,
}

impl TimelinePoint {
    pub fn of(at_s: f64, stats: &crate::call::LiveStats) -> Self {
        Self {
            at_s,
            target_kbps: stats.target_kbps,
            encoder_kbps: stats.encoder_kbps,
            sent_kbps: stats.send_kbps,
            received_kbps: stats.receive_kbps,
            rtt_ms: stats.rtt_ms,
            sent_loss_percent: stats.sent_loss_percent,
            received_loss_percent: stats.video_loss_percent,
            sent_fps: stats.sent_fps,
            sent_width: stats.sent_size.map(|s| s.0),
            sent_height: stats.sent_size.map(|s| s.1),
            received_fps: stats.remote_fps,
            received_width: stats.remote_size.map(|s| s.0),
            received_height: stats.remote_size.map(|s| s.1),
            latency_ms: stats.stamp_latency_ms,
            queue_delay_ms: stats.queue_delay_ms,
            pacer_delay_ms: stats.pacer_delay_ms,
            limitation: stats.limitation,
        }
    }
}

/// The speaker's side of the received sound: the jitter buffer and what it did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AudioPlayed {
    /// Sound waiting in the jitter buffer each time the speaker took a frame, ms.
    pub jitter_delay_ms: Option<Percentiles>,
    /// The delay the buffer aimed for at the end.
    pub jitter_target_ms: f64,
    pub frames_played: u64,
    pub recovered_by_fec: u64,
    pub concealed: u64,
    pub late: u64,
    pub skipped: u64,
}

fn fmt_opt(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}{unit}"))
}

fn fmt_latency(p: &Option<Percentiles>) -> String {
    p.map_or_else(
        || "-".to_owned(),
        |p| {
            format!(
                "median {:.1} ms, p95 {:.1} ms ({} samples)",
                p.median, p.p95, p.count
            )
        },
    )
}

impl std::fmt::Display for CallSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (vs, vr, ar) = (&self.video_sent, &self.video_received, &self.audio_received);
        writeln!(
            f,
            "call ended: {} ({}, connected {:.1} s)",
            self.end_reason, self.role, self.connected_seconds
        )?;
        writeln!(
            f,
            "  setup: connected in {}, first remote frame after {}",
            fmt_opt(self.connect_ms, " ms"),
            fmt_opt(self.first_frame_ms, " ms")
        )?;
        writeln!(
            f,
            "  video sent: {} frames {} {}x{}@{}, {} kB; {} keyframes: first, {} asked for by the far side, {} after a local drop",
            vs.frames_sent,
            vs.codec.as_deref().unwrap_or("(no codec negotiated)"),
            vs.width,
            vs.height,
            vs.fps,
            vs.bytes / 1000,
            vs.keyframes,
            vs.keyframes_on_request,
            vs.keyframes_after_drop
        )?;
        writeln!(
            f,
            "  video received: {} frames decoded of {} assembled, {} fps, {}x{}, {} stamps read ({} out of order)",
            vr.frames_decoded,
            vr.frames_assembled,
            fmt_opt(vr.fps, ""),
            vr.width.unwrap_or(0),
            vr.height.unwrap_or(0),
            vr.stamps_read,
            vr.stamps_out_of_order
        )?;
        writeln!(
            f,
            "  video latency, capture to decoded: {}",
            fmt_latency(&vr.latency_ms)
        )?;
        writeln!(
            f,
            "  audio: sent {} packets; received {} ({:.1} s, {} recovered), tone {} for {:.1} s",
            self.audio_sent.packets,
            ar.packets,
            ar.seconds,
            ar.packets_recovered,
            fmt_opt(ar.frequency_hz, " Hz"),
            ar.tone_seconds
        )?;
        writeln!(
            f,
            "  audio latency, capture to decoded: {}",
            fmt_latency(&ar.latency_ms)
        )?;
        writeln!(
            f,
            "  network: {}, rtt {}, {} kB sent, {} kB received",
            self.path.as_deref().unwrap_or("no path"),
            fmt_opt(self.rtt_ms, " ms"),
            self.bytes_sent / 1000,
            self.bytes_received / 1000
        )?;
        if !self.messages_received.is_empty() {
            writeln!(f, "  data channel: {}", self.messages_received.join(" | "))?;
        }
        for device in &self.devices {
            writeln!(f, "  {device}")?;
        }
        if let Some(p) = &self.played {
            writeln!(
                f,
                "  played: {} frames ({} rebuilt by FEC, {} concealed, {} late, {} skipped); jitter buffer {}, target {:.0} ms",
                p.frames_played,
                p.recovered_by_fec,
                p.concealed,
                p.late,
                p.skipped,
                fmt_latency(&p.jitter_delay_ms),
                p.jitter_target_ms
            )?;
        }
        write!(
            f,
            "  process: cpu {} ({} while connected), peak rss {}",
            fmt_opt(self.process.cpu_seconds, " s"),
            fmt_opt(self.process.cpu_seconds_connected, " s"),
            fmt_opt(self.process.peak_rss_mb, " MB")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_middle_and_the_tail() {
        let values: Vec<f64> = (1..=100).map(|v| v as f64).collect();
        let p = Percentiles::of(&values).expect("some"); // test: a panic is the failure
        assert_eq!(p.median, 51.0);
        assert_eq!(p.p95, 95.0);
        assert_eq!(Percentiles::of(&[]), None);
    }

    #[test]
    fn this_process_has_usage() {
        let usage = ProcessUsage::of_this_process();
        if cfg!(target_os = "linux") {
            assert!(usage.peak_rss_mb.expect("rss") > 1.0); // test: a panic is the failure
            assert!(usage.cpu_seconds.is_some());
        }
    }
}
