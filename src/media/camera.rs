//! Camera pictures to I420, the one layout the encoder takes. Cameras deliver YUYV (4:2:2
//! packed), NV12 (4:2:0 with interleaved chroma) or MJPEG. YUYV and NV12 are repacked
//! (no colour arithmetic is needed); MJPEG is decoded with zune-jpeg and its RGB converted
//! with yuvutils-rs. Each buffer is checked first to hold what its size says: a camera
//! can hand over a short buffer, and that must be a dropped picture, never a panic.

use crate::media::frame::VideoFrame;
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

/// The cameras there are, by name (Video4Linux on Linux); empty when there are none or
/// they cannot be listed.
pub fn list() -> Vec<String> {
    match nokhwa::query(nokhwa::utils::ApiBackend::Auto) {
        Ok(cameras) => cameras
            .iter()
            .map(|c| format!("{} ({})", c.human_name(), c.description()))
            .collect(),
        Err(e) => {
            tracing::debug!("listing cameras: {e}");
            Vec::new()
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
            let mut decoder = zune_jpeg::JpegDecoder::new(data);
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
mod tests {
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
        let cw = w / 2;
        let mut yuyv = Vec::with_capacity(w * h * 2);
        for row in 0..h {
            for pair in 0..cw {
                let c = (row / 2) * cw + pair;
                yuyv.extend_from_slice(&[
                    original.y()[row * w + pair * 2],
                    original.u()[c],
                    original.y()[row * w + pair * 2 + 1],
                    original.v()[c],
                ]);
            }
        }
        let frame = to_i420(PixelLayout::Yuyv, &yuyv, w, h, 1).expect("convert");
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
        let mut nv12 = original.y().to_vec();
        for (u, v) in original.u().iter().zip(original.v()) {
            nv12.extend_from_slice(&[*u, *v]);
        }
        let frame = to_i420(PixelLayout::Nv12, &nv12, 320, 240, 1).expect("convert");
        assert_eq!(frame.data, original.data);
    }

    #[test]
    fn mjpeg_from_a_camera_keeps_its_stamp() {
        let original = reference();
        // The reference as RGB, then JPEG at a webcam's usual quality.
        let mut rgb = Vec::with_capacity(320 * 240 * 3);
        for row in 0..240 {
            for col in 0..320 {
                let y = original.y()[row * 320 + col] as f32 - 16.0;
                let c = (row / 2) * 160 + col / 2;
                let (u, v) = (
                    original.u()[c] as f32 - 128.0,
                    original.v()[c] as f32 - 128.0,
                );
                let px = |x: f32| x.clamp(0.0, 255.0) as u8;
                rgb.extend_from_slice(&[
                    px(1.164 * y + 1.596 * v),
                    px(1.164 * y - 0.392 * u - 0.813 * v),
                    px(1.164 * y + 2.017 * u),
                ]);
            }
        }
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 85)
            .encode(&rgb, 320, 240, jpeg_encoder::ColorType::Rgb)
            .expect("jpeg");
        let frame = to_i420(PixelLayout::Mjpeg, &jpeg, 0, 0, 7).expect("convert");
        assert_eq!(
            (frame.width, frame.height, frame.capture_time_us),
            (320, 240, 7)
        );
        assert!(
            luma_psnr(&frame, &original) > 30.0,
            "{}",
            luma_psnr(&frame, &original)
        );
        let stamp = read_frame_stamp(&frame).expect("stamp after JPEG");
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
}
