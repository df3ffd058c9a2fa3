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
/// body), false outside (the body ran inside, and passed). Fails unless exactly this one
/// test ran in there (a renamed test would otherwise run nothing and pass), and after 5
/// minutes.
pub fn in_own_network(test_name: &str) -> bool {
    if std::env::var_os("DUET_IN_NETNS").is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut child = in_loopback_only_namespace(&exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env("DUET_IN_NETNS", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) and root are needed: run scripts/setup.sh as root");
    // The harness's own lines come on stdout; pass them on and keep them to count the tests.
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = String::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            println!("{line}");
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{test_name} did not end within 5 minutes inside its network namespace");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let seen = reader.join().unwrap_or_default();
    assert!(
        status.success(),
        "{test_name} failed inside its network namespace"
    );
    assert!(
        seen.lines()
            .any(|l| l.starts_with("test result: ok. 1 passed;")),
        "{test_name} did not run exactly one test inside its namespace: {seen}"
    );
    false
}

/// `program` (its arguments to follow) in a new network namespace whose only interface is
/// `lo`, brought up (needs root and `unshare`).
pub fn in_loopback_only_namespace(program: &Path) -> Command {
    let mut command = Command::new("unshare");
    command
        .args([
            "--net",
            "sh",
            "-c",
            "ip link set lo up && exec \"$@\"",
            "sh",
        ])
        .arg(program);
    command
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
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 % 1000)
        .unwrap_or(0)
}

/// `root` and all its descendants, `root` first; empty when `root` is gone. Found by the
/// parent pid of every process in `/proc/*/stat`, which sees children forked by any of a
/// process's threads (`/proc/P/task/P/children` lists only the main thread's).
pub fn process_tree(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent_of: Vec<(u32, u32)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_fields(pid)?.get(1)?.parse().ok()?)))
        .collect();
    if !parent_of.iter().any(|&(pid, _)| pid == root) {
        return Vec::new();
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        // A pid reused while /proc was read could close a loop: take each pid once.
        let children: Vec<u32> = parent_of
            .iter()
            .filter(|&&(pid, ppid)| ppid == parent && !tree.contains(&pid))
            .map(|&(pid, _)| pid)
            .collect();
        tree.extend(children);
        i += 1;
    }
    tree
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces and ')'),
/// so `[0]` is the state and `[1]` the parent pid (fields 3 and 4 of proc(5)).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU seconds (user + system) of `root`'s process tree so far, counting also the ended
/// children each process has waited for (cutime, cstime), so a helper that exits mid-call
/// still counts. `None` when `root` cannot be read.
pub fn cpu_seconds(root: u32) -> Option<f64> {
    // utime, stime, cutime, cstime: fields 14-17 of proc(5).
    let ticks = |pid: u32| -> Option<f64> {
        let fields = stat_fields(pid)?;
        (11..=14).map(|i| fields.get(i)?.parse::<f64>().ok()).sum()
    };
    let tree = process_tree(root);
    let (first, rest) = tree.split_first()?;
    let total = ticks(*first)? + rest.iter().filter_map(|&pid| ticks(pid)).sum::<f64>();
    // USER_HZ, which is 100 on every Linux this runs on.
    Some(total / 100.0)
}

/// Proportional set size of `root`'s process tree, MB: pages shared between processes are
/// split among them, so a tree of many processes is not counted many times over. `None` when
/// `root`'s memory cannot be read (it is gone, or has ended and not yet been waited for).
pub fn pss_mb(root: u32) -> Option<f64> {
    let pss_kb = |pid: u32| -> Option<f64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let line = text.lines().find(|l| l.starts_with("Pss:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let tree = process_tree(root);
    let (first, rest) = tree.split_first()?;
    let total = pss_kb(*first)? + rest.iter().filter_map(|&pid| pss_kb(pid)).sum::<f64>();
    Some(total / 1024.0)
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
