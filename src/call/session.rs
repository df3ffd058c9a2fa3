//! One call from start to end, as both front ends make it: the window and `duet call` say
//! how to find the far side and forward the person's commands; this controller joins the
//! room (if any), decides who offers, picks the test tones, merges the ICE servers of the
//! settings with the room's, chooses trickle, runs the call, carries its description and
//! candidates through the room, and ends a call that could not start with a summary that
//! says why. What the front ends show comes back as [`CallUpdate`]s.

use crate::call::room::{RoomInput, RoomLink};
use crate::call::{CallCommand, CallOptions, CallUpdate, run_call};
use crate::signaling::PasteToken;
use rtc::peer_connection::transport::RTCIceServer;
use tokio::sync::mpsc;

/// The test tone of the side that makes the offer, and of the side that answers: each
/// side hears a different one.
pub const OFFERING_TONE_HZ: f64 = 440.0;
pub const ANSWERING_TONE_HZ: f64 = 660.0;

/// How this call finds the far side.
#[derive(Clone, Debug)]
pub enum Rendezvous {
    /// By paste, making the offer; the far side's answer comes as
    /// [`CallCommand::AcceptAnswer`].
    Offer,
    /// By paste, answering this offer, or one that comes later as
    /// [`CallCommand::AcceptOffer`].
    Answer(Option<PasteToken>),
    /// Through a room on a signaling server; the second to join makes the offer.
    Room { server: String, room: String },
}

/// Everything a session needs besides its rendezvous.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// The call as the settings and command line make it: the ICE servers there are the
    /// person's own (a room's are added to them); `trickle` is decided here.
    pub call: CallOptions,
    /// Pick the test tone by role ([`OFFERING_TONE_HZ`], [`ANSWERING_TONE_HZ`]) instead of
    /// `call.media.tone_hz`.
    pub tone_by_role: bool,
}

/// A running session: commands in, updates out. Dropping the command sender hangs up.
pub struct Session {
    pub commands: mpsc::Sender<CallCommand>,
    pub updates: mpsc::Receiver<CallUpdate>,
}

impl Session {
    /// Starts the session on the current tokio runtime.
    pub fn start(rendezvous: Rendezvous, options: SessionOptions) -> Self {
        let (command_tx, command_rx) = mpsc::channel(64);
        let (update_tx, update_rx) = mpsc::channel(64);
        tokio::spawn(run_session(
            rendezvous,
            options,
            command_tx.clone(),
            command_rx,
            update_tx,
        ));
        Self {
            commands: command_tx,
            updates: update_rx,
        }
    }
}

async fn run_session(
    rendezvous: Rendezvous,
    options: SessionOptions,
    commands: mpsc::Sender<CallCommand>,
    command_rx: mpsc::Receiver<CallCommand>,
    out: mpsc::Sender<CallUpdate>,
) {
    let SessionOptions {
        mut call,
        tone_by_role,
    } = options;
    let (room, first, we_offer) = match rendezvous {
        Rendezvous::Offer => (None, Some(CallCommand::StartOffer), true),
        Rendezvous::Answer(offer) => (None, offer.map(CallCommand::AcceptOffer), false),
        Rendezvous::Room { server, room } => match RoomLink::join(&server, &room).await {
            Ok((joined, link)) => {
                let we_offer = joined.peers >= 2;
                call.trickle = true;
                call.ice_restart = true;
                call.peer
                    .ice_servers
                    .extend(joined.ice_servers.into_iter().map(|s| RTCIceServer {
                        urls: s.urls,
                        username: s.username,
                        credential: s.credential,
                    }));
                let _ = out.send(CallUpdate::InRoom { we_offer }).await;
                (
                    Some(link),
                    we_offer.then_some(CallCommand::StartOffer),
                    we_offer,
                )
            }
            Err(e) => {
                let _ = out.send(CallUpdate::never_began(e.to_string())).await;
                return;
            }
        },
    };
    if tone_by_role {
        call.media.tone_hz = if we_offer {
            OFFERING_TONE_HZ
        } else {
            ANSWERING_TONE_HZ
        };
    }
    if let Some(first) = first {
        let _ = commands.send(first).await;
    }
    drop(commands);
    carry_call(call, room, command_rx, out).await;
}

/// Runs the call, carrying its description and candidates through the room (if any), and
/// hands everything else on, until the call has ended.
async fn carry_call(
    options: CallOptions,
    mut room: Option<RoomLink>,
    mut commands: mpsc::Receiver<CallCommand>,
    out: mpsc::Sender<CallUpdate>,
) {
    // The runner's own command queue: the front end's commands and the room's meet there.
    let (to_call, call_commands) = mpsc::channel(64);
    let (update_tx, mut update_rx) = mpsc::channel(64);
    let runner = tokio::spawn(run_call(options, call_commands, update_tx));
    let mut front_end_gone = false;
    loop {
        tokio::select! {
            update = update_rx.recv() => {
                let Some(update) = update else { break };
                if RoomLink::carry_update(&mut room, &update).await {
                    continue;
                }
                if let CallUpdate::Ended { reason, .. } = &update
                    && let Some(link) = room.take()
                {
                    link.leave(reason).await;
                }
                if out.send(update).await.is_err() && !front_end_gone {
                    // Nobody is left to show the call: hang up.
                    front_end_gone = true;
                    let _ = to_call.send(CallCommand::HangUp).await;
                }
            }
            command = commands.recv(), if !front_end_gone => match command {
                Some(command) => { let _ = to_call.send(command).await; }
                None => {
                    front_end_gone = true;
                    let _ = to_call.send(CallCommand::HangUp).await;
                }
            },
            input = RoomLink::next_input(&mut room) => match input {
                RoomInput::Command(command) => {
                    let _ = to_call.send(command).await;
                }
                RoomInput::Note(text) => {
                    let _ = out.send(CallUpdate::Note(text)).await;
                }
            },
        }
    }
    let _ = runner.await;
}
