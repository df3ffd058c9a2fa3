//! H.264 Constrained Baseline through openh264: what browsers negotiate as
//! `profile-level-id=42e01f;packetization-mode=1`.

use crate::codec::CodecError;
use crate::media::frame::VideoFrame;
use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, Level, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;

/// What the encoder is asked for at start; the bitrate can change later.
#[derive(Clone, Copy, Debug)]
pub struct VideoEncoderSettings {
    pub bitrate_bps: u32,
    pub fps: f32,
}

/// One encoded picture in Annex B form (start codes), SPS/PPS in front of every IDR.
#[derive(Clone, Debug)]
pub struct EncodedVideo {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// The highest bitrate the encoder may be set to (`--bitrate`'s upper bound).
const MAX_BITRATE_BPS: u32 = 20_000_000;

/// The H.264 encoder of one outgoing video track.
pub struct H264Encoder {
    encoder: Encoder,
    force_idr: bool,
    settings: VideoEncoderSettings,
    /// The picture size the encoder was last given.
    size: Option<(usize, usize)>,
}

impl H264Encoder {
    pub fn new(settings: VideoEncoderSettings) -> Result<Self, CodecError> {
        Ok(Self {
            encoder: Self::build(settings)?,
            force_idr: false,
            settings,
            size: None,
        })
    }

    fn build(settings: VideoEncoderSettings) -> Result<Encoder, CodecError> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(settings.fps))
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            // As in browsers: the rate controller may skip a frame to hold the bitrate
            // (openh264 cannot hold it otherwise). A skipped frame is never sent.
            .skip_frames(true)
            // Constrained Baseline, level 3.1: the 42e01f that browsers offer.
            .profile(Profile::Baseline)
            .level(Level::Level_3_1)
            .complexity(Complexity::Low)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            // One thread: slices from several threads cost latency and CPU at these sizes.
            .num_threads(1);
        Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| CodecError::H264Encode(e.to_string()))
    }

    /// The next encoded frame will be an IDR (a keyframe request, a new receiver).
    pub fn request_keyframe(&mut self) {
        self.force_idr = true;
    }

    /// Changes the target bitrate without restarting the stream. Before the first picture
    /// (openh264 initializes on it) the encoder is simply built anew at this bitrate.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        self.settings.bitrate_bps = bps;
        if self.size.is_none() {
            self.encoder = Self::build(self.settings)?;
            return Ok(());
        }
        self.set_option(
            openh264_sys2::ENCODER_OPTION_BITRATE,
            openh264_sys2::SPATIAL_LAYER_ALL,
            bps,
        )
    }

    /// One `SBitrateInfo` option of an initialized encoder.
    fn set_option(
        &mut self,
        option: openh264_sys2::ENCODER_OPTION,
        layer: openh264_sys2::LAYER_NUM,
        bps: u32,
    ) -> Result<(), CodecError> {
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: layer,
            iBitrate: bps.min(i32::MAX as u32) as i32,
        };
        // SAFETY: openh264-rs has no safe setter for bitrates. `set_option` with a bitrate
        // option reads one `SBitrateInfo` through the pointer, which points at a live local
        // of exactly that type; `&mut self` guarantees no concurrent use, and openh264
        // refuses (an error status, no access) an encoder not yet initialized.
        let status = unsafe {
            self.encoder
                .raw_api()
                .set_option(option, (&raw mut info).cast())
        };
        if status == 0 {
            Ok(())
        } else {
            Err(CodecError::H264Encode(format!(
                "setting a bitrate ({option}) to {bps} bps failed ({status})"
            )))
        }
    }

    /// Encodes one picture. A picture of another size than the last starts a new stream
    /// (an IDR with new parameter sets) at the bitrate in force: openh264 would re-init
    /// itself at the bitrate it was built with.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<EncodedVideo, CodecError> {
        let size = (frame.width, frame.height);
        let fresh = self.size != Some(size);
        if self.size.is_some() && fresh {
            self.encoder = Self::build(self.settings)?;
        }
        self.size = Some(size);
        if std::mem::take(&mut self.force_idr) {
            self.encoder.force_intra_frame();
        }
        let bitstream = self
            .encoder
            .encode(&I420Source(frame))
            .map_err(|e| CodecError::H264Encode(e.to_string()))?;
        let keyframe = matches!(bitstream.frame_type(), FrameType::IDR | FrameType::I);
        let data = bitstream.to_vec();
        if fresh {
            // openh264-rs initializes with the maximum equal to the target, and refuses any
            // later target above it: lift the maximum to the most anyone may ask for.
            self.set_option(
                openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
                openh264_sys2::SPATIAL_LAYER_0,
                MAX_BITRATE_BPS,
            )?;
        }
        Ok(EncodedVideo { data, keyframe })
    }
}

