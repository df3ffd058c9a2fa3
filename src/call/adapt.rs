//! How the picture we send follows the path: the encoder's bitrate from congestion
//! control's target (with room left for sound, retransmissions and headers), frames dropped
//! while the pacer is behind rather than queued, and the picture stepped down in size under
//! sustained low bandwidth and back up when the path recovers, as libwebrtc's quality scaler
//! does, and also when the machine cannot encode the size in time (its overuse detector). Time is passed in; the encoder thread carries out what [`PictureAdapter::decide`]
//! says.

use crate::peer::congestion::{Limitation, SendRate};
use std::time::{Duration, Instant};

/// Share of what is left after sound that video may use: the rest is RTP/SRTP/UDP headers
/// and retransmissions.
const VIDEO_SHARE: f64 = 0.9;
/// Sound's own allowance on top of its bitrate: headers of 50 packets a second.
const AUDIO_OVERHEAD_BPS: f64 = 24_000.0;
/// The least an encoder is asked for.
const MIN_VIDEO_BPS: f64 = 30_000.0;
/// The encoder is told a new bitrate when it moves this much (openh264 restarts its rate
/// control's window on every change).
const RETUNE_STEP: f64 = 0.05;
/// Past this much waiting in the pacer, a new frame would only add to the delay: skip it.
const PACER_DROP_MS: u32 = 100;
/// Bits per pixel per second a size needs to stay (at 30 fps), and the margin above it
/// that must be available before stepping up into a size.
const STAY_BITS_PER_PIXEL: f64 = 1.0;
const STEP_UP_MARGIN: f64 = 1.5;
/// How long the bitrate must stay under a size's need before it steps down, and over the
/// next size's before it steps up.
const STEP_DOWN_AFTER: Duration = Duration::from_millis(1500);
const STEP_UP_AFTER: Duration = Duration::from_secs(4);
/// Picture heights the ladder steps through below the source's own.
const LADDER_HEIGHTS: [usize; 3] = [480, 360, 240];
/// Share of a frame's interval the encoder (with scaling) may take before the machine is
/// too slow for the size (libwebrtc's overuse detector uses 85 %), and under which it has
/// room for the next size up; how long either must last.
const CPU_OVERUSE: f64 = 0.85;
const CPU_UNDERUSE: f64 = 0.4;
const CPU_STEP_DOWN_AFTER: Duration = Duration::from_secs(2);
const CPU_STEP_UP_AFTER: Duration = Duration::from_secs(8);

/// What the encoder thread does with the next frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Skip this frame: the pacer is behind.
    pub skip: bool,
    /// Tell the encoder this bitrate first.
    pub bitrate_bps: Option<u32>,
    /// Encode the frame at this size (the source's own, or a step down).
    pub size: (usize, usize),
    pub limitation: Limitation,
}

/// Follows [`SendRate`] frame by frame; see the module doc.
pub struct PictureAdapter {
    audio_bps: f64,
    fps: f64,
    applied_bps: Option<f64>,
    /// Steps below the source's size (0: full size).
    step: usize,
    /// Since when the bitrate has been under the current size's need, or over the next
    /// size up's.
    under_since: Option<Instant>,
    over_since: Option<Instant>,
    /// Steps taken because the machine could not keep up, and how busy the encoder is
    /// (share of the frame interval, smoothed) with since when it has been too busy or idle.
    cpu_steps: usize,
    encode_load: f64,
    busy_since: Option<Instant>,
    idle_since: Option<Instant>,
}

/// The ladder for a source: its own size, then each lower height, keeping its shape.
pub fn ladder((width, height): (usize, usize)) -> Vec<(usize, usize)> {
    let even = |v: f64| ((v / 2.0).round() as usize * 2).max(2);
    let mut sizes = vec![(width, height)];
    for h in LADDER_HEIGHTS {
        if h < height * 9 / 10 {
            sizes.push((even(width as f64 * h as f64 / height as f64), h));
        }
    }
    sizes
}

fn need_bps((width, height): (usize, usize), fps: f64) -> f64 {
    (width * height) as f64 * STAY_BITS_PER_PIXEL * fps.clamp(5.0, 60.0) / 30.0
}

impl PictureAdapter {
    pub fn new(audio_bps: f64, fps: f64) -> Self {
        Self {
            audio_bps,
            fps,
            applied_bps: None,
            step: 0,
            under_since: None,
            over_since: None,
            cpu_steps: 0,
            encode_load: 0.0,
            busy_since: None,
            idle_since: None,
        }
    }

