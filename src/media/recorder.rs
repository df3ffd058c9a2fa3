//! Records the far side: its pictures as Y4M and its sound as WAV, on one timeline. Both
//! files start at the first thing that arrived; a picture is written (repeated when the
//! next one is late, skipped when two come in one frame time) at the place its arrival time
//! gives on a fixed frame rate, and sound is padded with silence over gaps, so the two line
//! up when played together. Writing happens on a thread of its own behind a short bounded
//! queue: a slow disk costs recorded frames, never the call.

use crate::media::file::Y4mWriter;
use crate::media::frame::{AUDIO_SAMPLE_RATE, VideoFrame};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Pictures per second of the recorded video.
pub const RECORD_FPS: u32 = 30;

enum Item {
    Picture { frame: VideoFrame, at_us: u64 },
    Sound { samples: Vec<i16>, at_us: u64 },
}

/// What was recorded, for the summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub video: Option<PathBuf>,
    pub audio: Option<PathBuf>,
    pub pictures_written: u64,
    pub seconds_of_sound: u64,
    /// Items the writer could not keep up with.
    pub dropped: u64,
    pub error: Option<String>,
}

/// A name for a recording made now: `call-2026-12-01-101500` (UTC), so that recordings sort
/// by when they were made.
pub fn name_for_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    name_at(seconds)
}

