//! The synthetic microphone: a sine tone with timing marks, and the analyzer that reads the
//! tone's frequency and the marks back at the receiver.
//!
//! A mark is a short silence that starts on every 500 ms boundary of the wall clock. Its
//! length (20, 40, 60 or 80 ms) says which boundary it was, modulo 2 s, so a receiver on the
//! same machine reads when the sound was captured: latencies up to 2 s are unambiguous.

use crate::media::frame::{AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE, AudioFrame};
use std::collections::VecDeque;

const MARK_PERIOD_MS: u64 = 500;
const MARK_CODES: u64 = 4;
const MARK_UNIT_MS: u64 = 20;
const AMPLITUDE: f64 = 10_000.0;

fn mark_length_ms(boundary_ms: u64) -> u64 {
    MARK_UNIT_MS * (1 + (boundary_ms / MARK_PERIOD_MS) % MARK_CODES)
}

/// A sine tone at `frequency` with a silent mark on every 500 ms boundary.
pub struct StampedTone {
    frequency: f64,
    /// Wall-clock time of sample 0, microseconds; the tone's own timeline runs from it
    /// without gaps, so marks are never cut or doubled by scheduling jitter.
    start_us: Option<u64>,
    samples_made: u64,
}

impl StampedTone {
    pub fn new(frequency: f64) -> Self {
        Self {
            frequency,
            start_us: None,
            samples_made: 0,
        }
    }

    /// Makes the next 20 ms. The first call fixes the timeline at `now_us`.
    pub fn next_frame(&mut self, now_us: u64) -> AudioFrame {
        let start_us = *self.start_us.get_or_insert(now_us);
        let rate = AUDIO_SAMPLE_RATE as u64;
        let frame_start_us = start_us + self.samples_made * 1_000_000 / rate;
        let mut samples = Vec::with_capacity(AUDIO_FRAME_SAMPLES);
        for i in 0..AUDIO_FRAME_SAMPLES as u64 {
            let n = self.samples_made + i;
            let t_us = start_us + n * 1_000_000 / rate;
            let t_ms = t_us / 1000;
            let boundary = t_ms - t_ms % MARK_PERIOD_MS;
            let silent = t_ms - boundary < mark_length_ms(boundary);
            let phase = 2.0 * std::f64::consts::PI * self.frequency * n as f64 / rate as f64;
            samples.push(if silent {
                0
            } else {
                (AMPLITUDE * phase.sin()) as i16
            });
        }
        self.samples_made += AUDIO_FRAME_SAMPLES as u64;
        AudioFrame {
            samples,
            capture_time_us: frame_start_us,
        }
    }
}

/// Samples per analysis block: 2.5 ms at 48 kHz.
const BLOCK: usize = 120;
const BLOCK_MS: f64 = 2.5;
/// Marks in the first second of sound are not read.
const WARM_UP_US: u64 = 1_000_000;
/// Samples judged at a time for which tone is heard: 0.25 s.
const SPECTRUM_WINDOW: usize = 12_000;
/// A tone "holds" a window when at least this share of the window's energy is at its
/// frequency (a pure tone with the marks' silences gives about 0.8; noise, silence or
/// another frequency next to nothing).
const HOLDS: f64 = 0.25;

/// Reads a received stamped tone: its frequency, its level, and the latency of each mark.
#[derive(Default)]
pub struct ToneAnalyzer {
    recent: VecDeque<i16>,
    tone_level: f64,
    gap: Option<Gap>,
    latencies_ms: Vec<f64>,
    samples_seen: u64,
    energy_sum: f64,
    first_tone_us: Option<u64>,
    /// Samples pushed since the last window was judged.
    unjudged: usize,
    /// The frequency that held the last window judged, if any.
    holding: Option<f64>,
    /// Seconds heard at each frequency (within 1.5 Hz), in the order first heard.
    seconds_at: Vec<(f64, f64)>,
}

struct Gap {
    onset_us: u64,
    blocks: u32,
}

