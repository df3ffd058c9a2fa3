//! Files in place of devices: a Y4M file as the camera and a WAV file as the microphone on
//! one side, and a recording of what arrived on the other, played back and checked.

mod common;

use duet::call::CallSummary;
use duet::media::file::{Y4mReader, read_wav};
use duet::media::pattern::read_frame_stamp;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A call by paste between `duet call --offer OFFER_ARGS` and `duet call --answer
/// ANSWER_ARGS`; returns the answerer's summary.
fn paste_call(offer_args: &[&str], answer_args: &[&str], stats: &std::path::Path) -> CallSummary {
    let spawn = |args: &[&str]| {
        Command::new(common::duet())
            .args(["call", "--bind", "127.0.0.1"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("duet call")
    };
    let mut a = spawn(offer_args);
    let mut b = spawn(answer_args);
    common::exchange_tokens(&mut a, &mut b);
    common::wait_all(&mut [&mut a, &mut b], Duration::from_secs(40));
    serde_json::from_str(&std::fs::read_to_string(stats).expect("stats")).expect("json")
}

#[test]
fn files_play_as_camera_and_microphone_and_the_far_side_records_them() {
    let dir = common::scratch("files");
    let (camera, mic) = (dir.join("camera.y4m"), dir.join("mic.wav"));
    let made = Command::new(common::duet())
        .args([
            "pattern",
            "--size",
            "320x240",
            "--fps",
            "15",
            "--seconds",
            "2",
            "--tone",
            "1000",
        ])
        .arg("--y4m")
        .arg(&camera)
        .arg("--wav")
        .arg(&mic)
        .status()
        .expect("duet pattern");
    assert!(made.success());
    let (stats, recording) = (dir.join("b.json"), dir.join("recording"));
    let a_stats = dir.join("a.json");
    let summary = paste_call(
        &[
            "--offer",
            "--camera",
            camera.to_str().expect("path"),
            "--mic",
            mic.to_str().expect("path"),
            "--duration",
            "5",
            "--stats-json",
            a_stats.to_str().expect("path"),
        ],
        &[
            "--answer",
            "--record",
            recording.to_str().expect("path"),
            "--stats-json",
            stats.to_str().expect("path"),
        ],
        &stats,
    );
    // A says it sent the file's size and rate, not the settings'.
    let sender: CallSummary =
        serde_json::from_str(&std::fs::read_to_string(&a_stats).expect("a stats")).expect("json");
    let sent = &sender.video_sent;
    assert_eq!(
        (sent.width, sent.height, sent.fps),
        (320, 240, 15),
        "{sent:?}"
    );
    // The file's pictures arrived at its size and rate: 15 a second for 5 s, each stamped
    // (the stamps run from 0 again each time the 2 s file starts over).
    let video = &summary.video_received;
    assert_eq!(
        (video.width, video.height),
        (Some(320), Some(240)),
        "{summary:#?}"
    );
    assert!(
        (60..=80).contains(&video.frames_decoded) && video.stamps_read == video.frames_decoded,
        "{summary:#?}"
    );
    let heard = summary
        .audio_received
        .frequency_hz
        .expect("no sound arrived");
    assert!((heard - 1000.0).abs() <= 3.0, "heard {heard} Hz");

    // The recording holds them, and its two files last about as long.
    let mut pictures = Y4mReader::open(&recording.join("remote.y4m")).expect("remote.y4m");
    assert_eq!((pictures.width, pictures.height), (320, 240));
    let mut count = 0usize;
    let mut stamped = 0;
    let size = std::fs::metadata(recording.join("remote.y4m"))
        .expect("size")
        .len() as usize;
    let frames_in_file = size / (320 * 240 * 3 / 2 + 6);
    while count < frames_in_file {
        let frame = pictures.next_frame(0).expect("picture");
        stamped += usize::from(read_frame_stamp(&frame).is_some());
        count += 1;
    }
    let (sound, rate) = read_wav(&recording.join("remote.wav")).expect("remote.wav");
    let video_seconds = count as f64 / 30.0;
    let sound_seconds = sound.len() as f64 / rate as f64;
    eprintln!("recorded {count} pictures ({video_seconds:.2} s) and {sound_seconds:.2} s of sound");
    assert!(
        stamped * 10 >= count * 9,
        "{stamped} of {count} recorded pictures stamped"
    );
    assert!(video_seconds > 3.0, "{video_seconds} s of pictures");
    assert!(
        (video_seconds - sound_seconds).abs() < 0.5,
        "pictures {video_seconds:.2} s, sound {sound_seconds:.2} s"
    );
    assert!(
        summary.devices.iter().any(|d| d.starts_with("recorded ")),
        "{:?}",
        summary.devices
    );
}
