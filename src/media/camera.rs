//! Cameras: listed and opened through nokhwa (Video4Linux on Linux) in the mode closest to
//! what the call asks for, each streaming on a thread of its own ([`CameraCapture`]).
//!
//! Their pictures go to I420, the one layout the encoder takes. Cameras deliver YUYV (4:2:2
//! packed), NV12 (4:2:0 with interleaved chroma) or MJPEG. YUYV and NV12 are repacked
//! (no colour arithmetic is needed); MJPEG is decoded with zune-jpeg and its RGB converted
//! with yuvutils-rs. Each buffer is checked first to hold what its size says: a camera
//! can hand over a short buffer, and that must be a dropped picture, never a panic.

use crate::media::frame::{VideoFrame, wall_clock_us};
use crate::media::mailbox::Mailbox;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use yuvutils_rs::{YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

/// How a camera lays out its pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelLayout {
    Yuyv,
    Nv12,
    Mjpeg,
}

/// A picture that cannot be converted; the picture is dropped, the call goes on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("a {width}x{height} {layout:?} picture needs {needed} bytes, the camera gave {got}")]
    Short {
        layout: PixelLayout,
        width: usize,
        height: usize,
        needed: usize,
        got: usize,
    },
    #[error("{0}x{1} cannot be sent: width and height must be even and at least 16")]
    BadSize(usize, usize),
    #[error("the camera's JPEG picture is broken: {0}")]
    Jpeg(String),
    #[error("converting the camera's picture: {0}")]
    Convert(String),
}

/// One camera the system has: its number (`/dev/videoN` on Linux) and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraEntry {
    pub index: u32,
    pub name: String,
}

/// The cameras there are (Video4Linux on Linux); empty when there are none or they cannot
/// be listed.
pub fn list() -> Vec<CameraEntry> {
    match nokhwa::query(nokhwa::utils::ApiBackend::Auto) {
        Ok(cameras) => cameras
            .iter()
            .filter_map(|c| {
                Some(CameraEntry {
                    index: c.index().as_index().ok()?,
                    name: c.human_name(),
                })
            })
            .collect(),
        Err(e) => {
            tracing::debug!("listing cameras: {e}");
            Vec::new()
        }
    }
}

/// Which camera the person asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraChoice {
    /// The first camera there is.
    Default,
    /// By number, as `duet devices` lists it.
    Index(u32),
    /// By name (or the start of a name), as `duet devices` lists it.
    Named(String),
}

impl CameraChoice {
    /// `default`, a number, or a name.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("default") {
            Self::Default
        } else if let Ok(index) = text.parse() {
            Self::Index(index)
        } else {
            Self::Named(text.to_owned())
        }
    }

    /// How the settings file says it.
    pub fn setting(&self) -> String {
        match self {
            Self::Default => "default".into(),
            Self::Index(index) => index.to_string(),
            Self::Named(name) => name.clone(),
        }
    }

    /// The camera this choice means among `cameras`.
    pub fn find<'a>(&self, cameras: &'a [CameraEntry]) -> Result<&'a CameraEntry, CameraError> {
        if cameras.is_empty() {
            return Err(CameraError::NoneFound);
        }
        let found = match self {
            Self::Default => cameras.first(),
            Self::Index(index) => cameras.iter().find(|c| c.index == *index),
            Self::Named(name) => {
                let name = name.to_lowercase();
                cameras
                    .iter()
                    .find(|c| c.name.to_lowercase() == name)
                    .or_else(|| {
                        cameras
                            .iter()
                            .find(|c| c.name.to_lowercase().starts_with(&name))
                    })
            }
        };
        found.ok_or_else(|| CameraError::NoSuch {
            wanted: match self {
                Self::Index(index) => format!("camera {index}"),
                other => format!("camera named {:?}", other.setting()),
            },
            available: cameras
                .iter()
                .map(|c| format!("{} {}", c.index, c.name))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// Why a camera gives no pictures, in words for the person.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CameraError {
    #[error("no camera was found")]
    NoneFound,
    #[error("there is no {wanted} (the cameras are: {available}; see `duet devices`)")]
    NoSuch { wanted: String, available: String },
    #[error(
        "the camera {0} is in use by another program; close that program or pick another camera"
    )]
    Busy(String),
    #[error(
        "the camera {name} offers no picture format Duet can use (it has {formats}; Duet takes MJPEG, YUYV or NV12 up to 1280x720 at 30 fps)"
    )]
    NoUsableFormat { name: String, formats: String },
    #[error("the camera {name} could not be opened: {why}")]
    Open { name: String, why: String },
    #[error("the camera {name} stopped giving pictures (was it unplugged?): {why}")]
    Stopped { name: String, why: String },
}

