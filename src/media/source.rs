//! Where the pictures we send come from, opened: a camera, a Y4M file played as one, or the
//! stamped test pattern. A camera gives each picture as soon as it has it (no pacing of
//! ours); the pattern and a file are paced to their rate. A camera that is missing, busy or
//! unplugged leaves the pattern in its place, with a note that says why, and is tried again
//! every few seconds: plugging it back in brings it back.

use crate::media::camera::{CameraCapture, CameraChoice, CameraError, Wanted};
use crate::media::file::Y4mReader;
use crate::media::frame::{VideoFrame, wall_clock_us};
use crate::media::pattern::StampedPattern;
use std::time::{Duration, Instant};

/// Where the pictures we send come from.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum VideoSource {
    /// The stamped test pattern.
    #[default]
    Pattern,
    /// A Y4M file, looped at its own rate.
    File(std::path::PathBuf),
    /// A camera.
    Camera(CameraChoice),
}

impl VideoSource {
    /// `pattern`, the path of a `.y4m` file, or a camera: `default`, its number or its
    /// name as `duet devices` lists them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("pattern") || text.is_empty() {
            Ok(Self::Pattern)
        } else if text.to_ascii_lowercase().ends_with(".y4m") {
            Ok(Self::File(text.into()))
        } else {
            Ok(Self::Camera(CameraChoice::parse(text)))
        }
    }

    /// How the settings file says it.
    pub fn setting(&self) -> String {
        match self {
            Self::Pattern => "pattern".into(),
            Self::File(path) => path.display().to_string(),
            Self::Camera(choice) => choice.setting(),
        }
    }
}

/// How long a missing or failed camera is left alone before it is tried again.
const RETRY: Duration = Duration::from_secs(3);
/// A camera just let go by someone else (the window's self-view) may still be busy for a
/// picture or two.
const BUSY_AT_START: Duration = Duration::from_millis(1500);

/// Opens a camera; tests put a camera of their own here.
pub type CameraOpener = Box<dyn FnMut(&CameraChoice, Wanted) -> Result<CameraCapture, CameraError>>;

enum Opened {
    Pattern,
    File(Y4mReader),
    Camera(CameraCapture),
}

/// An opened picture source; it lives on the capture thread.
pub struct PictureSource {
    opened: Opened,
    /// The camera asked for, if one was: tried again while the pattern stands in.
    camera: Option<CameraChoice>,
    wanted: Wanted,
    open_camera: CameraOpener,
    pattern: StampedPattern,
    period: Duration,
    next: Instant,
    retry_at: Instant,
    /// What was last said about the camera, so a camera still missing is not said again.
    problem: Option<String>,
    /// The camera stopped giving pictures (rather than failing to open).
    stopped: bool,
    black: Option<VideoFrame>,
}

impl PictureSource {
    /// Opens `source`; `say` hears what became of it ("camera: ...", or why the pattern is
    /// sent instead).
    pub fn open(source: &VideoSource, wanted: Wanted, say: &mut dyn FnMut(String)) -> Self {
        Self::with_opener(source, wanted, Box::new(CameraCapture::open), say)
    }

    pub fn with_opener(
        source: &VideoSource,
        wanted: Wanted,
        open_camera: CameraOpener,
        say: &mut dyn FnMut(String),
    ) -> Self {
        let period = Duration::from_secs_f64(1.0 / wanted.fps.max(1) as f64);
        let mut this = Self {
            opened: Opened::Pattern,
            camera: None,
            wanted,
            open_camera,
            pattern: StampedPattern::new(wanted.width as usize, wanted.height as usize),
            period,
            next: Instant::now(),
            retry_at: Instant::now(),
            problem: None,
            stopped: false,
            black: None,
        };
        match source {
            VideoSource::Pattern => {}
            VideoSource::File(path) => match Y4mReader::open(path) {
                Ok(reader)
                    if !crate::media::level::fits_level(
                        reader.width,
                        reader.height,
                        reader.fps,
                    ) =>
                {
                    say(format!(
                        "{} is {}x{} at {:.0} fps, more than H.264 level 3.1 allows the far side \
                         to expect (1280x720 at 30 fps): sending the test pattern instead",
                        path.display(),
                        reader.width,
                        reader.height,
                        reader.fps
                    ));
                }
                Ok(reader) => {
                    say(format!(
                        "camera: {} ({}x{} at {:.0} fps, looped)",
                        path.display(),
                        reader.width,
                        reader.height,
                        reader.fps
                    ));
                    this.pattern = StampedPattern::new(reader.width, reader.height);
                    this.period = Duration::from_secs_f64(1.0 / reader.fps);
                    this.opened = Opened::File(reader);
                }
                Err(e) => say(format!("{e}: sending the test pattern instead")),
            },
            VideoSource::Camera(choice) => {
                this.camera = Some(choice.clone());
                let deadline = Instant::now() + BUSY_AT_START;
                loop {
                    match this.try_camera(say) {
                        Err(CameraError::Busy(_)) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        _ => break,
                    }
                }
            }
        }
        this
    }

