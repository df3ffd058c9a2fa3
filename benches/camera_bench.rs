//! The camera benchmark: what turning a camera's pictures into I420 costs, per picture and
//! as a share of one core at 30 fps, for each layout a camera delivers (YUYV, NV12, MJPEG)
//! at 640x480 and 1280x720. The pictures are the stamped pattern laid out as a camera lays
//! it out (JPEG at quality 85, a webcam's usual). No camera is needed.
//!
//! Run: `cargo build --examples && target/debug/examples/camera-bench [--pictures 200]`.

#[path = "../tests/common/camera_layouts.rs"]
mod layouts;

use duet::media::camera::{PixelLayout, to_i420};
use duet::media::frame::VideoFrame;
use duet::media::pattern::{StampedPattern, read_frame_stamp};
use layouts::{jpeg_of, nv12_of, yuyv_of};
use std::process::ExitCode;
use std::time::Instant;

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
