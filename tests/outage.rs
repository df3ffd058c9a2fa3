//! Calls that live through an outage: two `duet call` peers on two hosts (network
//! namespaces joined by a veth pair); mid-call every UDP packet to either host is dropped
//! for 12 s, then 30 s (a Chromium call dies 17 s in). Both ends say they are reconnecting,
//! the call goes on by itself when the path returns, pictures are back within half a
//! second, and the call ends by a hang-up. Needs root (namespaces, nftables).

mod common;

use common::hosts::{Host, Side, TwoHosts};
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