    /// How long the last frame took to scale and encode: a machine that cannot keep up
    /// at this size gets a smaller picture (and a larger one back when it has room).
    pub fn encoded_in(&mut self, now: Instant, took: Duration) {
        let share = took.as_secs_f64() * self.fps.max(1.0);
        self.encode_load = 0.9 * self.encode_load + 0.1 * share;
        if self.encode_load > CPU_OVERUSE {
            self.idle_since = None;
            let since = *self.busy_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= CPU_STEP_DOWN_AFTER {
                self.cpu_steps += 1;
                self.busy_since = None;
                // The smaller picture costs less: judge it afresh.
                self.encode_load = 0.0;
            }
        } else if self.encode_load < CPU_UNDERUSE && self.cpu_steps > 0 {
            self.busy_since = None;
            let since = *self.idle_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= CPU_STEP_UP_AFTER {
                self.cpu_steps -= 1;
                self.idle_since = None;
            }
        } else {
            self.busy_since = None;
            self.idle_since = None;
        }
    }

    /// The video bitrate a total target leaves, within the user's ceiling.
    pub fn video_bps(&self, target_bps: f64, ceiling_bps: f64) -> f64 {
        let video = (target_bps - self.audio_bps - AUDIO_OVERHEAD_BPS) * VIDEO_SHARE;
        video.clamp(MIN_VIDEO_BPS, ceiling_bps.max(MIN_VIDEO_BPS))
    }

    /// The total a video ceiling stands for: what congestion control may climb to.
    pub fn total_for(&self, video_ceiling_bps: f64) -> f64 {
        video_ceiling_bps / VIDEO_SHARE + self.audio_bps + AUDIO_OVERHEAD_BPS
    }

