//! Puts the far side's video packets back in order before they are assembled, and gives a
//! lost packet time to come back: a packet that overtook another waits for it, and a gap
//! waits for the retransmission our NACK asked for (RTX, which the stack turns back into
//! the original packet). Only when the gap outlives [`MAX_WAIT`] does the assembler see it,
//! break that picture and ask for a keyframe. On a path that neither loses nor reorders,
//! every packet goes straight through. Time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a gap may hold back what came after it, at most and when the round trip is
/// not known: long enough for two NACKs and their retransmissions on a path of about
/// 70 ms round trip. A picture that cannot be repaired waits this long before a keyframe
/// is asked for, so on a known path the wait follows its round trip ([`wait_for`]).
pub const MAX_WAIT: Duration = Duration::from_millis(300);

/// The wait for a path whose least round trip is `min_rtt_ms` (0: not known): the NACK
/// timer (30 ms), then up to two round trips for a second try, and a margin for jitter.
pub fn wait_for(min_rtt_ms: u32) -> Duration {
    if min_rtt_ms == 0 {
        return MAX_WAIT;
    }
    Duration::from_millis(3 * min_rtt_ms as u64 + 80).clamp(Duration::from_millis(80), MAX_WAIT)
}
/// Packets held at most; beyond this a gap is given up at once.
const MAX_HELD: usize = 1024;

/// Packets by RTP sequence number, released in order.
pub struct ReorderBuffer<T> {
    next: Option<u16>,
    held: HashMap<u16, (Instant, T)>,
    max_wait: Duration,
}

impl<T> Default for ReorderBuffer<T> {
    fn default() -> Self {
        Self::new(MAX_WAIT)
    }
}

impl<T> ReorderBuffer<T> {
    pub fn new(max_wait: Duration) -> Self {
        Self {
            next: None,
            held: HashMap::new(),
            max_wait,
        }
    }

    pub fn set_max_wait(&mut self, max_wait: Duration) {
        self.max_wait = max_wait;
    }

    /// Takes one packet; returns those now in order (with their sequence numbers), oldest
    /// first. A packet older than what was already released is a late duplicate: dropped.
    pub fn push(&mut self, sequence_number: u16, now: Instant, item: T) -> Vec<(u16, T)> {
        let next = *self.next.get_or_insert(sequence_number);
        if sequence_number.wrapping_sub(next) >= 0x8000 {
            return Vec::new();
        }
        self.held.entry(sequence_number).or_insert((now, item));
        self.release(now)
    }

    /// Releases what waited long enough behind a gap (call it when no packet came for a while).
    pub fn release(&mut self, now: Instant) -> Vec<(u16, T)> {
        let mut out = Vec::new();
        loop {
            let Some(next) = self.next else {
                return out;
            };
            if let Some((_, item)) = self.held.remove(&next) {
                out.push((next, item));
                self.next = Some(next.wrapping_add(1));
                continue;
            }
            // A gap at `next`: give it up when the packet after it has waited too long.
            let Some((&first, &(since, _))) = self
                .held
                .iter()
                .min_by_key(|(seq, _)| seq.wrapping_sub(next))
            else {
                return out;
            };
            if now.saturating_duration_since(since) < self.max_wait && self.held.len() < MAX_HELD {
                return out;
            }
            self.next = Some(first);
        }
    }

    /// When the oldest packet held behind a gap is due to be given up on.
    pub fn deadline(&self) -> Option<Instant> {
        self.held
            .values()
            .map(|(since, _)| *since + self.max_wait)
            .min()
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(out: Vec<(u16, char)>) -> Vec<u16> {
        out.into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn the_wait_follows_the_round_trip() {
        assert_eq!(wait_for(0), MAX_WAIT);
        assert_eq!(wait_for(1), Duration::from_millis(83));
        assert_eq!(wait_for(40), Duration::from_millis(200));
        assert_eq!(wait_for(500), MAX_WAIT);
    }

    #[test]
    fn in_order_packets_go_straight_through() {
        let mut buffer = ReorderBuffer::default();
        let t = Instant::now();
        for seq in 65_530..=65_535u16 {
            assert_eq!(seqs(buffer.push(seq, t, 'x')), vec![seq]);
        }
        assert_eq!(seqs(buffer.push(0, t, 'x')), vec![0], "across the wrap");
    }

    #[test]
    fn an_overtaken_packet_is_waited_for_and_put_back_in_place() {
        let mut buffer = ReorderBuffer::default();
        let t = Instant::now();
        assert_eq!(seqs(buffer.push(10, t, 'a')), vec![10]);
        assert_eq!(seqs(buffer.push(12, t, 'c')), Vec::<u16>::new());
        assert_eq!(seqs(buffer.push(13, t, 'd')), Vec::<u16>::new());
        assert_eq!(
            seqs(buffer.push(11, t + Duration::from_millis(30), 'b')),
            vec![11, 12, 13]
        );
        assert_eq!(buffer.held(), 0);
    }

    #[test]
    fn a_gap_is_given_up_after_the_wait_and_late_packets_are_dropped() {
        let mut buffer = ReorderBuffer::default();
        let t = Instant::now();
        buffer.push(1, t, 'a');
        buffer.push(3, t, 'c');
        assert_eq!(buffer.deadline(), Some(t + MAX_WAIT));
        assert!(buffer.release(t + MAX_WAIT / 2).is_empty());
        assert_eq!(seqs(buffer.release(t + MAX_WAIT)), vec![3]);
        assert!(buffer.push(2, t + MAX_WAIT, 'b').is_empty(), "too late");
        assert_eq!(seqs(buffer.push(4, t + MAX_WAIT, 'd')), vec![4]);
    }
}
