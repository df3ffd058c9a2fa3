//! The call benchmark: loopback calls between two `duet call` processes at 320x240, 640x480
//! and 1280x720 @ 30 fps, and the same call between two headless Chromium pages (fed Duet's
//! stamped pattern as their fake camera, stamps read back in the page), then one table:
//! video latency from the stamps, CPU of each side's process tree, peak memory, setup time,
//! Duet against Chromium and the ratio.
//!
//! Run: `cargo build --bins --examples && target/debug/examples/call-bench [--seconds 30]`.
//! The Chromium half runs inside a network namespace with only `lo` (it needs root, like the
//! tests); without one it is left out and the table says so.

#[path = "../tests/common/chromium.rs"]
mod chromium;

use chromium::{Chromium, fake_media};
use duet::call::CallSummary;
use duet::call::pipeline::MediaSettings;
use duet::call::summary::Percentiles;
use duet::loopback::{LoopbackOptions, run_loopback, scratch_dir};
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

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

/// One side of a call, as the table shows it.
#[derive(Default, Clone)]
struct Side {
    cpu_seconds: f64,
    call_seconds: f64,
    memory_mb: f64,
    setup_ms: Option<f64>,
    fps: Option<f64>,
}

struct Run {
    latency: Option<Percentiles>,
    sides: [Side; 2],
}

fn duet_side(s: &CallSummary) -> Side {
    Side {
        cpu_seconds: s.process.cpu_seconds.unwrap_or(0.0),
        call_seconds: s.connected_seconds,
        memory_mb: s.process.peak_rss_mb.unwrap_or(0.0),
        setup_ms: s.first_frame_ms,
        fps: s.video_received.fps,
    }
}

fn run_duet(duet: &Path, case: &Case, seconds: f64) -> Result<Run, String> {
    let options = LoopbackOptions {
        duet: duet.to_owned(),
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
    let result = run_loopback(&options).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&options.work_dir);
    let (a, b) = (&result.offerer, &result.answerer);
    // Both directions' stamps pooled: the median of all frames, as for Chromium.
    let mut latencies = Vec::new();
    for s in [a, b] {
        if let Some(p) = s.video_received.latency_ms {
            latencies.push(p);
        }
    }
    let latency = match latencies.as_slice() {
        [x, y] => Some(Percentiles {
            median: (x.median + y.median) / 2.0,
            p95: x.p95.max(y.p95),
            count: x.count + y.count,
        }),
        _ => None,
    };
    Ok(Run {
        latency,
        sides: [duet_side(a), duet_side(b)],
    })
}

/// A `duet signal` serving the page, on a free loopback port.
fn start_signal(duet: &Path) -> Result<(std::process::Child, u16), String> {
    let mut child = Command::new(duet)
        .args(["signal", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("duet signal: {e}"))?;
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
    out.read_line(&mut line).map_err(|e| e.to_string())?;
    let port = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no port in {line:?}"))?;
    Ok((child, port))
}

/// (frame number, wall-clock ms) pairs from the page.
fn frames(value: &Value) -> Vec<(u64, f64)> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| Some((pair[0].as_u64()?, pair[1].as_f64()?)))
        .collect()
}

/// Capture-to-presented latency of each received frame: the receiver's time minus the
/// sender's capture time of the same frame number (the latest capture before it: the camera
/// file loops every 4 s).
fn match_latencies(sent: &[(u64, f64)], received: &[(u64, f64)]) -> Vec<f64> {
    received
        .iter()
        .filter_map(|&(frame, at)| {
            sent.iter()
                .filter(|&&(f, captured)| f == frame && captured <= at && at - captured < 2000.0)
                .map(|&(_, captured)| at - captured)
                .reduce(f64::min)
        })
        .collect()
}

/// Frames per second over the span of the received frames.
fn received_fps(received: &[(u64, f64)]) -> Option<f64> {
    let (first, last) = (received.first()?.1, received.last()?.1);
    (received.len() > 1 && last > first)
        .then(|| (received.len() - 1) as f64 * 1000.0 / (last - first))
}

