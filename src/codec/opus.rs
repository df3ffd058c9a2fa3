//! Opus at 48 kHz mono in 20 ms frames, with in-band FEC so a lost packet can be rebuilt
//! from the next one.

use crate::codec::CodecError;
use crate::media::frame::{AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};
use opus::{Application, Bitrate, Channels};

/// Largest Opus packet we produce; the RFC's recommended buffer.
const MAX_PACKET: usize = 1500;

fn opus_error(e: opus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

/// The Opus encoder of one outgoing audio track.
pub struct OpusEncoder {
    encoder: opus::Encoder,
    buffer: Vec<u8>,
}

impl OpusEncoder {
    pub fn new(bitrate_bps: i32) -> Result<Self, CodecError> {
        let mut encoder = opus::Encoder::new(AUDIO_SAMPLE_RATE, Channels::Mono, Application::Voip)
            .map_err(opus_error)?;
        encoder.set_inband_fec(true).map_err(opus_error)?;
        // FEC is only spent when the encoder expects loss; assume a little, as browsers do.
        encoder.set_packet_loss_perc(5).map_err(opus_error)?;
        encoder
            .set_bitrate(Bitrate::Bits(bitrate_bps))
            .map_err(opus_error)?;
        Ok(Self {
            encoder,
            buffer: vec![0; MAX_PACKET],
        })
    }

    /// Encodes 20 ms (960 samples) of mono sound.
    pub fn encode(&mut self, samples: &[i16]) -> Result<Vec<u8>, CodecError> {
        let len = self
            .encoder
            .encode(samples, &mut self.buffer)
            .map_err(opus_error)?;
        Ok(self.buffer[..len].to_vec())
    }
}

/// The Opus decoder of one incoming audio track.
pub struct OpusDecoder {
    decoder: opus::Decoder,
    buffer: Vec<i16>,
}

impl OpusDecoder {
    pub fn new() -> Result<Self, CodecError> {
        let decoder = opus::Decoder::new(AUDIO_SAMPLE_RATE, Channels::Mono).map_err(opus_error)?;
        // 120 ms is the longest Opus packet.
        Ok(Self {
            decoder,
            buffer: vec![0; AUDIO_FRAME_SAMPLES * 6],
        })
    }

    /// Decodes one packet into 48 kHz mono samples.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[i16], CodecError> {
        let n = self
            .decoder
            .decode(packet, &mut self.buffer, false)
            .map_err(opus_error)?;
        Ok(&self.buffer[..n])
    }

    /// Rebuilds a lost 20 ms from the FEC data carried in the packet that followed it, or
    /// conceals it when `next` is `None`.
    pub fn recover(&mut self, next: Option<&[u8]>) -> Result<&[i16], CodecError> {
        let out = &mut self.buffer[..AUDIO_FRAME_SAMPLES];
        let n = match next {
            Some(packet) => self.decoder.decode(packet, out, true),
            None => self.decoder.decode(&[], out, false),
        }
        .map_err(opus_error)?;
        Ok(&self.buffer[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone::{StampedTone, ToneAnalyzer};

    #[test]
    fn tone_and_marks_read_back_after_opus() {
        let mut encoder = OpusEncoder::new(24_000).expect("encoder"); // test: a panic is the failure
        let mut decoder = OpusDecoder::new().expect("decoder"); // test: a panic is the failure
        let mut tone = StampedTone::new(440.0);
        let mut analyzer = ToneAnalyzer::new();
        for _ in 0..250 {
            let frame = tone.next_frame(5_000_000);
            let packet = encoder.encode(&frame.samples).expect("encode"); // test: a panic is the failure
            assert!(packet.len() < 400);
            let samples = decoder.decode(&packet).expect("decode").to_vec(); // test: a panic is the failure
            analyzer.push(&samples, frame.capture_time_us + 50_000);
        }
        let f = analyzer.dominant_frequency().expect("tone"); // test: a panic is the failure
        assert!((f - 440.0).abs() <= 2.0, "{f}");
        let marks = analyzer.mark_latencies_ms();
        assert!(marks.len() >= 7, "{marks:?}");
        for latency in marks {
            // 50 ms in transit plus the codec's own delay (a few ms).
            assert!((45.0..65.0).contains(latency), "{latency}");
        }
    }

    #[test]
    fn garbage_and_loss_do_not_panic_the_decoder() {
        let mut decoder = OpusDecoder::new().expect("decoder"); // test: a panic is the failure
        let _ = decoder.decode(&[0xff; 50]);
        let _ = decoder.decode(&[]);
        assert_eq!(
            decoder.recover(None).expect("plc").len(), // test: a panic is the failure
            AUDIO_FRAME_SAMPLES
        );
    }
}
