//! The real window under Xvfb, answering a headless `duet call --offer` that sends the
//! stamped pattern: a screenshot of the X display shows the remote picture, whose stamp is
//! read back from the screen's pixels (frames reach the screen, not only the decoder), and
//! what the window says is read off the screen by OCR (tesseract), as a person reads it.

mod common;

use duet::media::pattern::read_stamp;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SCREEN: (usize, usize) = (1280, 800);

/// An Xvfb display of our own, ended when dropped.
struct Display {
    server: std::process::Child,
    name: String,
}

impl Display {
    fn start() -> Self {
        // Tests of one binary run side by side: each takes a display number of its own.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let number = 90 + (std::process::id() % 400) * 4 + NEXT.fetch_add(1, Ordering::Relaxed) % 4;
        let name = format!(":{number}");
        let server = Command::new("Xvfb")
            .args([
                name.as_str(),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (scripts/setup.sh installs it)");
        let socket = format!("/tmp/.X11-unix/X{number}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::path::Path::new(&socket).exists() {
            assert!(Instant::now() < deadline, "Xvfb did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { server, name }
    }

    /// The whole screen as RGB bytes, and when it was taken (wall-clock ms).
    fn screenshot(&self, dir: &std::path::Path) -> (Vec<u8>, u64) {
        let path = dir.join("screen.rgb");
        let taken_ms = duet::media::frame::wall_clock_ms();
        let status = Command::new("import")
            .args(["-display", &self.name, "-window", "root", "-depth", "8"])
            .arg(format!("rgb:{}", path.display()))
            .status()
            .expect("import (ImageMagick; scripts/setup.sh installs it)");
        assert!(status.success());
        (std::fs::read(&path).expect("screenshot"), taken_ms)
    }

    /// Types on the Duet window's keyboard, as a person would (xdotool: `key c`,
    /// `type hello`, ...). The window is focused first: Xvfb has no window manager.
    fn keyboard(&self, words: &[&str]) {
        let xdotool = |args: &[&str]| {
            let out = Command::new("xdotool")
                .args(args)
                .env("DISPLAY", &self.name)
                .output()
                .expect("xdotool (scripts/setup.sh installs it)");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let window = xdotool(&["search", "--name", "^Duet$"]);
        let window = window
            .lines()
            .next()
            .expect("no Duet window on the display");
        xdotool(&["windowfocus", "--sync", window]);
        xdotool(words);
    }

    /// Waits until the status bar says `text` (lower case, no spaces); returns what it said.
    fn wait_for_status(&self, dir: &std::path::Path, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let said = self.status_text(dir);
            if said.contains(text) {
                return said;
            }
            assert!(
                Instant::now() < deadline,
                "the window never said {text:?}; it says {said:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The text of the window's status bar (its top 30 rows), as OCR reads it, lower case
    /// and without spaces (OCR is unsure of the small spaces).
    fn status_text(&self, dir: &std::path::Path) -> String {
        let shot = dir.join("status.png");
        let status = Command::new("import")
            .args(["-display", &self.name, "-window", "root"])
            .args([
                "-crop",
                "1280x30+0+0",
                "-resize",
                "300%",
                "-colorspace",
                "Gray",
                "-negate",
            ])
            .arg(&shot)
            .status()
            .expect("import (ImageMagick; scripts/setup.sh installs it)");
        assert!(status.success());
        let out = Command::new("tesseract")
            .arg(&shot)
            .arg("-")
            .stderr(Stdio::null())
            .output()
            .expect("tesseract (scripts/setup.sh installs tesseract-ocr)");
        String::from_utf8_lossy(&out.stdout)
            .to_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    }
}

/// A headless `duet call --offer` sending the pattern for `seconds`, and the window on
/// `display` answering it; both are running and connecting when this returns.
fn call_the_window(dir: &std::path::Path, display: &Display, seconds: u32) -> (Child, Child) {
    let mut offerer = Command::new(common::duet())
        .args(["call", "--offer", "--bind", "127.0.0.1", "--duration"])
        .arg(seconds.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("duet call --offer");
    let offer = common::first_line_within(
        offerer.stdout.take().expect("stdout"),
        Duration::from_secs(30),
        "offer token",
    );
    std::fs::write(dir.join("offer.txt"), &offer).expect("offer file");

    let mut window = Command::new(common::duet())
        .args(["--bind", "127.0.0.1", "--answer"])
        .arg(dir.join("offer.txt"))
        .arg("--config")
        .arg(dir.join("settings.toml"))
        .env("DISPLAY", &display.name)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("duet window");
    let answer = common::first_line_within(
        window.stdout.take().expect("stdout"),
        Duration::from_secs(30),
        "answer token from the window",
    );
    let mut offer_in = offerer.stdin.take().expect("stdin");
    offer_in.write_all(answer.as_bytes()).expect("answer in");
    (offerer, window)
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Finds the remote picture on the screen: from the middle of the window's left margin
/// (the panel's flat background), the first run that is not background, bounded by
/// background on every side. Returns its luma plane with its size.
fn remote_picture(rgb: &[u8]) -> Option<(Vec<u8>, usize, usize)> {
    let (w, h) = SCREEN;
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        (rgb[i], rgb[i + 1], rgb[i + 2])
    };
    let mid = h / 2;
    let background = px(2, mid);
    let is_bg = |x: usize, y: usize| px(x, y) == background;
    let left = (0..w).find(|&x| !is_bg(x, mid))?;
    let right = (left..w - 2)
        .find(|&x| is_bg(x, mid) && is_bg(x + 1, mid))
        .map_or(w - 1, |x| x - 1);
    let column = left + 2;
    let top = (0..mid)
        .rev()
        .find(|&y| is_bg(column, y))
        .map_or(0, |y| y + 1);
    let bottom = (mid..h).find(|&y| is_bg(column, y)).unwrap_or(h);
    let (pw, ph) = (right + 1 - left, bottom - top);
    if pw < 100 || ph < 75 {
        return None;
    }
    let mut luma = Vec::with_capacity(pw * ph);
    for y in top..bottom {
        for x in left..=right {
            let (r, g, b) = px(x, y);
            // Back to video-range luma, the range the stamp was drawn in.
            let full = 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
            luma.push((16.0 + full * 219.0 / 255.0) as u8);
        }
    }
    Some((luma, pw, ph))
}

#[test]
fn window_shows_the_remote_picture() {
    let dir = common::scratch("window");
    let display = Display::start();
    let (mut offerer, mut window) = call_the_window(&dir, &display, 8);

    // Give the call a moment, then read stamps off the screen a few times.
    std::thread::sleep(Duration::from_secs(3));
    let mut latencies = Vec::new();
    let mut frames = Vec::new();
    for _ in 0..5 {
        let (rgb, taken_ms) = display.screenshot(&dir);
        let (luma, w, h) = remote_picture(&rgb).expect("no remote picture on the screen");
        if let Some(stamp) = read_stamp(&luma, w, h, w) {
            latencies.push(taken_ms as f64 - stamp.capture_time_ms as f64);
            frames.push(stamp.frame_number);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = window.kill();
    let _ = window.wait();
    let _ = offerer.kill();
    let _ = offerer.wait();
    assert!(
        latencies.len() >= 3,
        "the stamp read back from only {} of 5 screenshots",
        latencies.len()
    );
    assert!(
        frames.windows(2).all(|w| w[1] > w[0]),
        "the picture did not move on: {frames:?}"
    );
    latencies.sort_by(|a, b| a.total_cmp(b));
    eprintln!("capture to screen (screenshot time minus stamp): {latencies:?} ms");
    assert!(latencies[latencies.len() / 2] < 500.0, "{latencies:?}");
}

#[test]
fn window_survives_the_peer_vanishing() {
    let dir = common::scratch("window-vanish");
    let display = Display::start();
    // Give up reconnecting after 4 s instead of 30, so the test is short.
    std::fs::write(dir.join("settings.toml"), "reconnect_timeout = 4\n").expect("settings");
    let (mut offerer, mut window) = call_the_window(&dir, &display, 60);
    display.wait_for_status(&dir, "inacall", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let _ = offerer.kill();
    let _ = offerer.wait();
    let killed = Instant::now();

    // The window goes on drawing while it finds out (its self-view and the call's clock
    // move on; the far side's picture stands still), then says what happened. Only the
    // screens from before it says so count as drawing.
    let mut screens = Vec::new();
    let mut said = String::new();
    let mut reconnecting = false;
    while killed.elapsed() < Duration::from_secs(25) {
        let screen = display.screenshot(&dir).0;
        said = display.status_text(&dir);
        if said.contains("callended") || said.contains("connectionlost") {
            break;
        }
        reconnecting |= said.contains("reconnecting");
        screens.push(screen);
        std::thread::sleep(Duration::from_millis(700));
    }
    let noticed = killed.elapsed();
    let still_running = window.try_wait().ok().flatten().is_none();
    let _ = window.kill();
    let _ = window.wait();
    assert!(
        said.contains("callended") && said.contains("connectionlost"),
        "after 25 s the window says {said:?}"
    );
    screens.dedup();
    assert!(
        screens.len() >= 2,
        "the window did not redraw while it found out the far side had vanished"
    );
    assert!(still_running, "the window exited");
    assert!(
        reconnecting,
        "the window never said it was reconnecting before it gave up"
    );
    eprintln!(
        "the window said \"connection lost\" {:.1} s after the far side was killed ({} different screens meanwhile)",
        noticed.as_secs_f64(),
        screens.len()
    );
}

#[test]
fn window_joins_a_room_chats_and_hangs_up() {
    let dir = common::scratch("window-room");
    let display = Display::start();
    let server = common::SignalServer::start(&[]);
    let recordings = dir.join("recordings");
    std::fs::write(
        dir.join("settings.toml"),
        format!("recordings = {:?}\n", recordings.display().to_string()),
    )
    .expect("settings");
    let mut window = Command::new(common::duet())
        .args(["--bind", "127.0.0.1", "--room", "lounge", "--server"])
        .arg(server.ws_url())
        .arg("--config")
        .arg(dir.join("settings.toml"))
        .env("DISPLAY", &display.name)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("duet window");
    display.wait_for_status(&dir, "waitingfortheotherperson", Duration::from_secs(20));
    let mut far = common::RoomCall::start(
        &server.ws_url(),
        "lounge",
        dir.join("far.json"),
        &["--duration", "30"],
    );
    // Both sides show the same security code.
    let seen = far.wait_for("security code", Duration::from_secs(20));
    let code: String = seen
        .last()
        .and_then(|line| line.split("security code ").nth(1))
        .map(|rest| {
            rest.chars()
                .take(7)
                .filter(|c| c.is_ascii_digit())
                .collect()
        })
        .expect("code");
    assert_eq!(code.len(), 6, "{seen:?}");
    let said = display.wait_for_status(&dir, "inacallwithduet", Duration::from_secs(20));
    assert!(
        said.contains(&code),
        "the far side's code is {code}; {said:?}"
    );

    // R records the far side, R again stops; the files land in the settings' folder.
    display.keyboard(&["key", "r"]);
    std::thread::sleep(Duration::from_secs(3));
    display.keyboard(&["key", "r"]);
    let made: Vec<_> = std::fs::read_dir(&recordings)
        .expect("the recordings folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    // Stopping closes the files (the WAV's header gets its length then).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !duet::media::file::read_wav(&made[0].join("remote.wav"))
        .is_ok_and(|(sound, _)| !sound.is_empty())
    {
        assert!(Instant::now() < deadline, "the recording was never closed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut video = duet::media::file::Y4mReader::open(&made[0].join("remote.y4m")).expect("y4m");
    let first = video.next_frame(0).expect("a recorded picture");
    assert!(
        duet::media::pattern::read_frame_stamp(&first).is_some(),
        "the recording holds the far side's stamped pattern"
    );
    let pictures = std::fs::read(made[0].join("remote.y4m"))
        .expect("y4m")
        .windows(6)
        .filter(|w| w == b"FRAME\n")
        .count();
    let (sound, rate) = duet::media::file::read_wav(&made[0].join("remote.wav")).expect("wav");
    let seconds = sound.len() as f64 / rate as f64;
    eprintln!("recorded {pictures} pictures and {seconds:.2} s of sound");
    assert!(
        (60..=120).contains(&pictures),
        "{pictures} pictures in about 3 s"
    );
    assert!((2.0..4.0).contains(&seconds), "{seconds} s of sound");

    // A chat line typed in the window reaches the far side.
    display.keyboard(&["key", "c"]);
    std::thread::sleep(Duration::from_millis(300));
    display.keyboard(&["type", "hello from the window"]);
    display.keyboard(&["key", "Return"]);
    far.wait_for(
        "the far side says: hello from the window",
        Duration::from_secs(10),
    );

    // Hanging up in the window ends the call on the far side too.
    // Esc leaves the message box (and must not hang up), the next one hangs up. (Ctrl+W does
    // not reach the window through xdotool under Xvfb; the kittest of the call screen covers
    // it.)
    display.keyboard(&["key", "Escape"]);
    std::thread::sleep(Duration::from_millis(500));
    let said = display.status_text(&dir);
    assert!(said.contains("inacall"), "Esc in the chat box: {said:?}");
    display.keyboard(&["key", "Escape"]);
    display.wait_for_status(&dir, "callended:youhungup", Duration::from_secs(10));
    far.wait(Duration::from_secs(15));
    let summary = far.summary();
    assert_eq!(summary.end_reason, "remote hung up");
    assert!(
        summary.video_received.frames_decoded > 30,
        "the far side decoded {} of the window's pictures",
        summary.video_received.frames_decoded
    );
    assert!(summary.messages_received.iter().any(|m| m == "Duet"));
    let _ = window.kill();
    let _ = window.wait();
}
