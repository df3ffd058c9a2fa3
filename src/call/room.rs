//! A call through a `duet signal` room: the call's description and candidates go out as room
//! messages, and the far side's come back as call commands. `duet call --room` and the
//! window both carry their calls through this, so the two speak to rooms alike.

use crate::call::{CallCommand, CallState, CallUpdate, EndReason};
use crate::signaling::client::{Joined, RoomSession, SignalingError};
use crate::signaling::protocol::Message;
use crate::signaling::token::{PasteToken, SdpKind};

/// A joined room, while its connection lasts.
pub struct RoomLink {
    session: Option<RoomSession>,
    connected_once: bool,
}

/// What a room message means to the call.
#[derive(Debug)]
pub enum RoomInput {
    /// Pass this on to the call.
    Command(CallCommand),
    /// Something to tell the person; the call goes on.
    Note(String),
}

impl RoomLink {
    /// Connects to the server and joins `room`.
    pub async fn join(server: &str, room: &str) -> Result<(Joined, Self), SignalingError> {
        let (joined, session) = crate::signaling::client::join(server, room).await?;
        let link = Self {
            session: Some(session),
            connected_once: false,
        };
        Ok((joined, link))
    }

    async fn send(&mut self, message: Message) {
        if let Some(session) = self.session.as_mut()
            && session.send(&message).await.is_err()
        {
            self.session = None;
        }
    }

    /// Sends what the room must carry of this update: our description and candidates.
    /// Returns true when the update was only for the room.
    pub async fn carry(&mut self, update: &CallUpdate) -> bool {
        match update {
            CallUpdate::LocalToken(token) => {
                let sdp = token.sdp.clone();
                self.send(match token.kind {
                    SdpKind::Offer => Message::Offer { sdp },
                    SdpKind::Answer => Message::Answer { sdp },
                })
                .await;
                true
            }
            CallUpdate::LocalCandidate(candidate) => {
                self.send(Message::Candidate {
                    candidate: candidate.clone(),
                })
                .await;
                true
            }
            CallUpdate::State(CallState::Connected { .. }) => {
                self.connected_once = true;
                false
            }
            _ => false,
        }
    }

    /// The next thing the room says; waits forever once the server is gone (the call goes
    /// on without it).
    pub async fn recv(&mut self) -> RoomInput {
        loop {
            let Some(session) = self.session.as_mut() else {
                return std::future::pending().await;
            };
            let command = match session.recv().await {
                Some(Message::Offer { sdp }) => {
                    CallCommand::AcceptOffer(PasteToken::new(SdpKind::Offer, sdp))
                }
                Some(Message::Answer { sdp }) => {
                    CallCommand::AcceptAnswer(PasteToken::new(SdpKind::Answer, sdp))
                }
                Some(Message::Candidate { candidate }) => CallCommand::RemoteCandidate(candidate),
                Some(Message::Bye) => CallCommand::RemoteHungUp,
                Some(Message::PeerJoined) => {
                    return RoomInput::Note("the other person joined".into());
                }
                Some(Message::Error { message }) => {
                    return RoomInput::Note(format!("the signaling server says: {message}"));
                }
                Some(_) => continue,
                None => {
                    self.session = None;
                    if self.connected_once {
                        return RoomInput::Note(
                            "the signaling server went away; the call goes on".into(),
                        );
                    }
                    CallCommand::Fail(
                        "the signaling server went away before the call connected".into(),
                    )
                }
            };
            return RoomInput::Command(command);
        }
    }

    /// The next thing the room says, if there is a room; waits forever if there is none.
    pub async fn next_input(room: &mut Option<RoomLink>) -> RoomInput {
        match room.as_mut() {
            Some(room) => room.recv().await,
            None => std::future::pending().await,
        }
    }

    /// [`RoomLink::carry`] if there is a room; false (the update is the caller's) if not.
    pub async fn carry_update(room: &mut Option<RoomLink>, update: &CallUpdate) -> bool {
        match room.as_mut() {
            Some(room) => room.carry(update).await,
            None => false,
        }
    }

    /// Says goodbye (when we hung up) and closes the connection.
    pub async fn leave(mut self, reason: &EndReason) {
        if *reason == EndReason::LocalHangUp {
            self.send(Message::Bye).await;
        }
        if let Some(session) = self.session.take() {
            session.close().await;
        }
    }
}