impl ToneAnalyzer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds decoded sound that arrived at `arrival_us` (wall clock).
    pub fn push(&mut self, samples: &[i16], arrival_us: u64) {
        for (index, block) in samples.chunks(BLOCK).enumerate() {
            let energy: f64 = block.iter().map(|&s| (s as f64) * (s as f64)).sum();
            self.energy_sum += energy;
            let rms = (energy / block.len() as f64).sqrt();
            let block_us =
                arrival_us + (index * BLOCK) as u64 * 1_000_000 / AUDIO_SAMPLE_RATE as u64;
            self.track_marks(rms, block_us);
        }
        self.samples_seen += samples.len() as u64;
        self.recent.extend(samples.iter().copied());
        let excess = self.recent.len().saturating_sub(SPECTRUM_WINDOW);
        self.recent.drain(..excess);
        self.unjudged += samples.len();
        if self.unjudged >= SPECTRUM_WINDOW {
            let seconds = self.unjudged as f64 / AUDIO_SAMPLE_RATE as f64;
            self.unjudged = 0;
            self.judge_window(seconds);
        }
    }

    /// Which frequency, if any, holds the last window: the one that held the window before
    /// is checked first (one Goertzel filter), the whole range searched only when it fails,
    /// so following a steady tone costs next to nothing.
    fn judge_window(&mut self, seconds: f64) {
        let samples: Vec<f64> = self.recent.iter().map(|&s| s as f64).collect();
        let share = |f: f64| tone_share(&samples, f);
        let held = match self.holding {
            Some(f) if share(f) >= HOLDS => Some(f),
            _ => strongest_frequency(&samples).filter(|&f| share(f) >= HOLDS),
        };
        self.holding = held;
        let Some(f) = held else { return };
        match self
            .seconds_at
            .iter_mut()
            .find(|(g, _)| (g - f).abs() <= 1.5)
        {
            Some((_, heard)) => *heard += seconds,
            None => self.seconds_at.push((f, seconds)),
        }
    }

    fn track_marks(&mut self, rms: f64, block_us: u64) {
        if self.tone_level < 300.0 {
            // No tone yet: learn its level before looking for marks.
            self.tone_level = self.tone_level.max(rms * 0.9);
            if self.tone_level >= 300.0 {
                self.first_tone_us = Some(block_us);
            }
            return;
        }
        match &mut self.gap {
            None if rms < 0.25 * self.tone_level => {
                self.gap = Some(Gap {
                    onset_us: block_us,
                    blocks: 1,
                });
            }
            None => self.tone_level = 0.95 * self.tone_level + 0.05 * rms,
            Some(gap) if rms < 0.5 * self.tone_level => gap.blocks += 1,
            Some(_) => {
                if let Some(gap) = self.gap.take() {
                    self.finish_gap(gap);
                }
            }
        }
    }

    fn finish_gap(&mut self, gap: Gap) {
        // A codec blurs a gap's edges by a block or so; they read a little short.
        let length_ms = gap.blocks as f64 * BLOCK_MS + BLOCK_MS;
        let code = ((length_ms / MARK_UNIT_MS as f64).round() as i64 - 1).clamp(0, 3) as u64;
        let expected = (MARK_UNIT_MS * (code + 1)) as f64;
        if (length_ms - expected).abs() > MARK_UNIT_MS as f64 / 2.5 {
            return; // a loss or a glitch, not a mark
        }
        if self
            .first_tone_us
            .is_none_or(|first| gap.onset_us < first + WARM_UP_US)
        {
            return; // the codec is still settling: its first gaps come out misshapen
        }
        let onset_ms = gap.onset_us / 1000;
        // The latest boundary at or before the onset whose code matches.
        let mut boundary = onset_ms - onset_ms % MARK_PERIOD_MS;
        for _ in 0..MARK_CODES {
            if (boundary / MARK_PERIOD_MS) % MARK_CODES == code {
                let latency = gap.onset_us as f64 / 1000.0 - boundary as f64;
                self.latencies_ms.push(latency);
                return;
            }
            boundary = boundary.saturating_sub(MARK_PERIOD_MS);
        }
    }

    /// Latency of every mark read so far, milliseconds.
    pub fn mark_latencies_ms(&self) -> &[f64] {
        &self.latencies_ms
    }

    /// Samples received in all.
    pub fn samples_seen(&self) -> u64 {
        self.samples_seen
    }

    /// Root-mean-square level of everything received (full scale 32768).
    pub fn rms(&self) -> f64 {
        if self.samples_seen == 0 {
            0.0
        } else {
            (self.energy_sum / self.samples_seen as f64).sqrt()
        }
    }

    /// The frequency heard for longest (judged a quarter second at a time), in Hz, or
    /// `None` when no tone held any stretch of the sound.
    pub fn dominant_frequency(&self) -> Option<f64> {
        self.longest_heard().map(|(f, _)| f)
    }

    /// Seconds of sound that carried the dominant frequency: with the frequency, whether
    /// the tone was heard through the call or only for a moment of it.
    pub fn seconds_of_tone(&self) -> f64 {
        let Some((f, seconds)) = self.longest_heard() else {
            return 0.0;
        };
        // The last window, still being gathered, counts too when that tone holds it.
        let unjudged = self.unjudged.min(self.recent.len());
        let Some(held) = self.holding.filter(|h| (h - f).abs() <= 1.5) else {
            return seconds;
        };
        if unjudged < AUDIO_SAMPLE_RATE as usize / 20 {
            return seconds;
        }
        let tail: Vec<f64> = self
            .recent
            .iter()
            .skip(self.recent.len() - unjudged)
            .map(|&s| s as f64)
            .collect();
        if tone_share(&tail, held) >= HOLDS {
            seconds + unjudged as f64 / AUDIO_SAMPLE_RATE as f64
        } else {
            seconds
        }
    }

    fn longest_heard(&self) -> Option<(f64, f64)> {
        self.seconds_at
            .iter()
            .copied()
            .reduce(|a, b| if b.1 > a.1 { b } else { a })
    }
}

