//! The speaker (cpal output): plays 48 kHz mono sound pulled from the call at the device's
//! own pace, converted to the device's rate, channels and sample format. The device's
//! callback is the playout clock; the call hands it sound from its jitter buffer.

use crate::media::resample::MonoResampler;
use crate::media::sound::{Direction, SoundDevice, SoundError, choose_config, find};
use cpal::traits::{DeviceTrait, StreamTrait};
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
    converted: Vec<f32>,
}

impl Playout {
    fn next_samples(&mut self, frames: usize) -> impl Iterator<Item = f32> + '_ {
        while self.ready.len() < frames {
            (self.source)(&mut self.piece);
            let as_float: Vec<f32> = self.piece.iter().map(|&s| s as f32 / 32768.0).collect();
            self.converted.clear();
            self.resampler.push(&as_float, &mut self.converted);
            self.ready.extend(self.converted.iter().copied());
        }
        self.ready.drain(..frames)
    }
}

impl Speaker {
    /// Opens the chosen speaker and starts pulling sound from `source`.
    pub fn open(choice: &SoundDevice, source: SoundSource) -> Result<Self, SoundError> {
        let (device, name) = find(choice, Direction::Output)?;
        let open_error = |why: String| SoundError::Open {
            kind: "speaker",
            name: name.clone(),
            why,
        };
        let (config, format) = choose_config(&device, Direction::Output, 10).map_err(open_error)?;
        let channels = config.channels.max(1) as usize;
        let rate = config.sample_rate;
        let resampler = MonoResampler::new(48_000, rate).map_err(|e| open_error(e.to_string()))?;
        let mut playout = Playout {
            source,
            resampler,
            ready: VecDeque::new(),
            piece: vec![0; 480],
            converted: Vec::new(),
        };
        let on_error = |e: cpal::Error| tracing::warn!("speaker: {e}");
        let stream = match format {
            cpal::SampleFormat::F32 => device.build_output_stream::<f32, _, _>(
                config,
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
            _ => device.build_output_stream::<i16, _, _>(
                config,
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
        }
        .map_err(|e| open_error(e.to_string()))?;
        stream.play().map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            _stream: stream,
            description: format!("{name} ({rate} Hz, {channels} channels)"),
        })
    }
}
