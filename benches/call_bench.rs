//! The call benchmark: loopback calls between two `duet call` processes at 320x240, 640x480
//! and 1280x720 @ 30 fps, and the same call between two headless Chromium pages (fed Duet's
//! stamped pattern as their fake camera, stamps read back in the page from received pictures
//! only, as Duet reads them), then one table, Duet against Chromium and the ratio.
//!
//! Both programs are measured alike, each side over its own call from connected to its
//! hang-up: CPU time over that window (Duet's from its summary, measured in the process;
//! Chromium's from its process tree in `/proc`), peak PSS of the process tree sampled from
//! outside every 500 ms, and the median and p95 of every received picture's latency, both
//! directions pooled. A value that could not be read is printed as unknown, never as 0.
//!
//! Run: `cargo build --bins --examples && target/debug/examples/call-bench [--seconds 30]`.
//! Unless `--no-chromium`, the whole run moves into a network namespace with only `lo`
//! (Chromium would pair over any interface it finds); making one needs root. Where none can
//! be made, Chromium is left out and the table says so; a run that fails inside one fails.

#[path = "../tests/common/chromium.rs"]
mod chromium;

use chromium::{
    Chromium, cpu_seconds, fake_media, in_loopback_only_namespace, process_tree, pss_mb,
};
use duet::call::CallSummary;
use duet::call::pipeline::MediaSettings;
use duet::call::summary::Percentiles;
use duet::loopback::{LoopbackOptions, run_loopback_watching, scratch_dir};
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

/// How often memory is sampled, for both programs.
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Set in the copy of the benchmark that runs inside its network namespace.
const INSIDE_NAMESPACE: &str = "DUET_BENCH_NETNS";

/// The codec and size of the video one side decoded, as far as it is known.
#[derive(Clone, Default, PartialEq)]
struct Decoded {
    codec: Option<String>,
    size: Option<(u64, u64)>,
}

impl std::fmt::Display for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = self
            .size
            .map_or_else(|| "unknown".to_owned(), |(w, h)| format!("{w}x{h}"));
        match &self.codec {
            Some(codec) => write!(f, "{codec} {size}"),
            None => write!(f, "{size}"),
        }
    }
}

/// One side of a call, as the table shows it.
#[derive(Default, Clone)]
struct Side {
    /// CPU seconds from connected to hang-up.
    cpu_seconds: Option<f64>,
    /// How long that was.
    window_seconds: Option<f64>,
    peak_pss_mb: Option<f64>,
    setup_ms: Option<f64>,
    fps: Option<f64>,
    decoded: Decoded,
}

impl Side {
    fn cpu_percent(&self) -> Option<f64> {
        let (cpu, window) = self.cpu_seconds.zip(self.window_seconds)?;
        (window > 0.0).then(|| 100.0 * cpu / window)
    }
}

struct Run {
    latency: Option<Percentiles>,
    sides: [Side; 2],
}

/// The higher of a peak so far and a new sample; a sample that could not be read changes
/// nothing (the process may be between exit and being waited for).
fn higher(peak: Option<f64>, sample: Option<f64>) -> Option<f64> {
    match (peak, sample) {
        (Some(p), Some(s)) => Some(p.max(s)),
        (p, s) => p.or(s),
    }
}

