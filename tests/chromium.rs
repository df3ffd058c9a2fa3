//! Chromium (Debian's, headless, fake devices fed with Duet's pattern and tone) as the other
//! peer, by room and by paste, each side offering in turn. Every process runs in a network
//! namespace with only `lo`.

mod common;

use common::chromium::{Chromium, Page, fake_media, in_own_network};
use common::{RoomCall, SignalServer};
use duet::call::CallSummary;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);
/// What Duet must have seen of Chromium: at least 90 % of the pictures Chromium encoded,
/// decoded and stamped with Duet's pattern (from the fake camera file), the 660 Hz tone
/// through the call, and the page's greeting on the data channel.
fn assert_duet_saw_chromium(summary: &CallSummary, page_stats: &Value) {
    let video = &summary.video_received;
    let encoded = page_stats["outbound"]["video"]["framesEncoded"]
        .as_u64()
        .unwrap_or_else(|| panic!("the page did not say what it encoded: {page_stats}"));
    assert!(
        encoded >= 60,
        "Chromium encoded only {encoded} pictures: {page_stats}"
    );
    assert!(
        video.frames_decoded * 10 >= encoded * 9,
        "Duet decoded {} of the {encoded} pictures Chromium encoded: {summary:#?}",
        video.frames_decoded
    );
    assert!(
        video.stamps_read * 100 >= video.frames_decoded * 95,
        "Duet read {} stamps in {} of Chromium's pictures",
        video.stamps_read,
        video.frames_decoded
    );
    common::assert_heard_tone(summary, 660.0, "Duet");
    assert!(
        summary.messages_received.iter().any(|m| m == "browser"),
        "no data-channel message from Chromium: {:?}",
        summary.messages_received
    );
}

/// What Chromium must have seen of Duet: H.264 decoded from at least 90 % of the pictures
/// Duet captured and Duet's stamps read back from 80 % (the page reads the pictures it is
/// shown, and a headless compositor shows fewer than it decodes), Duet's tone at its level for 90 % of the call
/// with little concealed, and Duet's greeting on the data channel. Returns the page's stats.
fn assert_chromium_saw_duet(page: &mut Page, duet: &CallSummary) -> Value {
    let stats = page.eval("duet.stats()");
    let video = &stats["video"];
    assert_eq!(video["mimeType"], "video/H264", "{stats}");
    let captured = duet.video_sent.frames_captured;
    assert!(captured >= 60, "Duet captured only {captured} pictures");
    let decoded = video["framesDecoded"].as_u64().unwrap_or(0);
    assert!(
        decoded * 10 >= captured * 9,
        "Chromium decoded {decoded} of Duet's {captured} pictures: {stats}"
    );
    let stamps = page.eval("duet.stamps.read").as_u64().unwrap_or(0);
    assert!(
        stamps * 10 >= captured * 8,
        "Chromium read {stamps} of Duet's {captured} stamps"
    );
    assert_eq!(page.eval("duet.stamps.outOfOrder"), 0);
    // Sound: played for most of the call, little of it made up, at a tone's level (Duet's
    // tone is about -13 dBFS; a click or noise is far below).
    let audio = &stats["audio"];
    let number = |name: &str| {
        audio[name]
            .as_f64()
            .unwrap_or_else(|| panic!("no {name} in Chromium's audio stats: {stats}"))
    };
    let seconds = number("totalSamplesDuration");
    assert!(
        seconds >= 0.9 * duet.connected_seconds,
        "Chromium played {seconds:.1} s of a {:.1} s call",
        duet.connected_seconds
    );
    let concealed = number("concealedSamples") / number("totalSamplesReceived").max(1.0);
    assert!(
        concealed <= 0.1,
        "Chromium concealed {:.0} % of Duet's sound",
        concealed * 100.0
    );
    let mean_power = number("totalAudioEnergy") / seconds.max(1e-3);
    assert!(
        mean_power >= 0.01,
        "Chromium heard Duet at a mean power of {mean_power:.4} (the tone is about 0.04): {stats}"
    );
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
    let summary = duet.summary();
    let stats = assert_chromium_saw_duet(&mut page, &summary);
    assert_duet_saw_chromium(&summary, &stats);
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
    let stats = assert_chromium_saw_duet(&mut page, &summary);
    assert_duet_saw_chromium(&summary, &stats);
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
    common::first_line_within(
        child.stdout.take().expect("stdout"),
        30 * SECOND,
        "token from duet call",
    )
    .trim()
    .to_owned()
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
    let status = common::wait_for_exit(child, 40 * SECOND, "duet call to end");
    assert!(status.success(), "duet call failed: {status}");
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
    let summary = read_summary(&stats);
    let page_stats = assert_chromium_saw_duet(&mut page, &summary);
    assert_duet_saw_chromium(&summary, &page_stats);

    // The page offers; Duet answers.
    // Marked, so the reloaded page is told from the old one still answering.
    page.eval("window.beforeReload = true; location.reload()");
    let mut page = browser.page();
    page.wait_for(
        "!window.beforeReload && document.readyState === 'complete' \
         && document.getElementById('make-offer') !== null",
        20 * SECOND,
    );
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
    let summary = read_summary(&stats);
    let page_stats = assert_chromium_saw_duet(&mut page, &summary);
    assert_duet_saw_chromium(&summary, &page_stats);
}

fn nft(script: &str) {
    common::load_nft(&mut Command::new("nft"), script);
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
        &["--duration", "11"],
    );
    page.wait_for("duet.state === 'connected'", 20 * SECOND);
    std::thread::sleep(2 * SECOND);
    let video_now = |page: &mut Page| page.eval("duet.stats()")["video"].clone();
    let count = |video: &Value, name: &str| {
        video[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in Chromium's stats: {video}"))
    };
    let before = video_now(&mut page);

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
    let after = video_now(&mut page);
    std::thread::sleep(2 * SECOND);
    let end = video_now(&mut page);
    assert_eq!(duet.wait(30 * SECOND), Some(0));
    // Cause and effect, seen from the browser: it asked for a keyframe during the blackout
    // (its start-up requests came before `before`), then decoded a new one, and Duet's
    // picture ran at the full rate again afterwards (30 fps; 2 s).
    assert!(
        count(&after, "pliCount") > count(&before, "pliCount"),
        "Chromium sent no PLI: {after}"
    );
    assert!(
        count(&after, "keyFramesDecoded") > count(&before, "keyFramesDecoded"),
        "Chromium decoded no new keyframe after asking: {after}"
    );
    let recovered = count(&end, "framesDecoded") - count(&after, "framesDecoded");
    assert!(
        recovered >= 50,
        "Chromium decoded {recovered} pictures in the 2 s after recovering"
    );
    let sent = duet.summary().video_sent;
    assert!(
        sent.keyframes_on_request >= 1,
        "Duet sent no IDR on request: {sent:#?}"
    );
}
