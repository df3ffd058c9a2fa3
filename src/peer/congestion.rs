//! Send-side congestion control: how fast the path lets us send, and a pacer that sends at
//! that pace with sound first.
//!
//! The stack (rtc-interceptor 0.21) records every departing packet and resolves the far
//! side's transport-cc feedback against it; we plug in behind its two seams:
//! - [`DelayLossEstimator`] (the `BandwidthEstimator`): the stack's delay-gradient filter and
//!   overuse detector, with our own rate control. The stack's GCC climbs at +8 %/s from
//!   300 kbit/s with no probing (28 s to 2.5 Mbit/s) and lets the target run past what was
//!   acknowledged; ours climbs fast until the path first pushes back (doubling per second,
//!   capped at twice what was acknowledged: the encoder's own frames are the probe), then
//!   holds increases to 1.5x the acknowledged rate as libwebrtc does, and also backs off on a
//!   standing queue, which a deep buffer builds slowly enough for the gradient to miss.
//! - [`PriorityPacer`] (in the `Pacer` slot): sound goes at once, retransmissions before new
//!   video, video at 2.5x the target (libwebrtc's factor) and faster still when the queue would
//!   take more than half a second to drain. The stack's pacer has one FIFO at 1.0x and a
//!   4096-packet queue with no time limit.
//!
//! Both publish to one [`SendRate`], which the encoder reads to follow the target and to drop
//! frames while the pacer is behind.

use rtc::interceptor::{
    ArrivalGroupAccumulator, Attribute, BandwidthEstimator, InterGroupDelay, Interceptor,
    OveruseDetector, Pacer as Bucket, Packet, PacketReport, RateCalculator, StreamInfo,
    TaggedPacket, Usage,
};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where a call's estimate starts before any feedback: libwebrtc starts at 300 kbit/s and
/// probes; without probes, a little higher gets a sharp picture a second sooner.
pub const DEFAULT_START_BPS: u64 = 600_000;
/// Below this nothing useful gets through: sound and a postage stamp of video.
pub const MIN_BPS: f64 = 60_000.0;
/// Packets queued in the pacer beyond this are refused (a hard bound; the time limit below
/// normally keeps the queue far shorter).
const PACER_QUEUE_LIMIT: usize = 2048;
/// Pacing rate over the target, as libwebrtc: a keyframe leaves in a fraction of a frame
/// interval instead of smearing over several.
const PACING_FACTOR: f64 = 2.5;
/// The pacer speeds up so that what is queued leaves within this.
const PACER_QUEUE_TIME_LIMIT: Duration = Duration::from_millis(500);
/// The most the bucket lets out at once: 40 ms at the pacing rate, libwebrtc's burst
/// interval since 2023. An ordinary frame (a thirtieth of a second at 1x) leaves at once,
/// so pacing costs no latency; a keyframe or an overshoot is spread out.
const BURST: Duration = Duration::from_millis(40);

/// A packet is retransmitted again only after a round trip (at most this), however often
/// it is asked for.
const RETRANSMIT_AGAIN_AFTER: Duration = Duration::from_millis(100);
/// Retransmissions may use up to this share of the target, over a second.
const RETRANSMISSION_SHARE: f64 = 0.5;
/// A retransmission that waited longer than this in the pacer repairs nothing.
const RETRANSMISSION_MAX_WAIT: Duration = Duration::from_millis(200);
/// A receiver report older than this says nothing about the path now.
const REPORT_FRESH: Duration = Duration::from_secs(3);
/// The least round trip is taken over this long.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// In flight beyond a round trip's worth of the target, plus this, holds video back: room
/// for the far side's feedback interval (Chromium's is up to 250 ms at low rates) and a
/// keyframe, so a healthy path is never held.
const WINDOW_SLACK: Duration = Duration::from_millis(250);
/// The window never closes below this much in flight (a keyframe's worth at low rates).
const MIN_WINDOW_BITS: f64 = 200_000.0;
/// How often a pacer held by the window looks again.
const WINDOW_RECHECK: Duration = Duration::from_millis(5);

/// Growth per second until the path first pushes back (the start phase), and after.
const START_GROWTH_PER_SECOND: f64 = 2.0;
const STEADY_GROWTH_PER_SECOND: f64 = 1.08;
/// Near the capacity last measured, growth is additive: about a packet per response time.
const NEAR_CAPACITY_BPS_PER_SECOND: f64 = 40_000.0;
/// On overuse the target falls to this share of what was acknowledged.
const BACKOFF: f64 = 0.85;
/// Loss above this cuts the target (by half the loss); below `LOW_LOSS` it may grow.
const HIGH_LOSS: f64 = 0.10;
const LOW_LOSS: f64 = 0.02;
/// Loss above this is a broken path, not a full one.
const BROKEN_PATH_LOSS: f64 = 0.5;
/// Time between two cuts, so the first one's effect is seen before the next.
const CUT_INTERVAL: Duration = Duration::from_millis(300);
/// Queueing delay (arrival offset over its minimum) that counts as overuse on its own, when
/// two feedback reports in a row show it (one may be a burst of jitter).
const STANDING_QUEUE: Duration = Duration::from_millis(100);
/// Without feedback this long the path was gone: on its return the estimate starts afresh
/// from where it was, with the fast start.
const FEEDBACK_GAP: Duration = Duration::from_secs(2);
/// The minimum one-way offset is forgotten after this, so a route change cannot pin it.
const OFFSET_WINDOW: Duration = Duration::from_secs(30);