    /// The size of the pictures now sent.
    pub fn size(&self) -> (usize, usize) {
        match &self.opened {
            Opened::Camera(camera) => (camera.mode.width as usize, camera.mode.height as usize),
            Opened::File(reader) => (reader.width, reader.height),
            Opened::Pattern => self.pattern.size(),
        }
    }

    /// The rate of the pictures now sent.
    pub fn fps(&self) -> f64 {
        match &self.opened {
            Opened::Camera(camera) => camera.mode.fps as f64,
            _ => 1.0 / self.period.as_secs_f64(),
        }
    }

    /// Opens the camera asked for; says how it went when that is news.
    fn try_camera(&mut self, say: &mut dyn FnMut(String)) -> Result<(), CameraError> {
        let Some(choice) = &self.camera else {
            return Ok(());
        };
        match (self.open_camera)(choice, self.wanted) {
            Ok(camera) => {
                self.stopped = false;
                let back = if self.problem.take().is_some() {
                    " (back)"
                } else {
                    ""
                };
                say(format!("camera: {}, {}{back}", camera.name, camera.mode));
                self.period = Duration::from_secs_f64(1.0 / camera.mode.fps.max(1) as f64);
                self.opened = Opened::Camera(camera);
                Ok(())
            }
            Err(e) => {
                self.fail(e.clone(), say);
                Err(e)
            }
        }
    }

    fn fail(&mut self, e: CameraError, say: &mut dyn FnMut(String)) {
        // A camera that stopped may still be held by its own (hung) thread: "busy" on the
        // next try is that, not another program, and the first reason stands.
        let held_by_itself = matches!(e, CameraError::Busy(_)) && self.stopped;
        self.stopped = matches!(e, CameraError::Stopped { .. }) || held_by_itself;
        let text = format!("camera: {e}; sending the test pattern instead");
        if !held_by_itself && self.problem.as_ref() != Some(&text) {
            say(text.clone());
            self.problem = Some(text);
        }
        self.retry_at = Instant::now() + RETRY;
        // The pattern goes on at the size the camera had, so the far side's picture does
        // not jump.
        let (width, height) = self.size();
        if (width, height) != self.pattern.size() {
            self.pattern = StampedPattern::new(width, height);
        }
        self.period = Duration::from_secs_f64(1.0 / self.wanted.fps.max(1) as f64);
        self.opened = Opened::Pattern;
    }

    /// Lets the camera go (its light goes off); the next picture asked for opens it again.
    pub fn release(&mut self) {
        if let Opened::Camera(camera) = &self.opened {
            let (width, height) = (camera.mode.width as usize, camera.mode.height as usize);
            self.pattern = StampedPattern::new(width, height);
            self.opened = Opened::Pattern;
            self.retry_at = Instant::now();
        }
    }

    /// The next picture: a camera's as soon as it has one, the pattern's or a file's at
    /// their rate. With the camera off, black pictures at the pattern's rate and the
    /// camera let go.
    pub fn next_frame(&mut self, camera_off: bool, say: &mut dyn FnMut(String)) -> VideoFrame {
        if camera_off {
            self.release();
            let (width, height) = self.size();
            let black = self
                .black
                .take()
                .filter(|b| (b.width, b.height) == (width, height))
                .unwrap_or_else(|| {
                    let mut black = VideoFrame::new(width, height, 0);
                    black.planes_mut().0.fill(16);
                    black
                });
            self.black = Some(black.clone());
            self.pace();
            return VideoFrame {
                capture_time_us: wall_clock_us(),
                ..black
            };
        }
        if matches!(self.opened, Opened::Pattern)
            && self.camera.is_some()
            && Instant::now() >= self.retry_at
        {
            let _ = self.try_camera(say);
        }
        if let Opened::Camera(camera) = &mut self.opened {
            match camera.next_frame() {
                Ok(frame) => {
                    self.next = Instant::now();
                    return frame;
                }
                Err(e) => self.fail(e, say),
            }
        }
        self.pace();
        let now = wall_clock_us();
        let frame = match &mut self.opened {
            Opened::File(reader) => match reader.next_frame(now) {
                Ok(frame) => Some(frame),
                Err(e) => {
                    say(format!("{e}: sending the test pattern instead"));
                    self.opened = Opened::Pattern;
                    None
                }
            },
            _ => None,
        };
        frame.unwrap_or_else(|| self.pattern.next_frame(now))
    }

