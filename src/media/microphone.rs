//! The microphone (cpal input): sound at the device's rate and channels, mixed to mono,
//! converted to 48 kHz and cut into the 20 ms frames Opus takes, each stamped with when it
//! was captured. Delivery never blocks the device's thread: the receiver keeps a short
//! bounded queue and drops when it falls behind.

use crate::media::frame::{AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE, AudioFrame, wall_clock_us};
use crate::media::resample::MonoResampler;
use crate::media::sound::{Direction, SoundDevice, SoundError, choose};
use cpal::traits::DeviceTrait;

/// Takes each 20 ms frame as it is captured.
pub type FrameSink = Box<dyn FnMut(AudioFrame) + Send>;

/// An open microphone; it captures until dropped.
pub struct Microphone {
    _stream: cpal::Stream,
    /// The device's name and the format it captures, for the person.
    pub description: String,
}

/// Mono 48 kHz samples waiting to fill a frame.
struct Framer {
    resampler: MonoResampler,
    mono: Vec<f32>,
    converted: Vec<f32>,
    pending: Vec<i16>,
    sink: FrameSink,
}

impl Framer {
    fn take<T: Copy>(&mut self, data: &[T], channels: usize, to_f32: impl Fn(T) -> f32) {
        self.mono.clear();
        self.mono.extend(
            data.chunks(channels)
                .map(|frame| frame.iter().map(|&s| to_f32(s)).sum::<f32>() / channels as f32),
        );
        self.converted.clear();
        self.resampler.push(&self.mono, &mut self.converted);
        self.pending.extend(
            self.converted
                .iter()
                .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16),
        );
        let now = wall_clock_us();
        let per_sample_us = 1_000_000 / AUDIO_SAMPLE_RATE as u64;
        while self.pending.len() >= AUDIO_FRAME_SAMPLES {
            // The newest sample was captured about now; this frame began before it.
            let behind = (self.pending.len() + self.resampler.delay_samples()) as u64;
            let samples: Vec<i16> = self.pending.drain(..AUDIO_FRAME_SAMPLES).collect();
            (self.sink)(AudioFrame {
                samples,
                capture_time_us: now.saturating_sub(behind * per_sample_us),
            });
        }
    }
}

impl Microphone {
    /// Opens the chosen microphone and starts handing its frames to `sink`.
    pub fn open(choice: &SoundDevice, sink: FrameSink) -> Result<Self, SoundError> {
        let chosen = choose(choice, Direction::Input, 20)?;
        let (channels, rate) = (chosen.channels, chosen.rate);
        let resampler = MonoResampler::new(rate, AUDIO_SAMPLE_RATE).map_err(|e| chosen.error(e))?;
        let mut framer = Framer {
            resampler,
            mono: Vec::new(),
            converted: Vec::new(),
            pending: Vec::new(),
            sink,
        };
        let on_error = |e: cpal::Error| tracing::warn!("microphone: {e}");
        let built = match chosen.format {
            cpal::SampleFormat::F32 => chosen.device.build_input_stream::<f32, _, _>(
                chosen.config,
                move |data: &[f32], _| framer.take(data, channels, |s| s),
                on_error,
                None,
            ),
            _ => chosen.device.build_input_stream::<i16, _, _>(
                chosen.config,
                move |data: &[i16], _| framer.take(data, channels, |s| s as f32 / 32768.0),
                on_error,
                None,
            ),
        };
        let (stream, description) = chosen.play(built)?;
        Ok(Self {
            _stream: stream,
            description,
        })
    }
}
