//! The numbers a call shows while it runs (the window's stats overlay): worked out once a
//! second from the counters of the last second, so they say how the call is now, not on
//! average since it began.

/// How the call is doing, over the last second or so.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveStats {
    /// Size of the far side's picture, as decoded.
    pub remote_size: Option<(usize, usize)>,
    /// Pictures decoded per second.
    pub remote_fps: f64,
    pub receive_kbps: f64,
    pub send_kbps: f64,
    pub rtt_ms: Option<f64>,
    /// Share of the far side's video packets lost in the last second, percent.
    pub video_loss_percent: Option<f64>,
    /// Capture to decoded, median of the last second's stamps, when the far side sends the
    /// stamped test pattern.
    pub stamp_latency_ms: Option<f64>,
    /// Candidate types of the path in use, e.g. "host -> host".
    pub path: Option<String>,
    /// Our own pictures: how many a second went out, and at what size.
    pub sent_fps: f64,
    pub sent_size: Option<(usize, usize)>,
    /// What congestion control allows for everything we send (`None`: it is off), and
    /// what the encoder was told of it.
    pub target_kbps: Option<f64>,
    pub encoder_kbps: f64,
    /// Share of our packets the far side reported lost, percent.
    pub sent_loss_percent: Option<f64>,
    /// How long our packets wait in the network's queues (over the least seen), and in
    /// our pacer.
    pub queue_delay_ms: Option<f64>,
    pub pacer_delay_ms: Option<f64>,
    /// Why our picture is less than asked for.
    pub limitation: Limitation,
}

pub use crate::peer::congestion::Limitation;

/// Counter readings at one moment; two of them make a [`LiveStats`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Reading {
    pub at_seconds: f64,
    pub frames_decoded: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub video_packets_received: u64,
    pub video_packets_lost: u64,
    pub frames_sent: u64,
}

impl LiveStats {
    /// Rates between two readings; the rest is filled in by the caller.
    pub fn between(before: &Reading, now: &Reading) -> Self {
        let seconds = (now.at_seconds - before.at_seconds).max(1e-3);
        let delta = |a: u64, b: u64| b.saturating_sub(a) as f64;
        let received = delta(before.video_packets_received, now.video_packets_received);
        let lost = delta(before.video_packets_lost, now.video_packets_lost);
        Self {
            remote_fps: delta(before.frames_decoded, now.frames_decoded) / seconds,
            sent_fps: delta(before.frames_sent, now.frames_sent) / seconds,
            receive_kbps: delta(before.bytes_received, now.bytes_received) * 8.0 / 1000.0 / seconds,
            send_kbps: delta(before.bytes_sent, now.bytes_sent) * 8.0 / 1000.0 / seconds,
            video_loss_percent: (received + lost > 0.0).then(|| 100.0 * lost / (received + lost)),
            ..Self::default()
        }
    }

    /// Name and value of each line, as the overlay shows them.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        vec![
            (
                "Their picture",
                or_dash(self.remote_size.map(|(w, h)| format!("{w}x{h}"))),
            ),
            ("Frame rate", format!("{:.0} fps", self.remote_fps)),
            ("Receiving", format!("{:.0} kbit/s", self.receive_kbps)),
            ("Sending", format!("{:.0} kbit/s", self.send_kbps)),
            (
                "Our picture",
                or_dash(
                    self.sent_size
                        .map(|(w, h)| format!("{w}x{h} at {:.0} fps", self.sent_fps)),
                ),
            ),
            (
                "Path allows",
                or_dash(self.target_kbps.map(|kbps| match self.limitation {
                    Limitation::None => format!("{kbps:.0} kbit/s"),
                    Limitation::Bandwidth => format!("{kbps:.0} kbit/s (limiting)"),
                    Limitation::Cpu => format!("{kbps:.0} kbit/s (CPU limits)"),
                })),
            ),
            (
                "Round trip",
                // On a LAN the round trip is well under a millisecond.
                or_dash(self.rtt_ms.map(|ms| {
                    if ms < 10.0 {
                        format!("{ms:.1} ms")
                    } else {
                        format!("{ms:.0} ms")
                    }
                })),
            ),
            (
                "Video loss",
                or_dash(self.video_loss_percent.map(|p| format!("{p:.1} %"))),
            ),
            (
                "Latency (stamps)",
                or_dash(self.stamp_latency_ms.map(|ms| format!("{ms:.0} ms"))),
            ),
            ("Path", or_dash(self.path.clone())),
        ]
    }
}

/// The median of some values, or `None` for none.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted[sorted.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_last_interval() {
        let before = Reading {
            at_seconds: 10.0,
            frames_decoded: 300,
            bytes_received: 1_000_000,
            bytes_sent: 2_000_000,
            video_packets_received: 1000,
            video_packets_lost: 0,
            frames_sent: 100,
        };
        let now = Reading {
            at_seconds: 12.0,
            frames_decoded: 360,
            bytes_received: 1_250_000,
            bytes_sent: 2_125_000,
            video_packets_received: 1190,
            video_packets_lost: 10,
            frames_sent: 156,
        };
        let stats = LiveStats::between(&before, &now);
        assert_eq!(stats.remote_fps, 30.0);
        assert_eq!(stats.sent_fps, 28.0);
        assert_eq!(stats.receive_kbps, 1000.0);
        assert_eq!(stats.send_kbps, 500.0);
        assert_eq!(stats.video_loss_percent, Some(5.0));
        let quiet = LiveStats::between(&now, &now);
        assert_eq!(quiet.video_loss_percent, None);
    }

    #[test]
    fn the_overlay_says_dash_for_what_is_unknown() {
        let lines = LiveStats::default().lines();
        assert!(lines.iter().any(|(n, v)| *n == "Round trip" && v == "-"));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
