//! Sound through real devices: a PulseAudio server of the test's own with null sinks as
//! sound cards. A live stamped tone is played into peer A's microphone; peer B plays what
//! it receives on its speaker; the speaker's monitor is recorded, and the tone's frequency
//! and its marks (which say when each piece was played into the microphone) are read back:
//! what a person at B would hear, and how late.

mod common;

use common::pulse::PulseAudio;
use duet::call::CallSummary;
use duet::media::frame::wall_clock_us;
use duet::media::tone::{StampedTone, ToneAnalyzer};
use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TONE_HZ: f64 = 1000.0;

/// Plays the stamped tone at `hz` into `sink` in real time until `stop`.
fn speak_into(
    pulse: &PulseAudio,
    sink: &str,
    hz: f64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let mut player = pulse.player(sink);
    let mut input = player.stdin.take().expect("pacat stdin");
    std::thread::spawn(move || {
        let mut tone = StampedTone::new(hz);
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let frame = tone.next_frame(wall_clock_us());
            let bytes: Vec<u8> = frame.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
            if input.write_all(&bytes).is_err() {
                break;
            }
            next += Duration::from_millis(20);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        drop(input);
        let _ = player.kill();
        let _ = player.wait();
    })
}

/// Records `source` and reads the tone in it as it comes.
fn listen_to(pulse: &PulseAudio, source: &str, heard: Arc<Mutex<ToneAnalyzer>>) -> Child {
    let mut recorder = pulse.recorder(source);
    let mut output = recorder.stdout.take().expect("parec stdout");
    std::thread::spawn(move || {
        let mut chunk = [0u8; 1920];
        while output.read_exact(&mut chunk).is_ok() {
            let samples: Vec<i16> = chunk
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            // The chunk's last sample was played about now, its first 20 ms earlier.
            let at = wall_clock_us().saturating_sub(20_000);
            heard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(&samples, at);
        }
    });
    recorder
}