/// Why the picture is not as good as asked for, as `getStats`' `qualityLimitationReason`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Limitation {
    #[default]
    None,
    Bandwidth,
    Cpu,
}

impl Limitation {
    /// As kept in an atomic: its discriminant.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Bandwidth,
            2 => Self::Cpu,
            _ => Self::None,
        }
    }
}

/// What congestion control says now; written by the estimator and pacer, read by the
/// encoder and the stats. Plain atomics: the encoder thread reads it every frame.
#[derive(Debug)]
pub struct SendRate {
    /// Whether congestion control runs at all (off: the encoder keeps its set bitrate).
    pub enabled: bool,
    target_bps: AtomicU64,
    ceiling_bps: AtomicU64,
    acked_bps: AtomicU64,
    loss_permille: AtomicU32,
    queue_delay_ms: AtomicU32,
    pacer_delay_ms: AtomicU32,
    pacer_dropped: AtomicU64,
    retransmissions_refused: AtomicU64,
    backoffs: AtomicU64,
    /// The reference for the instants below, kept as microseconds since it.
    epoch: Instant,
    /// Everything sent before this has been reported on by the far side.
    reported_until_us: AtomicU64,
    last_feedback_us: AtomicU64,
    rtt_ms: AtomicU32,
    min_rtt_ms: AtomicU32,
    /// The far side's last receiver report on our video: loss in 1/256, how many so far,
    /// and when (microseconds since `epoch`).
    report_loss: AtomicU32,
    reports: AtomicU64,
    report_at_us: AtomicU64,
}

