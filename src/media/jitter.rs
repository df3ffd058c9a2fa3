//! The audio jitter buffer between the network and the speaker: packets go in as they
//! arrive, 20 ms frames come out at the speaker's pace. It keeps as little sound waiting as
//! the network allows: its target delay follows how late packets arrive (the 95th
//! percentile of the last two seconds, plus one frame), so on a clean network it holds
//! about one frame, and under jitter it grows. A missing frame is rebuilt from the next
//! packet's in-band FEC when that packet is here, and concealed otherwise; when the buffer
//! holds more than it should, a frame is skipped to catch up.
//!
//! It does no I/O and reads no clock: time is passed in, so it is tested with packets fed at
//! chosen times.

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Every packet carries this much sound.
pub const FRAME: Duration = Duration::from_millis(20);
/// Never aim below one frame, nor above this.
const MAX_TARGET: Duration = Duration::from_millis(400);
/// How long arrival lateness is remembered.
const WINDOW: Duration = Duration::from_secs(2);
/// At most this many packets wait (1.6 s); more means the speaker stopped pulling.
const CAPACITY: usize = 80;
/// After this many frames with nothing to play, stop concealing and start afresh.
const GIVE_UP_FRAMES: u32 = 10;

/// What to play for the next 20 ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Packet(Bytes),
    /// This frame was lost: rebuild it from this (the next) packet's in-band FEC.
    FromFec(Bytes),
    /// This frame is missing: let the decoder conceal it.
    Conceal,
    /// Nothing to play yet (not started, or the far side went quiet).
    Silence,
}

/// What the buffer did, for the summary and the stats overlay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterCounters {
    pub packets: u64,
    pub played: u64,
    pub recovered_by_fec: u64,
    pub concealed: u64,
    /// Arrived after their turn to play had passed.
    pub late: u64,
    /// Skipped to bring the delay back down to the target.
    pub skipped: u64,
}

