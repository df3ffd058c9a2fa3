//! Mono sample-rate conversion between a sound device's rate and Opus's 48 kHz, with
//! rubato's FFT resampler. Sound comes and goes in pieces of any length; the resampler
//! works on fixed chunks of 10 ms, so what does not fill a chunk waits for the next piece.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Converts a stream of mono samples from one rate to another.
pub struct MonoResampler {
    inner: Option<Fft<f32>>,
    pending: Vec<f32>,
    chunk: usize,
}

/// The rates cannot be converted between (zero, or absurdly far apart).
#[derive(Debug, thiserror::Error)]
#[error("cannot convert sound from {from} Hz to {to} Hz: {why}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    why: String,
}

impl MonoResampler {
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        let error = |why: String| ResampleError {
            from: from_hz,
            to: to_hz,
            why,
        };
        if from_hz == 0 || to_hz == 0 {
            return Err(error("a rate of 0 Hz".into()));
        }
        let chunk = (from_hz / 100).max(1) as usize;
        let inner = if from_hz == to_hz {
            None
        } else {
            let fft = Fft::<f32>::new(from_hz as usize, to_hz as usize, chunk, 1, FixedSync::Input)
                .map_err(|e| error(e.to_string()))?;
            Some(fft)
        };
        Ok(Self {
            inner,
            pending: Vec::new(),
            chunk,
        })
    }

    /// How many output samples the conversion holds back (its filter's delay).
    pub fn delay_samples(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Takes in samples at the input rate; returns whatever is ready at the output rate.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) {
        let Some(resampler) = self.inner.as_mut() else {
            out.extend_from_slice(samples);
            return;
        };
        self.pending.extend_from_slice(samples);
        let mut start = 0;
        while self.pending.len() - start >= self.chunk {
            let piece = &self.pending[start..start + self.chunk];
            start += self.chunk;
            // A chunk of exactly the fixed input size always fits the adapter.
            let Ok(input) = InterleavedSlice::new(piece, 1, self.chunk) else {
                continue;
            };
            match resampler.process(&input, None) {
                Ok(converted) => out.extend(converted.take_data()),
                Err(e) => tracing::debug!("resampling: {e}"),
            }
        }
        self.pending.drain(..start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| (i as f32 * hz * std::f32::consts::TAU / rate as f32).sin() * 0.5)
            .collect()
    }

    /// Zero crossings per second / 2: the frequency of a clean sine.
    fn frequency(samples: &[f32], rate: u32) -> f32 {
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f32 / 2.0 / (samples.len() as f32 / rate as f32)
    }

    #[test]
    fn a_44_1_khz_tone_keeps_its_pitch_at_48_khz() {
        let input = sine(44_100, 440.0, 1.0);
        let mut resampler = MonoResampler::new(44_100, 48_000).expect("resampler"); // test: a panic is the failure
        let mut out = Vec::new();
        // In uneven pieces, as a device delivers them.
        for piece in input.chunks(333) {
            resampler.push(piece, &mut out);
        }
        let expected = 48_000.0 * input.len() as f32 / 44_100.0;
        assert!(
            (out.len() as f32 - expected).abs() < 48_000.0 * 0.02,
            "{} samples, expected about {expected}",
            out.len()
        );
        let steady = &out[resampler.delay_samples() + 480..];
        let hz = frequency(steady, 48_000);
        assert!((hz - 440.0).abs() < 3.0, "{hz} Hz");
    }

    #[test]
    fn the_same_rate_passes_through() {
        let mut resampler = MonoResampler::new(48_000, 48_000).expect("resampler"); // test: a panic is the failure
        let mut out = Vec::new();
        resampler.push(&[0.1, 0.2, 0.3], &mut out);
        assert_eq!(out, vec![0.1, 0.2, 0.3]);
        assert!(MonoResampler::new(0, 48_000).is_err());
    }
}