impl SendRate {
    pub fn new(enabled: bool, start_bps: u64, ceiling_bps: u64) -> Self {
        let ceiling_bps = ceiling_bps.max(MIN_BPS as u64);
        Self {
            enabled,
            target_bps: AtomicU64::new(start_bps.clamp(MIN_BPS as u64, ceiling_bps)),
            ceiling_bps: AtomicU64::new(ceiling_bps),
            acked_bps: AtomicU64::new(0),
            loss_permille: AtomicU32::new(0),
            queue_delay_ms: AtomicU32::new(0),
            pacer_delay_ms: AtomicU32::new(0),
            pacer_dropped: AtomicU64::new(0),
            retransmissions_refused: AtomicU64::new(0),
            backoffs: AtomicU64::new(0),
            epoch: Instant::now(),
            reported_until_us: AtomicU64::new(0),
            last_feedback_us: AtomicU64::new(0),
            rtt_ms: AtomicU32::new(0),
            min_rtt_ms: AtomicU32::new(0),
            report_loss: AtomicU32::new(0),
            reports: AtomicU64::new(0),
            report_at_us: AtomicU64::new(0),
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Round trip as the feedback shows it (it includes the far side's feedback interval).
    pub fn rtt_ms(&self) -> u32 {
        self.rtt_ms.load(Ordering::Relaxed)
    }

    /// The far side's last receiver report on our video, if recent: how many reports so
    /// far, and the share lost it reported.
    fn receiver_report(&self, now: Instant) -> Option<(u64, f64)> {
        let count = self.reports.load(Ordering::Relaxed);
        let at = self.report_at_us.load(Ordering::Relaxed);
        let fresh = self.micros(now).saturating_sub(at) < REPORT_FRESH.as_micros() as u64;
        (count > 0 && fresh).then(|| {
            (
                count,
                self.report_loss.load(Ordering::Relaxed) as f64 / 256.0,
            )
        })
    }

    fn receiver_reported(&self, now: Instant, fraction_lost: u8) {
        self.report_loss
            .store(fraction_lost as u32, Ordering::Relaxed);
        self.report_at_us.store(self.micros(now), Ordering::Relaxed);
        self.reports.fetch_add(1, Ordering::Relaxed);
    }

    /// The least round trip of the last ten seconds: the path without its queues.
    pub fn min_rtt_ms(&self) -> u32 {
        self.min_rtt_ms.load(Ordering::Relaxed)
    }

    /// What the whole send may use now (sound, video, retransmissions, headers), bits/s.
    pub fn target_bps(&self) -> u64 {
        self.target_bps.load(Ordering::Relaxed)
    }
    /// The most the user allows (`--bitrate`, the window's setting), bits/s for everything.
    pub fn ceiling_bps(&self) -> u64 {
        self.ceiling_bps.load(Ordering::Relaxed)
    }
    pub fn set_ceiling_bps(&self, bps: u64) {
        let bps = bps.max(MIN_BPS as u64);
        self.ceiling_bps.store(bps, Ordering::Relaxed);
        self.target_bps.fetch_min(bps, Ordering::Relaxed);
    }
    /// What the far side said it received, bits/s over the last half second.
    pub fn acked_bps(&self) -> u64 {
        self.acked_bps.load(Ordering::Relaxed)
    }
    /// Share of our packets the far side reported lost, recently.
    pub fn loss(&self) -> f64 {
        self.loss_permille.load(Ordering::Relaxed) as f64 / 1000.0
    }
    /// How long our packets wait in the network's queues, over the least seen.
    pub fn queue_delay_ms(&self) -> u32 {
        self.queue_delay_ms.load(Ordering::Relaxed)
    }
    /// How long what waits in the pacer would take to leave.
    pub fn pacer_delay_ms(&self) -> u32 {
        self.pacer_delay_ms.load(Ordering::Relaxed)
    }
    /// Packets the pacer refused because its queue was full.
    pub fn pacer_dropped(&self) -> u64 {
        self.pacer_dropped.load(Ordering::Relaxed)
    }
    /// Retransmissions not sent: asked for again too soon, over their share, or too late.
    pub fn retransmissions_refused(&self) -> u64 {
        self.retransmissions_refused.load(Ordering::Relaxed)
    }
    /// Times the estimate was cut for a queue or for loss.
    pub fn backoffs(&self) -> u64 {
        self.backoffs.load(Ordering::Relaxed)
    }
}

/// libwebrtc's trendline filter: the slope of the smoothed accumulated delay over the last
/// 20 groups, scaled as libwebrtc scales it (x min(groups, 60) x 4) so that the overuse
/// detector's 12.5 ms threshold means what it means there. The stack's Kalman filter reads
/// a queue growing by 50 ms a second as about 1.6 ms and never calls it overuse; this
/// reads it as about 12.
#[derive(Default)]
struct Trendline {
    epoch: Option<Instant>,
    groups: usize,
    accumulated_ms: f64,
    smoothed_ms: f64,
    window: VecDeque<(f64, f64)>,
}

impl Trendline {
    const WINDOW: usize = 20;
    const SMOOTHING: f64 = 0.9;
    const GAIN: f64 = 4.0;

    fn update(&mut self, delay: &InterGroupDelay) -> Option<f64> {
        let epoch = *self.epoch.get_or_insert(delay.at);
        self.groups += 1;
        self.accumulated_ms += delay.delta_ms;
        self.smoothed_ms =
            Self::SMOOTHING * self.smoothed_ms + (1.0 - Self::SMOOTHING) * self.accumulated_ms;
        let x = delay.at.saturating_duration_since(epoch).as_secs_f64() * 1000.0;
        self.window.push_back((x, self.smoothed_ms));
        if self.window.len() > Self::WINDOW {
            self.window.pop_front();
        }
        if self.window.len() < Self::WINDOW {
            return None;
        }
        let n = self.window.len() as f64;
        let (mean_x, mean_y) = self
            .window
            .iter()
            .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x / n, sy + y / n));
        let (mut covariance, mut variance) = (0.0, 0.0);
        for (x, y) in &self.window {
            covariance += (x - mean_x) * (y - mean_y);
            variance += (x - mean_x) * (x - mean_x);
        }
        let slope = if variance > 0.0 {
            covariance / variance
        } else {
            0.0
        };
        Some(slope * self.groups.min(60) as f64 * Self::GAIN)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Until the path first pushes back: grow fast.
    Start,
    /// After: grow slowly, and additively near the capacity last measured.
    Steady,
}

/// Delay-gradient and loss-based estimation over transport-cc feedback; see the module doc.
pub struct DelayLossEstimator {
    rate: Arc<SendRate>,
    groups: ArrivalGroupAccumulator,
    trend: Trendline,
    detector: OveruseDetector,
    acked: RateCalculator,
    target: f64,
    phase: Phase,
    /// The acknowledged rate at the last cut: where the path's capacity was then.
    capacity: Option<f64>,
    last_update: Option<Instant>,
    last_cut: Option<Instant>,
    last_feedback: Option<Instant>,
    /// Reports of the last second: (when, lost).
    recent: VecDeque<(Instant, bool)>,
    /// Least arrival-minus-departure offset seen, and when: the path with empty queues.
    min_offset: Option<(Instant, f64)>,
    /// Whether the last report showed a standing queue.
    queued_before: bool,
    /// While loss shows the path broken: the target it had before.
    before_break: Option<f64>,
    /// The last receiver report acted on (their count in [`SendRate`]).
    reports_seen: u64,
    /// Round trips of the last ten seconds, increasing (a monotonic queue for the minimum).
    rtts: VecDeque<(Instant, u32)>,
    epoch: Instant,
}

impl DelayLossEstimator {
    pub fn new(rate: Arc<SendRate>) -> Self {
        Self {
            target: rate.target_bps() as f64,
            rate,
            groups: ArrivalGroupAccumulator::default(),
            trend: Trendline::default(),
            detector: OveruseDetector::new(),
            acked: RateCalculator::new(Duration::from_millis(500)),
            phase: Phase::Start,
            capacity: None,
            last_update: None,
            last_cut: None,
            last_feedback: None,
            recent: VecDeque::new(),
            min_offset: None,
            queued_before: false,
            before_break: None,
            reports_seen: 0,
            rtts: VecDeque::new(),
            epoch: Instant::now(),
        }
    }

    fn loss(&mut self, now: Instant) -> Option<f64> {
        let horizon = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        while self.recent.front().is_some_and(|(at, _)| *at < horizon) {
            self.recent.pop_front();
        }
        // Fewer packets than this say little about a loss rate.
        (self.recent.len() >= 20).then(|| {
            self.recent.iter().filter(|(_, lost)| *lost).count() as f64 / self.recent.len() as f64
        })
    }

    /// Queueing delay of the newest arrived packets over the least ever seen, ms.
    fn queue_delay_ms(&mut self, now: Instant, reports: &[PacketReport]) -> Option<f64> {
        let mut newest = None;
        for report in reports {
            let Some(arrival) = report.arrival else {
                continue;
            };
            let departed = report.departure.saturating_duration_since(self.epoch);
            let offset = arrival.as_secs_f64() * 1000.0 - departed.as_secs_f64() * 1000.0;
            let stale = self
                .min_offset
                .is_none_or(|(at, _)| now.saturating_duration_since(at) > OFFSET_WINDOW);
            if stale || self.min_offset.is_some_and(|(_, least)| offset < least) {
                self.min_offset = Some((now, offset));
            }
            newest = Some(offset);
        }
        let (_, least) = self.min_offset?;
        newest.map(|offset| (offset - least).max(0.0))
    }

    fn cut(&mut self, now: Instant, to: f64) {
        let ready = self
            .last_cut
            .is_none_or(|at| now.saturating_duration_since(at) >= CUT_INTERVAL);
        if ready && to < self.target {
            self.target = to;
            self.last_cut = Some(now);
            self.rate.backoffs.fetch_add(1, Ordering::Relaxed);
        }
        self.phase = Phase::Steady;
    }
}

impl BandwidthEstimator for DelayLossEstimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        if self
            .last_feedback
            .is_some_and(|at| now.saturating_duration_since(at) > FEEDBACK_GAP)
        {
            // The path was gone. What it lost meanwhile says nothing about its capacity now.
            self.phase = Phase::Start;
            self.recent.clear();
            self.last_update = Some(now);
            self.groups = ArrivalGroupAccumulator::default();
            self.trend = Trendline::default();
            self.detector = OveruseDetector::new();
        }
        self.last_feedback = Some(now);

        let mut usage = self.detector.usage();
        if let Some(newest) = reports.iter().map(|r| r.departure).max() {
            let until = self.rate.micros(newest);
            self.rate
                .reported_until_us
                .fetch_max(until, Ordering::Relaxed);
            let rtt = now.saturating_duration_since(newest).as_millis() as u32;
            let smoothed = match self.rate.rtt_ms() {
                0 => rtt,
                old => (old * 7 + rtt) / 8,
            };
            self.rate.rtt_ms.store(smoothed.max(1), Ordering::Relaxed);
            let horizon = now.checked_sub(MIN_RTT_WINDOW).unwrap_or(now);
            while self.rtts.front().is_some_and(|(at, _)| *at < horizon) {
                self.rtts.pop_front();
            }
            while self.rtts.back().is_some_and(|(_, r)| *r >= rtt) {
                self.rtts.pop_back();
            }
            self.rtts.push_back((now, rtt));
            let least = self.rtts.front().map_or(rtt, |(_, r)| *r);
            self.rate.min_rtt_ms.store(least.max(1), Ordering::Relaxed);
        }
        self.rate
            .last_feedback_us
            .store(self.rate.micros(now), Ordering::Relaxed);
        for report in reports {
            if report.arrived {
                self.acked.add(now, report.size);
            }
            self.recent.push_back((now, !report.arrived));
            if let Some(delay) = self.groups.accumulate(report)
                && let Some(trend) = self.trend.update(&delay)
            {
                usage = self.detector.update(delay.at, trend);
            }
        }
        let acked = self.acked.rate_bits_per_second(now);
        // Transport-wide feedback calls a packet lost when a later one arrived first, so on
        // a path that reorders it overstates loss; it serves to see a path that broke
        // (most packets lost). How much a working path loses is taken from the far side's
        // receiver reports, which count a late packet as received, once per report, as
        // GCC's loss controller does.
        let feedback_loss = self.loss(now);
        let reported = self.rate.receiver_report(now);
        let fresh_report = reported.filter(|(count, _)| *count != self.reports_seen);
        if let Some((count, _)) = fresh_report {
            self.reports_seen = count;
        }
        let broken = feedback_loss.is_some_and(|loss| loss > BROKEN_PATH_LOSS);
        let loss = if broken {
            feedback_loss
        } else {
            fresh_report.map(|(_, loss)| loss)
        };
        let recent_loss = if broken {
            feedback_loss
        } else {
            reported.map(|(_, loss)| loss).or(feedback_loss)
        };
        let queue_ms = self.queue_delay_ms(now, reports);
        let elapsed = self
            .last_update
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64())
            .min(1.0);
        self.last_update = Some(now);