/// The size and rate a call would like from a camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// One way a camera can deliver its pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraMode {
    pub layout: PixelLayout,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl std::fmt::Display for CameraMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let layout = match self.layout {
            PixelLayout::Yuyv => "YUYV",
            PixelLayout::Nv12 => "NV12",
            PixelLayout::Mjpeg => "MJPEG",
        };
        write!(
            f,
            "{}x{} {layout} at {} fps",
            self.width, self.height, self.fps
        )
    }
}

/// The mode closest to what is wanted, as a browser's `getUserMedia` picks one: the least
/// sum of the relative distances of width, height and rate from the ideal (the W3C
/// "fitness distance"). On a tie the layout that costs least to convert wins (NV12, then
/// YUYV, then MJPEG, which needs a JPEG decode). Sizes the encoder cannot take are passed
/// over, and so are those beyond H.264 level 3.1 (what 42e01f allows the far side to
/// expect: up to 1280x720 at 30 fps).
pub fn choose_mode(modes: &[CameraMode], wanted: Wanted) -> Option<CameraMode> {
    let distance = |actual: u32, ideal: u32| {
        let (a, i) = (actual as f64, ideal as f64);
        if a == i {
            0.0
        } else {
            (a - i).abs() / a.max(i)
        }
    };
    let fitness = |m: &CameraMode| {
        distance(m.width, wanted.width)
            + distance(m.height, wanted.height)
            + distance(m.fps, wanted.fps)
    };
    let cost = |layout: PixelLayout| match layout {
        PixelLayout::Nv12 => 0,
        PixelLayout::Yuyv => 1,
        PixelLayout::Mjpeg => 2,
    };
    modes
        .iter()
        .filter(|m| {
            let (width, height) = (m.width as usize, m.height as usize);
            m.fps > 0
                && check_size(width, height).is_ok()
                && crate::media::level::fits_level(width, height, m.fps as f64)
        })
        .min_by(|a, b| {
            fitness(a)
                .total_cmp(&fitness(b))
                .then(cost(a.layout).cmp(&cost(b.layout)))
        })
        .copied()
}

/// A camera's modes in a few lines, one per layout and size: `MJPEG 1280x720 at 30, 15 fps`.
pub fn describe_modes(modes: &[CameraMode]) -> Vec<String> {
    let mut lines: Vec<(CameraMode, Vec<u32>)> = Vec::new();
    for mode in modes {
        let same = |(m, _): &&mut (CameraMode, Vec<u32>)| {
            (m.layout, m.width, m.height) == (mode.layout, mode.width, mode.height)
        };
        match lines.iter_mut().find(same) {
            Some((_, rates)) if !rates.contains(&mode.fps) => rates.push(mode.fps),
            Some(_) => {}
            None => lines.push((*mode, vec![mode.fps])),
        }
    }
    lines
        .into_iter()
        .map(|(mode, mut rates)| {
            rates.sort_unstable_by(|a, b| b.cmp(a));
            let rates: Vec<String> = rates.iter().map(ToString::to_string).collect();
            let text = mode.to_string();
            let size = text.split(" at ").next().unwrap_or_default();
            format!("{size} at {} fps", rates.join(", "))
        })
        .collect()
}

/// What Duet can take from a camera, in nokhwa's words.
const USABLE: [nokhwa::utils::FrameFormat; 3] = [
    nokhwa::utils::FrameFormat::MJPEG,
    nokhwa::utils::FrameFormat::YUYV,
    nokhwa::utils::FrameFormat::NV12,
];

fn mode_of(format: &nokhwa::utils::CameraFormat) -> Option<CameraMode> {
    use nokhwa::utils::FrameFormat;
    let layout = match format.format() {
        FrameFormat::MJPEG => PixelLayout::Mjpeg,
        FrameFormat::YUYV => PixelLayout::Yuyv,
        FrameFormat::NV12 => PixelLayout::Nv12,
        _ => return None,
    };
    Some(CameraMode {
        layout,
        width: format.width(),
        height: format.height(),
        fps: format.frame_rate(),
    })
}

fn format_of(mode: CameraMode) -> nokhwa::utils::CameraFormat {
    use nokhwa::utils::FrameFormat;
    let format = match mode.layout {
        PixelLayout::Mjpeg => FrameFormat::MJPEG,
        PixelLayout::Yuyv => FrameFormat::YUYV,
        PixelLayout::Nv12 => FrameFormat::NV12,
    };
    nokhwa::utils::CameraFormat::new_from(mode.width, mode.height, format, mode.fps)
}

