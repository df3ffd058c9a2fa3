//! The self-view before a call: what the chosen camera (or the pattern, or a file) would
//! send, made on a thread of its own into a one-slot mailbox. A call makes its own pictures;
//! this runs only while no call is sending, and lets the camera go when it stops.

use crate::media::camera::Wanted;
use crate::media::frame::VideoFrame;
use crate::media::mailbox::Mailbox;
use crate::media::source::{PictureSource, VideoSource};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A running preview source; it stops when dropped.
pub struct SelfPreview {
    pub pictures: Arc<Mailbox<VideoFrame>>,
    running: Arc<AtomicBool>,
    /// The newest word on the camera ("camera: ...", or why the pattern stands in).
    note: Arc<Mutex<Option<String>>>,
}

/// A self-view needs no more than this many pictures a second.
const PREVIEW_FPS: u32 = 15;

impl SelfPreview {
    pub fn start(source: VideoSource, width: usize, height: usize) -> Self {
        let pictures = Arc::new(Mailbox::new());
        let running = Arc::new(AtomicBool::new(true));
        let note = Arc::new(Mutex::new(None));
        let (out, alive, told) = (pictures.clone(), running.clone(), note.clone());
        let wanted = Wanted {
            width: width as u32,
            height: height as u32,
            fps: PREVIEW_FPS,
        };
        let spawned = std::thread::Builder::new()
            .name("self-preview".into())
            .spawn(move || {
                let mut say = |text: String| {
                    *told.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
                };
                let mut source = PictureSource::open(&source, wanted, &mut say);
                while alive.load(Ordering::Relaxed) {
                    out.put(source.next_frame(false, &mut say));
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("no self-view: {e}");
        }
        Self {
            pictures,
            running,
            note,
        }
    }

    /// What became of the camera, if anything was said.
    pub fn note(&self) -> Option<String> {
        self.note.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for SelfPreview {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}
