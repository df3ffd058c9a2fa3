//! The client side of the rendezvous: connect to a `duet signal` server, join a room, then
//! exchange offer, answer, candidates and goodbye with the other peer.

use crate::signaling::protocol::{IceServer, MAX_MESSAGE_BYTES, Message};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why joining a room or talking to the server failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignalingError {
    #[error("{0:?} is not a signaling server address: expected ws://HOST:PORT/ws or wss://HOST/ws")]
    BadUrl(String),
    #[error(
        "cannot reach the signaling server at {url}: {reason}. Is `duet signal` running there, and is the address right?"
    )]
    Unreachable { url: String, reason: String },
    #[error("room busy: two people are already in room {0:?}; pick another room name")]
    RoomBusy(String),
    #[error("the signaling server refused: {0}")]
    Refused(String),
    #[error("the signaling server closed the connection")]
    Closed,
}

/// What the server said on joining.
#[derive(Debug, Clone)]
pub struct Joined {
    /// 2 means the other peer is already here and this side makes the offer.
    pub peers: usize,
    pub ice_servers: Vec<IceServer>,
}

/// A joined room's connection.
pub struct RoomSession {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// `ws://host:port` and `http://…` forms are accepted too; the path defaults to `/ws`.
pub fn normalize_url(url: &str) -> Result<String, SignalingError> {
    let bad = || SignalingError::BadUrl(url.to_owned());
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(bad()),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let path = if path.is_empty() || path == "/" {
        "/ws"
    } else {
        path
    };
    Ok(format!("{scheme}://{host}{path}"))
}

/// Connects and joins `room`.
pub async fn join(url: &str, room: &str) -> Result<(Joined, RoomSession), SignalingError> {
    let url = normalize_url(url)?;
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_MESSAGE_BYTES);
    config.max_frame_size = Some(MAX_MESSAGE_BYTES);
    let unreachable = |reason: String| SignalingError::Unreachable {
        url: url.clone(),
        reason,
    };
    let connecting =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false);
    let (socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| unreachable(format!("no answer in {} s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
    let mut session = RoomSession { socket };
    session
        .send(&Message::Join {
            room: room.to_owned(),
        })
        .await?;
    let reply = tokio::time::timeout(CONNECT_TIMEOUT, session.recv())
        .await
        .map_err(|_| unreachable("it did not answer the join".into()))?;
    match reply {
        Some(Message::Joined { peers, ice_servers }) => {
            Ok((Joined { peers, ice_servers }, session))
        }
        Some(Message::Error { message }) if message.starts_with("room busy") => {
            Err(SignalingError::RoomBusy(room.to_owned()))
        }
        Some(Message::Error { message }) => Err(SignalingError::Refused(message)),
        Some(other) => Err(SignalingError::Refused(format!("unexpected {other:?}"))),
        None => Err(SignalingError::Closed),
    }
}

impl RoomSession {
    pub async fn send(&mut self, message: &Message) -> Result<(), SignalingError> {
        self.socket
            .send(tungstenite::Message::text(message.to_json()))
            .await
            .map_err(|_| SignalingError::Closed)
    }

    /// The next message from the server; `None` once the connection is gone. Anything that
    /// is not a message of the protocol is skipped.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            match self.socket.next().await? {
                Ok(tungstenite::Message::Text(text)) => {
                    if let Ok(message) = serde_json::from_str::<Message>(text.as_str()) {
                        return Some(message);
                    }
                }
                Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_read_forgivingly() {
        assert_eq!(
            normalize_url("ws://127.0.0.1:8080").as_deref(),
            Ok("ws://127.0.0.1:8080/ws")
        );
        assert_eq!(normalize_url("http://h:1/").as_deref(), Ok("ws://h:1/ws"));
        assert_eq!(
            normalize_url("https://h/x/ws").as_deref(),
            Ok("wss://h/x/ws")
        );
        assert!(matches!(
            normalize_url("127.0.0.1:8080"),
            Err(SignalingError::BadUrl(_))
        ));
        assert!(matches!(
            normalize_url("ftp://h"),
            Err(SignalingError::BadUrl(_))
        ));
    }
}
