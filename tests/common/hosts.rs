//! Two hosts on one machine for network tests: two network namespaces joined by a veth
//! pair, 10.77.0.1 (A) and 10.77.0.2 (B), each with its own `lo`. Addresses of our own test
//! hosts, reachable from nowhere else; both namespaces are removed when this is dropped,
//! also when a test fails. Faults are nftables rules on a host's input hook.
#![allow(dead_code)]

use duet::call::CallSummary;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const A_IP: &str = "10.77.0.1";
pub const B_IP: &str = "10.77.0.2";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    A,
    B,
}

pub struct TwoHosts {
    names: [String; 2],
}

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (iproute2 and root are needed)", args[0]));
    assert!(status.success(), "{args:?} failed");
}

impl TwoHosts {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let names = [format!("duet-a-{id}"), format!("duet-b-{id}")];
        let hosts = Self { names };
        let (a, b) = (hosts.name(Host::A), hosts.name(Host::B));
        run(&["ip", "netns", "add", a]);
        run(&["ip", "netns", "add", b]);
        run(&[
            "ip", "link", "add", "veth-a", "netns", a, "type", "veth", "peer", "name", "veth-b",
            "netns", b,
        ]);
        for (name, dev, ip) in [(a, "veth-a", A_IP), (b, "veth-b", B_IP)] {
            run(&["ip", "-n", name, "link", "set", "lo", "up"]);
            run(&[
                "ip",
                "-n",
                name,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                dev,
            ]);
            run(&["ip", "-n", name, "link", "set", dev, "up"]);
        }
        hosts
    }

    pub fn name(&self, host: Host) -> &str {
        match host {
            Host::A => &self.names[0],
            Host::B => &self.names[1],
        }
    }

    /// `program` run on `host`.
    pub fn command(&self, host: Host, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.name(host)])
            .arg(program);
        command
    }

    /// Loads an nftables script on `host`; fails the test if nft refuses it.
    pub fn nft(&self, host: Host, script: &str) {
        super::load_nft(
            Command::new("ip").args(["netns", "exec", self.name(host), "nft"]),
            script,
        );
    }

    /// Every UDP packet arriving at `host` dropped (counted by a named counter, which
    /// outlives [`Self::restore`]).
    pub fn black_out(&self, host: Host) {
        self.nft(
            host,
            "table inet duet_fault {\ncounter dropped { }\nchain input {\ntype filter hook input priority 0;\nmeta l4proto udp counter name dropped drop\n}\n}\n",
        );
    }

    /// Caps what `host` sends at `kbit` kbit/s behind a buffer that holds `buffer_ms` of
    /// it (tbf, as a home uplink does); called again, changes the cap mid-call keeping
    /// what is queued (a capacity step).
    pub fn cap_uplink(&self, host: Host, kbit: u32, buffer_ms: u32) {
        let dev = match host {
            Host::A => "veth-a",
            Host::B => "veth-b",
        };
        let shown = super::output_within(
            Command::new("ip").args([
                "netns",
                "exec",
                self.name(host),
                "tc",
                "qdisc",
                "show",
                "dev",
                dev,
            ]),
            Duration::from_secs(10),
            "tc qdisc show",
        );
        let verb = if String::from_utf8_lossy(&shown.stdout).contains("tbf") {
            "change"
        } else {
            "add"
        };
        let (rate, latency) = (format!("{kbit}kbit"), format!("{buffer_ms}ms"));
        run(&[
            "ip",
            "netns",
            "exec",
            self.name(host),
            "tc",
            "qdisc",
            verb,
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            &rate,
            "burst",
            "32kbit",
            "latency",
            &latency,
        ]);
    }

    /// The path to `host` works again.
    pub fn restore(&self, host: Host) {
        self.nft(host, "flush chain inet duet_fault input\n");
    }

    /// Packets the fault on `host` dropped so far.
    pub fn dropped(&self, host: Host) -> u64 {
        let output = super::output_within(
            Command::new("ip").args([
                "netns",
                "exec",
                self.name(host),
                "nft",
                "list",
                "counter",
                "inet",
                "duet_fault",
                "dropped",
            ]),
            std::time::Duration::from_secs(10),
            "nft list counter",
        );
        let listing = String::from_utf8_lossy(&output.stdout);
        listing
            .split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter on {host:?}: {listing}"))
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A `duet call` on one host, its stderr lines arriving on `lines`.
pub struct Side {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub stats: std::path::PathBuf,
}

impl Side {
    pub fn start(
        hosts: &TwoHosts,
        host: Host,
        role: &str,
        extra: &[&str],
        dir: &std::path::Path,
    ) -> Self {
        Self::start_args(hosts, host, &[role], extra, dir)
    }

    /// `duet call ARGS… --bind <host's address> --stats-json … EXTRA…`.
    pub fn start_args(
        hosts: &TwoHosts,
        host: Host,
        args: &[&str],
        extra: &[&str],
        dir: &std::path::Path,
    ) -> Self {
        let (ip, name) = match host {
            Host::A => (A_IP, "a"),
            Host::B => (B_IP, "b"),
        };
        let stats = dir.join(format!("{name}.json"));
        let mut child = hosts
            .command(host, &super::duet())
            .arg("call")
            .args(args)
            .args(["--bind", ip])
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

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Instant {
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

    pub fn summary(&self) -> CallSummary {
        serde_json::from_str(&std::fs::read_to_string(&self.stats).expect("stats")).expect("json")
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
