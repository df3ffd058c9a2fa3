//! The camera benchmark: what turning a camera's pictures into I420 costs, per picture and
//! as a share of one core at 30 fps, for each layout a camera delivers (YUYV, NV12, MJPEG)
//! at 640x480 and 1280x720. The pictures are the stamped pattern laid out as a camera lays
//! it out (JPEG at quality 85, a webcam's usual). No camera is needed.
//!
//! Run: `cargo build --examples && target/debug/examples/camera-bench [--pictures 200]`.

use duet::media::camera::{PixelLayout, to_i420};
use duet::media::frame::VideoFrame;
use duet::media::pattern::{StampedPattern, read_frame_stamp};
use std::process::ExitCode;
use std::time::Instant;

fn yuyv_of(frame: &VideoFrame) -> Vec<u8> {
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

fn nv12_of(frame: &VideoFrame) -> Vec<u8> {
    let mut out = frame.y().to_vec();
    for (u, v) in frame.u().iter().zip(frame.v()) {
        out.extend_from_slice(&[*u, *v]);
    }
    out
}

fn jpeg_of(frame: &VideoFrame) -> Vec<u8> {
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
    if let Err(e) = jpeg_encoder::Encoder::new(&mut jpeg, 85).encode(
        &rgb,
        w as u16,
        h as u16,
        jpeg_encoder::ColorType::Rgb,
    ) {
        eprintln!("camera-bench: making the JPEG: {e}");
    }
    jpeg
}

fn main() -> ExitCode {
    let mut pictures = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--pictures", Some(n)) if n > 0 => pictures = n,
            _ => {
                eprintln!("usage: camera-bench [--pictures N]");
                return ExitCode::from(2);
            }
        }
    }
    println!("| size | layout | bytes in | median ms | p95 ms | % of a core at 30 fps | stamp |");
    println!("|---|---|---|---|---|---|---|");
    for (width, height) in [(640, 480), (1280, 720)] {
        let reference = StampedPattern::new(width, height).next_frame(1_000_000);
        for (layout, data) in [
            (PixelLayout::Nv12, nv12_of(&reference)),
            (PixelLayout::Yuyv, yuyv_of(&reference)),
            (PixelLayout::Mjpeg, jpeg_of(&reference)),
        ] {
            let mut times = Vec::with_capacity(pictures);
            let mut stamp = false;
            for _ in 0..pictures {
                let start = Instant::now();
                let converted = to_i420(layout, &data, width, height, 0);
                times.push(start.elapsed().as_secs_f64() * 1000.0);
                stamp = converted.ok().and_then(|f| read_frame_stamp(&f)).is_some();
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
            println!(
                "| {width}x{height} | {layout:?} | {} | {median:.2} | {p95:.2} | {:.1} | {} |",
                data.len(),
                median * 30.0 / 10.0,
                if stamp { "reads back" } else { "LOST" }
            );
        }
    }
    ExitCode::SUCCESS
}
