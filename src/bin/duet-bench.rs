//! The call benchmark: loopback calls between two `duet call` processes at 320x240, 640x480
//! and 1280x720 @ 30 fps, each for a while, then one table: video latency from the stamps,
//! audio latency from the tone's marks, CPU and peak memory of each process, and the time
//! from answer applied to the first decoded frame.
//!
//! Run: `cargo build --bins && target/debug/duet-bench [--seconds 30]`.

use duet::call::CallSummary;
use duet::call::pipeline::MediaSettings;
use duet::loopback::{LoopbackOptions, run_loopback, scratch_dir};
use std::process::ExitCode;
use std::time::Duration;

struct Case {
    width: usize,
    height: usize,
    kbps: u32,
}

const CASES: [Case; 3] = [
    Case {
        width: 320,
        height: 240,
        kbps: 400,
    },
    Case {
        width: 640,
        height: 480,
        kbps: 1_000,
    },
    Case {
        width: 1280,
        height: 720,
        kbps: 2_500,
    },
];

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn row(size: &str, side: &str, s: &CallSummary, seconds: f64) -> String {
    let video = s.video_received.latency_ms;
    let audio = s.audio_received.latency_ms;
    let cpu = s.process.cpu_seconds;
    format!(
        "| {size:>9} | {side:<8} | {:>7} | {:>7} | {:>7} | {:>7} | {:>6} | {:>5} | {:>7} | {:>8} | {:>7} |",
        opt(video.map(|p| p.median)),
        opt(video.map(|p| p.p95)),
        opt(audio.map(|p| p.median)),
        opt(audio.map(|p| p.p95)),
        opt(cpu),
        opt(cpu.map(|c| 100.0 * c / seconds)),
        opt(s.process.peak_rss_mb),
        opt(s.first_frame_ms),
        opt(s.video_received.fps),
    )
}

fn main() -> ExitCode {
    let mut seconds = 30.0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (
            arg.as_str(),
            args.next().and_then(|v| v.parse::<f64>().ok()),
        ) {
            ("--seconds", Some(s)) if s > 0.0 => seconds = s,
            _ => {
                eprintln!("usage: duet-bench [--seconds N]   (N > 0, default 30)");
                return ExitCode::from(2);
            }
        }
    }
    let duet = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(format!("duet{}", std::env::consts::EXE_SUFFIX)),
        Err(e) => {
            eprintln!("duet-bench: cannot find myself: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !duet.exists() {
        eprintln!(
            "duet-bench: {} is missing: run `cargo build --bins` first",
            duet.display()
        );
        return ExitCode::FAILURE;
    }
    let mut rows = Vec::new();
    for case in CASES {
        let size = format!("{}x{}", case.width, case.height);
        eprintln!(
            "duet-bench: {size} @ 30 fps, {} kbit/s, {seconds} s ...",
            case.kbps
        );
        let options = LoopbackOptions {
            duet: duet.clone(),
            media: MediaSettings {
                width: case.width,
                height: case.height,
                fps: 30,
                video_bitrate_bps: case.kbps * 1000,
                ..MediaSettings::default()
            },
            duration: Duration::from_secs_f64(seconds),
            work_dir: scratch_dir("bench"),
        };
        match run_loopback(&options) {
            Ok(result) => {
                rows.push(row(
                    &size,
                    "offerer",
                    &result.offerer,
                    result.offerer.connected_seconds,
                ));
                rows.push(row(
                    &size,
                    "answerer",
                    &result.answerer,
                    result.answerer.connected_seconds,
                ));
                let _ = std::fs::remove_dir_all(&options.work_dir);
            }
            Err(e) => {
                eprintln!("duet-bench: {size}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("Loopback calls, two duet processes, 30 fps H.264 + Opus, {seconds} s each.");
    println!("Latency: capture on the far side to decoded on this side (ms). CPU: this process,");
    println!(
        "whole call (s, and % of one core over the connected time). First frame: answer applied"
    );
    println!("to first decoded remote frame (ms).");
    println!();
    println!(
        "|      size | side     | video50 | video95 | audio50 | audio95 | cpu s  | cpu % | rss MB  | 1st fr ms| rx fps  |"
    );
    println!(
        "|-----------|----------|---------|---------|---------|---------|--------|-------|---------|----------|---------|"
    );
    for row in rows {
        println!("{row}");
    }
    ExitCode::SUCCESS
}