/// A device error in the person's words: "busy" is worth telling apart, the rest is said
/// as the system said it.
fn device_error(name: &str, e: nokhwa::NokhwaError) -> CameraError {
    let why = e.to_string();
    let lower = why.to_lowercase();
    if lower.contains("busy") || lower.contains("os error 16") {
        CameraError::Busy(name.to_owned())
    } else {
        CameraError::Open {
            name: name.to_owned(),
            why,
        }
    }
}

/// Opens camera `index` just far enough to read what it offers.
fn open_device(index: u32, name: &str) -> Result<nokhwa::Camera, CameraError> {
    use nokhwa::utils::{CameraIndex, RequestedFormat, RequestedFormatType};
    let any = RequestedFormat::with_formats(RequestedFormatType::None, &USABLE);
    nokhwa::Camera::new(CameraIndex::Index(index), any).map_err(|e| match e {
        nokhwa::NokhwaError::GetPropertyError { property, .. } if property == "CameraFormat" => {
            CameraError::NoUsableFormat {
                name: name.to_owned(),
                formats: "none of them".into(),
            }
        }
        e => device_error(name, e),
    })
}

/// The modes camera `entry` offers (for `duet devices`).
pub fn modes(entry: &CameraEntry) -> Result<Vec<CameraMode>, CameraError> {
    let read = || {
        let mut camera = open_device(entry.index, &entry.name)?;
        let formats = camera
            .compatible_camera_formats()
            .map_err(|e| device_error(&entry.name, e))?;
        Ok(formats.iter().filter_map(mode_of).collect())
    };
    std::panic::catch_unwind(read).unwrap_or_else(|panic| {
        Err(CameraError::Open {
            name: entry.name.clone(),
            why: format!("the camera library failed: {}", panic_text(&panic)),
        })
    })
}

/// A camera that streams: it hands out raw pictures as they come.
pub trait RawPictures {
    /// The next picture as the camera laid it out; waits for the camera.
    fn next_raw(&mut self) -> Result<std::borrow::Cow<'_, [u8]>, String>;
}

struct NokhwaCamera(nokhwa::Camera);

