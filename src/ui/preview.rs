//! The self-view before a call: what the camera (today the test pattern) would send, made on
//! a thread of its own into a one-slot mailbox. A call makes its own pictures; this runs
//! only while no call is sending.

use crate::media::frame::{VideoFrame, wall_clock_us};
use crate::media::mailbox::Mailbox;
use crate::media::pattern::StampedPattern;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A running preview source; it stops when dropped.
pub struct SelfPreview {
    pub pictures: Arc<Mailbox<VideoFrame>>,
    running: Arc<AtomicBool>,
}

/// A self-view needs no more than this many pictures a second.
const PREVIEW_FPS: u64 = 15;

impl SelfPreview {
    pub fn start(width: usize, height: usize) -> Self {
        let pictures = Arc::new(Mailbox::new());
        let running = Arc::new(AtomicBool::new(true));
        let (out, alive) = (pictures.clone(), running.clone());
        let spawned = std::thread::Builder::new()
            .name("self-preview".into())
            .spawn(move || {
                let mut pattern = StampedPattern::new(width, height);
                while alive.load(Ordering::Relaxed) {
                    out.put(pattern.next_frame(wall_clock_us()));
                    std::thread::sleep(Duration::from_millis(1000 / PREVIEW_FPS));
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("no self-view: {e}");
        }
        Self { pictures, running }
    }
}

impl Drop for SelfPreview {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}
