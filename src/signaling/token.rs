//! The paste format: one line of base64 of the JSON `RTCSessionDescription`
//! (`{"type":"offer","sdp":"..."}`), the convention of the webrtc-rs and pion examples and
//! their browser demo pages. Plain JSON and raw SDP text are accepted too. Anything else is
//! refused with a message that says what was expected.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rtc::peer_connection::sdp::RTCSessionDescription;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Far more than any real session description (one with dozens of candidates is < 20 KB).
const MAX_PASTE_BYTES: usize = 256 * 1024;

/// Whether a description opens a negotiation or answers one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    Offer,
    Answer,
}

impl fmt::Display for SdpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SdpKind::Offer => "offer",
            SdpKind::Answer => "answer",
        })
    }
}

fn article(kind: SdpKind) -> &'static str {
    match kind {
        SdpKind::Offer => "an offer",
        SdpKind::Answer => "an answer",
    }
}

/// A session description as it travels by copy and paste.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasteToken {
    #[serde(rename = "type")]
    pub kind: SdpKind,
    pub sdp: String,
}

/// Why a pasted text is not the token that was expected. Each message names what was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("nothing was pasted: expected {}", what_is_expected(*.0))]
    Empty(SdpKind),
    #[error("the pasted text is {size} bytes, far more than any session description: expected {}", what_is_expected(*.expected))]
    TooLong { size: usize, expected: SdpKind },
    #[error("this is not a Duet token: expected {}", what_is_expected(*.0))]
    NotAToken(SdpKind),
    #[error("the token looks cut off ({length} characters): copy the whole line, it is expected to hold {}", article(*.expected))]
    CutOff { length: usize, expected: SdpKind },
    #[error(
        "the JSON is not a session description: expected {{\"type\":\"{0}\",\"sdp\":\"v=0...\"}}"
    )]
    WrongShape(SdpKind),
    #[error("this is {}, but {} is expected here: {}", article(*.found), article(*.expected), hint_for(*.expected))]
    WrongKind { expected: SdpKind, found: SdpKind },
    #[error("the session description has no media (no m= line): expected {} with audio or video", article(*.0))]
    NoMedia(SdpKind),
    #[error("the SDP in the token is malformed ({reason}): expected {}", article(*.expected))]
    BadSdp { reason: String, expected: SdpKind },
}

fn hint_for(expected: SdpKind) -> &'static str {
    match expected {
        SdpKind::Offer => "paste the token the calling side printed (duet call --offer)",
        SdpKind::Answer => "paste the token the answering side printed (duet call --answer)",
    }
}

fn what_is_expected(kind: SdpKind) -> String {
    format!(
        "{} token, one line of base64 (it starts with \"eyJ\"), or the JSON {{\"type\":\"{kind}\",\"sdp\":\"v=0...\"}}, or SDP text starting with \"v=0\"",
        match kind {
            SdpKind::Offer => "an offer",
            SdpKind::Answer => "an answer",
        }
    )
}

/// Decodes base64 with either alphabet, padded or not: browsers' `btoa` pads, other tools
/// use the URL-safe form.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [
        GeneralPurpose::new(&alphabet::STANDARD, config),
        GeneralPurpose::new(&alphabet::URL_SAFE, config),
    ]
    .iter()
    .find_map(|engine| engine.decode(text).ok())
}

impl PasteToken {
    pub fn new(kind: SdpKind, sdp: String) -> Self {
        Self { kind, sdp }
    }