fn name_at(unix_seconds: u64) -> String {
    // Days to a civil date (Howard Hinnant's days_from_civil, inverted).
    let days = (unix_seconds / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let second_of_day = unix_seconds % 86_400;
    format!(
        "call-{year:04}-{month:02}-{day:02}-{:02}{:02}{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// A recording in progress; `finish` closes the files.
pub struct Recorder {
    tx: Mutex<Option<SyncSender<Item>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    state: Arc<Mutex<Recorded>>,
}

/// A WAV file written as the sound comes; its sizes are filled in at the end.
struct WavWriter {
    out: BufWriter<std::fs::File>,
    samples: u64,
}

impl WavWriter {
    fn create(path: &Path) -> io::Result<Self> {
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        // The header of crate::media::file::write_wav, sizes left at 0 until the end.
        let rate = AUDIO_SAMPLE_RATE;
        out.write_all(b"RIFF\0\0\0\0WAVEfmt ")?;
        out.write_all(&16u32.to_le_bytes())?;
        out.write_all(&1u16.to_le_bytes())?;
        out.write_all(&1u16.to_le_bytes())?;
        out.write_all(&rate.to_le_bytes())?;
        out.write_all(&(rate * 2).to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&16u16.to_le_bytes())?;
        out.write_all(b"data\0\0\0\0")?;
        Ok(Self { out, samples: 0 })
    }

    fn write(&mut self, samples: &[i16]) -> io::Result<()> {
        for s in samples {
            self.out.write_all(&s.to_le_bytes())?;
        }
        self.samples += samples.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        let data = (self.samples * 2).min(u32::MAX as u64 - 36) as u32;
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&(36 + data).to_le_bytes())?;
        self.out.seek(SeekFrom::Start(40))?;
        self.out.write_all(&data.to_le_bytes())?;
        self.out.flush()
    }
}

/// The Y4M file being written, and the one picture size it holds.
type VideoFile = (Y4mWriter<BufWriter<std::fs::File>>, (usize, usize));

struct Writer {
    dir: PathBuf,
    start_us: Option<u64>,
    video: Option<VideoFile>,
    last_picture: Option<VideoFrame>,
    pictures: u64,
    audio: Option<WavWriter>,
    state: Arc<Mutex<Recorded>>,
}

impl Writer {
    fn start(&mut self, at_us: u64) -> u64 {
        *self.start_us.get_or_insert(at_us)
    }

    fn picture(&mut self, frame: VideoFrame, at_us: u64) -> io::Result<()> {
        let start = self.start(at_us);
        let size = (frame.width, frame.height);
        if self.video.as_ref().is_some_and(|(_, s)| *s != size) {
            // Y4M holds one size: the far side changed its size; keep the first.
            return Ok(());
        }
        if self.video.is_none() {
            let path = self.dir.join("remote.y4m");
            let file = BufWriter::new(std::fs::File::create(&path)?);
            self.video = Some((Y4mWriter::new(file, size.0, size.1, RECORD_FPS)?, size));
            self.state.lock().unwrap_or_else(|e| e.into_inner()).video = Some(path);
        }
        let Some((writer, _)) = self.video.as_mut() else {
            return Ok(());
        };
        let slot = at_us.saturating_sub(start) * RECORD_FPS as u64 / 1_000_000;
        // Fill the time before this picture with the one before it (or this one).
        while self.pictures < slot {
            writer.write_frame(self.last_picture.as_ref().unwrap_or(&frame))?;
            self.pictures += 1;
        }
        if self.pictures == slot {
            writer.write_frame(&frame)?;
            self.pictures += 1;
        }
        self.last_picture = Some(frame);
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pictures_written = self.pictures;
        Ok(())
    }

    fn sound(&mut self, samples: &[i16], at_us: u64) -> io::Result<()> {
        let start = self.start(at_us);
        if self.audio.is_none() {
            let path = self.dir.join("remote.wav");
            self.audio = Some(WavWriter::create(&path)?);
            self.state.lock().unwrap_or_else(|e| e.into_inner()).audio = Some(path);
        }
        let Some(audio) = self.audio.as_mut() else {
            return Ok(());
        };
        let due = at_us.saturating_sub(start) * AUDIO_SAMPLE_RATE as u64 / 1_000_000;
        // A gap of more than 100 ms (the far side was quiet, or the network was): silence.
        if due > audio.samples + AUDIO_SAMPLE_RATE as u64 / 10 {
            let gap = (due - audio.samples).min(AUDIO_SAMPLE_RATE as u64 * 60);
            audio.write(&vec![0; gap as usize])?;
        }
        audio.write(samples)?;
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seconds_of_sound = audio.samples / AUDIO_SAMPLE_RATE as u64;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some((writer, _)) = self.video.take() {
            writer.finish()?;
        }
        if let Some(audio) = self.audio.take() {
            audio.finish()?;
        }
        Ok(())
    }
}

impl Recorder {
    /// Records into `dir` (made if need be) as `remote.y4m` and `remote.wav`.
    pub fn start(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot record into {}: {e}", dir.display()))?;
        let state = Arc::new(Mutex::new(Recorded::default()));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(32);
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            start_us: None,
            video: None,
            last_picture: None,
            pictures: 0,
            audio: None,
            state: state.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                let mut failed = None;
                for item in rx {
                    if failed.is_some() {
                        continue;
                    }
                    let result = match item {
                        Item::Picture { frame, at_us } => writer.picture(frame, at_us),
                        Item::Sound { samples, at_us } => writer.sound(&samples, at_us),
                    };
                    failed = result.err();
                }
                let error = failed.or_else(|| writer.finish().err());
                if let Some(e) = error {
                    writer.state.lock().unwrap_or_else(|e| e.into_inner()).error =
                        Some(format!("recording stopped: {e}"));
                }
            })
            .map_err(|e| format!("cannot start recording: {e}"))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            state,
        })
    }

    fn send(&self, item: Item) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = tx.as_ref()
            && let Err(TrySendError::Full(_)) = tx.try_send(item)
        {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).dropped += 1;
        }
    }

    /// A decoded picture of the far side, arrived at `at_us` (wall clock).
    pub fn picture(&self, frame: &VideoFrame, at_us: u64) {
        self.send(Item::Picture {
            frame: frame.clone(),
            at_us,
        });
    }

    /// Decoded sound of the far side (48 kHz mono), arrived at `at_us`.
    pub fn sound(&self, samples: &[i16], at_us: u64) {
        self.send(Item::Sound {
            samples: samples.to_vec(),
            at_us,
        });
    }

    /// Closes the files and says what was recorded; what comes later is not recorded.
    pub fn finish(&self) -> Recorded {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_are_named_by_when_they_were_made() {
        assert_eq!(name_at(0), "call-1970-01-01-000000");
        assert_eq!(name_at(951_782_400 + 3661), "call-2000-02-29-010101");
        assert_eq!(name_at(1_796_118_300), "call-2026-12-01-094500");
    }
    use crate::media::file::{Y4mReader, read_wav};
    use crate::media::pattern::{StampedPattern, read_frame_stamp};

    #[test]
    fn pictures_and_sound_line_up_on_one_timeline() {
        let dir = std::env::temp_dir().join(format!("duet-record-{}", std::process::id()));
        let recorder = Recorder::start(&dir).expect("recorder"); // test: a panic is the failure
        let mut pattern = StampedPattern::new(64, 48);
        let start = 10_000_000;
        // One second: a picture every 66 ms (15 fps, with one 200 ms gap) and 20 ms sound.
        for i in 0..15u64 {
            let at = start + i * 66_666 + if i >= 10 { 200_000 } else { 0 };
            recorder.picture(&pattern.next_frame(at), at);
            // At a call's pace the writer keeps up; a burst this test makes would not fit.
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        for i in 0..50u64 {
            recorder.sound(&[1000; 960], start + i * 20_000);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let recorded = recorder.finish();
        assert_eq!(recorded.error, None);
        assert_eq!(recorded.dropped, 0);
        // 15 pictures spread over 1.13 s at 30 fps: about 34 slots, each filled.
        assert!(
            (33..=35).contains(&recorded.pictures_written),
            "{recorded:?}"
        );
        let mut video = Y4mReader::open(&dir.join("remote.y4m")).expect("y4m"); // test: a panic is the failure
        let mut last = None;
        for _ in 0..recorded.pictures_written {
            let frame = video.next_frame(0).expect("frame"); // test: a panic is the failure
            let number = read_frame_stamp(&frame).expect("stamp").frame_number; // test: a panic is the failure
            assert!(last.is_none_or(|l| number >= l), "pictures out of order");
            last = Some(number);
        }
        let (sound, rate) = read_wav(&dir.join("remote.wav")).expect("wav"); // test: a panic is the failure
        assert_eq!(rate, 48_000);
        assert_eq!(sound.len(), 50 * 960);
    }
}
