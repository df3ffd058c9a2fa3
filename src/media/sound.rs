//! Sound devices (cpal): which microphones and speakers there are, and finding the one a
//! person asked for by name or number. On Linux cpal talks to PulseAudio (or PipeWire's
//! PulseAudio server) when one runs, and to ALSA otherwise.

use cpal::traits::{DeviceTrait, HostTrait};

/// Which sound device to use, as a person says it (`--mic`, `--speaker`, settings).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum SoundDevice {
    /// The built-in test tone as microphone, or no speaker at all.
    #[default]
    Synthetic,
    /// The system's default device.
    System,
    /// A device whose name or identifier contains this (case-insensitive).
    Named(String),
    /// The n-th device of its kind in `duet devices`, counting from 0.
    Index(usize),
    /// A WAV file played as the microphone, looped.
    File(std::path::PathBuf),
}

impl SoundDevice {
    /// `tone`, `none`, `default`, a number, or (part of) a device's name.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "" | "tone" | "none" | "off" | "test" => Self::Synthetic,
            "default" | "system" => Self::System,
            lower if lower.ends_with(".wav") => Self::File(text.into()),
            _ => match text.parse::<usize>() {
                Ok(index) => Self::Index(index),
                Err(_) => Self::Named(text.to_owned()),
            },
        }
    }
}

/// Why a sound device could not be used; the message says what to try.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SoundError {
    #[error("no {kind} named {name:?}; `duet devices` lists them")]
    NoSuchDevice { kind: &'static str, name: String },
    #[error("there is no {kind} number {index}; `duet devices` lists them")]
    NoSuchIndex { kind: &'static str, index: usize },
    #[error("this machine has no {kind}")]
    NoDevice { kind: &'static str },
    #[error("the {kind} {name:?} cannot be opened: {why}")]
    Open {
        kind: &'static str,
        name: String,
        why: String,
    },
}

/// What `duet devices` and the window's pickers show of one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoundDeviceInfo {
    /// The person-friendly name, e.g. "Built-in Audio Analog Stereo".
    pub name: String,
    /// The system's identifier, e.g. "alsa_output.pci-0000_00_1f.3.analog-stereo".
    pub id: String,
    /// Its usual rate and channels, e.g. "48000 Hz, 2 channels".
    pub format: String,
    pub is_default: bool,
}

/// Microphones or speakers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl Direction {
    fn kind(self) -> &'static str {
        match self {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        }
    }
}

pub(crate) fn host() -> cpal::Host {
    cpal::default_host()
}

fn devices(host: &cpal::Host, direction: Direction) -> Vec<cpal::Device> {
    let listed = match direction {
        Direction::Input => host.input_devices().map(|d| d.collect::<Vec<_>>()),
        Direction::Output => host.output_devices().map(|d| d.collect::<Vec<_>>()),
    };
    listed.unwrap_or_default()
}

fn name_and_id(device: &cpal::Device) -> (String, String) {
    let id = device.id().map(|id| id.id().to_owned()).unwrap_or_default();
    let name = device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| id.clone());
    (name, id)
}

/// The microphones or speakers there are.
pub fn list(direction: Direction) -> Vec<SoundDeviceInfo> {
    let host = host();
    let default = match direction {
        Direction::Input => host.default_input_device(),
        Direction::Output => host.default_output_device(),
    }
    .and_then(|d| d.id().ok());
    devices(&host, direction)
        .iter()
        .filter_map(|device| {
            let (name, id) = name_and_id(device);
            // ALSA's "null" device discards what is played and records silence.
            if id == "null" {
                return None;
            }
            let config = match direction {
                Direction::Input => device.default_input_config(),
                Direction::Output => device.default_output_config(),
            };
            // A device that cannot say how it plays (an ALSA plugin with nothing behind
            // it) cannot be opened either: leave it out.
            let config = config.ok()?;
            Some(SoundDeviceInfo {
                is_default: default.is_some() && device.id().ok() == default,
                name,
                id,
                format: format!(
                    "{} Hz, {} channels",
                    config.sample_rate(),
                    config.channels()
                ),
            })
        })
        .collect()
}

/// Finds the device a person asked for.
pub(crate) fn find(
    choice: &SoundDevice,
    direction: Direction,
) -> Result<(cpal::Device, String), SoundError> {
    let host = host();
    let kind = direction.kind();
    let device =
        match choice {
            SoundDevice::Synthetic => return Err(SoundError::NoDevice { kind }),
            SoundDevice::File(path) => {
                return Err(SoundError::NoSuchDevice {
                    kind,
                    name: path.display().to_string(),
                });
            }
            SoundDevice::System => match direction {
                Direction::Input => host.default_input_device(),
                Direction::Output => host.default_output_device(),
            }
            .ok_or(SoundError::NoDevice { kind })?,
            SoundDevice::Index(index) => devices(&host, direction).into_iter().nth(*index).ok_or(
                SoundError::NoSuchIndex {
                    kind,
                    index: *index,
                },
            )?,
            SoundDevice::Named(wanted) => {
                let wanted_lower = wanted.to_lowercase();
                let all = devices(&host, direction);
                // An exact identifier first, then any name or identifier containing it.
                let exact = all.iter().position(|d| name_and_id(d).1 == *wanted);
                let loose = || {
                    all.iter().position(|d| {
                        let (name, id) = name_and_id(d);
                        name.to_lowercase().contains(&wanted_lower)
                            || id.to_lowercase().contains(&wanted_lower)
                    })
                };
                let index = exact.or_else(loose).ok_or(SoundError::NoSuchDevice {
                    kind,
                    name: wanted.clone(),
                })?;
                all.into_iter()
                    .nth(index)
                    .ok_or(SoundError::NoDevice { kind })?
            }
        };
    let (name, _) = name_and_id(&device);
    Ok((device, name))
}