impl RawPictures for NokhwaCamera {
    fn next_raw(&mut self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        let camera = &mut self.0;
        // Moved in (FnOnce), so the picture may borrow the camera past the call.
        let read = move || {
            let camera = camera;
            camera.frame_raw()
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
            Ok(Ok(raw)) => Ok(raw),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(format!("the camera library failed: {}", panic_text(&panic))),
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

impl Drop for NokhwaCamera {
    fn drop(&mut self) {
        if let Err(e) = self.0.stop_stream() {
            tracing::debug!("closing the camera: {e}");
        }
    }
}

/// So many broken pictures in a row (a JPEG cut short now and then is normal for a USB
/// camera) mean the camera is not giving pictures.
const BROKEN_IN_A_ROW: u32 = 30;

/// How long a streaming camera may go without a picture before it counts as stopped (a
/// camera in the dark still gives several a second).
const STALLED: Duration = Duration::from_secs(3);
/// How long the first picture may take (some cameras settle their exposure first).
const FIRST_PICTURE: Duration = Duration::from_secs(5);
/// How long opening a camera may take.
const OPENING: Duration = Duration::from_secs(10);

/// A camera just opened on its own thread: where its raw pictures come from, and how.
pub struct Streaming {
    pub device: Box<dyn RawPictures>,
    pub mode: CameraMode,
    pub name: String,
}

/// A camera streaming in its chosen mode on a thread of its own, the camera's thread: it
/// waits on the device, converts each picture as it comes and leaves the newest in a
/// one-slot mailbox. The capture loop waits there with a limit, so a camera that hangs in
/// its driver is noticed (and left to its thread) instead of freezing the call's picture.
pub struct CameraCapture {
    pictures: Arc<Mailbox<Result<VideoFrame, CameraError>>>,
    running: Arc<AtomicBool>,
    pub mode: CameraMode,
    pub name: String,
    seen_one: bool,
    pub(crate) first_wait: Duration,
    pub(crate) stall_wait: Duration,
}

impl CameraCapture {
    /// Opens the camera chosen, in the mode closest to `wanted`, and starts it streaming.
    /// A panic in the camera library is an error here, not the end of the capture thread.
    pub fn open(choice: &CameraChoice, wanted: Wanted) -> Result<Self, CameraError> {
        let choice = choice.clone();
        let label = format!("camera {}", choice.setting());
        Self::start(label, move || {
            std::panic::catch_unwind(|| open_streaming(&choice, wanted)).unwrap_or_else(|panic| {
                Err(CameraError::Open {
                    name: choice.setting(),
                    why: format!("the camera library failed: {}", panic_text(&panic)),
                })
            })
        })
    }

    /// A camera from any source of raw pictures (tests replay pictures through this).
    pub fn with_device(
        device: Box<dyn RawPictures + Send>,
        mode: CameraMode,
        name: String,
    ) -> Result<Self, CameraError> {
        Self::start(name.clone(), move || Ok(Streaming { device, mode, name }))
    }

    /// Starts the camera's thread: `open` runs there (a V4L camera stays on the thread that
    /// opened it), then pictures are read until this is dropped or the camera fails.
    pub fn start(
        label: String,
        open: impl FnOnce() -> Result<Streaming, CameraError> + Send + 'static,
    ) -> Result<Self, CameraError> {
        let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(1);
        let pictures = Arc::new(Mailbox::new());
        let running = Arc::new(AtomicBool::new(true));
        let (out, alive) = (pictures.clone(), running.clone());
        std::thread::Builder::new()
            .name("camera".into())
            .spawn(move || {
                let Streaming {
                    mut device,
                    mode,
                    name,
                } = match open() {
                    Ok(streaming) => streaming,
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                if opened_tx.send(Ok((mode, name.clone()))).is_err() {
                    return;
                }
                let mut broken_in_a_row = 0;
                while alive.load(Ordering::Relaxed) {
                    let picture = read_picture(device.as_mut(), mode, &name, &mut broken_in_a_row);
                    let failed = picture.is_err();
                    out.put(picture);
                    if failed {
                        break;
                    }
                }
            })
            .map_err(|e| CameraError::Open {
                name: label.clone(),
                why: format!("no thread for it: {e}"),
            })?;
        match opened_rx.recv_timeout(OPENING) {
            Ok(Ok((mode, name))) => Ok(Self {
                pictures,
                running,
                mode,
                name,
                seen_one: false,
                first_wait: FIRST_PICTURE,
                stall_wait: STALLED,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                running.store(false, Ordering::Relaxed);
                Err(CameraError::Open {
                    name: label,
                    why: format!("it did not open within {} s", OPENING.as_secs()),
                })
            }
        }
    }

    /// The next picture as I420, stamped with when it came; waits for the camera, but not
    /// for ever. A broken picture is dropped; a camera that fails, gives only broken
    /// pictures or none at all is an error.
    pub fn next_frame(&mut self) -> Result<VideoFrame, CameraError> {
        let wait = if self.seen_one {
            self.stall_wait
        } else {
            self.first_wait
        };
        match self.pictures.take_timeout(wait) {
            Some(Ok(frame)) => {
                self.seen_one = true;
                Ok(frame)
            }
            Some(Err(e)) => Err(e),
            None => Err(CameraError::Stopped {
                name: self.name.clone(),
                why: format!("no picture came for {:.1} s", wait.as_secs_f64()),
            }),
        }
    }
}

impl Drop for CameraCapture {
    /// The camera's thread lets the device go after the picture it waits for.
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

/// Opens the camera chosen, on the calling thread, in the mode closest to `wanted`.
fn open_streaming(choice: &CameraChoice, wanted: Wanted) -> Result<Streaming, CameraError> {
    use nokhwa::utils::{RequestedFormat, RequestedFormatType};
    let cameras = list();
    let entry = choice.find(&cameras)?;
    let name = entry.name.clone();
    let mut camera = open_device(entry.index, &name)?;
    let offered: Vec<CameraMode> = camera
        .compatible_camera_formats()
        .map_err(|e| device_error(&name, e))?
        .iter()
        .filter_map(mode_of)
        .collect();
    let mode = choose_mode(&offered, wanted).ok_or_else(|| CameraError::NoUsableFormat {
        name: name.clone(),
        formats: offered
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let exact = RequestedFormat::with_formats(RequestedFormatType::Exact(format_of(mode)), &USABLE);
    camera
        .set_camera_requset(exact)
        .map_err(|e| device_error(&name, e))?;
    camera.open_stream().map_err(|e| device_error(&name, e))?;
    Ok(Streaming {
        device: Box::new(NokhwaCamera(camera)),
        mode,
        name,
    })
}

/// One picture from `device` as I420, stamped with when it came. A broken picture is
/// dropped and the next one read; so many in a row, or a failing device, is an error.
fn read_picture(
    device: &mut dyn RawPictures,
    mode: CameraMode,
    name: &str,
    broken_in_a_row: &mut u32,
) -> Result<VideoFrame, CameraError> {
    let (width, height) = (mode.width as usize, mode.height as usize);
    let stopped = |why: String| CameraError::Stopped {
        name: name.to_owned(),
        why,
    };
    loop {
        let raw = device.next_raw().map_err(stopped)?;
        match to_i420(mode.layout, &raw, width, height, wall_clock_us()) {
            Ok(frame) => {
                *broken_in_a_row = 0;
                return Ok(frame);
            }
            Err(e) => {
                drop(raw);
                *broken_in_a_row += 1;
                if *broken_in_a_row >= BROKEN_IN_A_ROW {
                    return Err(stopped(format!(
                        "{e} ({broken_in_a_row} broken pictures in a row)"
                    )));
                }
                tracing::debug!("dropped a camera picture: {e}");
            }
        }
    }
}

fn check_size(width: usize, height: usize) -> Result<(), ConvertError> {
    if width < 16
        || height < 16
        || width % 2 == 1
        || height % 2 == 1
        || width * height > 4096 * 4096
    {
        return Err(ConvertError::BadSize(width, height));
    }
    Ok(())
}

/// The planes of `frame` as yuvutils-rs's target.
fn planes(frame: &mut VideoFrame) -> YuvPlanarImageMut<'_, u8> {
    let (width, height) = (frame.width as u32, frame.height as u32);
    let chroma_width = frame.chroma_size().0 as u32;
    let (y, u, v) = frame.planes_mut();
    YuvPlanarImageMut {
        y_plane: yuvutils_rs::BufferStoreMut::Borrowed(y),
        y_stride: width,
        u_plane: yuvutils_rs::BufferStoreMut::Borrowed(u),
        u_stride: chroma_width,
        v_plane: yuvutils_rs::BufferStoreMut::Borrowed(v),
        v_stride: chroma_width,
        width,
        height,
    }
}

/// Whether a JPEG's header has Huffman tables (DHT) before its picture data.
fn has_huffman_tables(jpeg: &[u8]) -> bool {
    let mut at = 2; // after SOI
    while at + 1 < jpeg.len() {
        if jpeg[at] != 0xff {
            return false;
        }
        match jpeg[at + 1] {
            0xff => at += 1, // fill byte
            0xc4 => return true,
            0xda => return false,
            0x01 | 0xd0..=0xd7 => at += 2, // markers without a length
            _ => match jpeg.get(at + 2..at + 4) {
                Some(length) => at += 2 + u16::from_be_bytes([length[0], length[1]]) as usize,
                None => return false,
            },
        }
    }
    false
}

/// A camera's MJPEG picture as a JPEG decoder takes it. Many USB cameras leave the
/// standard Huffman tables out of each picture (AVI's MJPEG does); zune-jpeg fills them in
/// for pictures that say they are AVI MJPEG, so such a picture gets that APP0 mark.
fn with_huffman_tables(jpeg: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if jpeg.len() < 4 || jpeg[..2] != [0xff, 0xd8] || has_huffman_tables(jpeg) {
        return std::borrow::Cow::Borrowed(jpeg);
    }
    let mut marked = Vec::with_capacity(jpeg.len() + 9);
    marked.extend_from_slice(&[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x07]);
    marked.extend_from_slice(b"AVI1\0");
    marked.extend_from_slice(&jpeg[2..]);
    std::borrow::Cow::Owned(marked)
}

/// One camera picture as I420, stamped with when it was captured.
pub fn to_i420(
    layout: PixelLayout,
    data: &[u8],
    width: usize,
    height: usize,
    capture_time_us: u64,
) -> Result<VideoFrame, ConvertError> {
    let short = |needed: usize| ConvertError::Short {
        layout,
        width,
        height,
        needed,
        got: data.len(),
    };
    match layout {
        PixelLayout::Yuyv => {
            check_size(width, height)?;
            let needed = width * height * 2;
            if data.len() < needed {
                return Err(short(needed));
            }
            let mut frame = VideoFrame::new(width, height, capture_time_us);
            // A repack, no colour arithmetic: luma as it comes, chroma of each two rows
            // averaged. (yuvutils-rs 0.8.3's yuyv422_to_yuv420 left the last 16 columns of
            // each row unwritten at 320 wide; the reference test below caught it.)
            let cw = width / 2;
            let (y, u, v) = frame.planes_mut();
            for (row, line) in data[..needed].chunks_exact(width * 2).enumerate() {
                for (col, quad) in line.chunks_exact(4).enumerate() {
                    y[row * width + col * 2] = quad[0];
                    y[row * width + col * 2 + 1] = quad[2];
                }
            }
            for crow in 0..height / 2 {
                let (upper, lower) = (
                    &data[crow * 2 * width * 2..][..width * 2],
                    &data[(crow * 2 + 1) * width * 2..][..width * 2],
                );
                for col in 0..cw {
                    let at = col * 4;
                    u[crow * cw + col] =
                        (upper[at + 1] as u16 + lower[at + 1] as u16).div_ceil(2) as u8;
                    v[crow * cw + col] =
                        (upper[at + 3] as u16 + lower[at + 3] as u16).div_ceil(2) as u8;
                }
            }
            Ok(frame)
        }
        PixelLayout::Nv12 => {
            check_size(width, height)?;
            let luma = width * height;
            let needed = luma + luma / 2;
            if data.len() < needed {
                return Err(short(needed));
            }
            let mut frame = VideoFrame::new(width, height, capture_time_us);
            let (y, u, v) = frame.planes_mut();
            y.copy_from_slice(&data[..luma]);
            // 4:2:0 already: only the chroma pairs are pulled apart (no colour arithmetic).
            for ((pair, u), v) in data[luma..needed]
                .chunks_exact(2)
                .zip(u.iter_mut())
                .zip(v.iter_mut())
            {
                *u = pair[0];
                *v = pair[1];
            }
            Ok(frame)
        }
        PixelLayout::Mjpeg => {
            let data = with_huffman_tables(data);
            let mut decoder = zune_jpeg::JpegDecoder::new(&data[..]);
            decoder
                .decode_headers()
                .map_err(|e| ConvertError::Jpeg(format!("{e:?}")))?;
            let info = decoder
                .info()
                .ok_or_else(|| ConvertError::Jpeg("no picture size".into()))?;
            let (w, h) = (info.width as usize, info.height as usize);
            check_size(w, h)?;
            let rgb = decoder
                .decode()
                .map_err(|e| ConvertError::Jpeg(format!("{e:?}")))?;
            if rgb.len() < w * h * 3 {
                return Err(ConvertError::Jpeg("not a colour picture".into()));
            }
            let mut frame = VideoFrame::new(w, h, capture_time_us);
            yuvutils_rs::rgb_to_yuv420(
                &mut planes(&mut frame),
                &rgb[..w * h * 3],
                (w * 3) as u32,
                YuvRange::Limited,
                YuvStandardMatrix::Bt601,
                YuvConversionMode::Balanced,
            )
            .map_err(|e| ConvertError::Convert(e.to_string()))?;
            Ok(frame)
        }
    }
}

#[cfg(test)]
#[path = "../../tests/common/camera_layouts.rs"]
pub(crate) mod layouts;

#[cfg(test)]
mod tests {
    use super::layouts::{jpeg_of, nv12_of, yuyv_of};
    use super::*;
    use crate::media::pattern::{StampedPattern, read_frame_stamp};

    /// Peak signal-to-noise ratio of the luma planes, dB.
    fn luma_psnr(a: &VideoFrame, b: &VideoFrame) -> f64 {
        let mse = a
            .y()
            .iter()
            .zip(b.y())
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum::<f64>()
            / a.y().len() as f64;
        10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10()
    }

    fn reference() -> VideoFrame {
        StampedPattern::new(320, 240).next_frame(123_456_000)
    }

    #[test]
    fn yuyv_from_a_camera_becomes_the_same_picture() {
        let original = reference();
        // The reference picture as a camera would send it: 4:2:2 packed, chroma doubled.
        let (w, h) = (original.width, original.height);
        let yuyv = yuyv_of(&original);
        let frame = to_i420(PixelLayout::Yuyv, &yuyv, w, h, 1).expect("convert"); // test: a panic is the failure
        assert_eq!(frame.y(), original.y());
        let chroma_error = frame
            .u()
            .iter()
            .zip(original.u())
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max()
            .unwrap_or(0);
        assert!(chroma_error <= 1, "chroma off by {chroma_error}");
        assert!(read_frame_stamp(&frame).is_some());
    }

    #[test]
    fn nv12_from_a_camera_becomes_the_same_picture() {
        let original = reference();
        let nv12 = nv12_of(&original);
        let frame = to_i420(PixelLayout::Nv12, &nv12, 320, 240, 1).expect("convert"); // test: a panic is the failure
        assert_eq!(frame.data, original.data);
    }

    #[test]
    fn mjpeg_from_a_camera_keeps_its_stamp() {
        let original = reference();
        let jpeg = jpeg_of(&original);
        let frame = to_i420(PixelLayout::Mjpeg, &jpeg, 0, 0, 7).expect("convert"); // test: a panic is the failure
        assert_eq!(
            (frame.width, frame.height, frame.capture_time_us),
            (320, 240, 7)
        );
        assert!(
            luma_psnr(&frame, &original) > 30.0,
            "{}",
            luma_psnr(&frame, &original)
        );
        let stamp = read_frame_stamp(&frame).expect("stamp after JPEG"); // test: a panic is the failure
        assert_eq!(stamp.capture_time_ms, 123_456);
    }

    #[test]
    fn short_or_broken_pictures_are_refused_not_a_panic() {
        assert!(matches!(
            to_i420(PixelLayout::Yuyv, &[0; 100], 320, 240, 0),
            Err(ConvertError::Short { .. })
        ));
        assert!(matches!(
            to_i420(PixelLayout::Nv12, &[0; 100], 320, 240, 0),
            Err(ConvertError::Short { .. })
        ));
        assert!(to_i420(PixelLayout::Yuyv, &[0; 64], 3, 7, 0).is_err());
        assert!(matches!(
            to_i420(PixelLayout::Mjpeg, b"\xff\xd8 not really a jpeg", 0, 0, 0),
            Err(ConvertError::Jpeg(_))
        ));
    }

    fn mode(layout: PixelLayout, width: u32, height: u32, fps: u32) -> CameraMode {
        CameraMode {
            layout,
            width,
            height,
            fps,
        }
    }

    /// A laptop webcam's list (as `v4l2-ctl --list-formats-ext` shows a common one): YUYV
    /// only slowly at the larger sizes, MJPEG fast at all of them.
    fn webcam() -> Vec<CameraMode> {
        use PixelLayout::*;
        vec![
            mode(Yuyv, 640, 480, 30),
            mode(Yuyv, 640, 480, 15),
            mode(Yuyv, 1280, 720, 10),
            mode(Yuyv, 320, 240, 30),
            mode(Mjpeg, 640, 480, 30),
            mode(Mjpeg, 1280, 720, 30),
            mode(Mjpeg, 1920, 1080, 30),
            mode(Mjpeg, 1920, 1080, 15),
        ]
    }

    const VGA: Wanted = Wanted {
        width: 640,
        height: 480,
        fps: 30,
    };

    #[test]
    fn format_negotiation_picks_the_closest_size_and_rate() {
        use PixelLayout::*;
        // Exactly there: the raw layout wins the tie (no JPEG decode).
        assert_eq!(choose_mode(&webcam(), VGA), Some(mode(Yuyv, 640, 480, 30)));
        // 720p at 30 only comes as MJPEG: rate counts as much as size.
        let hd = Wanted {
            width: 1280,
            height: 720,
            fps: 30,
        };
        assert_eq!(choose_mode(&webcam(), hd), Some(mode(Mjpeg, 1280, 720, 30)));
        // No exact size: the nearest one, not the largest.
        let odd = Wanted {
            width: 800,
            height: 600,
            fps: 30,
        };
        assert_eq!(choose_mode(&webcam(), odd), Some(mode(Yuyv, 640, 480, 30)));
        // A camera that only does 720p@10 still gives pictures.
        let only = [mode(Yuyv, 1280, 720, 10)];
        assert_eq!(choose_mode(&only, VGA), Some(only[0]));
        // NV12 is the cheapest of all when it is there.
        let nv12 = [mode(Mjpeg, 640, 480, 30), mode(Nv12, 640, 480, 30)];
        assert_eq!(choose_mode(&nv12, VGA), Some(nv12[1]));
        // Beyond what H.264 level 3.1 allows (42e01f): not sent, even when asked for.
        let big = [
            mode(Mjpeg, 1920, 1080, 30),
            mode(Mjpeg, 1280, 720, 60),
            mode(Mjpeg, 1280, 720, 30),
        ];
        let full_hd = Wanted {
            width: 1920,
            height: 1080,
            fps: 60,
        };
        assert_eq!(choose_mode(&big, full_hd), Some(big[2]));
        assert_eq!(choose_mode(&big[..2], VGA), None);
        // Sizes the encoder cannot take, and no modes at all, give nothing.
        assert_eq!(choose_mode(&[mode(Yuyv, 641, 481, 30)], VGA), None);
        assert_eq!(choose_mode(&[], VGA), None);
    }

    #[test]
    fn a_camera_is_found_by_number_or_name_and_a_wrong_one_is_named() {
        let cameras = [
            CameraEntry {
                index: 0,
                name: "Integrated Camera".into(),
            },
            CameraEntry {
                index: 2,
                name: "Logitech BRIO".into(),
            },
        ];
        let find = |text: &str| CameraChoice::parse(text).find(&cameras).map(|c| c.index);
        assert_eq!(find("default"), Ok(0));
        assert_eq!(find("2"), Ok(2));
        assert_eq!(find("logitech"), Ok(2));
        assert_eq!(find("Integrated Camera"), Ok(0));
        let wrong = find("1").expect_err("no camera 1").to_string();
        assert!(
            wrong.contains("camera 1") && wrong.contains("2 Logitech BRIO"),
            "{wrong}"
        );
        assert_eq!(CameraChoice::Default.find(&[]), Err(CameraError::NoneFound));
        assert_eq!(CameraChoice::parse(" 3 ").setting(), "3");
    }

    /// A camera replayed from buffers, one every 20 ms as a V4L device hands them over,
    /// then a failure (as when it is unplugged). This machine has no camera and cannot load
    /// v4l2loopback, so the device side of nokhwa is not exercised here; everything after
    /// it is.
    struct Replayed(std::collections::VecDeque<Vec<u8>>);

    impl RawPictures for Replayed {
        fn next_raw(&mut self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
            std::thread::sleep(Duration::from_millis(20));
            self.0
                .pop_front()
                .map(std::borrow::Cow::Owned)
                .ok_or_else(|| "No such device (os error 19)".to_owned())
        }
    }

    fn replaying(pictures: Vec<Vec<u8>>) -> CameraCapture {
        CameraCapture::with_device(
            Box::new(Replayed(pictures.into())),
            mode(PixelLayout::Nv12, 320, 240, 30),
            "Test Cam".into(),
        )
        .expect("the camera's thread starts") // test: a panic is the failure
    }

    #[test]
    fn a_camera_drops_broken_pictures_and_says_when_it_stops() {
        let good = nv12_of(&reference());
        let mut camera = replaying(vec![good.clone(), vec![0; 10], good]);
        let before = wall_clock_us();
        let mut pictures = Vec::new();
        let stopped = loop {
            match camera.next_frame() {
                Ok(frame) => pictures.push(frame),
                Err(e) => break e.to_string(),
            }
        };
        // The short one was dropped: good pictures came (only the newest, had the test
        // been too slow for one), then the reason it stopped.
        assert!((1..=2).contains(&pictures.len()), "{}", pictures.len());
        for picture in &pictures {
            assert!(picture.capture_time_us >= before);
            assert_eq!(
                read_frame_stamp(picture).map(|s| s.capture_time_ms),
                Some(123_456)
            );
        }
        assert!(
            stopped.contains("Test Cam") && stopped.contains("unplugged"),
            "{stopped}"
        );
        // Only broken pictures: an error, not a wait for ever.
        let mut broken = replaying(vec![vec![1; 10]; 40]);
        let error = broken.next_frame().expect_err("broken").to_string();
        assert!(error.contains("30 broken pictures in a row"), "{error}");
    }

    /// A camera that hangs in its driver: the read never returns (here, not for 30 s).
    struct Hung;

    impl RawPictures for Hung {
        fn next_raw(&mut self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
            std::thread::sleep(Duration::from_secs(30));
            Err("woke up".into())
        }
    }

    #[test]
    fn a_camera_that_hangs_is_noticed_not_waited_for() {
        let mut camera = CameraCapture::with_device(
            Box::new(Hung),
            mode(PixelLayout::Mjpeg, 640, 480, 30),
            "Test Cam".into(),
        )
        .expect("the camera's thread starts"); // test: a panic is the failure
        camera.first_wait = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let error = camera.next_frame().expect_err("no picture").to_string();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            error.contains("Test Cam") && error.contains("no picture came for 0.3 s"),
            "{error}"
        );
    }

    #[test]
    fn mjpeg_without_huffman_tables_decodes() {
        // Many USB cameras leave the standard Huffman tables (DHT) out of each picture.
        let original = reference();
        let jpeg = jpeg_of(&original);
        // Walk the header's segments (marker, then a length that counts itself) up to the
        // start of scan, leaving the DHT segments out.
        let mut stripped = jpeg[..2].to_vec();
        let mut at = 2;
        while jpeg[at + 1] != 0xda {
            let length = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
            if jpeg[at + 1] != 0xc4 {
                stripped.extend_from_slice(&jpeg[at..at + 2 + length]);
            }
            at += 2 + length;
        }
        stripped.extend_from_slice(&jpeg[at..]);
        assert!(stripped.len() < jpeg.len(), "the test JPEG had no DHT");
        let frame = to_i420(PixelLayout::Mjpeg, &stripped, 0, 0, 1).expect("convert"); // test: a panic is the failure
        assert!(luma_psnr(&frame, &original) > 30.0);
    }
}
