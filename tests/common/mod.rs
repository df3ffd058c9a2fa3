//! Helpers shared by the integration tests: the built `duet` binary and a scratch directory.
#![allow(dead_code)]

pub mod chromium;
pub mod hosts;
pub mod pulse;
pub mod relay;

use std::path::PathBuf;

pub fn duet() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_duet"))
}

pub fn scratch(label: &str) -> PathBuf {
    let dir = duet::loopback::scratch_dir(label);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A `duet signal` server on a free port of 127.0.0.1, stopped when dropped.
pub struct SignalServer {
    pub child: std::process::Child,
    pub port: u16,
}

impl SignalServer {
    pub fn start(extra: &[&str]) -> Self {
        let mut child = std::process::Command::new(duet())
            .args(["signal", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("duet signal");
        let line = first_line_within(
            child.stdout.take().expect("stdout"),
            std::time::Duration::from_secs(20),
            "listening line from duet signal",
        );
        let port = line
            .split("://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Self { child, port }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Resident memory of the server process, MB; fails the test when it cannot be read
    /// (a memory check that reads nothing must not pass).
    pub fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or_else(|| panic!("cannot read the server's memory: {status:?}"))
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server and returns what it wrote to stderr.
    pub fn stop(mut self) -> String {
        use std::io::Read;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for SignalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `duet call --room` process; its stderr lines arrive on `lines`.
pub struct RoomCall {
    pub child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    pub stats: PathBuf,
}

impl RoomCall {
    pub fn start(server: &str, room: &str, stats: PathBuf, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(duet())
            .args([
                "call",
                "--room",
                room,
                "--server",
                server,
                "--bind",
                "127.0.0.1",
            ])
            .args(["--size", "320x240", "--bitrate", "300"])
            .arg("--stats-json")
            .arg(&stats)
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("duet call --room");
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            stats,
        }
    }

    /// Waits until a stderr line contains `needle`; returns every line seen so far.
    pub fn wait_for(&self, needle: &str, timeout: std::time::Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    seen.push(line);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {needle:?} within {timeout:?}; saw {seen:#?}");
    }

    /// Waits for the process to end (killing it after `timeout`); returns the exit code.
    pub fn wait(&mut self, timeout: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("duet call did not end within {timeout:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn summary(&self) -> duet::call::CallSummary {
        let text = std::fs::read_to_string(&self.stats).expect("stats file");
        serde_json::from_str(&text).expect("stats json")
    }
}

impl Drop for RoomCall {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hands `offerer`'s offer token (its first line on stdout) to `answerer`, and the answer
/// back: a paste call between two `duet call` processes started with piped stdin/stdout.
pub fn exchange_tokens(offerer: &mut std::process::Child, answerer: &mut std::process::Child) {
    pass_token(offerer, answerer, "offer");
    pass_token(answerer, offerer, "answer");
}

/// The first line `from` prints, written to `to`'s stdin (which is closed after it).
fn pass_token(from: &mut std::process::Child, to: &mut std::process::Child, what: &str) {
    use std::io::Write;
    let token = first_line_within(
        from.stdout
            .take()
            .expect("stdout of the side with the token"),
        std::time::Duration::from_secs(30),
        &format!("{what} token"),
    );
    to.stdin
        .take()
        .expect("stdin of the side that takes the token")
        .write_all(token.as_bytes())
        .unwrap_or_else(|e| panic!("handing over the {what}: {e}"));
}

/// The first line `out` gives (a token, a listening address), waited for at most
/// `timeout`; what follows is drained on a thread of its own so the writer never blocks.
pub fn first_line_within(
    out: impl std::io::Read + Send + 'static,
    timeout: std::time::Duration,
    waiting_for: &str,
) -> String {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(out);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("no {waiting_for} within {timeout:?}"))
}

/// Waits for `child` to end; after `timeout` kills it and fails, naming what was awaited.
pub fn wait_for_exit(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
    waiting_for: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("waited {timeout:?} for {waiting_for}; killed it");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `command` to its end with its output captured; after `timeout` kills it and fails,
/// naming what was awaited and showing what it printed so far.
pub fn output_within(
    command: &mut std::process::Command,
    timeout: std::time::Duration,
    waiting_for: &str,
) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    // A group of its own, so that a timeout ends whatever it started too (which would
    // otherwise hold the pipes open).
    let child = command
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {waiting_for}: {e}"));
    wait_with_output_within(child, timeout, waiting_for)
}

/// [`std::process::Child::wait_with_output`], failing after `timeout` (the child, and its
/// process group when it leads one, killed), naming what was awaited.
pub fn wait_with_output_within(
    mut child: std::process::Child,
    timeout: std::time::Duration,
    waiting_for: &str,
) -> std::process::Output {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(std::process::Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "waited {timeout:?} for {waiting_for}; killed it. It said:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Loads an nftables script through `nft` (the command given, e.g. `nft` itself or
/// `ip netns exec HOST nft`); fails the test if nft refuses it or does not answer in 10 s.
pub fn load_nft(nft: &mut std::process::Command, script: &str) {
    use std::io::Write;
    let mut child = nft
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft (nftables; scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("rules");
    let status = wait_for_exit(&mut child, std::time::Duration::from_secs(10), "nft");
    assert!(status.success(), "nft refused: {script}");
}

/// Waits for each process to end, killing it and failing after `timeout` in all.
pub fn wait_all(children: &mut [&mut std::process::Child], timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    for child in children.iter_mut() {
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("a duet process did not end within {timeout:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// What a person would call a good picture on a clean loopback: at least 95 % of the
/// pictures the far side captured were decoded, at 27 fps or more, every one stamped and in
/// order, up to the end of the call (the pictures of the last half second, which the
/// hang-up cuts off, excepted), and the receiver never had to ask for a keyframe (the first
/// picture is one).
pub fn assert_clean_video(
    receiver: &duet::call::CallSummary,
    sender: &duet::call::CallSummary,
    side: &str,
) {
    assert_whole_video(receiver, sender, side, 0);
}

/// [`assert_clean_video`], with at most `keyframe_requests` keyframe requests allowed.
pub fn assert_whole_video(
    receiver: &duet::call::CallSummary,
    sender: &duet::call::CallSummary,
    side: &str,
    keyframe_requests: u64,
) {
    let rx = &receiver.video_received;
    let captured = sender.video_sent.frames_captured;
    assert!(
        captured > 60,
        "{side}: too few frames captured to judge: {sender:#?}"
    );
    // The pattern numbers its pictures from 0 as they are captured.
    let (first, last) = rx
        .first_stamp_frame
        .zip(rx.last_stamp_frame)
        .unwrap_or_else(|| panic!("{side} read no stamp: {rx:#?}"));
    let until_last = last as u64 + 1;
    assert!(
        first <= 3 && captured.saturating_sub(until_last) <= 15,
        "{side}'s pictures ran from {first} to {last} of the {captured} the far side captured"
    );
    assert!(
        rx.frames_decoded * 100 >= until_last * 95,
        "{side} decoded {} of the {until_last} pictures the far side captured up to its last (sent {}, dropped by the sender {}, dropped before decoding {}, decode errors {}, assembled {})",
        rx.frames_decoded,
        sender.video_sent.frames_sent,
        sender.video_sent.frames_dropped,
        rx.frames_dropped_before_decode,
        rx.decode_errors,
        rx.frames_assembled,
    );
    let fps = rx
        .fps
        .unwrap_or_else(|| panic!("{side}: no frame rate: {rx:#?}"));
    assert!(fps >= 27.0, "{side} saw {fps:.1} fps of 30");
    assert_eq!(
        rx.stamps_read, rx.frames_decoded,
        "{side}: a decoded frame had no readable stamp"
    );
    assert_eq!(rx.stamps_out_of_order, 0, "{side}: stamps out of order");
    assert!(
        rx.keyframe_requests_sent <= keyframe_requests,
        "{side} asked for {} keyframes on a clean call: {rx:#?}",
        rx.keyframe_requests_sent
    );
    let latency = rx
        .latency_ms
        .unwrap_or_else(|| panic!("{side}: no latency"));
    assert!(
        latency.median > 0.0 && latency.median < 100.0,
        "{side}: {latency:?}"
    );
}

/// The far side's tone, at its own frequency, for at least 90 % of the connected call.
/// (Its marks' latency means something only when the far side makes the tone live.)
pub fn assert_heard_tone(receiver: &duet::call::CallSummary, hz: f64, side: &str) {
    let heard = receiver
        .audio_received
        .frequency_hz
        .unwrap_or_else(|| panic!("{side} heard no tone: {receiver:#?}"));
    assert!(
        (heard - hz).abs() <= 3.0,
        "{side} heard {heard} Hz, expected {hz}"
    );
    let heard_for = receiver.audio_received.tone_seconds;
    assert!(
        heard_for >= 0.9 * receiver.connected_seconds,
        "{side} heard the tone for {heard_for:.2} s of a {:.2} s call",
        receiver.connected_seconds
    );
}