/// One Duet side: its own summary, and the far side's (whose sent codec is what this side
/// decoded).
fn duet_side(
    s: &CallSummary,
    far: &CallSummary,
    peak_pss_mb: Option<f64>,
    largest_tree: usize,
) -> Side {
    let received = &s.video_received;
    Side {
        // Measured inside the one process: known only if that process was the whole tree.
        cpu_seconds: s
            .process
            .cpu_seconds_connected
            .filter(|_| largest_tree == 1),
        window_seconds: (s.connected_seconds > 0.0).then_some(s.connected_seconds),
        peak_pss_mb,
        setup_ms: s.first_frame_ms,
        fps: received.fps,
        decoded: Decoded {
            codec: far
                .video_sent
                .codec
                .as_deref()
                .map(|mime| mime.trim_start_matches("video/").to_owned()),
            size: received
                .width
                .zip(received.height)
                .map(|(w, h)| (w as u64, h as u64)),
        },
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
    let mut peak_pss_mb = [None; 2];
    let mut largest_tree = [0usize; 2];
    let result = run_loopback_watching(&options, MEMORY_SAMPLE_EVERY, &mut |pids| {
        for (i, &pid) in pids.iter().enumerate().take(2) {
            peak_pss_mb[i] = higher(peak_pss_mb[i], pss_mb(pid));
            largest_tree[i] = largest_tree[i].max(process_tree(pid).len());
        }
    });
    let _ = std::fs::remove_dir_all(&options.work_dir);
    let result = result.map_err(|e| e.to_string())?;
    let summaries = [&result.offerer, &result.answerer];
    for (summary, processes) in summaries.iter().zip(largest_tree) {
        if processes != 1 {
            eprintln!(
                "call-bench: the {} `duet call` was seen in /proc as a tree of {processes} \
                 processes, not 1; its CPU, measured in its own process alone, is left unknown",
                summary.role
            );
        }
    }
    // Every picture either side decoded, pooled, as for Chromium.
    let latencies: Vec<f64> = summaries
        .iter()
        .flat_map(|s| &s.video_received.stamped)
        .map(|picture| picture.latency_ms())
        .collect();
    Ok(Run {
        latency: Percentiles::of(&latencies),
        sides: [0, 1].map(|i| {
            duet_side(
                summaries[i],
                summaries[1 - i],
                peak_pss_mb[i],
                largest_tree[i],
            )
        }),
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

/// One received picture as the page recorded it (wall-clock ms).
struct ReceivedPicture {
    /// When the far side captured it, as Chromium's receiver reports; `None` before the
    /// first RTCP sender reports let it tell (see [`count_back_capture_times`]).
    captured: Option<f64>,
    presented: f64,
    rtp_timestamp: Option<u32>,
}

/// The page's `duet.stamps.frames`: `[frame, captured or null, presented, rtp or null]` each.
fn received_pictures(value: &Value) -> Vec<ReceivedPicture> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|picture| {
            Some(ReceivedPicture {
                captured: picture[1].as_f64(),
                presented: picture[2].as_f64()?,
                rtp_timestamp: picture[3].as_u64().and_then(|t| u32::try_from(t).ok()),
            })
        })
        .collect()
}

/// RTP video clock, ticks per millisecond.
const RTP_TICKS_PER_MS: f64 = 90.0;

/// Gives the pictures received before Chromium could tell their capture time (its first
/// RTCP sender reports come a second or two into the call) the capture time counted back
/// from the first picture that has one, along their RTP timestamps: the sender makes those
/// from its capture times on the 90 kHz clock, and the receiver maps them the same way. So
/// the latency covers the whole call, as Duet's does.
fn count_back_capture_times(pictures: &mut [ReceivedPicture]) {
    let Some((captured, rtp)) = pictures
        .iter()
        .find_map(|p| p.captured.zip(p.rtp_timestamp))
    else {
        return;
    };
    for picture in pictures.iter_mut().filter(|p| p.captured.is_none()) {
        if let Some(earlier) = picture.rtp_timestamp {
            // RTP timestamps wrap: the difference is the signed 32-bit distance.
            let ticks_before = rtp.wrapping_sub(earlier) as i32;
            picture.captured = Some(captured - f64::from(ticks_before) / RTP_TICKS_PER_MS);
        }
    }
}

/// Distinct stamped pictures presented per second, over their span.
fn presented_fps(received: &[ReceivedPicture]) -> Option<f64> {
    let (first, last) = (received.first()?.presented, received.last()?.presented);
    (received.len() > 1 && last > first)
        .then(|| (received.len() - 1) as f64 * 1000.0 / (last - first))
}

/// What the page's `duet.stats()` says it decoded.
fn decoded_by_page(stats: &Value) -> Decoded {
    let video = &stats["video"];
    Decoded {
        codec: video["mimeType"]
            .as_str()
            .map(|m| m.trim_start_matches("video/").to_owned()),
        size: video["frameWidth"]
            .as_u64()
            .zip(video["frameHeight"].as_u64()),
    }
}

/// Polls `condition` in the page until it is true or `timeout` passes.
fn page_reaches(page: &mut chromium::Page, condition: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if page.eval(&format!("Boolean({condition})")) == Value::Bool(true) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
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
    let roots = [a.child.id(), b.child.id()];
    let cpu_at_connected = roots.map(cpu_seconds);
    let connected = Instant::now();
    let mut peak_pss_mb = [None; 2];
    while connected.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(MEMORY_SAMPLE_EVERY);
        for (peak, root) in peak_pss_mb.iter_mut().zip(roots) {
            *peak = higher(*peak, pss_mb(root));
        }
    }
    // Each side's window ends at its own hang-up, as Duet's does: A hangs up, B ends on
    // A's bye. Nothing else is asked of the pages until both readings are taken.
    page_a.eval("duet.hangUp()");
    let cpu_at_end_a = cpu_seconds(roots[0]);
    let window_a = connected.elapsed().as_secs_f64();
    if !page_reaches(
        &mut page_b,
        "duet.state === 'ended'",
        Duration::from_secs(5),
    ) {
        eprintln!("call-bench: Chromium {size}: B missed A's bye and is hung up by hand");
        page_b.eval("duet.hangUp()");
    }
    let cpu_at_end_b = cpu_seconds(roots[1]);
    let window_b = connected.elapsed().as_secs_f64();
    // Once ended, `duet.stats()` gives the numbers kept at the hang-up.
    let collect = "duet.stats().then((stats) => \
                   ({received: duet.stamps.frames, timeline: duet.timeline, stats}))";
    let (data_a, data_b) = (page_a.eval(collect), page_b.eval(collect));
    let _ = signal.kill();
    let _ = signal.wait();
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);

    let cpu = [
        cpu_at_connected[0]
            .zip(cpu_at_end_a)
            .map(|(from, to)| to - from),
        cpu_at_connected[1]
            .zip(cpu_at_end_b)
            .map(|(from, to)| to - from),
    ];
    let windows = [window_a, window_b];
    let received = [&data_a, &data_b].map(|data| {
        let mut pictures = received_pictures(&data["received"]);
        count_back_capture_times(&mut pictures);
        pictures
    });
    let latencies: Vec<f64> = received
        .iter()
        .flatten()
        .filter_map(|p| Some(p.presented - p.captured?))
        .collect();
    let without_capture_time = received.iter().flatten().count() - latencies.len();
    if without_capture_time > 0 {
        eprintln!(
            "call-bench: Chromium {size}: {without_capture_time} of {} received pictures \
             had no capture time (none from Chromium, no RTP timestamp to count back on), \
             left out of the latency",
            received.iter().flatten().count()
        );
    }
    let side = |data: &Value, i: usize| Side {
        cpu_seconds: cpu[i],
        window_seconds: Some(windows[i]),
        peak_pss_mb: peak_pss_mb[i],
        setup_ms: data["timeline"]["firstFrame"]
            .as_f64()
            .zip(data["timeline"]["answerApplied"].as_f64())
            .map(|(first, applied)| first - applied),
        fps: presented_fps(&received[i]),
        decoded: decoded_by_page(&data["stats"]),
    };
    Ok(Run {
        latency: Percentiles::of(&latencies),
        sides: [side(&data_a, 0), side(&data_b, 1)],
    })
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "unknown".into(), |v| format!("{v:.1}"))
}

