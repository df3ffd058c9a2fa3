//! Y4M and WAV files. Sinks: the stamped pattern and tone written to files, so another
//! program (a browser's fake camera and microphone, a player) can send or show exactly what
//! Duet sends. Sources: a Y4M file played as the camera and a WAV file as the microphone,
//! looped, at their own rate: what testers use when they have no camera.

use crate::media::frame::{AUDIO_SAMPLE_RATE, VideoFrame};
use std::io::{self, BufRead, Read, Seek, Write};
use std::path::Path;

/// A file that cannot be played; the message says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {why}")]
    Unreadable { path: String, why: String },
    #[error("{path} is not a video Duet can send: {why}")]
    BadY4m { path: String, why: String },
    #[error("{path} is not a sound Duet can send: {why}")]
    BadWav { path: String, why: String },
}

/// Plays a 4:2:0 Y4M file frame by frame, from the start again at its end.
pub struct Y4mReader {
    file: io::BufReader<std::fs::File>,
    path: String,
    data_start: u64,
    pub width: usize,
    pub height: usize,
    /// Frames per second the file says it holds.
    pub fps: f64,
}

impl Y4mReader {
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let shown = path.display().to_string();
        let unreadable = |e: io::Error| FileError::Unreadable {
            path: shown.clone(),
            why: e.to_string(),
        };
        let bad = |why: &str| FileError::BadY4m {
            path: shown.clone(),
            why: why.to_owned(),
        };
        let mut file = io::BufReader::new(std::fs::File::open(path).map_err(unreadable)?);
        let mut header = Vec::new();
        file.by_ref()
            .take(1024)
            .read_until(b'\n', &mut header)
            .map_err(unreadable)?;
        let header = String::from_utf8_lossy(&header);
        let mut fields = header.trim_end().split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            return Err(bad("expected a YUV4MPEG2 header (a .y4m file)"));
        }
        let (mut width, mut height, mut fps) = (0usize, 0usize, 30.0f64);
        for field in fields {
            let (tag, value) = field.split_at(field.len().min(1));
            match tag {
                "W" => width = value.parse().map_err(|_| bad("unreadable width"))?,
                "H" => height = value.parse().map_err(|_| bad("unreadable height"))?,
                "F" => {
                    let (num, den) = value.split_once(':').unwrap_or((value, "1"));
                    let (num, den): (f64, f64) = (
                        num.parse().map_err(|_| bad("unreadable frame rate"))?,
                        den.parse().map_err(|_| bad("unreadable frame rate"))?,
                    );
                    if num > 0.0 && den > 0.0 {
                        fps = num / den;
                    }
                }
                "C" if !value.starts_with("420") => {
                    return Err(bad(
                        "expected 4:2:0 pictures (C420), as ffmpeg writes with -pix_fmt yuv420p",
                    ));
                }
                _ => {}
            }
        }
        if width < 16 || height < 16 || width % 2 == 1 || height % 2 == 1 {
            return Err(bad("expected an even width and height of at least 16"));
        }
        if width * height > 1280 * 720 {
            return Err(bad(
                "at most 1280x720 pixels, the largest picture H.264 level 3.1 allows",
            ));
        }
        let data_start = file.stream_position().map_err(unreadable)?;
        Ok(Self {
            file,
            path: shown,
            data_start,
            width,
            height,
            fps: fps.clamp(1.0, 60.0),
        })
    }

    /// The next picture, stamped with `capture_time_us`; after the last one, the first.
    pub fn next_frame(&mut self, capture_time_us: u64) -> Result<VideoFrame, FileError> {
        let mut frame = VideoFrame::new(self.width, self.height, capture_time_us);
        for attempt in 0..2 {
            let mut marker = Vec::new();
            let read = self.file.by_ref().take(256).read_until(b'\n', &mut marker);
            if matches!(read, Ok(n) if n > 0)
                && marker.starts_with(b"FRAME")
                && self.file.read_exact(&mut frame.data).is_ok()
            {
                return Ok(frame);
            }
            if attempt == 0 {
                // The end (or a cut-off last frame): from the start again.
                self.file
                    .seek(io::SeekFrom::Start(self.data_start))
                    .map_err(|e| FileError::Unreadable {
                        path: self.path.clone(),
                        why: e.to_string(),
                    })?;
            }
        }
        Err(FileError::BadY4m {
            path: self.path.clone(),
            why: "it holds no whole frame".into(),
        })
    }
}

