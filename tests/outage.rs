//! Calls that live through an outage: two `duet call` peers on two hosts (network
//! namespaces joined by a veth pair); mid-call every UDP packet to either host is dropped
//! for 12 s, then 30 s (a Chromium call dies 17 s in). Both ends say they are reconnecting,
//! the call goes on by itself when the path returns, pictures are back within half a
//! second, and the call ends by a hang-up. Needs root (namespaces, nftables).

mod common;

use common::hosts::{A_IP, B_IP, Host, TwoHosts};
use duet::call::CallSummary;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `duet call` on one host, its stderr lines arriving on `lines`.
struct Side {
    child: Child,
    lines: mpsc::Receiver<String>,
    stats: std::path::PathBuf,
}

impl Side {
    fn start(
        hosts: &TwoHosts,
        host: Host,
        role: &str,
        extra: &[&str],
        dir: &std::path::Path,
    ) -> Self {
        let (ip, name) = match host {
            Host::A => (A_IP, "a"),
            Host::B => (B_IP, "b"),
        };
        let stats = dir.join(format!("{name}.json"));
        let mut child = hosts
            .command(host, &common::duet())
            .args([
                "call",
                role,
                "--bind",
                ip,
                "--size",
                "320x240",
                "--bitrate",
                "300",
            ])
            .arg("--stats-json")
            .arg(&stats)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("duet call in a namespace (ip netns exec; root)");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            stats,
        }
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Instant::now(),
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no {needle:?} within {timeout:?}; saw {seen:#?}");
    }

    fn summary(&self) -> CallSummary {
        serde_json::from_str(&std::fs::read_to_string(&self.stats).expect("stats")).expect("json")
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_ms() -> f64 {
    duet::media::frame::wall_clock_us() as f64 / 1000.0
}

/// A call between the two hosts that loses every packet both ways for `blackout`, 2 s in.
fn call_through_a_blackout(blackout: Duration) {
    let hosts = TwoHosts::new();
    let dir = common::scratch("outage");
    let talk = blackout + Duration::from_secs(8);
    let duration = format!("{}", talk.as_secs());
    let mut a = Side::start(&hosts, Host::A, "--offer", &["--duration", &duration], &dir);
    let mut b = Side::start(&hosts, Host::B, "--answer", &[], &dir);
    common::exchange_tokens(&mut a.child, &mut b.child);
    a.wait_for("connected", Duration::from_secs(20));
    b.wait_for("connected", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));

    hosts.black_out(Host::A);
    hosts.black_out(Host::B);
    let began = Instant::now();
    for side in [&a, &b] {
        side.wait_for("reconnecting", Duration::from_secs(10));
    }
    std::thread::sleep(blackout.saturating_sub(began.elapsed()));
    hosts.restore(Host::A);
    hosts.restore(Host::B);
    let returned_ms = unix_ms();
    let dropped = [hosts.dropped(Host::A), hosts.dropped(Host::B)];
    eprintln!(
        "blackout of {:.1} s: {} and {} packets dropped",
        began.elapsed().as_secs_f64(),
        dropped[0],
        dropped[1]
    );
    assert!(
        dropped.iter().all(|&n| n > 50),
        "the blackout dropped too little: {dropped:?}"
    );

    let a_status = common::wait_for_exit(
        &mut a.child,
        Duration::from_secs(40),
        "the offerer to hang up",
    );
    let b_status = common::wait_for_exit(
        &mut b.child,
        Duration::from_secs(20),
        "the answerer to hear the hang-up",
    );
    let (a_summary, b_summary) = (a.summary(), b.summary());
    assert!(
        a_status.success() && b_status.success(),
        "{a_summary:#?}\n{b_summary:#?}"
    );
    assert_eq!(a_summary.end_reason, "you hung up");
    assert_eq!(b_summary.end_reason, "remote hung up");

    for (receiver, name) in [(&a_summary, "A"), (&b_summary, "B")] {
        let stamped = &receiver.video_received.stamped;
        // The first picture decoded after the path returned.
        let back = stamped
            .iter()
            .map(|p| p.captured_ms() + p.latency_ms())
            .find(|&decoded| decoded > returned_ms)
            .unwrap_or_else(|| panic!("{name} decoded no picture after the path returned"));
        let after_ms = back - returned_ms;
        eprintln!("{name}: pictures back {after_ms:.0} ms after the path returned");
        assert!(
            after_ms <= 500.0,
            "{name}'s pictures came back {after_ms:.0} ms after the path did"
        );
        // And they keep coming at the full rate.
        let from = returned_ms + 500.0;
        let since: Vec<f64> = stamped
            .iter()
            .map(|p| p.captured_ms())
            .filter(|&at| at > from)
            .collect();
        let last = since.last().copied().unwrap_or(from);
        let expected = (last - from) / 1000.0 * 30.0;
        assert!(
            last - from > 3000.0 && since.len() as f64 >= 0.9 * expected,
            "{name} decoded {} of the ~{expected:.0} pictures captured after the path returned",
            since.len()
        );
    }
}

#[test]
fn a_call_lives_through_a_12_second_blackout() {
    call_through_a_blackout(Duration::from_secs(12));
}

#[test]
fn a_call_lives_through_a_30_second_blackout() {
    call_through_a_blackout(Duration::from_secs(30));
}