fn run_chromium(duet: &Path, case: &Case, seconds: f64) -> Result<Run, String> {
    let dir = scratch_dir("bench-chromium");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let size = format!("{}x{}", case.width, case.height);
    let (camera_a, tone_a) = fake_media(duet, &dir, &size, 440);
    let (camera_b, tone_b) = fake_media(duet, &dir, &size, 660);
    let (mut signal, port) = start_signal(duet)?;
    let url = format!(
        "http://127.0.0.1:{port}/?audio=raw&size={size}&kbps={}#bench-{size}",
        case.kbps
    );
    let a = Chromium::launch(&url, &camera_a, &tone_a, &dir);
    let mut page_a = a.page();
    page_a.wait_for("duet.state === 'waiting'", Duration::from_secs(30));
    let b = Chromium::launch(&url, &camera_b, &tone_b, &dir);
    let mut page_b = b.page();
    for page in [&mut page_a, &mut page_b] {
        page.wait_for("duet.state === 'connected'", Duration::from_secs(30));
    }
    let cpu_start = [a.cpu_seconds(), b.cpu_seconds()];
    let started = Instant::now();
    let mut peak = [0.0f64; 2];
    while started.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(500));
        peak[0] = peak[0].max(a.pss_mb());
        peak[1] = peak[1].max(b.pss_mb());
    }
    let call_seconds = started.elapsed().as_secs_f64();
    let cpu = [
        a.cpu_seconds() - cpu_start[0],
        b.cpu_seconds() - cpu_start[1],
    ];
    let collect =
        "({sent: duet.localFrames, received: duet.stamps.frames, timeline: duet.timeline})";
    let (data_a, data_b) = (page_a.eval(collect), page_b.eval(collect));
    page_a.eval("duet.hangUp()");
    let _ = signal.kill();
    let _ = signal.wait();
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);

    let mut latencies = match_latencies(&frames(&data_a["sent"]), &frames(&data_b["received"]));
    latencies.extend(match_latencies(
        &frames(&data_b["sent"]),
        &frames(&data_a["received"]),
    ));
    let side = |data: &Value, i: usize| Side {
        cpu_seconds: cpu[i],
        call_seconds,
        memory_mb: peak[i],
        setup_ms: data["timeline"]["firstFrame"]
            .as_f64()
            .zip(data["timeline"]["answerApplied"].as_f64())
            .map(|(first, applied)| first - applied),
        fps: received_fps(&frames(&data["received"])),
    };
    Ok(Run {
        latency: Percentiles::of(&latencies),
        sides: [side(&data_a, 0), side(&data_b, 1)],
    })
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn ratio(chromium: Option<f64>, duet: Option<f64>) -> String {
    match (chromium, duet) {
        (Some(c), Some(d)) if d > 0.0 => format!("{:.1}x", c / d),
        _ => "-".into(),
    }
}