/// The sound of a PCM WAV file (16-bit integer or 32-bit float, any rate and channels),
/// mixed to mono, with its rate.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32), FileError> {
    let shown = path.display().to_string();
    let bad = |why: &str| FileError::BadWav {
        path: shown.clone(),
        why: why.to_owned(),
    };
    // Ten minutes of 48 kHz stereo float is about 230 MB: enough for any test sound.
    const LIMIT: u64 = 256 * 1024 * 1024;
    let file = std::fs::File::open(path).map_err(|e| FileError::Unreadable {
        path: shown.clone(),
        why: e.to_string(),
    })?;
    let mut bytes = Vec::new();
    file.take(LIMIT)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::Unreadable {
            path: shown.clone(),
            why: e.to_string(),
        })?;
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("expected a RIFF/WAVE file"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (mut format, mut channels, mut rate, mut bits) = (None, 0usize, 0u32, 0u16);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32_at(at + 4) as usize;
        let body = at + 8;
        let end = body.saturating_add(len).min(bytes.len());
        if id == b"fmt " && end - body >= 16 {
            format = Some(u16_at(body));
            channels = u16_at(body + 2) as usize;
            rate = u32_at(body + 4);
            bits = u16_at(body + 14);
        } else if id == b"data" {
            let Some(format) = format else {
                return Err(bad("the data comes before its format"));
            };
            if channels == 0 || !(8_000..=192_000).contains(&rate) {
                return Err(bad("expected 1 or more channels at 8 to 192 kHz"));
            }
            let data = &bytes[body..end];
            let samples: Vec<f32> = match (format, bits) {
                (1, 16) => data
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                    .collect(),
                (3, 32) => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                _ => return Err(bad("expected 16-bit integer or 32-bit float PCM")),
            };
            let mono = samples
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32)
                .collect::<Vec<f32>>();
            if mono.is_empty() {
                return Err(bad("it holds no sound"));
            }
            return Ok((mono, rate));
        }
        at = body.saturating_add(len + (len & 1));
    }
    Err(bad("it has no sound data"))
}

/// Writes 4:2:0 Y4M (what Chromium's `--use-file-for-fake-video-capture` reads).
pub struct Y4mWriter<W: Write> {
    out: W,
}

impl<W: Write> Y4mWriter<W> {
    pub fn new(mut out: W, width: usize, height: usize, fps: u32) -> io::Result<Self> {
        writeln!(
            out,
            "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg"
        )?;
        Ok(Self { out })
    }

