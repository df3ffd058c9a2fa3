//! A small UDP relay of ours standing between two hosts, for what this kernel's missing
//! netem would do: each packet is lost with a given chance and delayed by a base plus a
//! random jitter (so packets may overtake each other, as on a real jittery path). It runs
//! on threads that have entered host B's network namespace, and stands for each side to
//! the other: A sends to `for_b` (the port that stands for B) and the relay passes that on
//! to B's real address from `for_a`, and the other way round. The tests rewrite the
//! candidates in the paste tokens to these ports, so the only path is through the relay.
#![allow(dead_code)]

use rand::Rng;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the path does to each packet.
#[derive(Clone, Copy, Debug)]
pub struct PathFaults {
    pub loss: f64,
    pub delay: Duration,
    pub jitter: Duration,
}

pub struct Relay {
    /// The relay's ports on host B that stand for A (to B) and for B (to A).
    pub for_a: u16,
    pub for_b: u16,
    stop: Arc<AtomicBool>,
    pub forwarded: Arc<AtomicU64>,
    pub dropped: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
    to_a: Arc<std::sync::Mutex<Option<SocketAddr>>>,
    to_b: Arc<std::sync::Mutex<Option<SocketAddr>>>,
    pub faults: Arc<std::sync::Mutex<PathFaults>>,
}

/// Moves the calling thread into the network namespace `name` (`ip netns add` made it).
fn enter_namespace(name: &str) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(format!("/var/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
    // SAFETY: setns(2) on a valid, open namespace descriptor; it changes only this thread's
    // network namespace, which is what the relay threads want.
    let status = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(status, 0, "setns into {name} failed (root is needed)");
}

struct Due {
    at: Instant,
    to: SocketAddr,
    data: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // A min-heap on the due time.
        other.at.cmp(&self.at)
    }
}

/// One direction: what arrives at `inbound` goes, faulted, to `to` from `outbound`.
fn pass(
    inbound: UdpSocket,
    outbound: UdpSocket,
    to: Arc<std::sync::Mutex<Option<SocketAddr>>>,
    faults: Arc<std::sync::Mutex<PathFaults>>,
    stop: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
) {
    let mut rng = rand::rng();
    let mut queue: BinaryHeap<Due> = BinaryHeap::new();
    let mut buffer = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while queue.peek().is_some_and(|due| due.at <= now) {
            if let Some(due) = queue.pop() {
                let _ = outbound.send_to(&due.data, due.to);
                forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wait = queue
            .peek()
            .map_or(Duration::from_millis(5), |due| {
                due.at.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(200), Duration::from_millis(5));
        let _ = inbound.set_read_timeout(Some(wait));
        if let Ok((n, _from)) = inbound.recv_from(&mut buffer) {
            let Some(to) = *to.lock().unwrap_or_else(|e| e.into_inner()) else {
                continue;
            };
            let faults = *faults.lock().unwrap_or_else(|e| e.into_inner());
            if rng.random::<f64>() < faults.loss {
                dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let jitter = faults.jitter.mul_f64(rng.random::<f64>());
            queue.push(Due {
                at: Instant::now() + faults.delay + jitter,
                to,
                data: buffer[..n].to_vec(),
            });
        }
    }
}

impl Relay {
    /// A relay in namespace `namespace`; it passes packets once [`Relay::connect`] says
    /// where A and B really are. Faults can be changed while it runs.
    pub fn start(namespace: &str, faults: PathFaults) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let name = namespace.to_owned();
        // Bound in the namespace, by a thread that entered it; sockets keep the namespace
        // they were made in, whatever thread uses them.
        std::thread::spawn(move || {
            enter_namespace(&name);
            let for_a = UdpSocket::bind("0.0.0.0:0").expect("relay socket");
            let for_b = UdpSocket::bind("0.0.0.0:0").expect("relay socket");
            let _ = tx.send((for_a, for_b));
        })
        .join()
        .expect("relay setup");
        let (for_a, for_b) = rx.recv().expect("relay sockets");
        let ports = (
            for_a.local_addr().expect("port").port(),
            for_b.local_addr().expect("port").port(),
        );
        let faults = Arc::new(std::sync::Mutex::new(faults));
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let to_a = Arc::new(std::sync::Mutex::new(None));
        let to_b = Arc::new(std::sync::Mutex::new(None));
        let mut threads = Vec::new();
        // A -> B arrives at the port standing for B and leaves from the one standing for A;
        // B -> A the other way round.
        for (inbound, outbound, to) in [
            (
                for_b.try_clone().expect("clone"),
                for_a.try_clone().expect("clone"),
                to_b.clone(),
            ),
            (for_a, for_b, to_a.clone()),
        ] {
            let (faults, stop, forwarded, dropped) = (
                faults.clone(),
                stop.clone(),
                forwarded.clone(),
                dropped.clone(),
            );
            threads.push(std::thread::spawn(move || {
                pass(inbound, outbound, to, faults, stop, forwarded, dropped)
            }));
        }
        Self {
            for_a: ports.0,
            for_b: ports.1,
            stop,
            forwarded,
            dropped,
            threads,
            to_a,
            to_b,
            faults,
        }
    }

    /// Where A and B really are.
    pub fn connect(&self, a: SocketAddr, b: SocketAddr) {
        *self.to_a.lock().unwrap_or_else(|e| e.into_inner()) = Some(a);
        *self.to_b.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The host candidate `ip port` of a token's SDP.
pub fn host_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line
            .strip_prefix("a=candidate:")?
            .split_whitespace()
            .collect();
        if !fields.get(2)?.eq_ignore_ascii_case("udp") || fields.get(7) != Some(&"host") {
            return None;
        }
        format!("{}:{}", fields.get(4)?, fields.get(5)?)
            .parse()
            .ok()
    })
}

/// The SDP with every candidate line replaced by one host candidate at `to`.
pub fn candidates_through(sdp: &str, to: SocketAddr) -> String {
    let mut first = true;
    let mut out = Vec::new();
    for line in sdp.split("\r\n") {
        if let Some(rest) = line.strip_prefix("a=candidate:") {
            if first {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                out.push(format!(
                    "a=candidate:{} {} udp {} {} {} typ host",
                    fields.first().copied().unwrap_or("1"),
                    fields.get(1).copied().unwrap_or("1"),
                    fields.get(3).copied().unwrap_or("2130706431"),
                    to.ip(),
                    to.port()
                ));
                first = false;
            }
            continue;
        }
        out.push(line.to_owned());
    }
    out.join("\r\n")
}
