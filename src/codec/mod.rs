//! Encoders and decoders: H.264 (openh264) for video, Opus for sound. They turn frames into
//! the bytes a track carries and back, and know nothing of the network.

pub mod h264;
pub mod opus;

pub use h264::{EncodedVideo, H264Decoder, H264Encoder, VideoEncoderSettings};
pub use opus::{OpusDecoder, OpusEncoder};

/// A codec failed; the message is the library's own.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("H.264 encoder: {0}")]
    H264Encode(String),
    #[error("H.264 decoder: {0}")]
    H264Decode(String),
    #[error("Opus: {0}")]
    Opus(String),
}
