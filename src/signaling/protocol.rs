//! The signaling messages: JSON text over a WebSocket at `/ws`, one room per call, at most
//! two peers a room. The peer that joins second makes the offer.
//!
//! Client to server: `join`, `offer`, `answer`, `candidate`, `bye`.
//! Server to client: `joined`, `peer-joined`, and the other peer's `offer`, `answer`,
//! `candidate`, `bye`; `error` when a message is refused.

use serde::{Deserialize, Serialize};

/// Largest message either side sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest room name.
pub const MAX_ROOM_NAME: usize = 64;
const MAX_CANDIDATE: usize = 1024;
const MAX_MID: usize = 64;

/// An ICE candidate as browsers give it (`RTCIceCandidateInit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateInit {
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(
        default,
        rename = "sdpMLineIndex",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mline_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// An ICE server as `RTCIceServer` has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential: String,
}

/// Every message of the protocol, both directions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    Join {
        room: String,
    },
    Joined {
        /// Peers in the room, this one included: 2 means "you make the offer".
        peers: usize,
        #[serde(rename = "iceServers", default)]
        ice_servers: Vec<IceServer>,
    },
    PeerJoined,
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Candidate {
        candidate: CandidateInit,
    },
    Bye,
    Error {
        message: String,
    },
}

/// Why a message from a client is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("message too large: at most {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    #[error("not a signaling message: expected JSON like {{\"type\":\"join\",\"room\":\"name\"}}")]
    Malformed,
    #[error("room names are 1 to {MAX_ROOM_NAME} letters, digits, '-', '_' or '.'")]
    BadRoomName,
    #[error("the SDP is empty or does not start with v=0")]
    BadSdp,
    #[error("the candidate is too long or malformed")]
    BadCandidate,
    #[error("clients do not send '{0}' messages")]
    NotFromClients(&'static str),
}

pub fn valid_room_name(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= MAX_ROOM_NAME
        && room
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Message {
    /// Parses and checks a message a client sent. The server trusts nothing else.
    pub fn from_client(text: &str) -> Result<Self, ProtocolError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(ProtocolError::TooLarge);
        }
        let message: Message = serde_json::from_str(text).map_err(|_| ProtocolError::Malformed)?;
        message.check_from_client()?;
        Ok(message)
    }

    fn check_from_client(&self) -> Result<(), ProtocolError> {
        match self {
            Message::Join { room } if !valid_room_name(room) => Err(ProtocolError::BadRoomName),
            Message::Offer { sdp } | Message::Answer { sdp }
                if !sdp.trim_start().starts_with("v=0") =>
            {
                Err(ProtocolError::BadSdp)
            }
            Message::Candidate { candidate } => {
                let ok = candidate.candidate.len() <= MAX_CANDIDATE
                    && candidate
                        .sdp_mid
                        .as_ref()
                        .is_none_or(|m| m.len() <= MAX_MID)
                    && candidate
                        .username_fragment
                        .as_ref()
                        .is_none_or(|u| u.len() <= MAX_MID * 4)
                    && (candidate.candidate.is_empty()
                        || candidate.candidate.starts_with("candidate:"));
                if ok {
                    Ok(())
                } else {
                    Err(ProtocolError::BadCandidate)
                }
            }
            Message::Joined { .. } => Err(ProtocolError::NotFromClients("joined")),
            Message::PeerJoined => Err(ProtocolError::NotFromClients("peer-joined")),
            Message::Error { .. } => Err(ProtocolError::NotFromClients("error")),
            _ => Ok(()),
        }
    }

    pub fn to_json(&self) -> String {
        // Strings, numbers and vectors of them always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_documented_shape() {
        assert_eq!(
            Message::Join { room: "r1".into() }.to_json(),
            r#"{"type":"join","room":"r1"}"#
        );
        assert_eq!(Message::PeerJoined.to_json(), r#"{"type":"peer-joined"}"#);
        let joined = Message::Joined {
            peers: 2,
            ice_servers: vec![IceServer {
                urls: vec!["turn:127.0.0.1:3478".into()],
                username: "1:duet".into(),
                credential: "x".into(),
            }],
        };
        assert_eq!(
            joined.to_json(),
            r#"{"type":"joined","peers":2,"iceServers":[{"urls":["turn:127.0.0.1:3478"],"username":"1:duet","credential":"x"}]}"#
        );
        let candidate = r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#;
        assert!(matches!(
            Message::from_client(candidate),
            Ok(Message::Candidate { .. })
        ));
    }

    #[test]
    fn bad_client_messages_are_refused() {
        let long_room = format!(r#"{{"type":"join","room":"{}"}}"#, "a".repeat(65));
        let cases = [
            ("{", ProtocolError::Malformed),
            (r#"{"type":"dance"}"#, ProtocolError::Malformed),
            (r#"{"type":"join"}"#, ProtocolError::Malformed),
            (
                r#"{"type":"join","room":"a b"}"#,
                ProtocolError::BadRoomName,
            ),
            (r#"{"type":"join","room":""}"#, ProtocolError::BadRoomName),
            (&long_room, ProtocolError::BadRoomName),
            (r#"{"type":"offer","sdp":"hello"}"#, ProtocolError::BadSdp),
            (
                r#"{"type":"candidate","candidate":{"candidate":"evil"}}"#,
                ProtocolError::BadCandidate,
            ),
            (
                r#"{"type":"joined","peers":2}"#,
                ProtocolError::NotFromClients("joined"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Message::from_client(text), Err(expected), "{text}");
        }
        let huge = format!(
            r#"{{"type":"offer","sdp":"v=0{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(Message::from_client(&huge), Err(ProtocolError::TooLarge));
    }
}
