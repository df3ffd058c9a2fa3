//! The synthetic camera: a moving test picture that carries a machine-readable stamp
//! (frame number, capture time, check value) in its top band, and the reader that finds the
//! stamp again in a decoded picture. It is what a machine without a camera sends, and how
//! every test and benchmark measures latency from capture to decode (or to screen).

use crate::media::frame::VideoFrame;

/// Stamp cells per row and rows of cells: 96 cells carry 96 bits.
const STAMP_COLUMNS: usize = 24;
const STAMP_ROWS: usize = 4;
const STAMP_BITS: usize = STAMP_COLUMNS * STAMP_ROWS;
/// Luma of a 1 and a 0 cell: video range extremes, far apart so they survive a low bitrate.
const LUMA_ONE: u8 = 235;
const LUMA_ZERO: u8 = 16;

/// What a stamp says about the picture that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Counts from 0 at the first frame of the pattern.
    pub frame_number: u32,
    /// When the frame was captured, wall-clock milliseconds (48 bits are kept).
    pub capture_time_ms: u64,
}

impl Stamp {
    fn to_bits(self) -> [bool; STAMP_BITS] {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&self.frame_number.to_be_bytes());
        bytes[4..10].copy_from_slice(&(self.capture_time_ms & 0xffff_ffff_ffff).to_be_bytes()[2..]);
        let check = crc16(&bytes[..10]);
        bytes[10..].copy_from_slice(&check.to_be_bytes());
        let mut bits = [false; STAMP_BITS];
        for (i, bit) in bits.iter_mut().enumerate() {
            *bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
        }
        bits
    }

    fn from_bits(bits: &[bool; STAMP_BITS]) -> Option<Self> {
        let mut bytes = [0u8; 12];
        for (i, &bit) in bits.iter().enumerate() {
            if bit {
                bytes[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let check = u16::from_be_bytes([bytes[10], bytes[11]]);
        if crc16(&bytes[..10]) != check {
            return None;
        }
        let frame_number = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let mut time = [0u8; 8];
        time[2..].copy_from_slice(&bytes[4..10]);
        Some(Self {
            frame_number,
            capture_time_ms: u64::from_be_bytes(time),
        })
    }
}

/// CRC-16/CCITT-FALSE: a check value so that a picture without a stamp (or a damaged one)
/// is not mistaken for a stamped one.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Where the stamp's cells lie in a picture of a given size.
#[derive(Clone, Copy, Debug)]
struct StampGeometry {
    cell_width: usize,
    cell_height: usize,
}

impl StampGeometry {
    fn for_size(width: usize, height: usize) -> Option<Self> {
        let cell_width = width / STAMP_COLUMNS;
        // Square cells, but never more than a third of the picture's height for the band.
        let cell_height = cell_width.min(height / (STAMP_ROWS * 3));
        (cell_width >= 2 && cell_height >= 2).then_some(Self {
            cell_width,
            cell_height,
        })
    }

    fn band_height(&self) -> usize {
        self.cell_height * STAMP_ROWS
    }
}

/// A moving test picture with a stamp in its top band: the "fake camera".
pub struct StampedPattern {
    width: usize,
    height: usize,
    frame_number: u32,
}

impl StampedPattern {
    /// The pattern needs at least 48x24 pixels to hold a readable stamp.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            frame_number: 0,
        }
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Draws the next frame, stamped with its number and `capture_time_us`.
    pub fn next_frame(&mut self, capture_time_us: u64) -> VideoFrame {
        let mut frame = VideoFrame::new(self.width, self.height, capture_time_us);
        self.draw_into(&mut frame);
        self.frame_number = self.frame_number.wrapping_add(1);
        frame
    }

    fn draw_into(&self, frame: &mut VideoFrame) {
        let (width, height) = (self.width, self.height);
        let (cw, ch) = frame.chroma_size();
        let n = self.frame_number as usize;
        let band = StampGeometry::for_size(width, height).map_or(0, |g| g.band_height());
        let capture_time_ms = frame.capture_time_us / 1000;
        let (y_plane, u_plane, v_plane) = frame.planes_mut();

        // A diagonal gradient that scrolls, like a camera panning: every pixel changes every
        // frame, yet motion search predicts it, as with real video.
        let shift = n * 3;
        for (row_index, row) in y_plane.chunks_mut(width).enumerate().skip(band) {
            let offset = row_index + shift;
            for (x, px) in row.iter_mut().enumerate() {
                *px = 40 + (((x + offset) / 2) % 160) as u8;
            }
        }
        for (row_index, (u_row, v_row)) in u_plane
            .chunks_mut(cw)
            .zip(v_plane.chunks_mut(cw))
            .enumerate()
            .take(ch)
        {
            let in_band = row_index * 2 < band;
            let u = if in_band {
                128
            } else {
                (96 + (row_index + n) % 64) as u8
            };
            u_row.fill(u);
            v_row.fill(if in_band { 128 } else { 160 });
        }

        // A bright box that bounces, so something moves against the background.
        let box_size = (height / 6).max(4);
        let span_x = width.saturating_sub(box_size).max(1);
        let span_y = height.saturating_sub(band + box_size).max(1);
        let bx = bounce(n * 7, span_x);
        let by = band + bounce(n * 5, span_y);
        for row in y_plane.chunks_mut(width).skip(by).take(box_size) {
            let end = (bx + box_size).min(width);
            row[bx..end].fill(220);
        }

        if let Some(geometry) = StampGeometry::for_size(width, height) {
            let stamp = Stamp {
                frame_number: self.frame_number,
                capture_time_ms,
            };
            draw_stamp(y_plane, width, geometry, stamp);
        }
    }
}

fn bounce(position: usize, span: usize) -> usize {
    let period = span * 2;
    let p = position % period;
    if p < span { p } else { period - p }
}

fn draw_stamp(y_plane: &mut [u8], width: usize, geometry: StampGeometry, stamp: Stamp) {
    let bits = stamp.to_bits();
    for (row_index, row) in y_plane
        .chunks_mut(width)
        .take(geometry.band_height())
        .enumerate()
    {
        let cell_row = row_index / geometry.cell_height;
        // Cells fill the band's width; the remainder at the right stays dark.
        row.fill(LUMA_ZERO);
        for column in 0..STAMP_COLUMNS {
            let start = column * geometry.cell_width;
            let value = if bits[cell_row * STAMP_COLUMNS + column] {
                LUMA_ONE
            } else {
                LUMA_ZERO
            };
            row[start..start + geometry.cell_width].fill(value);
        }
    }
}

/// Reads the stamp from a luma plane of `width x height` whose rows are `stride` apart: the
/// picture the pattern drew, after encode and decode, or scaled on a screen. `None` when the
/// picture carries no readable stamp.
pub fn read_stamp(luma: &[u8], width: usize, height: usize, stride: usize) -> Option<Stamp> {
    let geometry = StampGeometry::for_size(width, height)?;
    if stride < width || luma.len() < stride * height.saturating_sub(1) + width {
        return None;
    }
    let exact = (geometry.cell_width as f64, geometry.cell_height as f64);
    if let Some(stamp) = read_cells(luma, width, stride, exact) {
        return Some(stamp);
    }
    // A scaled picture: the cells were a whole number of pixels wide in the original, so
    // here they are up to a few percent narrower than width / 24. Search that range; the
    // check value refuses every wrong guess.
    let widest = width as f64 / STAMP_COLUMNS as f64;
    let row_limit = height as f64 / (STAMP_ROWS * 3) as f64;
    let mut cell = widest;
    while cell >= widest * 0.9 && cell >= 2.0 {
        if let Some(stamp) = read_cells(luma, width, stride, (cell, cell.min(row_limit))) {
            return Some(stamp);
        }
        cell -= 0.1;
    }
    None
}

/// Reads the 96 cells with the given cell size (pixels, possibly fractional).
fn read_cells(
    luma: &[u8],
    width: usize,
    stride: usize,
    (cell_w, cell_h): (f64, f64),
) -> Option<Stamp> {
    let mut bits = [false; STAMP_BITS];
    for (i, bit) in bits.iter_mut().enumerate() {
        let (cell_row, column) = ((i / STAMP_COLUMNS) as f64, (i % STAMP_COLUMNS) as f64);
        // Average the middle half of the cell: edges blur under compression and scaling.
        let x0 = ((column + 0.25) * cell_w) as usize;
        let x1 = (((column + 0.75) * cell_w).ceil() as usize).min(width);
        let y0 = ((cell_row + 0.25) * cell_h) as usize;
        let y1 = ((cell_row + 0.75) * cell_h).ceil() as usize;
        let (mut sum, mut count) = (0u32, 0u32);
        for y in y0..y1 {
            let row = luma.get(y * stride..y * stride + width)?;
            for &px in row.get(x0..x1)? {
                sum += px as u32;
                count += 1;
            }
        }
        let mean = sum / count.max(1);
        // A cell that is neither clearly dark nor clearly bright is not a stamp cell.
        if count == 0 || (80..176).contains(&mean) {
            return None;
        }
        *bit = mean >= 128;
    }
    Stamp::from_bits(&bits)
}

/// Reads the stamp of a whole decoded frame.
pub fn read_frame_stamp(frame: &VideoFrame) -> Option<Stamp> {
    read_stamp(frame.y(), frame.width, frame.height, frame.width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_reads_back_from_the_raw_pattern() {
        let mut pattern = StampedPattern::new(640, 480);
        for i in 0..5u32 {
            let frame = pattern.next_frame(1_700_000_000_123_000 + i as u64 * 33_000);
            let stamp = read_frame_stamp(&frame).expect("stamp"); // test: a panic is the failure
            assert_eq!(stamp.frame_number, i);
            assert_eq!(stamp.capture_time_ms, 1_700_000_000_123 + i as u64 * 33);
        }
    }

    #[test]
    fn a_picture_without_a_stamp_has_none() {
        let grey = VideoFrame::new(320, 240, 0);
        assert_eq!(read_frame_stamp(&grey), None);
        let mut noise = VideoFrame::new(320, 240, 0);
        let mut seed = 12345u32;
        for px in noise.data.iter_mut() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *px = if (seed >> 16) & 1 == 1 { 235 } else { 16 };
        }
        assert_eq!(read_frame_stamp(&noise), None);
    }

    #[test]
    fn a_damaged_stamp_is_refused_by_its_check_value() {
        let mut pattern = StampedPattern::new(320, 240);
        let mut frame = pattern.next_frame(42_000);
        // Flip the first cell.
        let cell = 320 / STAMP_COLUMNS;
        let first = frame.y()[cell / 2 + (cell / 2) * 320];
        let flipped = if first > 128 { LUMA_ZERO } else { LUMA_ONE };
        let (y, _, _) = frame.planes_mut();
        for row in y.chunks_mut(320).take(cell) {
            row[..cell].fill(flipped);
        }
        assert_eq!(read_frame_stamp(&frame), None);
    }

    #[test]
    fn the_stamp_reads_back_from_a_scaled_picture() {
        let mut pattern = StampedPattern::new(640, 480);
        let frame = pattern.next_frame(1_700_000_000_000_000);
        // Nearest-neighbour scale to 874x655, as a window might show it.
        let (w, h) = (874, 655);
        let mut scaled = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                scaled[y * w + x] = frame.y()[(y * 480 / h) * 640 + x * 640 / w];
            }
        }
        let stamp = read_stamp(&scaled, w, h, w).expect("stamp in the scaled picture"); // test: a panic is the failure
        assert_eq!(stamp.capture_time_ms, 1_700_000_000_000);
    }

    #[test]
    fn tiny_and_odd_sizes_do_not_panic() {
        for (w, h) in [(2, 2), (17, 9), (49, 25), (161, 121), (1, 1)] {
            let mut pattern = StampedPattern::new(w, h);
            let frame = pattern.next_frame(1000);
            let _ = read_frame_stamp(&frame);
        }
    }
}