    pub fn write_frame(&mut self, frame: &VideoFrame) -> io::Result<()> {
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(&frame.data)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes 16-bit mono PCM WAV at 48 kHz.
pub fn write_wav<W: Write>(mut out: W, samples: &[i16]) -> io::Result<()> {
    let data_len = (samples.len() * 2) as u32;
    let rate = AUDIO_SAMPLE_RATE;
    out.write_all(b"RIFF")?;
    out.write_all(&(36 + data_len).to_le_bytes())?;
    out.write_all(b"WAVEfmt ")?;
    out.write_all(&16u32.to_le_bytes())?;
    out.write_all(&1u16.to_le_bytes())?; // PCM
    out.write_all(&1u16.to_le_bytes())?; // mono
    out.write_all(&rate.to_le_bytes())?;
    out.write_all(&(rate * 2).to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&16u16.to_le_bytes())?;
    out.write_all(b"data")?;
    out.write_all(&data_len.to_le_bytes())?;
    for sample in samples {
        out.write_all(&sample.to_le_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::pattern::{StampedPattern, read_stamp};

    #[test]
    fn a_y4m_file_holds_stamped_frames() {
        let mut pattern = StampedPattern::new(64, 48);
        let mut writer = Y4mWriter::new(Vec::new(), 64, 48, 30).expect("header"); // test: a panic is the failure
        for _ in 0..2 {
            writer
                .write_frame(&pattern.next_frame(5_000_000))
                .expect("frame"); // test: a panic is the failure
        }
        let bytes = writer.finish().expect("finish"); // test: a panic is the failure
        let header_end = bytes.iter().position(|&b| b == b'\n').expect("header line") + 1; // test: a panic is the failure
        assert_eq!(
            &bytes[..header_end],
            b"YUV4MPEG2 W64 H48 F30:1 Ip A1:1 C420jpeg\n"
        );
        let frame_len = 64 * 48 * 3 / 2;
        let second = header_end + 6 + frame_len + 6;
        let stamp = read_stamp(&bytes[second..second + 64 * 48], 64, 48, 64).expect("stamp"); // test: a panic is the failure
        assert_eq!(stamp.frame_number, 1);
    }

    #[test]
    fn a_y4m_file_plays_back_looped_and_junk_is_refused() {
        let dir = std::env::temp_dir().join(format!("duet-y4m-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir"); // test: a panic is the failure
        let path = dir.join("two.y4m");
        let mut pattern = StampedPattern::new(64, 48);
        let file = std::fs::File::create(&path).expect("create"); // test: a panic is the failure
        let mut writer = Y4mWriter::new(file, 64, 48, 15).expect("header"); // test: a panic is the failure
        for _ in 0..2 {
            writer.write_frame(&pattern.next_frame(1)).expect("frame"); // test: a panic is the failure
        }
        writer.finish().expect("finish"); // test: a panic is the failure
        let mut reader = Y4mReader::open(&path).expect("open"); // test: a panic is the failure
        assert_eq!((reader.width, reader.height, reader.fps), (64, 48, 15.0));
        let numbers: Vec<u32> = (0..5)
            .map(|_| {
                let frame = reader.next_frame(7).expect("frame"); // test: a panic is the failure
                read_stamp(frame.y(), 64, 48, 64)
                    .expect("stamp") // test: a panic is the failure
                    .frame_number
            })
            .collect();
        assert_eq!(numbers, vec![0, 1, 0, 1, 0]);
        for junk in [
            &b"hello"[..],
            b"YUV4MPEG2 W64 H48 C444\n",
            b"YUV4MPEG2 W99999 H99999\n",
        ] {
            std::fs::write(&path, junk).expect("write"); // test: a panic is the failure
            assert!(matches!(
                Y4mReader::open(&path),
                Err(FileError::BadY4m { .. })
            ));
        }
        std::fs::write(&path, b"YUV4MPEG2 W64 H48\nFRAME\nshort").expect("write"); // test: a panic is the failure
        let mut cut = Y4mReader::open(&path).expect("header is fine"); // test: a panic is the failure
        assert!(cut.next_frame(0).is_err());
    }

    #[test]
    fn a_wav_file_reads_back_as_mono_and_junk_is_refused() {
        let dir = std::env::temp_dir().join(format!("duet-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir"); // test: a panic is the failure
        let path = dir.join("three.wav");
        let mut bytes = Vec::new();
        write_wav(&mut bytes, &[0, 16384, -16384]).expect("wav"); // test: a panic is the failure
        std::fs::write(&path, &bytes).expect("write"); // test: a panic is the failure
        let (samples, rate) = read_wav(&path).expect("read"); // test: a panic is the failure
        assert_eq!(rate, 48_000);
        assert_eq!(samples, vec![0.0, 0.5, -0.5]);
        std::fs::write(&path, &bytes[..30]).expect("write"); // test: a panic is the failure
        assert!(read_wav(&path).is_err());
        std::fs::write(&path, b"not a wav at all").expect("write"); // test: a panic is the failure
        assert!(matches!(read_wav(&path), Err(FileError::BadWav { .. })));
    }

    #[test]
    fn a_wav_file_has_a_well_formed_header() {
        let mut out = Vec::new();
        write_wav(&mut out, &[0, 1, -1]).expect("wav"); // test: a panic is the failure
        assert_eq!(&out[..4], b"RIFF");
        assert_eq!(out.len(), 44 + 6);
        assert_eq!(
            u32::from_le_bytes([out[24], out[25], out[26], out[27]]),
            48_000
        );
    }
}
