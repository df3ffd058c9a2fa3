//! What a person may paste into `duet call` by mistake: each is refused with a message that
//! says what was expected, and nothing panics.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn answer_with_stdin(input: &[u8]) -> (Option<i32>, String) {
    let mut child = Command::new(common::duet())
        .args(["call", "--answer", "--bind", "127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("duet");
    let mut stdin = child.stdin.take().expect("stdin");
    // A refusal may close the pipe before all of the junk is written.
    let _ = stdin.write_all(input);
    drop(stdin);
    let output = common::wait_with_output_within(
        child,
        Duration::from_secs(30),
        "duet call to refuse the input",
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn offer_token() -> String {
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n";
    duet::signaling::PasteToken::new(duet::signaling::SdpKind::Offer, sdp.into()).encode()
}

#[test]
fn garbage_token_is_refused_with_a_hint() {
    let answer = duet::signaling::PasteToken::new(
        duet::signaling::SdpKind::Answer,
        "v=0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".into(),
    )
    .encode();
    let offer = offer_token();
    let no_media = duet::signaling::PasteToken::new(
        duet::signaling::SdpKind::Offer,
        "v=0\r\ns=-\r\nt=0 0\r\n".into(),
    )
    .encode();
    let junk: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            answer.into_bytes(),
            "this is an answer, but an offer is expected",
        ),
        (
            b"hello, here is my offer\n".to_vec(),
            "expected an offer token",
        ),
        (
            offer.as_bytes()[..offer.len() * 2 / 3 + 1].to_vec(),
            "cut off",
        ),
        (
            b"{\"kind\":\"offer\",\"text\":\"v=0\"}\n".to_vec(),
            "expected {\"type\":\"offer\"",
        ),
        (no_media.into_bytes(), "no media"),
        (junk, "far more than any session description"),
        (b"".to_vec(), "nothing was pasted"),
        (
            vec![0xff, 0xfe, 0x00, 0x41, b'\n'],
            "expected an offer token",
        ),
    ];
    for (input, hint) in cases {
        let (code, stderr) = answer_with_stdin(&input);
        assert_eq!(code, Some(2), "exit code for {hint:?}; stderr: {stderr}");
        assert!(stderr.contains(hint), "{stderr:?} lacks {hint:?}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn an_offer_pasted_where_the_answer_is_due_is_refused() {
    let mut child = Command::new(common::duet())
        .args(["call", "--offer", "--bind", "127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("duet");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(format!("{}\n", offer_token()).as_bytes());
    drop(stdin);
    let output = common::wait_with_output_within(
        child,
        Duration::from_secs(60),
        "duet call to refuse an offer given for an answer",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.starts_with("eyJ"),
        "the offer token comes first: {stdout}"
    );
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("this is an offer, but an answer is expected"),
        "{stderr}"
    );
}

#[test]
fn bad_options_say_what_is_allowed() {
    let run = |args: &[&str]| {
        let output = common::output_within(
            Command::new(common::duet()).args(args),
            Duration::from_secs(30),
            "duet to refuse its options",
        );
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["call", "--offer", "--size", "big"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("WIDTHxHEIGHT"), "{stderr}");
    let (code, stderr) = run(&["call", "--offer", "--size", "4000x3000"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("at most 1280x720"), "{stderr}");
    let (code, stderr) = run(&["call", "--answer", "/nonexistent/offer.txt"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("expected a file holding the offer token"),
        "{stderr}"
    );
    let (code, _) = run(&["call"]);
    assert_eq!(code, Some(2));
}

#[test]
fn a_corrupt_settings_file_is_named_in_a_warning_and_duet_goes_on() {
    let dir = common::scratch("bad-settings");
    let path = dir.join("settings.toml");
    std::fs::write(&path, "name = \"unterminated\nmicrophone = [").expect("write");
    let output = common::output_within(
        Command::new(common::duet())
            .arg("--config")
            .arg(&path)
            .arg("devices"),
        Duration::from_secs(30),
        "duet devices with a corrupt settings file",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("settings.toml is not valid") && stderr.contains("using the defaults"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("Microphones:"));
}