        let queued = queue_ms.is_some_and(|ms| ms > STANDING_QUEUE.as_secs_f64() * 1000.0);
        let standing_queue = queued && std::mem::replace(&mut self.queued_before, queued);
        if !queued {
            self.queued_before = false;
        }
        if usage == Usage::Over || standing_queue {
            let measured = acked.unwrap_or(self.target);
            self.capacity = Some(measured);
            // A queue already standing is drained over about two seconds on top of the
            // usual backoff, or a sender just under capacity would take half a minute.
            let queued_seconds = queue_ms.unwrap_or(0.0) / 1000.0;
            let drain = (measured * queued_seconds / 2.0).min(0.35 * measured);
            self.cut(now, BACKOFF * measured - drain);
        } else if let Some(loss) = loss.filter(|loss| *loss > HIGH_LOSS) {
            if loss > BROKEN_PATH_LOSS {
                // Most of what was sent lost: the path broke (an outage one way) rather
                // than filled, and cutting again and again would only leave the call at
                // the floor when it mends. Halve once; when it mends, go back to the
                // target it had (a queue or loss will say if that is too much).
                if self.before_break.is_none() {
                    self.before_break = Some(self.target);
                    self.cut(now, self.target * 0.5);
                }
            } else {
                self.cut(now, self.target * (1.0 - 0.5 * loss));
            }
        } else if usage == Usage::Normal && recent_loss.is_none_or(|loss| loss < LOW_LOSS) {
            if let Some(before) = self.before_break.take() {
                // Mended: back where it was before it broke, and free to climb.
                self.target = self.target.max(before);
                self.phase = Phase::Start;
                self.capacity = None;
            }
            let grown = match (self.phase, self.capacity) {
                (Phase::Start, _) => self.target * START_GROWTH_PER_SECOND.powf(elapsed),
                (Phase::Steady, Some(capacity)) if self.target > 0.8 * capacity => {
                    self.target + NEAR_CAPACITY_BPS_PER_SECOND * elapsed
                }
                (Phase::Steady, _) => self.target * STEADY_GROWTH_PER_SECOND.powf(elapsed),
            };
            // Never far past what the path has shown it carries.
            let allowed = match (acked, self.phase) {
                (Some(acked), Phase::Start) => 2.0 * acked + 50_000.0,
                (Some(acked), Phase::Steady) => 1.5 * acked + 10_000.0,
                (None, _) => grown,
            };
            if let Some(capacity) = self.capacity
                && acked.is_some_and(|acked| acked > 1.3 * capacity)
            {
                // The path carries more than when it last pushed back: it has changed.
                self.capacity = None;
            }
            self.target = self.target.max(grown.min(allowed));
        }
        // Underuse: the queue is draining; hold until it has.