fn ratio(chromium: Option<f64>, duet: Option<f64>) -> String {
    match (chromium, duet) {
        (Some(c), Some(d)) if d > 0.0 => format!("{:.1}x", c / d),
        _ => "unknown".into(),
    }
}

/// The mean of both sides; unknown if either side is.
fn mean(sides: &[Side; 2], f: impl Fn(&Side) -> Option<f64>) -> Option<f64> {
    Some((f(&sides[0])? + f(&sides[1])?) / 2.0)
}

/// What both sides decoded: once if they agree, else each (A / B).
fn decoded_text(sides: &[Side; 2]) -> String {
    if sides[0].decoded == sides[1].decoded {
        sides[0].decoded.to_string()
    } else {
        format!("{} / {}", sides[0].decoded, sides[1].decoded)
    }
}

/// A row of the table: its name, and how to read it from one run.
type Measure = (&'static str, fn(&Run) -> Option<f64>);

const MEASURES: [Measure; 6] = [
    ("video latency p50", |run| run.latency.map(|p| p.median)),
    ("video latency p95", |run| run.latency.map(|p| p.p95)),
    ("CPU % per side", |run| mean(&run.sides, Side::cpu_percent)),
    ("memory MB per side", |run| {
        mean(&run.sides, |s| s.peak_pss_mb)
    }),
    ("setup ms", |run| mean(&run.sides, |s| s.setup_ms)),
    ("received fps", |run| mean(&run.sides, |s| s.fps)),
];

fn print_table(seconds: f64, results: &[(String, Run, Option<Run>)], chromium_note: &str) {
    println!(
        "\
Same call, two ends on this machine: H.264 42e01f offered first + Opus, 30 fps asked, the same
bitrate cap, {seconds} s per size. Duet: two `duet call` processes. Chromium: two headless
Chromium pages fed Duet's pattern as their camera file, stamps read on received pictures only.
Each side is measured over its own call, from connected to its hang-up; the table gives the
mean of the two sides. \"unknown\": could not be read (so is any mean or ratio that needs it);
\"not run\": Chromium was left out or failed (said above the table).
Video latency: median and p95 of every received picture, both directions pooled, ms.
  Duet: from the capture time in the picture's stamp to decoded.
  Chromium: from the capture time its receiver gives the picture (requestVideoFrameCallback
  captureTime: the sender's capture clock carried by RTP timestamps and mapped through RTCP
  sender reports; for the pictures before the first reports, counted back from the first
  known one along the RTP timestamps) to handed to the compositor (presentationTime).
CPU: % of one core per side, CPU time from connected to hang-up over that time (Duet: read in
  its process, checked to have no children; Chromium: its whole process tree, from /proc).
Memory: peak PSS of the side's process tree, MB, sampled from /proc every 500 ms (Duet: while
  both processes run; Chromium: from connected to hang-up).
Setup: answer applied to first remote picture, ms. Received fps: Duet decoded, Chromium
  distinct stamped pictures presented. Decoded: codec (Chromium's stats; Duet: what the far side's
  summary says it negotiated and sent) and size of the last decoded picture. Ratio: Chromium / Duet.{chromium_note}"
    );
    println!();
    println!("| size      | measure            |          Duet |      Chromium |   ratio |");
    println!("|-----------|--------------------|---------------|---------------|---------|");
    for (size, duet, chromium) in results {
        for (measure, value_of) in MEASURES {
            let d = value_of(duet);
            let (c, r) = match chromium {
                Some(chromium) => (fmt(value_of(chromium)), ratio(value_of(chromium), d)),
                None => ("not run".to_owned(), "-".to_owned()),
            };
            println!(
                "| {size:<9} | {measure:<18} | {:>13} | {c:>13} | {r:>7} |",
                fmt(d)
            );
        }
        let c = chromium
            .as_ref()
            .map_or_else(|| "not run".to_owned(), |c| decoded_text(&c.sides));
        println!(
            "| {size:<9} | {:<18} | {:>13} | {c:>13} | {:>7} |",
            "decoded",
            decoded_text(&duet.sides),
            "-"
        );
    }
}

