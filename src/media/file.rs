//! Y4M and WAV sinks: the stamped pattern and tone written to files, so another program (a
//! browser's fake camera and microphone, a player) can send or show exactly what Duet sends.

use crate::media::frame::{AUDIO_SAMPLE_RATE, VideoFrame};
use std::io::{self, Write};

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
        let mut writer = Y4mWriter::new(Vec::new(), 64, 48, 30).expect("header");
        for _ in 0..2 {
            writer
                .write_frame(&pattern.next_frame(5_000_000))
                .expect("frame");
        }
        let bytes = writer.finish().expect("finish");
        let header_end = bytes.iter().position(|&b| b == b'\n').expect("header line") + 1;
        assert_eq!(
            &bytes[..header_end],
            b"YUV4MPEG2 W64 H48 F30:1 Ip A1:1 C420jpeg\n"
        );
        let frame_len = 64 * 48 * 3 / 2;
        let second = header_end + 6 + frame_len + 6;
        let stamp = read_stamp(&bytes[second..second + 64 * 48], 64, 48, 64).expect("stamp");
        assert_eq!(stamp.frame_number, 1);
    }

    #[test]
    fn a_wav_file_has_a_well_formed_header() {
        let mut out = Vec::new();
        write_wav(&mut out, &[0, 1, -1]).expect("wav");
        assert_eq!(&out[..4], b"RIFF");
        assert_eq!(out.len(), 44 + 6);
        assert_eq!(
            u32::from_le_bytes([out[24], out[25], out[26], out[27]]),
            48_000
        );
    }
}