        let ceiling = self.rate.ceiling_bps() as f64;
        self.target = self.target.clamp(MIN_BPS, ceiling.max(MIN_BPS));
        self.rate
            .target_bps
            .store(self.target as u64, Ordering::Relaxed);
        self.rate
            .acked_bps
            .store(acked.unwrap_or(0.0) as u64, Ordering::Relaxed);
        self.rate.loss_permille.store(
            (recent_loss.unwrap_or(0.0) * 1000.0).round() as u32,
            Ordering::Relaxed,
        );
        self.rate
            .queue_delay_ms
            .store(queue_ms.unwrap_or(0.0).round() as u32, Ordering::Relaxed);
    }

    fn target_bitrate(&self) -> f64 {
        self.target
    }
}

/// One queued packet and when it was queued.
struct Queued {
    packet: TaggedPacket,
    bits: f64,
    at: Instant,
}

/// Sound first, then retransmissions, then video at a multiple of the target; see the
/// module doc.
pub struct PriorityPacer {
    rate: Arc<SendRate>,
    bucket: Bucket,
    target_bps: f64,
    audio_ssrcs: HashSet<u32>,
    video_ssrcs: HashSet<u32>,
    retransmissions: VecDeque<Queued>,
    video: VecDeque<Queued>,
    queued_bits: f64,
    /// Video held back because the window is full, and when that was last judged.
    held: bool,
    last_check: Instant,
    /// Retransmissions of the last second: what they cost, and which packets they carried.
    rtx_sent: VecDeque<(Instant, f64)>,
    rtx_bits: f64,
    retransmitted: std::collections::HashMap<(u32, u16), Instant>,
    /// What left, and when, for the last two seconds: what is still in flight.
    sent: VecDeque<(Instant, f64)>,
    released: VecDeque<TaggedPacket>,
    read_queue: VecDeque<TaggedPacket>,
}

impl PriorityPacer {
    pub fn new(rate: Arc<SendRate>) -> Self {
        let target_bps = rate.target_bps() as f64;
        Self {
            bucket: Bucket::new(PACING_FACTOR * target_bps)
                .with_burst_bits(PACING_FACTOR * target_bps * BURST.as_secs_f64()),
            rate,
            target_bps,
            audio_ssrcs: HashSet::new(),
            video_ssrcs: HashSet::new(),
            retransmissions: VecDeque::new(),
            video: VecDeque::new(),
            queued_bits: 0.0,
            held: false,
            last_check: Instant::now(),
            rtx_sent: VecDeque::new(),
            rtx_bits: 0.0,
            retransmitted: std::collections::HashMap::new(),
            sent: VecDeque::new(),
            released: VecDeque::new(),
            read_queue: VecDeque::new(),
        }
    }