fn duet_call(pulse: &PulseAudio, args: &[&str]) -> Child {
    pulse
        .command(common::duet().to_str().expect("path"))
        .args(["call", "--bind", "127.0.0.1", "--no-video"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("duet call")
}

#[test]
fn sound_goes_from_one_microphone_to_the_other_speaker() {
    let dir = common::scratch("sound");
    let pulse = PulseAudio::start(&dir);
    pulse.null_sink("mic_a");
    pulse.null_sink("speaker_b");

    let stop = Arc::new(AtomicBool::new(false));
    let speaker = speak_into(&pulse, "mic_a", TONE_HZ, stop.clone());
    let heard = Arc::new(Mutex::new(ToneAnalyzer::new()));
    let mut recorder = listen_to(&pulse, "speaker_b.monitor", heard.clone());

    let stats = dir.join("b.json");
    let mut a = duet_call(
        &pulse,
        &["--offer", "--mic", "mic_a.monitor", "--duration", "8"],
    );
    let mut b = duet_call(
        &pulse,
        &[
            "--answer",
            "--speaker",
            "speaker_b",
            "--stats-json",
            stats.to_str().expect("path"),
        ],
    );
    common::exchange_tokens(&mut a, &mut b);
    let deadline = Instant::now() + Duration::from_secs(40);
    let b_status = loop {
        if let Some(status) = b.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the call did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    // A hung up after its 8 s; it must be gone by now.
    let a_deadline = Instant::now() + Duration::from_secs(10);
    while a.try_wait().expect("wait").is_none() {
        if Instant::now() > a_deadline {
            let _ = a.kill();
            panic!("A did not exit after hanging up");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = speaker.join();
    let _ = recorder.kill();
    let _ = recorder.wait();
    let mut b_err = String::new();
    if let Some(mut err) = b.stderr.take() {
        let _ = err.read_to_string(&mut b_err);
    }
    assert!(b_status.success(), "B failed: {b_err}");
    let summary: CallSummary =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("json");
    assert!(
        summary.devices.iter().any(|d| d.starts_with("speaker: ")),
        "B did not open its speaker: {:?}",
        summary.devices
    );
    let played = summary.played.clone().expect("B played nothing");

    let heard = heard.lock().unwrap_or_else(|e| e.into_inner());
    let hz = heard.dominant_frequency().expect("no tone on B's speaker");
    assert!((hz - TONE_HZ).abs() <= 5.0, "B's speaker played {hz} Hz");
    let marks = heard.mark_latencies_ms().to_vec();
    assert!(
        marks.len() >= 5,
        "only {} marks read back: {marks:?}",
        marks.len()
    );
    let mut sorted = marks.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    eprintln!(
        "mouth to ear (A's microphone to B's speaker, through PulseAudio): median {median:.0} ms of {} marks; B's jitter buffer {:?}, target {:.0} ms; {} frames played, {} concealed",
        marks.len(),
        played.jitter_delay_ms,
        played.jitter_target_ms,
        played.frames_played,
        played.concealed
    );
    assert!(median > 0.0 && median < 500.0, "mouth to ear {median} ms");
    assert!(played.frames_played > 200, "{played:?}");
}

/// A whole call by paste between `duet call --offer A_ARGS` and `--answer B_ARGS` (both
/// without video) on this PulseAudio server; waits for both to end.
fn pulse_call(pulse: &PulseAudio, a_args: &[&str], b_args: &[&str]) {
    let mut a = duet_call(pulse, &[&["--offer"], a_args].concat());
    let mut b = duet_call(pulse, &[&["--answer"], b_args].concat());
    common::exchange_tokens(&mut a, &mut b);
    common::wait_all(&mut [&mut a, &mut b], Duration::from_secs(40));
}

/// Amplitude of the `hz` component alone in the last `seconds` of a recorded WAV file (a
/// Goertzel filter), so the echo and the near end's own voice are told apart.
fn tail_level(path: &std::path::Path, seconds: f64, hz: f64) -> f64 {
    let (sound, rate) = duet::media::file::read_wav(path).expect("recording");
    let tail = (seconds * rate as f64) as usize;
    let last = &sound[sound.len().saturating_sub(tail)..];
    let w = 2.0 * std::f64::consts::PI * hz / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in last {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / last.len().max(1) as f64
}

/// The tone A sends (the offering side's default).
const FAR_HZ: f64 = 440.0;
/// What B's person says meanwhile: a tone of another pitch played into B's room.
const NEAR_HZ: f64 = 1500.0;

#[test]
fn echo_is_cancelled_and_the_near_end_still_heard() {
    // B has no headphones: what its speaker plays, its microphone hears (the sink's monitor
    // is B's microphone). A sends its test tone and records what comes back from B: the
    // echo of its own tone, and B's person talking over it (a second tone played into B's
    // room). With echo cancellation on, the echo must be 20 dB weaker, and B's person
    // within 6 dB of what A hears without it: a canceller that mutes the microphone
    // fails.
    let dir = common::scratch("echo");
    let pulse = PulseAudio::start(&dir);
    pulse.null_sink("room_b");
    let mut levels = Vec::new();
    for cancel in [false, true] {
        let recording = dir.join(if cancel { "on" } else { "off" });
        let mut b_args = vec![
            "--speaker",
            "room_b",
            "--mic",
            "room_b.monitor",
            "--no-noise-suppression",
            "--no-gain-control",
        ];
        if !cancel {
            b_args.push("--no-echo-cancellation");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let near_end = speak_into(&pulse, "room_b", NEAR_HZ, stop.clone());
        pulse_call(
            &pulse,
            &[
                "--duration",
                "8",
                "--record",
                recording.to_str().expect("path"),
            ],
            &b_args,
        );
        stop.store(true, Ordering::Relaxed);
        let _ = near_end.join();
        let heard = recording.join("remote.wav");
        levels.push((
            tail_level(&heard, 3.0, FAR_HZ),
            tail_level(&heard, 3.0, NEAR_HZ),
        ));
    }
    let ((echo_off, near_off), (echo_on, near_on)) = (levels[0], levels[1]);
    let echo_db = 20.0 * (echo_off / echo_on.max(1e-6)).log10();
    let near_db = 20.0 * (near_on.max(1e-6) / near_off.max(1e-6)).log10();
    eprintln!(
        "what A hears back from B, amplitude at {FAR_HZ} Hz (echo) and {NEAR_HZ} Hz (B talking): without echo cancellation {echo_off:.4} and {near_off:.4}, with it {echo_on:.4} and {near_on:.4} (full scale 1): the echo {echo_db:.1} dB weaker, B's voice {near_db:+.1} dB"
    );
    assert!(
        echo_off > 0.003 && near_off > 0.003,
        "without cancellation, A heard too little of its echo ({echo_off:.4}) or of B ({near_off:.4}): the test proves nothing"
    );
    assert!(echo_db >= 20.0, "the echo is only {echo_db:.1} dB weaker");
    assert!(
        near_db.abs() <= 6.0,
        "B's own voice changed by {near_db:+.1} dB with echo cancellation on"
    );
}
