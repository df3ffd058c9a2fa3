//! A picture laid out as cameras deliver them: YUYV (4:2:2 packed), NV12 (4:2:0 with
//! interleaved chroma) and MJPEG (JPEG at quality 85, a webcam's usual). The camera
//! conversions' unit tests and `camera-bench` share these (included by `#[path]`).

use super::VideoFrame;

/// YUYV: each chroma row serves two luma rows.
pub fn yuyv_of(frame: &VideoFrame) -> Vec<u8> {
    let (w, h) = (frame.width, frame.height);
    let mut out = Vec::with_capacity(w * h * 2);
    for row in 0..h {
        for pair in 0..w / 2 {
            let c = (row / 2) * (w / 2) + pair;
            out.extend_from_slice(&[
                frame.y()[row * w + pair * 2],
                frame.u()[c],
                frame.y()[row * w + pair * 2 + 1],
                frame.v()[c],
            ]);
        }
    }
    out
}

pub fn nv12_of(frame: &VideoFrame) -> Vec<u8> {
    let mut out = frame.y().to_vec();
    for (u, v) in frame.u().iter().zip(frame.v()) {
        out.extend_from_slice(&[*u, *v]);
    }
    out
}

/// The picture as RGB (BT.601, limited range), then JPEG.
pub fn jpeg_of(frame: &VideoFrame) -> Vec<u8> {
    let (w, h) = (frame.width, frame.height);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for col in 0..w {
            let y = frame.y()[row * w + col] as f32 - 16.0;
            let c = (row / 2) * (w / 2) + col / 2;
            let (u, v) = (frame.u()[c] as f32 - 128.0, frame.v()[c] as f32 - 128.0);
            let px = |x: f32| x.clamp(0.0, 255.0) as u8;
            rgb.extend_from_slice(&[
                px(1.164 * y + 1.596 * v),
                px(1.164 * y - 0.392 * u - 0.813 * v),
                px(1.164 * y + 2.017 * u),
            ]);
        }
    }
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 85)
        .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .expect("a JPEG of the picture");
    jpeg
}
