//! The units of media that move between stages: a picture and a piece of sound, each with
//! the wall-clock time it was captured, so latency can be read at any stage.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch. Two processes on one machine share this
/// clock, which is what lets a receiver compare a stamp with its own arrival time.
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Wall-clock microseconds since the Unix epoch.
pub fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One picture in planar I420 (Y, then U, then V; chroma at half size each way).
#[derive(Clone, Debug)]
pub struct VideoFrame {
    pub width: usize,
    pub height: usize,
    /// Y plane (`width * height`), then U and V (`chroma_width * chroma_height` each).
    pub data: Vec<u8>,
    /// When the picture was captured, wall-clock microseconds.
    pub capture_time_us: u64,
}

impl VideoFrame {
    /// A frame of the given size filled with mid grey.
    pub fn new(width: usize, height: usize, capture_time_us: u64) -> Self {
        let len = width * height + 2 * chroma_len(width, height);
        Self {
            width,
            height,
            data: vec![128; len],
            capture_time_us,
        }
    }

    /// Copies a frame out of three planes with strides (the decoder's layout).
    pub fn from_planes(
        (width, height): (usize, usize),
        (y, u, v): (&[u8], &[u8], &[u8]),
        (y_stride, u_stride, v_stride): (usize, usize, usize),
        capture_time_us: u64,
    ) -> Self {
        let (cw, ch) = chroma_size(width, height);
        let mut data = Vec::with_capacity(width * height + 2 * cw * ch);
        for row in y.chunks(y_stride).take(height) {
            data.extend_from_slice(&row[..width.min(row.len())]);
        }
        for (plane, stride) in [(u, u_stride), (v, v_stride)] {
            for row in plane.chunks(stride).take(ch) {
                data.extend_from_slice(&row[..cw.min(row.len())]);
            }
        }
        // A short plane (a decoder bug) must not make the frame inconsistent.
        data.resize(width * height + 2 * cw * ch, 128);
        Self {
            width,
            height,
            data,
            capture_time_us,
        }
    }

    pub fn chroma_size(&self) -> (usize, usize) {
        chroma_size(self.width, self.height)
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    pub fn u(&self) -> &[u8] {
        let start = self.width * self.height;
        &self.data[start..start + chroma_len(self.width, self.height)]
    }

    pub fn v(&self) -> &[u8] {
        let start = self.width * self.height + chroma_len(self.width, self.height);
        &self.data[start..]
    }

    /// The three planes, mutable, in one borrow.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let y_len = self.width * self.height;
        let c_len = chroma_len(self.width, self.height);
        let (y, rest) = self.data.split_at_mut(y_len);
        let (u, v) = rest.split_at_mut(c_len);
        (y, u, v)
    }
}

/// Chroma plane size of an I420 picture (rounded up for odd sizes).
pub fn chroma_size(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(2), height.div_ceil(2))
}

fn chroma_len(width: usize, height: usize) -> usize {
    let (w, h) = chroma_size(width, height);
    w * h
}

/// Sample rate of every `AudioFrame`: Opus's native rate.
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms mono frame at 48 kHz.
pub const AUDIO_FRAME_SAMPLES: usize = 960;

/// A piece of mono sound at 48 kHz.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    pub samples: Vec<i16>,
    /// When the first sample was captured, wall-clock microseconds.
    pub capture_time_us: u64,
}
