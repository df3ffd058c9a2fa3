//! The real window under Xvfb, answering a headless `duet call --offer` that sends the
//! stamped pattern: a screenshot of the X display shows the remote picture, whose stamp is
//! read back from the screen's pixels (frames reach the screen, not only the decoder).

mod common;

use duet::media::pattern::read_stamp;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCREEN: (usize, usize) = (1280, 800);

/// An Xvfb display of our own, ended when dropped.
struct Display {
    server: std::process::Child,
    name: String,
}

impl Display {
    fn start() -> Self {
        let number = 90 + std::process::id() % 500;
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
    let mut offerer = Command::new(common::duet())
        .args(["call", "--offer", "--bind", "127.0.0.1", "--duration", "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("duet call --offer");
    let mut offer = String::new();
    let mut offer_out = BufReader::new(offerer.stdout.take().expect("stdout"));
    offer_out.read_line(&mut offer).expect("offer");
    std::thread::spawn(move || std::io::copy(&mut offer_out, &mut std::io::sink()));
    std::fs::write(dir.join("offer.txt"), &offer).expect("offer file");

    let mut window = Command::new(common::duet())
        .args(["--bind", "127.0.0.1", "--answer"])
        .arg(dir.join("offer.txt"))
        .env("DISPLAY", &display.name)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("duet window");
    let mut answer = String::new();
    BufReader::new(window.stdout.take().expect("stdout"))
        .read_line(&mut answer)
        .expect("answer");
    let mut offer_in = offerer.stdin.take().expect("stdin");
    offer_in.write_all(answer.as_bytes()).expect("answer in");

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
