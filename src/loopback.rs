//! A whole call between two `duet call` processes on this machine, tokens passed through
//! pipes, every candidate on 127.0.0.1. It is the main job of a fresh install, the
//! benchmark's unit of measure, and what the end-to-end tests run.

use crate::call::CallSummary;
use crate::call::pipeline::MediaSettings;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoopbackOptions {
    /// The `duet` binary to start twice.
    pub duet: PathBuf,
    pub media: MediaSettings,
    pub duration: Duration,
    /// Where the two processes write their logs and stats.
    pub work_dir: PathBuf,
}

/// Both sides' summaries.
#[derive(Debug)]
pub struct LoopbackResult {
    pub offerer: CallSummary,
    pub answerer: CallSummary,
}

/// A loopback call failed; the message says where and includes the processes' logs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoopbackError(String);

fn child_args(options: &LoopbackOptions, role: &str, tone: u32) -> Vec<String> {
    let media = &options.media;
    let mut args = vec![
        "call".to_owned(),
        format!("--{role}"),
        "--bind".into(),
        "127.0.0.1".into(),
        "--size".into(),
        format!("{}x{}", media.width, media.height),
        "--fps".into(),
        media.fps.to_string(),
        "--bitrate".into(),
        (media.video_bitrate_bps / 1000).to_string(),
        "--tone".into(),
        tone.to_string(),
        "--stats-json".into(),
        options
            .work_dir
            .join(format!("{role}.json"))
            .display()
            .to_string(),
    ];
    if role == "offer" {
        args.push("--duration".into());
        args.push(format!("{:.3}", options.duration.as_secs_f64()));
    }
    if media.camera != crate::call::pipeline::VideoSource::Pattern {
        args.push("--camera".into());
        args.push(media.camera.setting());
    }
    if !media.send_video {
        args.push("--no-video".into());
    }
    if !media.send_audio {
        args.push("--no-audio".into());
    }
    args
}

fn spawn(options: &LoopbackOptions, role: &str, tone: u32) -> Result<Child, LoopbackError> {
    let log = std::fs::File::create(options.work_dir.join(format!("{role}.log"))).map_err(|e| {
        LoopbackError(format!(
            "cannot write to {}: {e}",
            options.work_dir.display()
        ))
    })?;
    Command::new(&options.duet)
        .args(child_args(options, role, tone))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| LoopbackError(format!("cannot start {}: {e}", options.duet.display())))
}

/// Reads the token line a child prints, then keeps draining its output (the summary) so it
/// never blocks on a full pipe.
fn first_line(stdout: ChildStdout, timeout: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    // A token, not the summary of a call that failed before it could offer.
    rx.recv_timeout(timeout)
        .ok()
        .filter(|l| l.starts_with("eyJ"))
}

fn wait_with_deadline(child: &mut Child, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return false,
        }
    }
    false
}

/// Whether `child` is still running (an error to ask counts as not).
fn running(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

/// Shows `watch` the two pids every `every` while both children run, so a caller can
/// measure them from outside (memory, CPU) over the call; returns when either has ended
/// or at the deadline, whichever comes first.
fn watch_both(
    offerer: &mut Child,
    answerer: &mut Child,
    deadline: Instant,
    every: Duration,
    watch: &mut dyn FnMut(&[u32]),
) {
    let pids = [offerer.id(), answerer.id()];
    let mut next = Instant::now();
    while Instant::now() < deadline && running(offerer) && running(answerer) {
        if Instant::now() >= next {
            watch(&pids);
            next = Instant::now() + every;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_tail(dir: &Path, role: &str) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(dir.join(format!("{role}.log"))) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n  ");
    format!("{role} log:\n  {tail}")
}

fn read_summary(dir: &Path, role: &str) -> Result<CallSummary, LoopbackError> {
    let path = dir.join(format!("{role}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        LoopbackError(format!(
            "no stats from the {role} side ({e})\n{}",
            log_tail(dir, role)
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| LoopbackError(format!("unreadable stats in {}: {e}", path.display())))
}

/// Runs the call and returns both summaries.
pub fn run_loopback(options: &LoopbackOptions) -> Result<LoopbackResult, LoopbackError> {
    run_loopback_watching(options, Duration::from_secs(1), &mut |_| {})
}

/// Runs the call like [`run_loopback`], and while both processes run (from the moment each
/// has the other's token until the first of them exits) calls `watch` with their pids,
/// `[offerer, answerer]`, about every `every` (at least 50 ms apart): the benchmark samples
/// their memory from outside, as it does a browser's.
pub fn run_loopback_watching(
    options: &LoopbackOptions,
    every: Duration,
    watch: &mut dyn FnMut(&[u32]),
) -> Result<LoopbackResult, LoopbackError> {
    let every = every.max(Duration::from_millis(50));
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|e| LoopbackError(format!("cannot create {}: {e}", options.work_dir.display())))?;
    let token_wait = Duration::from_secs(30);
    let mut offerer = spawn(options, "offer", 440)?;
    let mut answerer = None;
    let result = (|| {
        let offer = offerer
            .stdout
            .take()
            .and_then(|out| first_line(out, token_wait))
            .ok_or_else(|| {
                LoopbackError(format!(
                    "the offering side printed no token\n{}",
                    log_tail(&options.work_dir, "offer")
                ))
            })?;
        let mut child = spawn(options, "answer", 660)?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(offer.as_bytes());
        }
        let answer = child
            .stdout
            .take()
            .and_then(|out| first_line(out, token_wait));
        answerer = Some(child);
        let answer = answer.ok_or_else(|| {
            LoopbackError(format!(
                "the answering side printed no token\n{}",
                log_tail(&options.work_dir, "answer")
            ))
        })?;
        if let Some(mut stdin) = offerer.stdin.take() {
            let _ = stdin.write_all(answer.as_bytes());
        }
        let deadline = Instant::now() + options.duration + Duration::from_secs(60);
        if let Some(child) = answerer.as_mut() {
            watch_both(&mut offerer, child, deadline, every, watch);
        }
        let offer_done = wait_with_deadline(&mut offerer, deadline);
        let answer_done = answerer
            .as_mut()
            .is_some_and(|c| wait_with_deadline(c, deadline));
        if !(offer_done && answer_done) {
            return Err(LoopbackError(format!(
                "the call did not end in time\n{}\n{}",
                log_tail(&options.work_dir, "offer"),
                log_tail(&options.work_dir, "answer")
            )));
        }
        Ok(LoopbackResult {
            offerer: read_summary(&options.work_dir, "offer")?,
            answerer: read_summary(&options.work_dir, "answer")?,
        })
    })();
    for child in std::iter::once(&mut offerer).chain(answerer.as_mut()) {
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    result
}

/// A fresh scratch directory for one loopback run.
pub fn scratch_dir(label: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("duet-{label}-{}-{nanos}", std::process::id()))
}