/// The adaptive jitter buffer of one remote audio track.
#[derive(Debug)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, Bytes>,
    /// Extended sequence number of the next frame to play, once playing.
    next: Option<u64>,
    /// The newest extended sequence number seen.
    newest: Option<u64>,
    /// (extended sequence number, arrival) of recent packets, for the lateness estimate.
    arrivals: VecDeque<(u64, Instant)>,
    target: Duration,
    empty_frames: u32,
    /// Frames played since the last catch-up skip.
    since_skip: u32,
    pub counters: JitterCounters,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    pub fn new() -> Self {
        Self {
            packets: BTreeMap::new(),
            next: None,
            newest: None,
            arrivals: VecDeque::new(),
            target: FRAME,
            empty_frames: 0,
            since_skip: 0,
            counters: JitterCounters::default(),
        }
    }

    /// The delay the buffer aims for now.
    pub fn target(&self) -> Duration {
        self.target
    }

    /// Sound waiting to be played: from the next frame to the newest one here.
    pub fn delay(&self) -> Duration {
        match (self.packets.keys().next(), self.packets.keys().next_back()) {
            (Some(first), Some(last)) => {
                let from = self.next.unwrap_or(*first).min(*first);
                FRAME * (last + 1 - from).min(CAPACITY as u64) as u32
            }
            _ => Duration::ZERO,
        }
    }

    /// The extended form of a 16-bit sequence number, near the newest one seen.
    fn extend(&self, seq: u16) -> u64 {
        match self.newest {
            None => u64::from(seq) + (1 << 32),
            Some(newest) => {
                let diff = seq.wrapping_sub(newest as u16) as i16;
                newest.saturating_add_signed(i64::from(diff))
            }
        }
    }

    /// A packet arrived.
    pub fn push(&mut self, seq: u16, payload: Bytes, now: Instant) {
        let ext = self.extend(seq);
        self.counters.packets += 1;
        // The far side started afresh (or a burst of loss longer than we hold): resync.
        if self.newest.is_some_and(|n| ext > n + CAPACITY as u64) {
            self.packets.clear();
            self.next = None;
        }
        if self.next.is_some_and(|next| ext < next) {
            self.counters.late += 1;
            return;
        }
        self.newest = Some(self.newest.map_or(ext, |n| n.max(ext)));
        self.packets.insert(ext, payload);
        while self.packets.len() > CAPACITY {
            self.packets.pop_first();
        }
        self.arrivals.push_back((ext, now));
        while self
            .arrivals
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) > WINDOW)
        {
            self.arrivals.pop_front();
        }
        self.target = self.estimate_target();
    }

    /// How late packets arrive compared with the earliest one in the window, 95th
    /// percentile, plus one frame.
    fn estimate_target(&self) -> Duration {
        let Some(&(first_seq, first_at)) = self.arrivals.front() else {
            return FRAME;
        };
        // Arrival relative to when the packet would have come at the sender's pace.
        let offsets: Vec<i128> = self
            .arrivals
            .iter()
            .map(|&(seq, at)| {
                let since = at.saturating_duration_since(first_at).as_micros() as i128;
                let paced = (seq as i128 - first_seq as i128) * FRAME.as_micros() as i128;
                since - paced
            })
            .collect();
        let earliest = offsets.iter().copied().min().unwrap_or(0);
        let mut lateness: Vec<i128> = offsets.iter().map(|o| o - earliest).collect();
        lateness.sort_unstable();
        let p95 = lateness[(lateness.len() * 95 / 100).min(lateness.len() - 1)];
        let target = FRAME + Duration::from_micros(p95.max(0) as u64);
        target.min(MAX_TARGET)
    }

    /// The next 20 ms to play.
    pub fn pop(&mut self) -> Playout {
        let Some(next) = self.next else {
            // Not playing yet: start once the target's worth of sound is here.
            let Some(&first) = self.packets.keys().next() else {
                return Playout::Silence;
            };
            if self.delay() < self.target {
                return Playout::Silence;
            }
            self.next = Some(first);
            return self.pop();
        };
        // More waiting than the network needs: skip a frame (at most one in ten).
        self.since_skip += 1;
        if self.delay() > self.target + 2 * FRAME && self.since_skip >= 10 {
            self.since_skip = 0;
            self.counters.skipped += 1;
            self.packets.remove(&next);
            self.next = Some(next + 1);
            return self.pop();
        }
        if let Some(payload) = self.packets.remove(&next) {
            self.next = Some(next + 1);
            self.empty_frames = 0;
            self.counters.played += 1;
            return Playout::Packet(payload);
        }
        if let Some(later) = self.packets.get(&(next + 1)) {
            self.next = Some(next + 1);
            self.counters.recovered_by_fec += 1;
            return Playout::FromFec(later.clone());
        }
        if self.packets.keys().next().is_some() {
            // Lost, and the packet after it is not here either: conceal, move on.
            self.next = Some(next + 1);
            self.counters.concealed += 1;
            return Playout::Conceal;
        }
        // Nothing here: the network is late. Conceal without moving on, so the late
        // packet still plays (the delay grows by a frame); after a while, give up.
        self.empty_frames += 1;
        if self.empty_frames > GIVE_UP_FRAMES {
            self.next = None;
            return Playout::Silence;
        }
        self.counters.concealed += 1;
        Playout::Conceal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seq: u16) -> Bytes {
        Bytes::from(seq.to_be_bytes().to_vec())
    }

    /// Plays `seconds` of a call: the sender sends every 20 ms, packet `i` arrives
    /// `lateness(i)` after it was sent, the speaker pulls every 20 ms. Returns what was
    /// played and the buffer's delay after each pull.
    fn run(
        buffer: &mut JitterBuffer,
        start: Instant,
        first_seq: u16,
        frames: u32,
        lateness: impl Fn(u32) -> Duration,
    ) -> (Vec<Playout>, Vec<Duration>) {
        let mut arrivals: Vec<(Instant, u16)> = (0..frames)
            .map(|i| {
                (
                    start + FRAME * i + lateness(i),
                    first_seq.wrapping_add(i as u16),
                )
            })
            .collect();
        arrivals.sort();
        let mut arrivals = arrivals.into_iter().peekable();
        let (mut played, mut delays) = (Vec::new(), Vec::new());
        // The speaker pulls half a frame after the sender's pace, as a device would.
        for tick in 0..frames {
            let now = start + FRAME * tick + FRAME / 2;
            while let Some((at, seq)) = arrivals.next_if(|(at, _)| *at <= now) {
                buffer.push(seq, payload(seq), at);
            }
            played.push(buffer.pop());
            delays.push(buffer.delay());
        }
        (played, delays)
    }

    #[test]
    fn jitter_buffer_stays_small_on_a_clean_network_and_grows_under_jitter() {
        let start = Instant::now();
        let mut buffer = JitterBuffer::new();
        // Two seconds on a clean network (a millisecond of wobble): about a frame waits.
        let (played, delays) = run(&mut buffer, start, 65_500, 100, |i| {
            Duration::from_micros(1000 + (i % 3) as u64 * 300)
        });
        let steady = &delays[10..];
        assert!(
            steady.iter().all(|d| *d <= 2 * FRAME),
            "clean network delays: {steady:?}"
        );
        assert!(buffer.target() <= FRAME + Duration::from_millis(2));
        assert!(
            played[5..].iter().all(|p| matches!(p, Playout::Packet(_))),
            "{played:?}"
        );

        // Then packets come up to 60 ms late (a pseudo-random spread): the target grows to
        // cover it, and little has to be concealed once it has.
        let later = start + FRAME * 100;
        let mut buffer2 = buffer;
        let spread = |i: u32| Duration::from_millis(((i * 37 + 11) % 61) as u64);
        let (played, delays) = run(
            &mut buffer2,
            later,
            65_500u16.wrapping_add(100),
            250,
            spread,
        );
        assert!(
            buffer2.target() >= Duration::from_millis(60),
            "target under jitter: {:?}",
            buffer2.target()
        );
        let concealed = played[100..]
            .iter()
            .filter(|p| !matches!(p, Playout::Packet(_)))
            .count();
        assert!(
            concealed <= 5,
            "{concealed} of 150 frames not played: {played:?}"
        );
        let worst = delays[100..].iter().max().copied().unwrap_or_default();
        assert!(
            worst <= Duration::from_millis(160),
            "delay grew to {worst:?}"
        );
    }

    #[test]
    fn a_lost_packet_is_rebuilt_from_the_next_ones_fec() {
        let now = Instant::now();
        let mut buffer = JitterBuffer::new();
        buffer.push(10, payload(10), now);
        assert_eq!(buffer.pop(), Playout::Packet(payload(10)));
        buffer.push(12, payload(12), now + FRAME * 2);
        assert_eq!(buffer.pop(), Playout::FromFec(payload(12)));
        assert_eq!(buffer.pop(), Playout::Packet(payload(12)));
        // Nothing more: conceal a while, then fall silent.
        for _ in 0..GIVE_UP_FRAMES {
            assert_eq!(buffer.pop(), Playout::Conceal);
        }
        assert_eq!(buffer.pop(), Playout::Silence);
        assert_eq!(buffer.counters.recovered_by_fec, 1);
    }

    #[test]
    fn a_packet_after_its_turn_is_dropped() {
        let now = Instant::now();
        let mut buffer = JitterBuffer::new();
        for seq in 0..3u16 {
            buffer.push(seq, payload(seq), now + FRAME * u32::from(seq));
        }
        assert_eq!(buffer.pop(), Playout::Packet(payload(0)));
        assert_eq!(buffer.pop(), Playout::Packet(payload(1)));
        buffer.push(0, payload(0), now + FRAME * 3);
        assert_eq!(buffer.counters.late, 1);
        assert_eq!(buffer.pop(), Playout::Packet(payload(2)));
    }

    #[test]
    fn after_a_stall_the_delay_comes_back_down() {
        // A 100 ms stall: five packets come together. The buffer conceals while it waits,
        // then holds 100 ms more than it needs; once the stall is out of its memory it
        // skips frames until it holds about what a clean network needs again.
        let start = Instant::now();
        let mut buffer = JitterBuffer::new();
        let (_, delays) = run(&mut buffer, start, 0, 300, |i| {
            if (50..55).contains(&i) {
                FRAME * (55 - i)
            } else {
                Duration::from_millis(1)
            }
        });
        let peak = delays.iter().max().copied().unwrap_or_default();
        let last = delays.last().copied().unwrap_or_default();
        assert!(peak >= Duration::from_millis(60), "peak {peak:?}");
        assert!(last <= 3 * FRAME, "delay at the end {last:?}");
        assert!(buffer.counters.skipped >= 2, "{:?}", buffer.counters);
    }
}
