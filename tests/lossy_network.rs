//! A call through a network that drops packets: the receiver notices the broken picture,
//! asks for a keyframe (PLI), and the sender answers with an IDR. Runs inside a network
//! namespace made for the test (only `lo`), where nftables drops a share of UDP on input.
//! Needs root, `unshare` and `nft` (scripts/setup.sh installs them).

mod common;

use duet::call::CallSummary;
use std::process::Command;

/// A loopback call in a namespace of its own, where the nftables `rule` starts dropping
/// what it matches 2 s in.
fn loopback_call_dropping(
    rule: &str,
    duration: u32,
    json: &std::path::Path,
) -> std::process::Output {
    // nft wants each statement on its own line.
    let rules = format!(
        "table inet duet_loss {{\nchain input {{\ntype filter hook input priority 0;\n{rule}\n}}\n}}\n"
    );
    // The loss starts 2 s in, once the call is up: this test is about pictures recovering
    // from loss, not about connecting through it (a lost DTLS flight once made the setup
    // time out).
    let script = format!(
        "set -e; ip link set lo up; (sleep 2; printf '{rules}' | nft -f -) & exec \"$0\" call --loopback --duration {duration} --size 320x240 --bitrate 300 --stats-json \"$1\""
    );
    Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .arg(common::duet())
        .arg(json)
        .output()
        .expect("unshare: run scripts/setup.sh, as root, to get util-linux and nftables")
}

fn lossy_loopback_call(drop_percent: u32, json: &std::path::Path) -> std::process::Output {
    let rule = format!("meta l4proto udp numgen random mod 100 < {drop_percent} drop");
    loopback_call_dropping(&rule, 6, json)
}

fn summaries(json: &std::path::Path) -> (CallSummary, CallSummary) {
    let both: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("stats")).expect("json");
    let side = |name: &str| -> CallSummary {
        serde_json::from_value(both[name].clone()).expect("summary")
    };
    (side("offerer"), side("answerer"))
}

/// The goodbye on the data channel is lost (every DTLS application-data record is dropped
/// from 2 s in: content type 23, the first byte after the UDP header), but the DTLS
/// close_notify of the closing connection still gets through: the far side ends the call as
/// hung up at once, rather than as lost after the network times out.
#[test]
fn a_hang_up_whose_goodbye_is_lost_still_reads_as_a_hang_up() {
    let dir = common::scratch("lost-bye");
    let json = dir.join("both.json");
    let output = loopback_call_dropping("udp length > 8 @th,64,8 23 drop", 3, &json);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let (offerer, answerer) = summaries(&json);
    assert_eq!(offerer.end_reason, "you hung up");
    assert_eq!(answerer.end_reason, "remote hung up", "{stderr}");
    assert!(
        answerer.connected_seconds < offerer.connected_seconds + 1.0,
        "the far side ended {} s after the hang-up",
        answerer.connected_seconds - offerer.connected_seconds
    );
}

#[test]
fn loss_makes_the_receiver_ask_for_a_keyframe_and_the_sender_sends_one() {
    let dir = common::scratch("lossy");
    let json = dir.join("both.json");
    let output = lossy_loopback_call(3, &json);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the lossy call failed (this test needs root for a network namespace and nftables): {stderr}"
    );
    let (offerer, answerer) = summaries(&json);
    for (receiver, sender, name) in [
        (&answerer, &offerer, "answerer"),
        (&offerer, &answerer, "offerer"),
    ] {
        let rx = &receiver.video_received;
        assert!(
            rx.keyframe_requests_sent >= 1,
            "{name} lost packets but asked for no keyframe: {rx:#?}"
        );
        assert!(
            sender.video_sent.keyframes_on_request >= 1,
            "the far side of {name} never answered a keyframe request: {:#?}",
            sender.video_sent
        );
        // The picture recovers: most frames still arrive and decode.
        assert!(
            rx.frames_decoded * 2 >= sender.video_sent.frames_sent,
            "{name} decoded {} of {}",
            rx.frames_decoded,
            sender.video_sent.frames_sent
        );
        assert_eq!(rx.stamps_out_of_order, 0);
    }
}
