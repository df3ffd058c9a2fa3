//! Echo cancellation, noise suppression and gain control: WebRTC's audio processing module
//! (the library PulseAudio's echo-cancel module uses). The far side's sound, as the speaker
//! plays it, is the echo reference ("render"); the microphone's sound is cleaned of it
//! ("capture") before it is encoded. Both work on 10 ms pieces of 48 kHz mono.

use webrtc_audio_processing as apm;

/// Which kinds of processing are on (each can be switched off in the settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessingSwitches {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
}

impl Default for ProcessingSwitches {
    fn default() -> Self {
        Self {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
        }
    }
}

impl ProcessingSwitches {
    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.gain_control
    }
}

const PIECE: usize = apm::NUM_SAMPLES_PER_FRAME as usize;

/// One side of the processor: the speaker's (render) or the microphone's (capture). Both
/// halves of one [`AudioProcessor::new`] share the same state.
pub struct AudioProcessor {
    processor: apm::Processor,
    pending: Vec<f32>,
    piece: Vec<f32>,
}

impl AudioProcessor {
    /// The two halves: (render, capture).
    pub fn new(switches: ProcessingSwitches) -> Result<(Self, Self), String> {
        let init = apm::InitializationConfig {
            num_capture_channels: 1,
            num_render_channels: 1,
            ..Default::default()
        };
        let mut processor = apm::Processor::new(&init).map_err(|e| e.to_string())?;
        processor.set_config(apm::Config {
            echo_cancellation: switches.echo_cancellation.then_some(apm::EchoCancellation {
                suppression_level: apm::EchoCancellationSuppressionLevel::High,
                enable_extended_filter: true,
                enable_delay_agnostic: true,
                stream_delay_ms: None,
            }),
            noise_suppression: switches.noise_suppression.then_some(apm::NoiseSuppression {
                suppression_level: apm::NoiseSuppressionLevel::Moderate,
            }),
            gain_control: switches.gain_control.then_some(apm::GainControl {
                mode: apm::GainControlMode::AdaptiveDigital,
                target_level_dbfs: 3,
                compression_gain_db: 9,
                enable_limiter: true,
            }),
            enable_high_pass_filter: true,
            ..Default::default()
        });
        let half = |processor: apm::Processor| Self {
            processor,
            pending: Vec::with_capacity(PIECE * 4),
            piece: vec![0.0; PIECE],
        };
        Ok((half(processor.clone()), half(processor)))
    }

    /// The far side's sound as it is played (any length); it is only listened to.
    pub fn render(&mut self, samples: &[i16]) {
        self.pending
            .extend(samples.iter().map(|&s| s as f32 / 32768.0));
        let mut start = 0;
        while self.pending.len() - start >= PIECE {
            self.piece
                .copy_from_slice(&self.pending[start..start + PIECE]);
            start += PIECE;
            if let Err(e) = self.processor.process_render_frame(&mut self.piece) {
                tracing::debug!("echo reference: {e}");
            }
        }
        self.pending.drain(..start);
    }

    /// Cleans a piece of microphone sound in place; its length must be a multiple of 10 ms
    /// (a 20 ms frame is two pieces).
    pub fn capture(&mut self, samples: &mut [i16]) {
        for chunk in samples.chunks_exact_mut(PIECE) {
            for (f, &s) in self.piece.iter_mut().zip(chunk.iter()) {
                *f = s as f32 / 32768.0;
            }
            if let Err(e) = self.processor.process_capture_frame(&mut self.piece) {
                tracing::debug!("audio processing: {e}");
                continue;
            }
            for (s, &f) in chunk.iter_mut().zip(self.piece.iter()) {
                *s = (f.clamp(-1.0, 1.0) * 32767.0) as i16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(i: usize) -> i16 {
        ((i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 8000.0) as i16
    }

    fn rms(samples: &[i16]) -> f64 {
        (samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
    }

    #[test]
    fn an_echo_of_what_was_played_is_taken_out_of_the_microphone() {
        let run = |cancel: bool| {
            let switches = ProcessingSwitches {
                echo_cancellation: cancel,
                noise_suppression: false,
                gain_control: false,
            };
            let (mut render, mut capture) = AudioProcessor::new(switches).expect("processor"); // test: a panic is the failure
            let mut last = Vec::new();
            // Four seconds: the microphone hears what was played 30 ms earlier, half as loud.
            let delay = 1440;
            for frame in 0..200 {
                let played: Vec<i16> = (0..960).map(|i| tone(frame * 960 + i)).collect();
                render.render(&played);
                let mut heard: Vec<i16> = (0..960)
                    .map(|i| {
                        (frame * 960 + i)
                            .checked_sub(delay)
                            .map_or(0, |j| tone(j) / 2)
                    })
                    .collect();
                capture.capture(&mut heard);
                if frame >= 150 {
                    last.extend(heard);
                }
            }
            // Then the far side is quiet and the person speaks: that must come through.
            let mut speech = Vec::new();
            for frame in 0..100 {
                render.render(&[0; 960]);
                let mut spoken: Vec<i16> = (0..960)
                    .map(|i| {
                        let t = (frame * 960 + i) as f32 / 48_000.0;
                        ((t * 1000.0 * std::f32::consts::TAU).sin() * 6000.0) as i16
                    })
                    .collect();
                capture.capture(&mut spoken);
                if frame >= 50 {
                    speech.extend(spoken);
                }
            }
            (rms(&last), rms(&speech))
        };
        let ((off, speech_off), (on, speech_on)) = (run(false), run(true));
        let reduction_db = 20.0 * (off / on.max(1.0)).log10();
        assert!(
            reduction_db >= 20.0,
            "echo {off:.0} -> {on:.0} rms: {reduction_db:.1} dB"
        );
        // The person's own voice is not what was taken out (a 6000-peak sine is 4243 rms).
        assert!(
            speech_off > 3000.0 && speech_on > 3000.0,
            "speech {speech_off:.0} / {speech_on:.0} rms"
        );
    }
}
