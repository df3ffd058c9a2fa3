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
    let (camera, microphone) = fake_media(scratch, "640x480", 660);
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
