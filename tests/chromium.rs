//! Chromium (Debian's, headless, fake devices fed with Duet's pattern and tone) as the other
//! peer, by room and by paste, each side offering in turn. Every process runs in a network
//! namespace with only `lo`.

mod common;

use common::chromium::{Chromium, Page, fake_media, in_own_network};
use common::{RoomCall, SignalServer};
use duet::call::CallSummary;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);
const FRAMES: u64 = 60;

/// What Duet must have seen of Chromium: H.264 frames stamped with Duet's pattern (from
/// the fake camera file), the 660 Hz tone, and the page's greeting on the data channel.
fn assert_duet_saw_chromium(summary: &CallSummary) {
    let video = &summary.video_received;
    assert!(
        video.frames_decoded >= FRAMES,
        "Duet decoded {} frames of Chromium's: {summary:#?}",
        video.frames_decoded
    );
    assert!(
        video.stamps_read >= FRAMES,
        "Duet read {} stamps in Chromium's video",
        video.stamps_read
    );
    let heard = summary.audio_received.frequency_hz.unwrap_or(0.0);
    assert!(
        (heard - 660.0).abs() <= 3.0,
        "Duet heard {heard} Hz from Chromium"
    );
    assert!(
        summary.messages_received.iter().any(|m| m == "browser"),
        "no data-channel message from Chromium: {:?}",
        summary.messages_received
    );
}

/// What Chromium must have seen of Duet: inbound H.264 decoded, sound with energy, Duet's
/// stamps read back from decoded frames, and Duet's greeting on the data channel.
fn assert_chromium_saw_duet(page: &mut Page) -> Value {
    let stats = page.eval("duet.stats()");
    let video = &stats["video"];
    assert_eq!(video["mimeType"], "video/H264", "{stats}");
    assert!(
        video["framesDecoded"].as_u64().unwrap_or(0) >= FRAMES,
        "{stats}"
    );
    let audio = &stats["audio"];
    assert!(
        audio["totalAudioEnergy"].as_f64().unwrap_or(0.0) > 0.0,
        "no sound energy: {stats}"
    );
    let stamps = page.eval("duet.stamps.read");
    assert!(
        stamps.as_u64().unwrap_or(0) >= FRAMES,
        "Chromium read {stamps} of Duet's stamps"
    );
    assert_eq!(page.eval("duet.stamps.outOfOrder"), 0);
    let messages = page.eval("duet.messages");
    assert!(
        messages
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x == "duet")),
        "{messages}"
    );
    stats
}

fn open_page(url: &str, scratch: &std::path::Path) -> (Chromium, Page) {
    let (camera, microphone) = fake_media(&common::duet(), scratch, "640x480", 660);
    let chromium = Chromium::launch(url, &camera, &microphone, scratch);
    let page = chromium.page();
    (chromium, page)
}

#[test]
fn chromium_and_duet_call_through_a_room() {
    if !in_own_network("chromium_and_duet_call_through_a_room") {
        return;
    }
    let server = SignalServer::start(&[]);
    let scratch = common::scratch("chromium-room");

    // Chromium waits in the room; Duet joins second and makes the offer.
    let (_browser, mut page) = open_page(
        &format!("http://127.0.0.1:{}/?audio=raw#duet-offers", server.port),
        &scratch,
    );
    page.wait_for("duet.state === 'waiting'", 20 * SECOND);
    let mut duet = RoomCall::start(
        &server.ws_url(),
        "duet-offers",
        scratch.join("a.json"),
        &["--duration", "6"],
    );
    assert_eq!(duet.wait(40 * SECOND), Some(0));
    assert_duet_saw_chromium(&duet.summary());
    assert_chromium_saw_duet(&mut page);
    page.wait_for(
        "duet.state === 'ended' && duet.endReason === 'remote hung up'",
        5 * SECOND,
    );

    // Duet waits; Chromium joins second and makes the offer.
    let mut duet = RoomCall::start(
        &server.ws_url(),
        "chromium-offers",
        scratch.join("b.json"),
        &["--duration", "6"],
    );
    duet.wait_for("waiting for the other person", 10 * SECOND);
    page.eval("location.hash = 'chromium-offers'; location.reload()");
    let mut page = _browser.page();
    assert_eq!(duet.wait(40 * SECOND), Some(0));
    let summary = duet.summary();
    assert_eq!(summary.role, "answerer");
    assert_duet_saw_chromium(&summary);
    assert_chromium_saw_duet(&mut page);
}