/// A device found, and the stream layout to open it with.
pub(crate) struct Chosen {
    pub device: cpal::Device,
    pub name: String,
    pub config: cpal::StreamConfig,
    pub format: cpal::SampleFormat,
    pub channels: usize,
    pub rate: u32,
    kind: &'static str,
}

impl Chosen {
    /// Opening it failed for this reason.
    pub fn error(&self, why: impl ToString) -> SoundError {
        SoundError::Open {
            kind: self.kind,
            name: self.name.clone(),
            why: why.to_string(),
        }
    }

    /// Starts the stream built on it; returns the stream (dropping it stops it) and what
    /// it is, in words.
    pub fn play<E: ToString>(
        &self,
        built: Result<cpal::Stream, E>,
    ) -> Result<(cpal::Stream, String), SoundError> {
        use cpal::traits::StreamTrait;
        let stream = built.map_err(|e| self.error(e))?;
        stream.play().map_err(|e| self.error(e))?;
        let description = format!(
            "{} ({} Hz, {} channels)",
            self.name, self.rate, self.channels
        );
        Ok((stream, description))
    }
}

/// Finds the device a person asked for and the layout to open it with (see
/// [`choose_config`]).
pub(crate) fn choose(
    choice: &SoundDevice,
    direction: Direction,
    period_ms: u32,
) -> Result<Chosen, SoundError> {
    let (device, name) = find(choice, direction)?;
    let kind = direction.kind();
    let (config, format) =
        choose_config(&device, direction, period_ms).map_err(|why| SoundError::Open {
            kind,
            name: name.clone(),
            why,
        })?;
    Ok(Chosen {
        channels: config.channels.max(1) as usize,
        rate: config.sample_rate,
        device,
        name,
        config,
        format,
        kind,
    })
}

/// The stream layout to ask a device for: 48 kHz if it can, else its own rate; mono if it
/// can, else its own channels; about `period_ms` per callback.
pub(crate) fn choose_config(
    device: &cpal::Device,
    direction: Direction,
    period_ms: u32,
) -> Result<(cpal::StreamConfig, cpal::SampleFormat), String> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = match direction {
        Direction::Input => device
            .supported_input_configs()
            .map(|r| r.collect())
            .map_err(|e| e.to_string())?,
        Direction::Output => device
            .supported_output_configs()
            .map(|r| r.collect())
            .map_err(|e| e.to_string())?,
    };
    let usable =
        |f: cpal::SampleFormat| matches!(f, cpal::SampleFormat::I16 | cpal::SampleFormat::F32);
    let fits = |r: &cpal::SupportedStreamConfigRange, rate: u32| {
        usable(r.sample_format()) && r.min_sample_rate() <= rate && rate <= r.max_sample_rate()
    };
    let best = ranges
        .iter()
        .filter(|r| fits(r, 48_000))
        .min_by_key(|r| {
            (
                r.channels() != 1,
                r.sample_format() != cpal::SampleFormat::I16,
            )
        })
        .map(|r| (r, 48_000))
        .or_else(|| {
            ranges
                .iter()
                .find(|r| usable(r.sample_format()))
                .map(|r| (r, r.max_sample_rate().min(96_000)))
        });
    let (range, rate) =
        best.ok_or_else(|| "it offers no 16-bit or float sample format".to_string())?;
    let frames = rate * period_ms / 1000;
    let buffer_size = match range.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } if *min <= frames && frames <= *max => {
            cpal::BufferSize::Fixed(frames)
        }
        _ => cpal::BufferSize::Default,
    };
    let config = cpal::StreamConfig {
        channels: range.channels(),
        sample_rate: rate,
        buffer_size,
    };
    Ok((config, range.sample_format()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choices_are_read_as_a_person_writes_them() {
        assert_eq!(SoundDevice::parse("tone"), SoundDevice::Synthetic);
        assert_eq!(SoundDevice::parse(" None "), SoundDevice::Synthetic);
        assert_eq!(SoundDevice::parse("default"), SoundDevice::System);
        assert_eq!(SoundDevice::parse("2"), SoundDevice::Index(2));
        assert_eq!(
            SoundDevice::parse("USB Headset"),
            SoundDevice::Named("USB Headset".into())
        );
    }
}