    /// The one line that is printed and pasted.
    pub fn encode(&self) -> String {
        // Serializing two strings and an enum cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    /// Reads a pasted token, plain JSON or raw SDP, and checks it is the kind expected.
    /// Whitespace, line breaks and surrounding quotes are forgiven.
    pub fn parse(input: &str, expected: SdpKind) -> Result<Self, TokenError> {
        if input.len() > MAX_PASTE_BYTES {
            return Err(TokenError::TooLong {
                size: input.len(),
                expected,
            });
        }
        let trimmed = input
            .trim()
            .trim_matches(|c| c == '"' || c == '\'' || c == '`')
            .trim();
        if trimmed.is_empty() {
            return Err(TokenError::Empty(expected));
        }
        let token = if trimmed.starts_with("v=0") {
            Self::new(
                expected,
                format!("{trimmed}\n")
                    .replace("\r\n", "\n")
                    .replace('\n', "\r\n"),
            )
        } else if trimmed.starts_with('{') {
            Self::from_json(trimmed.as_bytes(), trimmed.len(), expected)?
        } else {
            let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
            let is_base64_text = compact
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '='));
            if !is_base64_text || !compact.starts_with("eyJ") {
                return Err(TokenError::NotAToken(expected));
            }
            match decode_base64(&compact) {
                Some(json) => Self::from_json(&json, compact.len(), expected)?,
                None => {
                    return Err(TokenError::CutOff {
                        length: compact.len(),
                        expected,
                    });
                }
            }
        };
        token.check(expected)?;
        Ok(token)
    }

    fn from_json(json: &[u8], length: usize, expected: SdpKind) -> Result<Self, TokenError> {
        #[derive(Deserialize)]
        struct Loose {
            #[serde(rename = "type")]
            kind: Option<String>,
            sdp: Option<String>,
        }
        let loose: Loose = serde_json::from_slice(json).map_err(|e| {
            if e.is_eof() {
                TokenError::CutOff { length, expected }
            } else {
                TokenError::WrongShape(expected)
            }
        })?;
        let (Some(kind), Some(sdp)) = (loose.kind, loose.sdp) else {
            return Err(TokenError::WrongShape(expected));
        };
        let kind = match kind.as_str() {
            "offer" => SdpKind::Offer,
            "answer" => SdpKind::Answer,
            _ => return Err(TokenError::WrongShape(expected)),
        };
        Ok(Self::new(kind, sdp))
    }

    fn check(&self, expected: SdpKind) -> Result<(), TokenError> {
        if self.kind != expected {
            return Err(TokenError::WrongKind {
                expected,
                found: self.kind,
            });
        }
        if !self.sdp.trim_start().starts_with("v=0") {
            return Err(TokenError::BadSdp {
                reason: "it does not start with v=0".into(),
                expected,
            });
        }
        if !self.sdp.lines().any(|line| line.starts_with("m=")) {
            return Err(TokenError::NoMedia(expected));
        }
        self.to_session_description().map(|_| ())
    }

    /// The description in the form the peer connection takes, parsed and checked.
    pub fn to_session_description(&self) -> Result<RTCSessionDescription, TokenError> {
        // SDP lines end in CRLF on the wire; a hand-edited paste may have lost the CR.
        let sdp = if self.sdp.contains("\r\n") {
            self.sdp.clone()
        } else {
            self.sdp.replace('\n', "\r\n")
        };
        let parsed = match self.kind {
            SdpKind::Offer => RTCSessionDescription::offer(sdp),
            SdpKind::Answer => RTCSessionDescription::answer(sdp),
        };
        parsed.map_err(|e| TokenError::BadSdp {
            reason: e.to_string(),
            expected: self.kind,
        })
    }

    /// The token of a description the peer connection made.
    pub fn from_session_description(desc: &RTCSessionDescription) -> Option<Self> {
        let kind = match serde_json::to_value(desc.sdp_type).ok()?.as_str()? {
            "offer" => SdpKind::Offer,
            "answer" => SdpKind::Answer,
            _ => return None,
        };
        Some(Self::new(kind, desc.sdp.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn a_token_round_trips_in_every_accepted_form() {
        let token = PasteToken::new(SdpKind::Offer, SDP.into());
        let line = token.encode();
        assert!(line.starts_with("eyJ") && !line.contains('\n'));
        assert_eq!(PasteToken::parse(&line, SdpKind::Offer), Ok(token.clone()));
        let wrapped = format!("  \"{}\n{}\"\n", &line[..40], &line[40..]);
        assert_eq!(
            PasteToken::parse(&wrapped, SdpKind::Offer),
            Ok(token.clone())
        );
        let json = serde_json::to_string(&token).expect("json"); // test: a panic is the failure
        assert_eq!(PasteToken::parse(&json, SdpKind::Offer), Ok(token.clone()));
        assert_eq!(PasteToken::parse(SDP, SdpKind::Offer), Ok(token));
        let unpadded = line.trim_end_matches('=');
        assert!(PasteToken::parse(unpadded, SdpKind::Offer).is_ok());
    }

    #[test]
    fn garbage_token_is_refused_with_a_hint() {
        let offer = PasteToken::new(SdpKind::Offer, SDP.into()).encode();
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "nothing was pasted"),
            ("hello, this is my offer".into(), "expected an offer token"),
            (offer[..offer.len() / 2 + 1].into(), "cut off"),
            ("{\"type\":\"offer\",\"sdp\":\"v=0".into(), "cut off"),
            ("{\"name\":\"bob\"}".into(), "expected {\"type\":\"offer\""),
            (
                "{\"type\":\"pranswer\",\"sdp\":\"v=0\"}".into(),
                "not a session description",
            ),
            (
                PasteToken::new(SdpKind::Answer, SDP.into()).encode(),
                "this is an answer, but an offer is expected",
            ),
            (
                PasteToken::new(SdpKind::Offer, "v=0\r\ns=-\r\n".into()).encode(),
                "no media",
            ),
            (
                "x".repeat(3_000_000),
                "far more than any session description",
            ),
            (
                "eyJ".to_string() + &"A".repeat(5000),
                "not a session description",
            ),
        ];
        for (input, hint) in cases {
            let err = PasteToken::parse(&input, SdpKind::Offer).expect_err("refused");
            let message = err.to_string();
            assert!(message.contains(hint), "{message:?} lacks {hint:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic_the_parser() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let pieces = [
            "v=0\r\n",
            "m=",
            "a=",
            "c=IN IP4 ",
            "o=",
            "\r\n",
            " ",
            ":",
            "/",
            "9",
        ];
        for _ in 0..2000 {
            let mut text = String::from("v=0\r\n");
            for _ in 0..(next() % 30) {
                text.push_str(pieces[(next() % pieces.len() as u32) as usize]);
                text.push(char::from_u32(next() % 128).unwrap_or('x'));
            }
            let _ = PasteToken::parse(&text, SdpKind::Offer);
            let json = serde_json::json!({"type": "offer", "sdp": text}).to_string();
            let _ = PasteToken::parse(&json, SdpKind::Offer);
        }
    }
}