/// Starts `duet call --offer` or `--answer` with tokens on its stdin and stdout.
fn paste_duet(role: &str, stats: &std::path::Path) -> std::process::Child {
    Command::new(common::duet())
        .args([
            "call",
            role,
            "--bind",
            "127.0.0.1",
            "--size",
            "320x240",
            "--bitrate",
            "300",
            "--duration",
            "5",
        ])
        .arg("--stats-json")
        .arg(stats)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("duet call")
}

fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    out.read_line(&mut line).expect("token line");
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    line.trim().to_owned()
}

/// Pastes `token` into the page's paste panel, as a person would, and returns what the page
/// then shows as its own token (empty when it only applied an answer).
/// Pastes `token` into the page's paste panel; when `answers`, waits for the page's answer
/// token (or an error) and returns it.
fn paste_into_page(page: &mut Page, token: &str, answers: bool) -> String {
    let js = serde_json::to_string(token).expect("json string");
    page.eval(&format!(
        "document.getElementById('my-token').value = ''; document.getElementById('their-token').value = {js}; document.getElementById('use-token').click()"
    ));
    // The page answers once its ICE gathering is complete, or shows an error at once; a
    // busy machine may take a while.
    let deadline = std::time::Instant::now() + 10 * SECOND;
    loop {
        std::thread::sleep(SECOND / 10);
        let token = page
            .eval("document.getElementById('my-token').value")
            .as_str()
            .unwrap_or("")
            .to_owned();
        let error = page.eval("document.getElementById('paste-error').textContent");
        if !answers
            || !token.is_empty()
            || !error.as_str().unwrap_or("").is_empty()
            || std::time::Instant::now() > deadline
        {
            return token;
        }
    }
}

fn wait_success(child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + 40 * SECOND;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "duet call failed: {status}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "duet call did not end"
        );
        std::thread::sleep(SECOND / 10);
    }
}

fn read_summary(path: &std::path::Path) -> CallSummary {
    serde_json::from_str(&std::fs::read_to_string(path).expect("stats")).expect("json")
}

#[test]
fn chromium_and_duet_call_by_paste() {
    if !in_own_network("chromium_and_duet_call_by_paste") {
        return;
    }
    // The server only serves the page here: the tokens travel by paste.
    let server = SignalServer::start(&[]);
    let scratch = common::scratch("chromium-paste");
    let (browser, mut page) = open_page(
        &format!("http://127.0.0.1:{}/?audio=raw", server.port),
        &scratch,
    );

    // A bad paste gets the same kind of hint as `duet call` gives.
    let shown = paste_into_page(&mut page, "hello, this is my offer", true);
    assert!(shown.is_empty());
    let error = page.eval("document.getElementById('paste-error').textContent");
    assert!(
        error.as_str().unwrap_or("").contains("not a Duet token"),
        "{error}"
    );

    // Duet offers; the page answers.
    let stats = scratch.join("offer.json");
    let mut duet = paste_duet("--offer", &stats);
    let offer = first_line(&mut duet);
    let answer = paste_into_page(&mut page, &offer, true);
    assert!(
        answer.starts_with("eyJ"),
        "the page showed no answer token: {answer:?}"
    );
    let mut stdin = duet.stdin.take().expect("stdin");
    writeln!(stdin, "{answer}").expect("answer in");
    wait_success(&mut duet);
    drop(stdin);
    assert_duet_saw_chromium(&read_summary(&stats));
    assert_chromium_saw_duet(&mut page);

    // The page offers; Duet answers.
    page.eval("location.reload()");
    let mut page = browser.page();
    page.eval("document.getElementById('make-offer').click()");
    page.wait_for(
        "document.getElementById('my-token').value.startsWith('eyJ')",
        10 * SECOND,
    );
    let offer = page.eval("document.getElementById('my-token').value");
    let stats = scratch.join("answer.json");
    let mut duet = paste_duet("--answer", &stats);
    let mut stdin = duet.stdin.take().expect("stdin");
    writeln!(stdin, "{}", offer.as_str().unwrap_or("")).expect("offer in");
    let answer = first_line(&mut duet);
    paste_into_page(&mut page, &answer, false);
    assert_eq!(
        page.eval("document.getElementById('paste-error').textContent"),
        ""
    );
    page.wait_for("duet.state === 'connected'", 10 * SECOND);
    wait_success(&mut duet);
    drop(stdin);
    assert_duet_saw_chromium(&read_summary(&stats));
    assert_chromium_saw_duet(&mut page);
}