    /// Pacing rate: a multiple of the target, or whatever drains the queue in time.
    fn retune(&mut self, now: Instant) {
        let drain = self.queued_bits / PACER_QUEUE_TIME_LIMIT.as_secs_f64();
        let pace = (PACING_FACTOR * self.target_bps).max(drain).max(MIN_BPS);
        let current = self.bucket.target_bitrate();
        if (pace - current).abs() > 0.02 * current {
            let budget = self.bucket.budget_bits();
            self.bucket = Bucket::new(pace).with_burst_bits(pace * BURST.as_secs_f64());
            // Keep what was owed (or saved) across the change.
            let kept = budget.min(self.bucket.burst_bits());
            self.bucket.consume(self.bucket.budget_bits() - kept);
            self.bucket.refill(now);
        }
        let delay_ms = 1000.0 * self.queued_bits / pace;
        self.rate
            .pacer_delay_ms
            .store(delay_ms.round() as u32, Ordering::Relaxed);
    }

    /// Whether more in flight than the path can hold (the target over a round trip, with
    /// [`WINDOW_SLACK`] for the feedback's own interval) is waiting to be reported on: then video
    /// waits here, where the encoder sees it and drops frames, rather than in the
    /// network's queue. Without recent feedback the path is gone or not yet known, and
    /// nothing is held back.
    fn window_full(&mut self, now: Instant) -> bool {
        self.forget_sent_before(now);
        let last_feedback = self.rate.last_feedback_us.load(Ordering::Relaxed);
        let since_feedback = self.rate.micros(now).saturating_sub(last_feedback);
        if last_feedback == 0 || since_feedback > 1_000_000 {
            return false;
        }
        let until = self.rate.reported_until_us.load(Ordering::Relaxed);
        let in_flight: f64 = self
            .sent
            .iter()
            .rev()
            .take_while(|(at, _)| self.rate.micros(*at) > until)
            .map(|(_, bits)| bits)
            .sum();
        // The round trip without queues: the queue is what the window is there to bound.
        let round_trip = self.rate.min_rtt_ms() as f64 / 1000.0;
        let window =
            (self.target_bps * (round_trip + WINDOW_SLACK.as_secs_f64())).max(MIN_WINDOW_BITS);
        in_flight > window
    }

    /// Retransmissions are a repair, not a second stream: each packet once per round trip
    /// however often it is asked for, and all of them together
    /// within [`RETRANSMISSION_SHARE`] of the target (libwebrtc limits them the same way).
    /// A far side that keeps asking for packets that never arrive would otherwise have
    /// them sent again at whatever rate it asks, ahead of every new picture.
    fn retransmission_allowed(&mut self, msg: &TaggedPacket, bits: f64) -> bool {
        let now = msg.now;
        let Packet::Rtp(rtp) = &msg.message.packet else {
            return false;
        };
        // An RTX payload starts with the original sequence number (RFC 4588).
        let original = match rtp.payload.get(..2) {
            Some(&[high, low]) => u16::from_be_bytes([high, low]),
            _ => return false,
        };
        let key = (rtp.header.ssrc, original);
        if self.retransmitted.len() > 4096 {
            self.retransmitted
                .retain(|_, at| now.saturating_duration_since(*at) < RETRANSMIT_AGAIN_AFTER);
        }
        // Asked again before the first could have arrived: the far side's NACK timer, not
        // a second loss.
        let again_after = Duration::from_millis(self.rate.min_rtt_ms() as u64 + 10)
            .clamp(Duration::from_millis(20), RETRANSMIT_AGAIN_AFTER);
        if self
            .retransmitted
            .get(&key)
            .is_some_and(|at| now.saturating_duration_since(*at) < again_after)
        {
            return false;
        }
        let horizon = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        while self.rtx_sent.front().is_some_and(|(at, _)| *at < horizon) {
            if let Some((_, spent)) = self.rtx_sent.pop_front() {
                self.rtx_bits -= spent;
            }
        }
        if self.rtx_bits + bits > RETRANSMISSION_SHARE * self.target_bps.max(MIN_BPS) {
            return false;
        }
        self.rtx_bits += bits;
        self.rtx_sent.push_back((now, bits));
        self.retransmitted.insert(key, now);
        true
    }

    /// Keeps two seconds of what left (also in a call with no video, where nothing else
    /// would trim it).
    fn forget_sent_before(&mut self, now: Instant) {
        let horizon = now.checked_sub(Duration::from_secs(2)).unwrap_or(now);
        while self.sent.front().is_some_and(|(at, _)| *at < horizon) {
            self.sent.pop_front();
        }
    }

    fn head(&self) -> Option<&Queued> {
        self.retransmissions.front().or(self.video.front())
    }
}