/// Whether this process may make a network namespace (root, or the capability, and unshare).
fn can_make_network_namespace() -> bool {
    Command::new("unshare")
        .args(["--net", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn main() -> ExitCode {
    let mut seconds = 30.0;
    let mut with_chromium = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => match args.next().and_then(|v| v.parse::<f64>().ok()) {
                Some(s) if s > 0.0 && s <= 3600.0 => seconds = s,
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
    // namespace of its own. Asked first whether one can be made at all, so that a failure
    // inside is reported as a failure, not taken for a missing namespace.
    let mut chromium_note = String::new();
    if !with_chromium {
        chromium_note = "\nChromium left out: --no-chromium.".into();
    } else if std::env::var_os(INSIDE_NAMESPACE).is_none() {
        if can_make_network_namespace() {
            let status = in_loopback_only_namespace(&exe)
                .args(std::env::args().skip(1))
                .env(INSIDE_NAMESPACE, "1")
                .status();
            return match status {
                Ok(status) if status.success() => ExitCode::SUCCESS,
                Ok(status) => {
                    eprintln!("call-bench: the run in its network namespace failed ({status})");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("call-bench: unshare: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        with_chromium = false;
        chromium_note = "\nChromium left out: no network namespace could be made (it needs \
                         root, or CAP_SYS_ADMIN, and unshare)."
            .into();
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
                    chromium_note.push_str(&format!("\nChromium {size} failed: {e}"));
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
    eprintln!("usage: call-bench [--seconds N] [--no-chromium]   (0 < N <= 3600, default 30)");
    ExitCode::from(2)
}
