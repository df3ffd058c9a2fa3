//! Helpers shared by the integration tests: the built `duet` binary and a scratch directory.
#![allow(dead_code)]

pub mod chromium;
pub mod pulse;

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
        use std::io::BufRead;
        let mut child = std::process::Command::new(duet())
            .args(["signal", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("duet signal");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("listening line");
        let port = line
            .split("://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Self { child, port }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Resident memory of the server process, MB.
    pub fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
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
    use std::io::{BufRead, BufReader, Write};
    let mut token = String::new();
    BufReader::new(
        from.stdout
            .take()
            .expect("stdout of the side with the token"),
    )
    .read_line(&mut token)
    .unwrap_or_else(|e| panic!("reading the {what}: {e}"));
    to.stdin
        .take()
        .expect("stdin of the side that takes the token")
        .write_all(token.as_bytes())
        .unwrap_or_else(|e| panic!("handing over the {what}: {e}"));
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
