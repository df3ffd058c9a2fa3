//! A call over a rough path: two hosts whose only path is a UDP relay of ours (this kernel
//! has no netem) that loses 5 % of packets each way and delays each by 20 ms plus up to
//! 30 ms of jitter (packets overtake each other). For 20 s the picture keeps coming: most
//! frames are shown, none freezes for more than half a second, and the sound goes on, its
//! losses rebuilt or concealed. Needs root (namespaces, setns).

mod common;

use common::hosts::{Host, Side, TwoHosts};
use common::relay::{PathFaults, Relay, candidates_through, host_candidate};
use duet::signaling::token::{PasteToken, SdpKind};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

/// Hands `token` (the first line `from` printed) to `to`, with its candidates replaced by
/// `through`; returns where the side that made it really is.
fn pass_through(from: &mut Side, to: &mut Side, kind: SdpKind, through: SocketAddr) -> SocketAddr {
    let line = common::first_line_within(
        from.child.stdout.take().expect("stdout"),
        Duration::from_secs(30),
        "a token",
    );
    let token = PasteToken::parse(&line, kind).expect("a token");
    let real = host_candidate(&token.sdp).expect("a host candidate in the token");
    let rewritten = PasteToken::new(kind, candidates_through(&token.sdp, through));
    let mut stdin = to.child.stdin.take().expect("stdin");
    writeln!(stdin, "{}", rewritten.encode()).expect("token in");
    real
}

#[test]
fn five_percent_loss_and_jitter_keep_the_picture() {
    let hosts = TwoHosts::new();
    let dir = common::scratch("rough-path");
    let relay = Relay::start(
        hosts.name(Host::B),
        PathFaults {
            loss: 0.05,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(30),
        },
    );
    let relay_ip = common::hosts::B_IP;
    let seconds = 20;
    let duration = seconds.to_string();
    let call = ["--size", "640x480", "--bitrate", "800"];
    let mut a = Side::start(
        &hosts,
        Host::A,
        "--offer",
        &[&call[..], &["--duration", &duration]].concat(),
        &dir,
    );
    let mut b = Side::start(&hosts, Host::B, "--answer", &call, &dir);
    let for_a: SocketAddr = format!("{relay_ip}:{}", relay.for_a).parse().expect("addr");
    let for_b: SocketAddr = format!("{relay_ip}:{}", relay.for_b).parse().expect("addr");
    let real_a = pass_through(&mut a, &mut b, SdpKind::Offer, for_a);
    let real_b = pass_through(&mut b, &mut a, SdpKind::Answer, for_b);
    relay.connect(real_a, real_b);
    a.wait_for("connected", Duration::from_secs(20));
    b.wait_for("connected", Duration::from_secs(20));
    let limit = Duration::from_secs(seconds as u64 + 30);
    let a_status = common::wait_for_exit(&mut a.child, limit, "A to hang up");
    let b_status = common::wait_for_exit(&mut b.child, limit, "B to end");
    let (a_summary, b_summary) = (a.summary(), b.summary());
    let (forwarded, dropped) = (
        relay.forwarded.load(std::sync::atomic::Ordering::Relaxed),
        relay.dropped.load(std::sync::atomic::Ordering::Relaxed),
    );
    eprintln!("relay: {forwarded} packets passed, {dropped} lost\n{a_summary}\n{b_summary}");
    assert!(
        a_status.success() && b_status.success(),
        "{a_summary}\n{b_summary}"
    );
    let share = dropped as f64 / (forwarded + dropped).max(1) as f64;
    assert!(
        (0.03..0.07).contains(&share) && forwarded > 3000,
        "the relay lost {share:.3} of {forwarded} packets: not the path this test means"
    );
    assert_eq!(b_summary.end_reason, "remote hung up");

    for (sender, receiver, name) in [(&a_summary, &b_summary, "B"), (&b_summary, &a_summary, "A")] {
        let stamped = &receiver.video_received.stamped;
        let first = stamped.first().expect("pictures").frame();
        let last = stamped.last().expect("pictures").frame();
        let captured = (last - first + 1) as f64;
        let shown = stamped.len() as f64;
        // Decode times, in order, and the longest wait between two pictures.
        let mut shown_at: Vec<f64> = stamped
            .iter()
            .map(|p| p.captured_ms() + p.latency_ms())
            .collect();
        shown_at.sort_by(f64::total_cmp);
        let freeze = shown_at.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        let latency = receiver.video_received.latency_ms.expect("latency");
        eprintln!(
            "{name}: {shown} of {captured} pictures shown ({:.1} %), longest freeze {freeze:.0} ms, \
             latency median {:.0} ms p95 {:.0} ms; {} keyframes asked for; sound {:.1} s of \
             {:.1} s with the tone, {} packets rebuilt by FEC",
            100.0 * shown / captured,
            latency.median,
            latency.p95,
            receiver.video_received.keyframe_requests_sent,
            receiver.audio_received.tone_seconds,
            receiver.connected_seconds,
            receiver.audio_received.packets_recovered,
        );
        assert!(
            shown >= 0.9 * captured,
            "{name} was shown {shown} of {captured} pictures"
        );
        assert!(freeze <= 500.0, "{name}'s picture froze for {freeze:.0} ms");
        let heard = receiver.audio_received.tone_seconds;
        assert!(
            heard >= 0.9 * receiver.connected_seconds,
            "{name} heard the tone for {heard:.1} of {:.1} s",
            receiver.connected_seconds
        );
        assert_eq!(
            receiver.audio_received.frequency_hz.map(|f| f.round()),
            sender.audio_sent.tone_hz.map(|f| f.round()),
            "{name} heard another tone"
        );
    }
}
