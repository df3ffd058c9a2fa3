//! Two real `duet call` processes calling each other over loopback: tokens through pipes,
//! every candidate on 127.0.0.1, stamped video and tone both ways.

mod common;

use duet::call::CallSummary;
use duet::call::pipeline::MediaSettings;
use duet::loopback::{LoopbackOptions, run_loopback};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn small_call() -> MediaSettings {
    MediaSettings {
        width: 320,
        height: 240,
        fps: 30,
        video_bitrate_bps: 300_000,
        ..MediaSettings::default()
    }
}

#[test]
fn two_duet_processes_see_and_hear_each_other() {
    let options = LoopbackOptions {
        duet: common::duet(),
        media: small_call(),
        duration: Duration::from_secs(5),
        work_dir: common::scratch("see-and-hear"),
    };
    let result = run_loopback(&options).expect("loopback call");
    let (offerer, answerer) = (&result.offerer, &result.answerer);
    common::assert_clean_video(answerer, offerer, "answerer");
    common::assert_clean_video(offerer, answerer, "offerer");
    common::assert_heard_tone(answerer, 440.0, "answerer");
    common::assert_heard_tone(offerer, 660.0, "offerer");
    for (side, summary) in [("answerer", answerer), ("offerer", offerer)] {
        let marks = summary
            .audio_received
            .latency_ms
            .unwrap_or_else(|| panic!("{side} read no marks in the tone"));
        assert!(
            marks.median > 0.0 && marks.median < 150.0,
            "{side}: sound came {marks:?} ms late"
        );
    }
    // Both say which codec they negotiated.
    for summary in [offerer, answerer] {
        assert_eq!(summary.video_sent.codec.as_deref(), Some("video/H264"));
    }
    // The offerer hung up after --duration; the far side heard it as such.
    assert_eq!(offerer.end_reason, "you hung up");
    assert_eq!(answerer.end_reason, "remote hung up");
    // Both ends on 127.0.0.1: host candidates only, though they came inside the SDP.
    assert_eq!(offerer.path.as_deref(), Some("host -> host"));
    assert_eq!(answerer.path.as_deref(), Some("host -> host"));
    assert!(
        offerer.rtt_ms.is_some_and(|rtt| rtt < 100.0),
        "{:?}",
        offerer.rtt_ms
    );
}

/// No camera here, or not the one asked for: the call goes on with the test pattern, and
/// the summary says why. (This machine has no camera at all and cannot load v4l2loopback;
/// a name no camera has makes the test mean the same on a machine with cameras.)
#[test]
fn a_missing_camera_leaves_the_pattern_and_says_why() {
    use duet::media::camera::CameraChoice;
    use duet::media::source::VideoSource;
    let options = LoopbackOptions {
        duet: common::duet(),
        media: MediaSettings {
            camera: VideoSource::Camera(CameraChoice::Named("No Such Camera 9000".into())),
            ..small_call()
        },
        duration: Duration::from_secs(3),
        work_dir: common::scratch("missing-camera"),
    };
    let result = run_loopback(&options).expect("loopback call");
    common::assert_clean_video(&result.answerer, &result.offerer, "answerer");
    let note = result
        .offerer
        .devices
        .iter()
        .find(|d| d.starts_with("camera: "))
        .unwrap_or_else(|| panic!("no camera note: {:?}", result.offerer.devices));
    assert!(
        note.ends_with("; sending the test pattern instead")
            && (note.contains("no camera was found")
                || note.contains("there is no camera named \"No Such Camera 9000\"")),
        "{note}"
    );
    assert_eq!(result.offerer.video_sent.width, 320);
}

/// Starts an offer/answer pair by hand, tokens through pipes; returns the children and a
/// receiver of the answerer's stderr lines.
fn start_pair(
    dir: &std::path::Path,
) -> (
    std::process::Child,
    std::process::Child,
    mpsc::Receiver<String>,
) {
    // A vanished peer is given up on after 4 s of silence instead of the 30 s a person
    // gets: the test is about how it ends, not how long it hopes.
    let common_args = [
        "--bind",
        "127.0.0.1",
        "--size",
        "320x240",
        "--bitrate",
        "300",
        "--reconnect-timeout",
        "4",
    ];
    let mut offerer = Command::new(common::duet())
        .args(["call", "--offer"])
        .args(common_args)
        .arg("--stats-json")
        .arg(dir.join("offer.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("offerer");
    let offer = common::first_line_within(
        offerer.stdout.take().expect("stdout"),
        Duration::from_secs(30),
        "offer token",
    );
    let mut answerer = Command::new(common::duet())
        .args(["call", "--answer"])
        .args(common_args)
        .arg("--stats-json")
        .arg(dir.join("answer.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("answerer");
    answerer
        .stdin
        .take()
        .expect("stdin")
        .write_all(offer.as_bytes())
        .expect("offer in");
    let answer = common::first_line_within(
        answerer.stdout.take().expect("stdout"),
        Duration::from_secs(30),
        "answer token",
    );
    let mut offer_in = offerer.stdin.take().expect("stdin");
    offer_in.write_all(answer.as_bytes()).expect("answer in");
    // Keep the offerer's stdin open, as a person's terminal would be.
    std::mem::forget(offer_in);
    let (tx, rx) = mpsc::channel();
    let stderr = answerer.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (offerer, answerer, rx)
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no {needle:?} within {timeout:?}");
}

#[test]
fn killing_one_side_ends_the_other_with_connection_lost() {
    let dir = common::scratch("vanish");
    let (mut offerer, mut answerer, lines) = start_pair(&dir);
    wait_for_line(&lines, "connected", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    offerer.kill().expect("kill");
    let _ = offerer.wait();
    let killed_at = Instant::now();
    let status = common::wait_for_exit(
        &mut answerer,
        Duration::from_secs(20),
        "the answerer to notice its peer vanished",
    );
    let took = killed_at.elapsed();
    eprintln!("the answerer noticed the vanished peer after {took:?}");
    assert!(!status.success(), "a lost call is not a success");
    let summary: CallSummary =
        serde_json::from_str(&std::fs::read_to_string(dir.join("answer.json")).expect("stats"))
            .expect("json");
    assert_eq!(summary.end_reason, "connection lost");
    assert!(took < Duration::from_secs(15), "took {took:?} to notice");
    assert!(summary.video_received.frames_decoded > 0);
}

#[test]
fn ctrl_c_hangs_up_cleanly_and_the_far_side_hears_it() {
    let dir = common::scratch("ctrl-c");
    let (mut offerer, mut answerer, lines) = start_pair(&dir);
    wait_for_line(&lines, "connected", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let pid = answerer.id().to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let answer_status = common::wait_for_exit(
        &mut answerer,
        Duration::from_secs(15),
        "Ctrl-C to end the answerer",
    );
    let offer_status = common::wait_for_exit(
        &mut offerer,
        Duration::from_secs(15),
        "the offerer to end after the far side hung up",
    );
    assert!(
        answer_status.success() && offer_status.success(),
        "{answer_status:?} {offer_status:?} {:?} {:?}",
        std::fs::read_to_string(dir.join("answer.json")),
        std::fs::read_to_string(dir.join("offer.json"))
    );
    let read = |name: &str| -> CallSummary {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).expect("stats"))
            .expect("json")
    };
    assert_eq!(read("answer.json").end_reason, "you hung up");
    assert_eq!(read("offer.json").end_reason, "remote hung up");
}