    /// What to do with a frame of `source` size, given congestion control's `rate` and the
    /// user's video ceiling.
    pub fn decide(
        &mut self,
        now: Instant,
        rate: &SendRate,
        video_ceiling_bps: f64,
        source: (usize, usize),
    ) -> Decision {
        let (want, skip) = if rate.enabled {
            (
                self.video_bps(rate.target_bps() as f64, video_ceiling_bps),
                rate.pacer_delay_ms() > PACER_DROP_MS,
            )
        } else {
            (video_ceiling_bps.max(MIN_VIDEO_BPS), false)
        };
        let bitrate_bps = match self.applied_bps {
            Some(applied) if (want - applied).abs() <= RETUNE_STEP * applied => None,
            _ => {
                self.applied_bps = Some(want);
                Some(want as u32)
            }
        };
        let sizes = ladder(source);
        self.step = self.step.min(sizes.len() - 1);
        let bandwidth_limited = rate.enabled && want < 0.95 * video_ceiling_bps;
        if bandwidth_limited {
            let current_need = need_bps(sizes[self.step], self.fps);
            if want < current_need && self.step + 1 < sizes.len() {
                let since = *self.under_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= STEP_DOWN_AFTER {
                    self.step += 1;
                    self.under_since = None;
                    self.over_since = None;
                }
            } else {
                self.under_since = None;
            }
        } else {
            self.under_since = None;
        }
        if self.step > 0 {
            let up_need = need_bps(sizes[self.step - 1], self.fps) * STEP_UP_MARGIN;
            if want >= up_need.min(0.95 * video_ceiling_bps) {
                let since = *self.over_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= STEP_UP_AFTER {
                    self.step -= 1;
                    self.over_since = None;
                    self.under_since = None;
                }
            } else {
                self.over_since = None;
            }
        }
        self.cpu_steps = self.cpu_steps.min(sizes.len() - 1);
        let step = self.step.max(self.cpu_steps);
        Decision {
            skip,
            bitrate_bps,
            size: sizes[step],
            limitation: if self.cpu_steps > self.step {
                Limitation::Cpu
            } else if bandwidth_limited || skip || self.step > 0 {
                Limitation::Bandwidth
            } else {
                Limitation::None
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(target: u64) -> SendRate {
        SendRate::new(true, target, 10_000_000)
    }

    #[test]
    fn the_ladder_goes_720_480_360_240_keeping_the_shape() {
        assert_eq!(
            ladder((1280, 720)),
            vec![(1280, 720), (854, 480), (640, 360), (426, 240)]
        );
        assert_eq!(ladder((640, 480)), vec![(640, 480), (480, 360), (320, 240)]);
        assert_eq!(ladder((320, 240)), vec![(320, 240)]);
    }

    #[test]
    fn the_encoder_gets_the_target_less_sound_and_headers_within_the_ceiling() {
        let adapter = PictureAdapter::new(32_000.0, 30.0);
        let video = adapter.video_bps(1_000_000.0, 2_000_000.0);
        assert!((800_000.0..900_000.0).contains(&video), "{video}");
        assert_eq!(adapter.video_bps(5_000_000.0, 1_500_000.0), 1_500_000.0);
        assert_eq!(adapter.video_bps(10_000.0, 1_500_000.0), MIN_VIDEO_BPS);
        assert!(adapter.total_for(1_000_000.0) > 1_100_000.0);
    }

    #[test]
    fn sustained_low_bandwidth_steps_down_and_recovery_steps_back_up() {
        let mut adapter = PictureAdapter::new(32_000.0, 30.0);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let low = rate(500_000);
        let mut size = (0, 0);
        for ms in (0..1400).step_by(33) {
            size = adapter.decide(at(ms), &low, 2_500_000.0, (1280, 720)).size;
        }
        assert_eq!(size, (1280, 720), "a dip under 1.5 s keeps the size");
        for ms in (1400..6000).step_by(33) {
            size = adapter.decide(at(ms), &low, 2_500_000.0, (1280, 720)).size;
        }
        assert_eq!(size, (640, 360), "about 450 kbit/s is 360p");
        let high = rate(3_000_000);
        for ms in (6000..8000).step_by(33) {
            size = adapter.decide(at(ms), &high, 2_500_000.0, (1280, 720)).size;
        }
        assert_eq!(size, (640, 360), "a step up waits 4 s");
        for ms in (8000..20_000).step_by(33) {
            size = adapter.decide(at(ms), &high, 2_500_000.0, (1280, 720)).size;
        }
        assert_eq!(size, (1280, 720), "back to full size");
    }

    #[test]
    fn a_machine_that_cannot_keep_up_gets_a_smaller_picture_and_the_size_back_later() {
        let mut adapter = PictureAdapter::new(32_000.0, 30.0);
        let rate = rate(5_000_000);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut decision = adapter.decide(at(0), &rate, 2_500_000.0, (1280, 720));
        assert_eq!(decision.limitation, Limitation::None);
        // 31 ms a frame at 30 fps: more than the machine has.
        for ms in (0..3000).step_by(33) {
            adapter.encoded_in(at(ms), Duration::from_millis(31));
            decision = adapter.decide(at(ms), &rate, 2_500_000.0, (1280, 720));
        }
        assert_eq!(decision.size, (854, 480));
        assert_eq!(decision.limitation, Limitation::Cpu);
        // Then 8 ms a frame: room again, after a while.
        for ms in (3000..8000).step_by(33) {
            adapter.encoded_in(at(ms), Duration::from_millis(8));
            decision = adapter.decide(at(ms), &rate, 2_500_000.0, (1280, 720));
        }
        assert_eq!(decision.size, (854, 480), "not at once");
        for ms in (8000..14_000).step_by(33) {
            adapter.encoded_in(at(ms), Duration::from_millis(8));
            decision = adapter.decide(at(ms), &rate, 2_500_000.0, (1280, 720));
        }
        assert_eq!(decision.size, (1280, 720));
        assert_eq!(decision.limitation, Limitation::None);
    }

    #[test]
    fn a_behind_pacer_skips_frames_and_changes_are_told_once() {
        let mut adapter = PictureAdapter::new(32_000.0, 30.0);
        let now = Instant::now();
        let first = adapter.decide(now, &rate(1_000_000), 2_000_000.0, (640, 480));
        assert!(first.bitrate_bps.is_some() && !first.skip);
        let again = adapter.decide(now, &rate(1_010_000), 2_000_000.0, (640, 480));
        assert_eq!(
            again.bitrate_bps, None,
            "a 1 % change is not worth a retune"
        );
        let off = SendRate::new(false, 0, 0);
        let fixed = PictureAdapter::new(32_000.0, 30.0).decide(now, &off, 800_000.0, (640, 480));
        assert_eq!(fixed.bitrate_bps, Some(800_000));
        assert_eq!(fixed.limitation, Limitation::None);
    }
}
