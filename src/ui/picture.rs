//! Turns decoded I420 pictures into RGBA images on a thread of its own, newest only, and
//! asks the window to repaint when one is ready: the UI thread only uploads the texture.
//! The far side's picture repaints at once; the self-view is small and slower, and rides
//! on those repaints (each repaint redraws the whole window, which costs a software
//! renderer dearly).

use crate::media::frame::VideoFrame;
use crate::media::mailbox::Mailbox;
use eframe::egui;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Which picture a feed shows, and so how eagerly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedKind {
    /// The far side's picture: full size, repaint as soon as it is ready.
    Remote,
    /// Our own picture: a quarter of the pixels, at most 15 a second, repainted within 70 ms.
    SelfView,
}

const SELF_VIEW_INTERVAL: Duration = Duration::from_millis(66);

/// A running conversion thread; it stops when dropped.
pub struct RgbaFeed {
    ready: Arc<Mailbox<egui::ColorImage>>,
    running: Arc<AtomicBool>,
}

impl RgbaFeed {
    pub fn start(pictures: Arc<Mailbox<VideoFrame>>, kind: FeedKind, ctx: egui::Context) -> Self {
        let ready = Arc::new(Mailbox::new());
        let running = Arc::new(AtomicBool::new(true));
        let (out, alive) = (ready.clone(), running.clone());
        let name = match kind {
            FeedKind::Remote => "video-present",
            FeedKind::SelfView => "self-view",
        };
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut last: Option<std::time::Instant> = None;
                while alive.load(Ordering::Relaxed) {
                    let Some(frame) = pictures.take_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    match kind {
                        FeedKind::Remote => {
                            out.put(to_color_image(&frame, 1));
                            ctx.request_repaint();
                        }
                        FeedKind::SelfView
                            if last.is_none_or(|at| at.elapsed() >= SELF_VIEW_INTERVAL) =>
                        {
                            last = Some(std::time::Instant::now());
                            out.put(to_color_image(&frame, 2));
                            ctx.request_repaint_after(SELF_VIEW_INTERVAL);
                        }
                        FeedKind::SelfView => {}
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("the remote picture cannot be shown: {e}");
        }
        Self { ready, running }
    }

    /// The newest converted picture, if a new one came since the last call.
    pub fn latest(&self) -> Option<egui::ColorImage> {
        self.ready.take()
    }
}

impl Drop for RgbaFeed {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

/// BT.601 video-range I420 to RGBA, taking every `step`-th pixel each way.
pub fn to_color_image(frame: &VideoFrame, step: usize) -> egui::ColorImage {
    let step = step.max(1);
    let (w, h) = (frame.width, frame.height);
    let (cw, _) = frame.chroma_size();
    let (y_plane, u_plane, v_plane) = (frame.y(), frame.u(), frame.v());
    let (out_w, out_h) = (w.div_ceil(step), h.div_ceil(step));
    let mut rgba = Vec::with_capacity(out_w * out_h * 4);
    for row in (0..h).step_by(step) {
        let y_row = &y_plane[row * w..(row + 1) * w];
        let c_off = (row / 2) * cw;
        for (col, &y) in y_row.iter().enumerate().step_by(step) {
            let c = (y as i32 - 16) * 298;
            let d = u_plane[c_off + col / 2] as i32 - 128;
            let e = v_plane[c_off + col / 2] as i32 - 128;
            let clamp = |v: i32| ((v + 128) >> 8).clamp(0, 255) as u8;
            rgba.extend_from_slice(&[
                clamp(c + 409 * e),
                clamp(c - 100 * d - 208 * e),
                clamp(c + 516 * d),
                255,
            ]);
        }
    }
    egui::ColorImage::from_rgba_unmultiplied([out_w, out_h], &rgba)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_range_black_and_white_become_full_range() {
        let mut frame = VideoFrame::new(2, 2, 0);
        let (y, _, _) = frame.planes_mut();
        y.copy_from_slice(&[16, 235, 16, 235]);
        let image = to_color_image(&frame, 1);
        assert_eq!(image.pixels[0], egui::Color32::from_rgb(0, 0, 0));
        assert_eq!(image.pixels[1], egui::Color32::from_rgb(255, 255, 255));
    }

    #[test]
    fn a_self_view_is_made_from_every_other_pixel() {
        let mut frame = VideoFrame::new(6, 4, 0);
        let (y, _, _) = frame.planes_mut();
        y.fill(235);
        y[0] = 16;
        let image = to_color_image(&frame, 2);
        assert_eq!(image.size, [3, 2]);
        assert_eq!(image.pixels[0], egui::Color32::from_rgb(0, 0, 0));
        assert_eq!(image.pixels[1], egui::Color32::from_rgb(255, 255, 255));
    }
}