/// The share of the energy of `samples` that is at `frequency` (about 1 for a pure tone).
fn tone_share(samples: &[f64], frequency: f64) -> f64 {
    let total: f64 = samples.iter().map(|s| s * s).sum();
    if total <= 0.0 {
        return 0.0;
    }
    goertzel_power(samples, frequency) / (total * samples.len() as f64 / 2.0)
}

/// The strongest frequency between 50 Hz and 4 kHz, to 1 Hz.
fn strongest_frequency(samples: &[f64]) -> Option<f64> {
    let power = |f: f64| goertzel_power(samples, f);
    let mut best = (0.0, 0.0);
    let mut f = 50.0;
    while f <= 4000.0 {
        let p = power(f);
        if p > best.1 {
            best = (f, p);
        }
        f += 5.0;
    }
    let mut fine = best;
    let mut f = best.0 - 5.0;
    while f <= best.0 + 5.0 {
        let p = power(f);
        if p > fine.1 {
            fine = (f, p);
        }
        f += 1.0;
    }
    (fine.1 > 0.0).then_some(fine.0)
}

fn goertzel_power(samples: &[f64], frequency: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * frequency / AUDIO_SAMPLE_RATE as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_and_marks_read_back_from_the_raw_tone() {
        let mut tone = StampedTone::new(660.0);
        let mut analyzer = ToneAnalyzer::new();
        let start = 1_700_000_000_000_000u64;
        for _ in 0..250 {
            let frame = tone.next_frame(start);
            // Arrives 35 ms after capture.
            analyzer.push(&frame.samples, frame.capture_time_us + 35_000);
        }
        let f = analyzer.dominant_frequency().expect("a tone"); // test: a panic is the failure
        assert!((f - 660.0).abs() <= 2.0, "{f}");
        // 5 s of tone, the last part of it still being gathered.
        let heard = analyzer.seconds_of_tone();
        assert!((4.9..=5.0).contains(&heard), "{heard} s of tone");
        let marks = analyzer.mark_latencies_ms();
        assert!(marks.len() >= 7, "{marks:?}");
        for latency in marks {
            assert!((latency - 35.0).abs() < 3.0, "{latency}");
        }
    }

    #[test]
    fn silence_has_no_frequency_and_no_marks() {
        let mut analyzer = ToneAnalyzer::new();
        for i in 0..100 {
            analyzer.push(&[0; 960], i * 20_000);
        }
        assert_eq!(analyzer.dominant_frequency(), None);
        assert_eq!(analyzer.seconds_of_tone(), 0.0);
        assert!(analyzer.mark_latencies_ms().is_empty());
    }

    #[test]
    fn a_tone_that_stops_is_counted_for_the_time_it_was_heard() {
        let mut tone = StampedTone::new(440.0);
        let mut analyzer = ToneAnalyzer::new();
        let start = 1_700_000_000_000_000u64;
        // 2 s of tone, then 3 s of silence, then 1 s of another tone.
        for _ in 0..100 {
            let frame = tone.next_frame(start);
            analyzer.push(&frame.samples, frame.capture_time_us);
        }
        for i in 0..150 {
            analyzer.push(&[0; 960], start + 2_000_000 + i * 20_000);
        }
        let mut other = StampedTone::new(1000.0);
        for _ in 0..50 {
            let frame = other.next_frame(start + 5_000_000);
            analyzer.push(&frame.samples, frame.capture_time_us);
        }
        let f = analyzer.dominant_frequency().expect("a tone"); // test: a panic is the failure
        assert!((f - 440.0).abs() <= 2.0, "{f}");
        let heard = analyzer.seconds_of_tone();
        // Judged a quarter second at a time: the window where it stops counts whole.
        assert!(
            (1.75..=2.3).contains(&heard),
            "{heard} s of the 440 Hz tone"
        );
    }
}
