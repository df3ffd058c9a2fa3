//! The speaker (cpal output): plays 48 kHz mono sound pulled from the call at the device's
//! own pace, converted to the device's rate, channels and sample format. The device's
//! callback is the playout clock; the call hands it sound from its jitter buffer.

use crate::media::resample::MonoResampler;
use crate::media::sound::{Direction, SoundDevice, SoundError, choose};
use cpal::traits::DeviceTrait;
use std::collections::VecDeque;

/// Gives the next 48 kHz mono samples: it must fill the whole slice (silence if need be).
pub type SoundSource = Box<dyn FnMut(&mut [i16]) + Send>;

/// An open speaker; it plays until dropped.
pub struct Speaker {
    _stream: cpal::Stream,
    /// The device's name and the format it plays, for the person.
    pub description: String,
}

/// Pulls 10 ms at a time from the source, converted to the device's rate.
struct Playout {
    source: SoundSource,
    resampler: MonoResampler,
    ready: VecDeque<f32>,
    piece: Vec<i16>,
    as_float: Vec<f32>,
    converted: Vec<f32>,
}

impl Playout {
    fn next_samples(&mut self, frames: usize) -> impl Iterator<Item = f32> + '_ {
        while self.ready.len() < frames {
            // The device's callback: buffers are reused, nothing is allocated per call.
            (self.source)(&mut self.piece);
            self.as_float.clear();
            self.as_float
                .extend(self.piece.iter().map(|&s| s as f32 / 32768.0));
            self.converted.clear();
            self.resampler.push(&self.as_float, &mut self.converted);
            self.ready.extend(self.converted.iter().copied());
        }
        self.ready.drain(..frames)
    }
}

impl Speaker {
    /// Opens the chosen speaker and starts pulling sound from `source`.
    pub fn open(choice: &SoundDevice, source: SoundSource) -> Result<Self, SoundError> {
        let chosen = choose(choice, Direction::Output, 10)?;
        let (channels, rate) = (chosen.channels, chosen.rate);
        let resampler = MonoResampler::new(48_000, rate).map_err(|e| chosen.error(e))?;
        let mut playout = Playout {
            source,
            resampler,
            ready: VecDeque::new(),
            piece: vec![0; 480],
            as_float: Vec::with_capacity(480),
            converted: Vec::new(),
        };
        let on_error = |e: cpal::Error| tracing::warn!("speaker: {e}");
        let built = match chosen.format {
            cpal::SampleFormat::F32 => chosen.device.build_output_stream::<f32, _, _>(
                chosen.config,
                move |out: &mut [f32], _| {
                    let frames = out.len() / channels;
                    for (frame, sample) in
                        out.chunks_mut(channels).zip(playout.next_samples(frames))
                    {
                        frame.fill(sample);
                    }
                },
                on_error,
                None,
            ),
            _ => chosen.device.build_output_stream::<i16, _, _>(
                chosen.config,
                move |out: &mut [i16], _| {
                    let frames = out.len() / channels;
                    for (frame, sample) in
                        out.chunks_mut(channels).zip(playout.next_samples(frames))
                    {
                        frame.fill((sample.clamp(-1.0, 1.0) * 32767.0) as i16);
                    }
                },
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
