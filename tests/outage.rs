//! Calls that live through an outage: two `duet call` peers on two hosts (network
//! namespaces joined by a veth pair); mid-call every UDP packet to either host is dropped
//! for 12 s, then 30 s (a Chromium call dies 17 s in). Both ends say they are reconnecting,
//! the call goes on by itself when the path returns, pictures are back within half a
//! second, and the call ends by a hang-up. Needs root (namespaces, nftables).

mod common;

use common::hosts::{B_IP, Host, Side, TwoHosts};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn unix_ms() -> f64 {
    duet::media::frame::wall_clock_us() as f64 / 1000.0
}

/// A call between the two hosts that loses every packet both ways for `blackout`, 2 s in.
fn call_through_a_blackout(blackout: Duration) {
    let hosts = TwoHosts::new();
    let dir = common::scratch("outage");
    let talk = blackout + Duration::from_secs(8);
    let duration = format!("{}", talk.as_secs());
    let small = ["--size", "320x240", "--bitrate", "300"];
    let mut a = Side::start(
        &hosts,
        Host::A,
        "--offer",
        &[&small[..], &["--duration", &duration]].concat(),
        &dir,
    );
    let mut b = Side::start(&hosts, Host::B, "--answer", &small, &dir);
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

/// The UDP ports `program` has open on `host` (from `ss`).
fn udp_ports(hosts: &TwoHosts, host: Host) -> Vec<u16> {
    let output = common::output_within(
        Command::new("ip").args(["netns", "exec", hosts.name(host), "ss", "-uanpH"]),
        Duration::from_secs(10),
        "ss",
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("duet"))
        .filter_map(|line| {
            let local = line.split_whitespace().nth(3)?;
            local.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

/// In a room, the offerer's sockets stop working mid-call (every packet to or from the
/// ports it uses is dropped, as when a NAT forgets its mapping or a network goes away):
/// the path goes silent, the offerer restarts ICE through `duet signal` on fresh sockets,
/// and the call comes back by itself; it ends by a hang-up.
#[test]
fn a_dead_path_in_a_room_is_restored_by_an_ice_restart() {
    let hosts = TwoHosts::new();
    let dir = common::scratch("ice-restart");
    let port = 18_000 + (std::process::id() % 1000) as u16;
    let listen = format!("{B_IP}:{port}");
    let mut server = hosts
        .command(Host::B, &common::duet())
        .args(["signal", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("duet signal on B");
    std::thread::sleep(Duration::from_millis(500));
    let ws = format!("ws://{listen}/ws");
    let room = [
        "--room",
        "move",
        "--server",
        &ws,
        "--size",
        "320x240",
        "--bitrate",
        "300",
    ];
    let mut b = Side::start_args(&hosts, Host::B, &room, &[], &dir);
    b.wait_for("waiting for the other person", Duration::from_secs(10));
    let mut a = Side::start_args(&hosts, Host::A, &room, &["--duration", "16"], &dir);
    a.wait_for("connected", Duration::from_secs(20));
    b.wait_for("connected", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));

    let ports = udp_ports(&hosts, Host::A);
    assert!(!ports.is_empty(), "no UDP sockets of duet on A");
    let list = ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    hosts.nft(
        Host::A,
        &format!("table inet duet_fault {{\ncounter dropped {{ }}\nchain input {{\ntype filter hook input priority 0;\nudp dport {{ {list} }} counter name dropped drop\n}}\n}}\n"),
    );
    hosts.nft(
        Host::B,
        &format!("table inet duet_fault {{\ncounter dropped {{ }}\nchain input {{\ntype filter hook input priority 0;\nudp sport {{ {list} }} counter name dropped drop\n}}\n}}\n"),
    );
    let cut_ms = unix_ms();
    a.wait_for("restarting ICE", Duration::from_secs(10));
    let a_status = common::wait_for_exit(&mut a.child, Duration::from_secs(40), "A to hang up");
    let b_status = common::wait_for_exit(&mut b.child, Duration::from_secs(20), "B to end");
    let _ = server.kill();
    let _ = server.wait();
    let dropped = [hosts.dropped(Host::A), hosts.dropped(Host::B)];
    let (a_summary, b_summary) = (a.summary(), b.summary());
    assert!(
        a_status.success() && b_status.success(),
        "{a_summary}\n{b_summary}"
    );
    assert!(
        dropped.iter().all(|&n| n > 20),
        "the old sockets were not cut off: {dropped:?} packets dropped"
    );
    assert_eq!(a_summary.end_reason, "you hung up");
    assert_eq!(b_summary.end_reason, "remote hung up");
    for (receiver, name) in [(&a_summary, "A"), (&b_summary, "B")] {
        let back = receiver
            .video_received
            .stamped
            .iter()
            .map(|p| p.captured_ms() + p.latency_ms())
            .find(|&decoded| decoded > cut_ms + 1500.0)
            .unwrap_or_else(|| panic!("{name} decoded no picture after the cut"));
        eprintln!(
            "{name}: pictures back {:.1} s after the old sockets were cut off",
            (back - cut_ms) / 1000.0
        );
        assert!(
            back - cut_ms < 8_000.0,
            "{name}'s pictures came back {:.1} s after the cut",
            (back - cut_ms) / 1000.0
        );
    }
}