fn mean(sides: &[Side; 2], f: impl Fn(&Side) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = sides.iter().filter_map(f).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn print_table(seconds: f64, results: &[(String, Run, Option<Run>)], chromium_note: &str) {
    println!(
        "Same call, two ends on this machine: H.264 42e01f + Opus, 30 fps, {seconds} s per size."
    );
    println!(
        "Duet: two `duet call` processes. Chromium: two headless Chromium pages fed Duet's pattern."
    );
    println!(
        "Latency: capture to decoded (Duet) / to presented for compositing (Chromium), ms, both"
    );
    println!("directions pooled. CPU: % of one core per side over the call (Duet: whole process");
    println!(
        "lifetime; Chromium: its whole process tree during the call). Memory: peak per side, MB"
    );
    println!(
        "(Duet: peak RSS of its one process; Chromium: peak PSS of its process tree). Setup: answer"
    );
    println!("applied to first remote frame, ms. Ratio: Chromium / Duet.{chromium_note}");
    println!();
    println!("| size      | measure            |     Duet | Chromium |  ratio |");
    println!("|-----------|--------------------|----------|----------|--------|");
    for (size, duet, chromium) in results {
        let rows: [(&str, Option<f64>, Option<f64>); 6] = [
            (
                "video latency p50",
                duet.latency.map(|p| p.median),
                chromium.as_ref().and_then(|c| c.latency.map(|p| p.median)),
            ),
            (
                "video latency p95",
                duet.latency.map(|p| p.p95),
                chromium.as_ref().and_then(|c| c.latency.map(|p| p.p95)),
            ),
            (
                "CPU % per side",
                mean(&duet.sides, |s| {
                    Some(100.0 * s.cpu_seconds / s.call_seconds.max(0.1))
                }),
                chromium.as_ref().and_then(|c| {
                    mean(&c.sides, |s| {
                        Some(100.0 * s.cpu_seconds / s.call_seconds.max(0.1))
                    })
                }),
            ),
            (
                "memory MB per side",
                mean(&duet.sides, |s| Some(s.memory_mb)),
                chromium
                    .as_ref()
                    .and_then(|c| mean(&c.sides, |s| Some(s.memory_mb))),
            ),
            (
                "setup ms",
                mean(&duet.sides, |s| s.setup_ms),
                chromium
                    .as_ref()
                    .and_then(|c| mean(&c.sides, |s| s.setup_ms)),
            ),
            (
                "received fps",
                mean(&duet.sides, |s| s.fps),
                chromium.as_ref().and_then(|c| mean(&c.sides, |s| s.fps)),
            ),
        ];
        for (measure, d, c) in rows {
            println!(
                "| {size:<9} | {measure:<18} | {:>8} | {:>8} | {:>6} |",
                fmt(d),
                fmt(c),
                ratio(c, d)
            );
        }
    }
}

fn main() -> ExitCode {
    let mut seconds = 30.0;
    let mut with_chromium = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => match args.next().and_then(|v| v.parse::<f64>().ok()) {
                Some(s) if s > 0.0 => seconds = s,
                _ => return usage(),
            },
            "--no-chromium" => with_chromium = false,
            _ => return usage(),
        }
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("call-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    // target/debug/examples/call-bench -> target/debug/duet
    let duet: PathBuf = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(format!("duet{}", std::env::consts::EXE_SUFFIX)))
        .unwrap_or_default();
    if !duet.exists() {
        eprintln!(
            "call-bench: {} is missing: run `cargo build --bins --examples` first",
            duet.display()
        );
        return ExitCode::FAILURE;
    }

    // Chromium would pair over any interface it finds: keep the whole run on `lo` of a
    // namespace of its own.
    let mut chromium_note = String::new();
    if with_chromium && std::env::var_os("DUET_BENCH_NETNS").is_none() {
        let status = Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                "ip link set lo up && exec \"$@\"",
                "sh",
            ])
            .arg(&exe)
            .args(std::env::args().skip(1))
            .env("DUET_BENCH_NETNS", "1")
            .status();
        match status {
            Ok(status) if status.success() => return ExitCode::SUCCESS,
            Ok(status) if status.code() != Some(1) => return ExitCode::FAILURE,
            _ => {
                with_chromium = false;
                chromium_note =
                    "\nChromium left out: it needs a network namespace (root and unshare).".into();
            }
        }
    }

    let mut results = Vec::new();
    for case in CASES {
        let size = format!("{}x{}", case.width, case.height);
        eprintln!(
            "call-bench: Duet {size} @ 30 fps, {} kbit/s, {seconds} s ...",
            case.kbps
        );
        let duet_run = match run_duet(&duet, &case, seconds) {
            Ok(run) => run,
            Err(e) => {
                eprintln!("call-bench: Duet {size}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let chromium_run = if with_chromium {
            eprintln!("call-bench: Chromium {size} ...");
            match run_chromium(&duet, &case, seconds) {
                Ok(run) => Some(run),
                Err(e) => {
                    eprintln!("call-bench: Chromium {size}: {e}");
                    None
                }
            }
        } else {
            None
        };
        results.push((size, duet_run, chromium_run));
    }
    print_table(seconds, &results, &chromium_note);
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: call-bench [--seconds N] [--no-chromium]   (N > 0, default 30)");
    ExitCode::from(2)
}