    /// Sleeps until this picture is due, before it is made: a picture is stamped and handed
    /// on the moment it is made, never held for a period. A thread that fell far behind
    /// starts the cadence afresh rather than bursting to catch up.
    fn pace(&mut self) {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        } else if now - self.next > self.period * 2 {
            self.next = now;
        }
        self.next += self.period;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::camera::{CameraMode, PixelLayout, RawPictures};
    use crate::media::pattern::read_frame_stamp;
    use std::sync::{Arc, Mutex};

    const SMALL: Wanted = Wanted {
        width: 160,
        height: 120,
        fps: 100,
    };

    /// A camera that gives `pictures` NV12 pictures of the pattern stamped 42 s, then
    /// fails as an unplugged one does.
    struct Plugged(usize);

    impl RawPictures for Plugged {
        fn next_raw(&mut self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
            std::thread::sleep(Duration::from_millis(20));
            if self.0 == 0 {
                return Err("No such device (os error 19)".into());
            }
            self.0 -= 1;
            let frame = StampedPattern::new(320, 240).next_frame(42_000_000);
            Ok(crate::media::camera::layouts::nv12_of(&frame).into())
        }
    }

    /// Opens cameras from a script of outcomes (the last one repeats), counting attempts.
    fn scripted(outcomes: Vec<Result<usize, CameraError>>) -> (CameraOpener, Arc<Mutex<u32>>) {
        let tries = Arc::new(Mutex::new(0));
        let counted = tries.clone();
        let opener = move |_: &CameraChoice, _: Wanted| {
            let mut n = counted.lock().unwrap(); // test: a panic is the failure
            let outcome = outcomes[(*n as usize).min(outcomes.len() - 1)].clone();
            *n += 1;
            outcome.and_then(|pictures| {
                let mode = CameraMode {
                    layout: PixelLayout::Nv12,
                    width: 320,
                    height: 240,
                    fps: 30,
                };
                CameraCapture::with_device(Box::new(Plugged(pictures)), mode, "Test Cam".into())
            })
        };
        (Box::new(opener), tries)
    }

    fn camera_stamp(frame: &VideoFrame) -> Option<u64> {
        read_frame_stamp(frame).map(|s| s.capture_time_ms)
    }

    #[test]
    fn a_missing_camera_falls_back_to_the_pattern_with_a_note() {
        let (opener, tries) = scripted(vec![Err(CameraError::NoneFound)]);
        let mut notes = Vec::new();
        let source = VideoSource::Camera(CameraChoice::Default);
        let mut pictures =
            PictureSource::with_opener(&source, SMALL, opener, &mut |n| notes.push(n));
        assert_eq!(
            notes,
            ["camera: no camera was found; sending the test pattern instead"]
        );
        let frame = pictures.next_frame(false, &mut |n| notes.push(n));
        assert_eq!((frame.width, frame.height), (160, 120));
        assert_ne!(camera_stamp(&frame), Some(42_000));
        // Not tried again at once, and not said again when tried again.
        assert_eq!(*tries.lock().unwrap(), 1); // test: a panic is the failure
        pictures.retry_at = Instant::now();
        pictures.next_frame(false, &mut |n| notes.push(n));
        assert_eq!(*tries.lock().unwrap(), 2); // test: a panic is the failure
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn an_unplugged_camera_leaves_the_pattern_and_comes_back_when_plugged_in() {
        let (opener, tries) = scripted(vec![Ok(2), Err(CameraError::NoneFound), Ok(1)]);
        let mut notes = Vec::new();
        let source = VideoSource::Camera(CameraChoice::Index(0));
        let mut pictures =
            PictureSource::with_opener(&source, SMALL, opener, &mut |n| notes.push(n));
        let next = |p: &mut PictureSource, notes: &mut Vec<String>| {
            camera_stamp(&p.next_frame(false, &mut |n| notes.push(n)))
        };
        assert_eq!(next(&mut pictures, &mut notes), Some(42_000));
        // Unplugged after its second picture (which a slow test may miss): then the
        // pattern, at the camera's size, and the reason.
        let frame = loop {
            let frame = pictures.next_frame(false, &mut |n| notes.push(n));
            if camera_stamp(&frame) != Some(42_000) {
                break frame;
            }
        };
        assert_eq!((frame.width, frame.height), (320, 240));
        assert!(notes[1].contains("stopped giving pictures"), "{notes:?}");
        assert!(notes[1].ends_with("sending the test pattern instead"));
        // Still gone on the next try; there on the one after.
        pictures.retry_at = Instant::now();
        next(&mut pictures, &mut notes);
        pictures.retry_at = Instant::now();
        assert_eq!(next(&mut pictures, &mut notes), Some(42_000));
        assert_eq!(*tries.lock().unwrap(), 3); // test: a panic is the failure
        assert_eq!(
            notes.last().unwrap(), // test: a panic is the failure
            "camera: Test Cam, 320x240 NV12 at 30 fps (back)"
        );
    }

    #[test]
    fn a_stopped_camera_still_held_by_its_own_thread_is_not_called_busy() {
        let (opener, _) = scripted(vec![
            Ok(1),
            Err(CameraError::Busy("Test Cam".into())),
            Ok(1),
        ]);
        let mut notes = Vec::new();
        let source = VideoSource::Camera(CameraChoice::Default);
        let mut pictures =
            PictureSource::with_opener(&source, SMALL, opener, &mut |n| notes.push(n));
        while camera_stamp(&pictures.next_frame(false, &mut |n| notes.push(n))) == Some(42_000) {}
        for _ in 0..2 {
            pictures.retry_at = Instant::now();
            pictures.next_frame(false, &mut |n| notes.push(n));
        }
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[1].contains("stopped giving pictures"), "{notes:?}");
        assert!(notes[2].ends_with("(back)"), "{notes:?}");
    }

