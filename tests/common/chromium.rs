//! Debian's Chromium, headless, as the other peer: launched with fake devices fed by Duet's
//! pattern and tone, driven over the DevTools protocol (a few lines of CDP over a WebSocket),
//! everything on loopback inside a network namespace the test makes for itself. Shared by
//! the tests and the call benchmark (`benches/call_bench.rs`).
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

/// Runs the calling test again inside a fresh network namespace that has only `lo`, so the
/// browser and Duet can reach nothing but each other. Returns true inside (run the test
/// body), false outside (the body ran inside, and passed).
pub fn in_own_network(test_name: &str) -> bool {
    if std::env::var_os("DUET_IN_NETNS").is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let status = Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            "ip link set lo up && exec \"$@\"",
            "sh",
        ])
        .arg(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env("DUET_IN_NETNS", "1")
        .status()
        .expect("unshare (util-linux) and root are needed: run scripts/setup.sh as root");
    assert!(
        status.success(),
        "{test_name} failed inside its network namespace"
    );
    false
}

/// Media files for the browser's fake camera and microphone: Duet's stamped pattern and
/// tone, made by `duet pattern` (`duet` is the binary), looping every 4 s.
pub fn fake_media(duet: &Path, dir: &Path, size: &str, tone: u32) -> (PathBuf, PathBuf) {
    let y4m = dir.join(format!("pattern-{size}.y4m"));
    let wav = dir.join(format!("tone-{tone}.wav"));
    let status = Command::new(duet)
        .args([
            "pattern",
            "--size",
            size,
            "--seconds",
            "4",
            "--tone",
            &tone.to_string(),
        ])
        .arg("--y4m")
        .arg(&y4m)
        .arg("--wav")
        .arg(&wav)
        .status()
        .expect("duet pattern");
    assert!(status.success());
    (y4m, wav)
}

pub struct Chromium {
    pub child: Child,
    port: u16,
    pub profile: PathBuf,
}

impl Chromium {
    /// Starts Chromium showing `url`, its camera and microphone fed from the files.
    pub fn launch(url: &str, camera: &Path, microphone: &Path, scratch: &Path) -> Self {
        let profile = scratch.join(format!(
            "chromium-{}",
            std::process::id() as u64 * 1000 + rand_suffix()
        ));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let log = std::fs::File::create(profile.with_extension("log")).expect("log");
        let child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-audio-output",
                "--remote-debugging-port=0",
            ])
            .arg(format!(
                "--use-file-for-fake-video-capture={}",
                camera.display()
            ))
            .arg(format!(
                "--use-file-for-fake-audio-capture={}",
                microphone.display()
            ))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .env("HOME", &profile)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("chromium (Debian's package; scripts/setup.sh installs it)");
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not start its DevTools endpoint"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Self {
            child,
            port,
            profile,
        }
    }

    /// The page it shows, ready to evaluate script in.
    pub fn page(&self) -> Page {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let targets = http_get_json(self.port, "/json/list");
            if let Some(url) = targets
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                let (socket, _) = tungstenite::connect(url).expect("DevTools WebSocket");
                let mut page = Page { socket, next_id: 1 };
                page.wait_for(
                    "document.readyState === 'complete' && !!window.duet",
                    Duration::from_secs(20),
                );
                return page;
            }
            assert!(Instant::now() < deadline, "chromium shows no page");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// CPU seconds (user + system) of Chromium's whole process tree so far.
    pub fn cpu_seconds(&self) -> f64 {
        process_tree(self.child.id())
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .filter_map(|stat| {
                let rest = &stat[stat.rfind(')')? + 2..];
                let fields: Vec<&str> = rest.split_whitespace().collect();
                Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
            })
            .sum::<f64>()
            / 100.0
    }

    /// Proportional set size of the whole process tree, MB (shared pages split fairly).
    pub fn pss_mb(&self) -> f64 {
        process_tree(self.child.id())
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
            .filter_map(|text| {
                let line = text.lines().find(|l| l.starts_with("Pss:"))?;
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .sum::<f64>()
            / 1024.0
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 % 1000)
        .unwrap_or(0)
}

/// `pid` and all its descendants.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        tree.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
        i += 1;
    }
    tree
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get_json(port: u16, path: &str) -> Value {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Value::Null;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return Value::Null;
    }
    // Chromium keeps the connection open: read the headers, then Content-Length bytes.
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buf) else {
            return Value::Null;
        };
        if n == 0 {
            return Value::Null;
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return serde_json::from_str(&body[..length]).unwrap_or(Value::Null);
            }
        }
    }
}

pub struct Page {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "awaitPromise": true, "returnByValue": true }
        });
        self.socket
            .send(tungstenite::Message::text(request.to_string()))
            .expect("DevTools send");
        loop {
            let message = self.socket.read().expect("DevTools read");
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(reply) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if reply["id"] != id {
                continue;
            }
            if let Some(exception) = reply["result"].get("exceptionDetails") {
                panic!("{expression} threw: {exception}");
            }
            return reply["result"]["result"]["value"].clone();
        }
    }

    /// Polls `condition` (a script expression) until it is true.
    pub fn wait_for(&mut self, condition: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(&format!("Boolean({condition})")) == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page never got to: {condition}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