fn nft(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft (nftables; scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("rules");
    assert!(
        child.wait().expect("nft").success(),
        "nft refused: {script}"
    );
}

#[test]
fn chromium_keyframe_request_gets_an_idr() {
    if !in_own_network("chromium_keyframe_request_gets_an_idr") {
        return;
    }
    let server = SignalServer::start(&[]);
    let scratch = common::scratch("chromium-pli");
    let (_browser, mut page) = open_page(
        &format!("http://127.0.0.1:{}/?audio=raw#pli", server.port),
        &scratch,
    );
    page.wait_for("duet.state === 'waiting'", 20 * SECOND);
    let mut duet = RoomCall::start(
        &server.ws_url(),
        "pli",
        scratch.join("duet.json"),
        &["--duration", "8"],
    );
    page.wait_for("duet.state === 'connected'", 20 * SECOND);
    std::thread::sleep(2 * SECOND);
    let before = page.eval("duet.stats()")["video"]["pliCount"]
        .as_u64()
        .unwrap_or(0);

    // Everything Duet sends vanishes for 2 s, and its retransmissions (RTX, payload type
    // 103) stay lost: NACK cannot repair the picture, so the browser must ask for a
    // keyframe. Duet's port is the one in its candidate.
    let duet_port = page
        .eval("duet.pc.remoteDescription.sdp.match(/a=candidate:\\S+ 1 udp \\d+ 127\\.0\\.0\\.1 (\\d+) typ host/)[1]")
        .as_str()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("Duet's candidate port");
    nft(&format!(
        "table inet lossy {{\nchain input {{\ntype filter hook input priority 0;\nudp sport {duet_port} @th,73,7 103 drop\n}}\n}}\n"
    ));
    nft(&format!(
        "table inet blackout {{\nchain input {{\ntype filter hook input priority 0;\nudp sport {duet_port} drop\n}}\n}}\n"
    ));
    std::thread::sleep(2 * SECOND);
    nft("delete table inet blackout\n");

    page.wait_for("duet.pc && duet.state === 'connected'", 5 * SECOND);
    std::thread::sleep(2 * SECOND);
    let stats = page.eval("duet.stats()");
    let after = stats["video"]["pliCount"].as_u64().unwrap_or(0);
    assert_eq!(duet.wait(30 * SECOND), Some(0));
    assert!(after > before, "Chromium sent no PLI: {stats}");
    let sent = duet.summary().video_sent;
    assert!(
        sent.keyframe_requests_received >= 1,
        "Duet heard no keyframe request: {sent:#?}"
    );
    assert!(
        sent.keyframes_on_request >= 1,
        "Duet sent no IDR on request: {sent:#?}"
    );
    // Chromium decodes again after the IDR.
    let decoded_then = stats["video"]["framesDecoded"].as_u64().unwrap_or(0);
    let decoded_at_end = page.eval("duet.stats()")["video"]["framesDecoded"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        decoded_at_end > decoded_then,
        "Chromium's picture did not recover"
    );
}