fn rtp_bits(packet: &TaggedPacket) -> f64 {
    match &packet.message.packet {
        Packet::Rtp(rtp) => (rtp.marshal_size() * 8) as f64,
        _ => 0.0,
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for PriorityPacer {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for packet in packets {
                let any = packet.as_any();
                let blocks = if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                    &rr.reports
                } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                    &sr.reports
                } else {
                    continue;
                };
                for block in blocks.iter().filter(|b| self.video_ssrcs.contains(&b.ssrc)) {
                    self.rate.receiver_reported(msg.now, block.fraction_lost);
                }
            }
        }
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) =
            msg.message.get(&Attribute::TargetBitrateChanged {
                bits_per_second: 0.0,
            })
        {
            self.target_bps = *bits_per_second;
            self.retune(msg.now);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let ssrc = match &msg.message.packet {
            Packet::Rtp(rtp) => rtp.header.ssrc,
            // Feedback is only of use while fresh; nothing else is ours to pace.
            _ => {
                self.released.push_back(msg);
                return Ok(());
            }
        };
        let bits = rtp_bits(&msg);
        self.bucket.refill(msg.now);
        if self.audio_ssrcs.contains(&ssrc) {
            // Sound never waits behind video; it is paid for from the same budget.
            self.bucket.consume(bits);
            self.forget_sent_before(msg.now);
            self.sent.push_back((msg.now, bits));
            self.released.push_back(msg);
            return Ok(());
        }
        if self.retransmissions.len() + self.video.len() >= PACER_QUEUE_LIMIT {
            self.rate.pacer_dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let at = msg.now;
        if msg.message.has(&Attribute::Retransmission) {
            if !self.retransmission_allowed(&msg, bits) {
                self.rate
                    .retransmissions_refused
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            self.retransmissions.push_back(Queued {
                packet: msg,
                bits,
                at,
            });
            return Ok(());
        }
        self.video.push_back(Queued {
            packet: msg,
            bits,
            at,
        });
        self.queued_bits += bits;
        self.retune(at);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.released.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.bucket.refill(now);
        self.last_check = now;
        let mut sent = false;
        self.held = self.head().is_some() && self.window_full(now);
        while let Some(head) = self.head() {
            if self.held || !self.bucket.can_release(head.bits) {
                break;
            }
            let retransmission = !self.retransmissions.is_empty();
            let queue = if retransmission {
                &mut self.retransmissions
            } else {
                &mut self.video
            };
            let Some(Queued {
                mut packet,
                bits,
                at,
            }) = queue.pop_front()
            else {
                break;
            };
            if retransmission && now.saturating_duration_since(at) > RETRANSMISSION_MAX_WAIT {
                // Too late to repair anything; the picture has moved on.
                self.rate
                    .retransmissions_refused
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.bucket.consume(bits);
            if !retransmission {
                self.queued_bits = (self.queued_bits - bits).max(0.0);
            }
            // It departs now: the send history must see this instant, not the enqueue's.
            packet.now = now;
            self.sent.push_back((now, bits));
            self.released.push_back(packet);
            sent = true;
        }
        if sent {
            self.retune(now);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        let head = self.head()?;
        if self.held {
            // Held for the window: feedback frees it; look again shortly.
            return Some(head.at.max(self.last_check) + WINDOW_RECHECK);
        }
        // Never a deadline before the head was queued: the chain would spin.
        self.bucket
            .releasable_at(head.bits)
            .map(|at| at.max(head.at))
    }
}

impl Interceptor for PriorityPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
            self.audio_ssrcs.insert(info.ssrc);
        } else {
            self.video_ssrcs.insert(info.ssrc);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.audio_ssrcs.remove(&info.ssrc);
        self.video_ssrcs.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bottleneck of `capacity_bps` with an unbounded FIFO, fed `target` bits/s in
    /// 1200-byte packets for `seconds`, with feedback every 50 ms. Returns the target
    /// at each second and the largest queue delay seen in the last half of the run.
    fn simulate(
        estimator: &mut DelayLossEstimator,
        capacity: impl Fn(f64) -> f64,
        seconds: f64,
    ) -> (Vec<f64>, f64) {
        let epoch = Instant::now();
        let mut link_free_at = 0.0_f64; // seconds
        let mut pending: Vec<PacketReport> = Vec::new();
        let mut sent_bits_due = 0.0;
        let (mut t, step) = (0.0_f64, 0.001);
        let mut next_feedback = 0.05;
        let mut per_second = Vec::new();
        let mut worst_queue: f64 = 0.0;
        let mut id = 0;
        while t < seconds {
            sent_bits_due += estimator.target_bitrate() * step;
            while sent_bits_due >= 9600.0 {
                sent_bits_due -= 9600.0;
                let start = link_free_at.max(t);
                link_free_at = start + 9600.0 / capacity(t);
                let arrival = link_free_at + 0.02;
                if t > seconds / 2.0 {
                    worst_queue = worst_queue.max(start - t);
                }
                id += 1;
                pending.push(PacketReport {
                    ssrc: 1,
                    id,
                    rtp_sequence_number: id as u16,
                    is_twcc: true,
                    twcc_sequence_number: id as u16,
                    size: 1200,
                    arrived: true,
                    departure: epoch + Duration::from_secs_f64(t),
                    arrival: Some(Duration::from_secs_f64(arrival + 5.0)),
                    ecn: Default::default(),
                });
            }
            if t >= next_feedback {
                next_feedback += 0.05;
                let (due, later): (Vec<_>, Vec<_>) = pending
                    .into_iter()
                    .partition(|r| r.arrival.is_some_and(|a| a.as_secs_f64() - 5.0 + 0.02 <= t));
                pending = later;
                estimator.on_reports(epoch + Duration::from_secs_f64(t), &due);
            }
            if (t / 1.0).fract() < step {
                per_second.push(estimator.target_bitrate());
            }
            t += step;
        }
        (per_second, worst_queue)
    }

    /// Fifty packets of round `round`, 2 ms apart, each `lost_every`-th reported lost.
    fn round_of_reports(epoch: Instant, round: u64, lost_every: u64) -> Vec<PacketReport> {
        (0..50u64)
            .map(|i| {
                let id = round * 50 + i;
                let arrived = i % lost_every != 0;
                PacketReport {
                    ssrc: 1,
                    id,
                    rtp_sequence_number: id as u16,
                    is_twcc: true,
                    twcc_sequence_number: id as u16,
                    size: 1200,
                    arrived,
                    departure: epoch + Duration::from_millis(id * 2),
                    arrival: arrived.then(|| Duration::from_millis(id * 2 + 10)),
                    ecn: Default::default(),
                }
            })
            .collect()
    }

    fn estimator(start: u64, ceiling: u64) -> DelayLossEstimator {
        DelayLossEstimator::new(Arc::new(SendRate::new(true, start, ceiling)))
    }

    #[test]
    fn the_start_reaches_a_fast_link_in_seconds() {
        let mut e = estimator(300_000, 2_500_000);
        let (targets, _) = simulate(&mut e, |_| 10_000_000.0, 6.0);
        assert!(
            targets[4] >= 2_000_000.0,
            "4 s in the target is {:.0} (per second: {targets:?})",
            targets[4]
        );
        assert!(
            targets.iter().all(|t| *t <= 2_500_000.0),
            "the ceiling holds"
        );
    }

    #[test]
    fn the_target_settles_under_a_thin_link_without_a_standing_queue() {
        let mut e = estimator(1_500_000, 2_500_000);
        let (targets, worst_queue) = simulate(&mut e, |_| 600_000.0, 20.0);
        // Delay-based control must overshoot a little to find the edge: a sawtooth around
        // the capacity, mostly under it.
        let settled = &targets[10..];
        let mean = settled.iter().sum::<f64>() / settled.len() as f64;
        let peak = settled.iter().cloned().fold(0.0, f64::max);
        assert!(
            (420_000.0..=620_000.0).contains(&mean) && peak < 700_000.0,
            "settled around {mean:.0}, peaks {peak:.0} (per second: {targets:?})"
        );
        assert!(
            worst_queue < 0.5,
            "the queue reached {worst_queue:.2} s: {targets:?}"
        );
    }

    #[test]
    fn a_capacity_step_down_is_followed_within_five_seconds() {
        let mut e = estimator(300_000, 3_000_000);
        let capacity = |t: f64| if t < 10.0 { 2_500_000.0 } else { 600_000.0 };
        let (targets, _) = simulate(&mut e, capacity, 16.0);
        assert!(targets[9] > 1_500_000.0, "before the step: {targets:?}");
        assert!(targets[15] < 600_000.0, "after the step: {targets:?}");
    }

    /// Twenty rounds 100 ms apart: in each, every `lost_every`-th packet is reported lost by
    /// the feedback, and the far side's receiver report says `reported_lost` (in 1/256).
    fn feed_rounds(e: &mut DelayLossEstimator, lost_every: u64, reported_lost: u8) {
        let epoch = Instant::now();
        for round in 0..20u64 {
            let reports = round_of_reports(epoch, round, lost_every);
            let now = epoch + Duration::from_millis(round * 100 + 100);
            e.rate.receiver_reported(now, reported_lost);
            e.on_reports(now, &reports);
        }
    }

    /// Loss cuts the target as the far side's receiver reports tell it, not as transport
    /// feedback counts it: feedback calls a reordered packet lost.
    #[test]
    fn reordering_alone_does_not_cut_but_reported_loss_does() {
        let mut e = estimator(1_000_000, 2_000_000);
        // A packet in five overtaken: the feedback reports it lost; the receiver does not.
        feed_rounds(&mut e, 5, 0);
        assert!(
            e.target_bitrate() >= 1_000_000.0,
            "reordering cut the target to {:.0}",
            e.target_bitrate()
        );
    }

    #[test]
    fn loss_cuts_the_target() {
        let mut e = estimator(1_000_000, 2_000_000);
        // A quarter lost, as both the feedback and the receiver report say.
        feed_rounds(&mut e, 4, 64);
        assert!(
            e.target_bitrate() < 500_000.0,
            "25 % loss left the target at {:.0}",
            e.target_bitrate()
        );
    }
}
