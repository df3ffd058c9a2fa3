//! The H.264 level both sides negotiate, as a limit on picture size and rate: cameras and
//! files are held to it before a picture is made, the decoder before one is decoded. A leaf:
//! it imports nothing, so `media` and `codec` both use it without importing each other.

/// Whether pictures of this size and rate stay within H.264 level 3.1, the `1f` of the
/// 42e01f both sides negotiate (ITU-T H.264 Table A-1: at most 3600 macroblocks of 16x16 a
/// picture, 108 000 a second, and no side longer than sqrt(8 * 3600) macroblocks). That is
/// 1280x720 at 30 fps, or 640x480 at 90.
pub fn fits_level(width: usize, height: usize, fps: f64) -> bool {
    let (across, down) = (width.div_ceil(16), height.div_ceil(16));
    let per_picture = across * down;
    per_picture <= 3600
        && across <= 169
        && down <= 169
        && per_picture as f64 * fps <= 108_000.0 * 1.001
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_3_1_allows_up_to_720p_at_30() {
        assert!(fits_level(1280, 720, 30.0));
        assert!(fits_level(640, 480, 30.0));
        assert!(fits_level(640, 480, 90.0));
        assert!(fits_level(1280, 720, 29.97));
        assert!(!fits_level(1280, 720, 60.0));
        assert!(!fits_level(1920, 1080, 30.0));
        assert!(!fits_level(2720, 240, 15.0)); // too long a side, though few macroblocks
    }
}