    #[test]
    fn turning_the_camera_off_lets_it_go_and_sends_black() {
        let (opener, tries) = scripted(vec![Ok(100)]);
        let mut notes = Vec::new();
        let source = VideoSource::Camera(CameraChoice::Default);
        let mut pictures =
            PictureSource::with_opener(&source, SMALL, opener, &mut |n| notes.push(n));
        assert_eq!(notes, ["camera: Test Cam, 320x240 NV12 at 30 fps"]);
        let black = pictures.next_frame(true, &mut |n| notes.push(n));
        assert!(black.y().iter().all(|&y| y == 16));
        assert_eq!((black.width, black.height), (320, 240));
        assert!(matches!(pictures.opened, Opened::Pattern));
        // On again: opened again at once.
        let frame = pictures.next_frame(false, &mut |n| notes.push(n));
        assert_eq!(camera_stamp(&frame), Some(42_000));
        assert_eq!(*tries.lock().unwrap(), 2); // test: a panic is the failure
    }

    #[test]
    fn a_busy_camera_is_waited_for_a_moment_at_start() {
        let (opener, tries) = scripted(vec![Err(CameraError::Busy("Test Cam".into())), Ok(1)]);
        let mut notes = Vec::new();
        let source = VideoSource::Camera(CameraChoice::Default);
        let mut pictures =
            PictureSource::with_opener(&source, SMALL, opener, &mut |n| notes.push(n));
        assert_eq!(*tries.lock().unwrap(), 2); // test: a panic is the failure
        assert!(notes[0].contains("in use by another program"), "{notes:?}");
        assert_eq!(notes[1], "camera: Test Cam, 320x240 NV12 at 30 fps (back)");
        assert_eq!(
            camera_stamp(&pictures.next_frame(false, &mut |_| {})),
            Some(42_000)
        );
    }

    #[test]
    fn a_picture_is_handed_on_as_it_is_made_not_a_period_later() {
        let wanted = Wanted {
            width: 160,
            height: 120,
            fps: 20,
        };
        let mut pictures = PictureSource::open(&VideoSource::Pattern, wanted, &mut |_| {});
        let started = Instant::now();
        for _ in 0..4 {
            let frame = pictures.next_frame(false, &mut |_| {});
            let age_ms = (wall_clock_us().saturating_sub(frame.capture_time_us)) / 1000;
            // The period is 50 ms: a picture made and then paced would be that old.
            assert!(
                age_ms < 25,
                "the picture was {age_ms} ms old when handed on"
            );
        }
        // Still paced: four pictures take three periods.
        assert!(started.elapsed() >= Duration::from_millis(140));
    }

    #[test]
    fn sources_parse_from_what_people_type() {
        assert_eq!(VideoSource::parse("pattern"), Ok(VideoSource::Pattern));
        assert_eq!(
            VideoSource::parse("clip.Y4M"),
            Ok(VideoSource::File("clip.Y4M".into()))
        );
        assert_eq!(
            VideoSource::parse("1"),
            Ok(VideoSource::Camera(CameraChoice::Index(1)))
        );
        assert_eq!(
            VideoSource::parse("default"),
            Ok(VideoSource::Camera(CameraChoice::Default))
        );
        assert_eq!(
            VideoSource::parse("BRIO").map(|s| s.setting()),
            Ok("BRIO".to_owned())
        );
    }
}
