//! Making a picture smaller before it is encoded, when the path cannot carry it at full
//! size. Area averaging: every source pixel counts, so fine detail (the stamp, text) blurs
//! instead of aliasing; fixed-point, and the output buffer is reused.

use crate::media::frame::VideoFrame;

/// Scales I420 pictures down, reusing its tables and output between frames of one size.
#[derive(Default)]
pub struct Downscaler {
    /// For each output column and row of each plane: the source span it covers, as
    /// (first, last exclusive) in 1/256 pixels.
    key: Option<((usize, usize), (usize, usize))>,
    luma: Spans,
    chroma: Spans,
}

#[derive(Default)]
struct Spans {
    columns: Vec<(u32, u32)>,
    rows: Vec<(u32, u32)>,
}

impl Spans {
    fn new((src_w, src_h): (usize, usize), (dst_w, dst_h): (usize, usize)) -> Self {
        let spans = |src: usize, dst: usize| -> Vec<(u32, u32)> {
            (0..dst)
                .map(|i| {
                    let start = i * src * 256 / dst;
                    let end = ((i + 1) * src * 256 / dst).max(start + 1);
                    (start as u32, end as u32)
                })
                .collect()
        };
        Self {
            columns: spans(src_w, dst_w),
            rows: spans(src_h, dst_h),
        }
    }
}

/// The average of `src` (rows `stride` apart) over a box given in 1/256 pixels.
fn average(src: &[u8], stride: usize, (x0, x1): (u32, u32), (y0, y1): (u32, u32)) -> u8 {
    let (mut sum, mut weight) = (0u64, 0u64);
    let mut y = y0;
    while y < y1 {
        let row = (y >> 8) as usize;
        let row_end = ((row as u32 + 1) << 8).min(y1);
        let wy = (row_end - y) as u64;
        let mut x = x0;
        while x < x1 {
            let column = (x >> 8) as usize;
            let column_end = ((column as u32 + 1) << 8).min(x1);
            let wx = (column_end - x) as u64;
            let pixel = src.get(row * stride + column).copied().unwrap_or(128) as u64;
            sum += pixel * wx * wy;
            weight += wx * wy;
            x = column_end;
        }
        y = row_end;
    }
    (sum / weight.max(1)) as u8
}

fn scale_plane(src: &[u8], src_stride: usize, spans: &Spans, dst: &mut [u8], dst_w: usize) {
    for (out_row, &rows) in dst.chunks_mut(dst_w).zip(&spans.rows) {
        for (out, &columns) in out_row.iter_mut().zip(&spans.columns) {
            *out = average(src, src_stride, columns, rows);
        }
    }
}

impl Downscaler {
    /// `frame` at `width x height` (even sizes keep chroma exact). A frame already that
    /// size, or asked to grow, comes back as it is.
    pub fn scale(&mut self, frame: VideoFrame, (width, height): (usize, usize)) -> VideoFrame {
        let (width, height) = (width.max(2), height.max(2));
        if (width, height) == (frame.width, frame.height)
            || width > frame.width
            || height > frame.height
        {
            return frame;
        }
        let key = ((frame.width, frame.height), (width, height));
        if self.key != Some(key) {
            self.luma = Spans::new(key.0, key.1);
            self.chroma = Spans::new(
                frame.chroma_size(),
                crate::media::frame::chroma_size(width, height),
            );
            self.key = Some(key);
        }
        let mut out = VideoFrame::new(width, height, frame.capture_time_us);
        let (chroma_w, _) = out.chroma_size();
        let (src_chroma_w, _) = frame.chroma_size();
        let (y, u, v) = out.planes_mut();
        scale_plane(frame.y(), frame.width, &self.luma, y, width);
        scale_plane(frame.u(), src_chroma_w, &self.chroma, u, chroma_w);
        scale_plane(frame.v(), src_chroma_w, &self.chroma, v, chroma_w);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::pattern::{StampedPattern, read_frame_stamp};

    #[test]
    fn a_flat_picture_stays_flat_and_keeps_its_capture_time() {
        let mut frame = VideoFrame::new(1280, 720, 42);
        frame.data.fill(200);
        let out = Downscaler::default().scale(frame, (854, 480));
        assert_eq!((out.width, out.height, out.capture_time_us), (854, 480, 42));
        assert!(out.data.iter().all(|&p| p == 200));
    }

    #[test]
    fn the_stamp_reads_back_at_every_step_down() {
        let mut scaler = Downscaler::default();
        for (w, h) in [(854, 480), (640, 360), (426, 240)] {
            let frame = StampedPattern::new(1280, 720).next_frame(1_000_000);
            let want = read_frame_stamp(&frame).expect("the original reads"); // test: a panic is the failure
            let out = scaler.scale(frame, (w, h));
            assert_eq!(read_frame_stamp(&out), Some(want), "at {w}x{h}");
        }
    }

    #[test]
    fn growing_is_not_asked_of_a_downscaler() {
        let frame = VideoFrame::new(320, 240, 0);
        let out = Downscaler::default().scale(frame, (640, 480));
        assert_eq!((out.width, out.height), (320, 240));
    }
}