/// The NAL unit types in an Annex B stream, in order.
pub fn nal_types(annex_b: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut zeros = 0;
    for (i, &byte) in annex_b.iter().enumerate() {
        if byte == 1
            && zeros >= 2
            && let Some(&header) = annex_b.get(i + 1)
        {
            types.push(header & 0x1f);
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
    types
}

struct I420Source<'a>(&'a VideoFrame);

impl YUVSource for I420Source<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width, self.0.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let (cw, _) = self.0.chroma_size();
        (self.0.width, cw, cw)
    }

    fn y(&self) -> &[u8] {
        self.0.y()
    }

    fn u(&self) -> &[u8] {
        self.0.u()
    }

    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

/// The H.264 decoder of one incoming video track.
pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, CodecError> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| CodecError::H264Decode(e.to_string()))?;
        Ok(Self { decoder })
    }

    /// Decodes one access unit (Annex B). `Ok(None)` when it completed no picture.
    pub fn decode(
        &mut self,
        access_unit: &[u8],
        capture_time_us: u64,
    ) -> Result<Option<VideoFrame>, CodecError> {
        let decoded = self
            .decoder
            .decode(access_unit)
            .map_err(|e| CodecError::H264Decode(e.to_string()))?;
        Ok(decoded.map(|yuv| {
            VideoFrame::from_planes(
                yuv.dimensions(),
                (yuv.y(), yuv.u(), yuv.v()),
                yuv.strides(),
                capture_time_us,
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::pattern::{StampedPattern, read_frame_stamp};

    #[test]
    fn stamps_read_back_after_h264_at_300_kbps() {
        let settings = VideoEncoderSettings {
            bitrate_bps: 300_000,
            fps: 30.0,
        };
        let mut encoder = H264Encoder::new(settings).expect("encoder"); // test: a panic is the failure
        let mut decoder = H264Decoder::new().expect("decoder"); // test: a panic is the failure
        let mut pattern = StampedPattern::new(640, 480);
        let (mut read, mut skipped) = (0, 0);
        for i in 0..60u64 {
            let frame = pattern.next_frame(1_000_000 + i * 33_333);
            let encoded = encoder.encode(&frame).expect("encode"); // test: a panic is the failure
            if encoded.data.is_empty() {
                skipped += 1; // the rate controller held the bitrate
                continue;
            }
            assert_eq!(
                encoded.keyframe,
                i == 0,
                "only the first frame is a keyframe"
            );
            let decoded = decoder.decode(&encoded.data, 0).expect("decode"); // test: a panic is the failure
            if let Some(decoded) = decoded {
                let stamp = read_frame_stamp(&decoded).expect("stamp after decode"); // test: a panic is the failure
                assert_eq!(stamp.frame_number as u64, i);
                assert_eq!(stamp.capture_time_ms, (1_000_000 + i * 33_333) / 1000);
                read += 1;
            }
        }
        assert_eq!(
            read + skipped,
            60,
            "every frame sent decodes at once, none held back"
        );
        assert!(skipped <= 15, "{skipped} of 60 frames skipped");
    }

    #[test]
    fn a_requested_keyframe_comes_next_and_bitrate_changes_at_run_time() {
        let settings = VideoEncoderSettings {
            bitrate_bps: 500_000,
            fps: 30.0,
        };
        let mut encoder = H264Encoder::new(settings).expect("encoder"); // test: a panic is the failure
        let mut pattern = StampedPattern::new(320, 240);
        for _ in 0..3 {
            encoder.encode(&pattern.next_frame(0)).expect("encode"); // test: a panic is the failure
        }
        encoder.set_bitrate(200_000).expect("bitrate"); // test: a panic is the failure
        encoder.request_keyframe();
        let idr = encoder.encode(&pattern.next_frame(0)).expect("encode"); // test: a panic is the failure
        assert!(idr.keyframe);
        // SPS (7) and PPS (8) ride with every IDR.
        let types = nal_types(&idr.data);
        assert!(types.contains(&7) && types.contains(&8), "{types:?}");
    }

    #[test]
    fn garbage_does_not_panic_the_decoder() {
        let mut decoder = H264Decoder::new().expect("decoder"); // test: a panic is the failure
        let _ = decoder.decode(&[0, 0, 0, 1, 0x65, 1, 2, 3, 4, 5], 0);
        let _ = decoder.decode(&[0xff; 300], 0);
        let _ = decoder.decode(&[], 0);
    }
}
