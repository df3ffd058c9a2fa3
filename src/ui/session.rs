//! One call as the window sees it: the call runner on the async runtime (through a room when
//! the call goes through one), commands in, updates out, and a repaint whenever an update
//! arrives.

use crate::call::room::{RoomInput, RoomLink};
use crate::call::{CallCommand, CallOptions, CallSummary, CallUpdate, EndReason, run_call};
use crate::signaling::PasteToken;
use eframe::egui;
use rtc::peer_connection::transport::RTCIceServer;
use tokio::sync::mpsc;

/// How this call finds the far side.
pub enum Rendezvous {
    /// Make an offer (`None`) or answer this one, tokens pasted by hand.
    Paste(Option<PasteToken>),
    /// Join this room on a signaling server; the second to join makes the offer.
    Room { server: String, room: String },
}

pub struct Session {
    commands: mpsc::Sender<CallCommand>,
    updates: std::sync::mpsc::Receiver<CallUpdate>,
}

/// Hands updates to the window and wakes it.
struct ToWindow {
    tx: std::sync::mpsc::SyncSender<CallUpdate>,
    ctx: egui::Context,
}

impl ToWindow {
    fn deliver(&self, update: CallUpdate) -> bool {
        let delivered = self.tx.send(update).is_ok();
        self.ctx.request_repaint();
        delivered
    }
}

impl Session {
    pub fn start(
        runtime: &tokio::runtime::Handle,
        rendezvous: Rendezvous,
        options: CallOptions,
        ctx: egui::Context,
    ) -> Self {
        let (command_tx, command_rx) = mpsc::channel(64);
        // Call updates are few (state changes, tokens, a line of stats a second): a small
        // bounded queue.
        let (ui_tx, ui_rx) = std::sync::mpsc::sync_channel(256);
        let window = ToWindow { tx: ui_tx, ctx };
        let commands = command_tx.clone();
        runtime.spawn(async move {
            match rendezvous {
                Rendezvous::Paste(offer) => {
                    let first = match offer {
                        Some(offer) => CallCommand::AcceptOffer(offer),
                        None => CallCommand::StartOffer,
                    };
                    let _ = commands.send(first).await;
                    carry_call(options, None, command_rx, commands, window).await;
                }
                Rendezvous::Room { server, room } => match RoomLink::join(&server, &room).await {
                    Ok((joined, link)) => {
                        let we_offer = joined.peers >= 2;
                        let mut options = options;
                        options.trickle = true;
                        options.media.tone_hz = if we_offer { 440.0 } else { 660.0 };
                        options
                            .peer
                            .ice_servers
                            .extend(joined.ice_servers.into_iter().map(|s| RTCIceServer {
                                urls: s.urls,
                                username: s.username,
                                credential: s.credential,
                            }));
                        if we_offer {
                            let _ = commands.send(CallCommand::StartOffer).await;
                        }
                        carry_call(options, Some(link), command_rx, commands, window).await;
                    }
                    Err(e) => {
                        let reason = EndReason::FailedToConnect(e.to_string());
                        let summary = CallSummary {
                            end_reason: reason.to_string(),
                            ..Default::default()
                        };
                        window.deliver(CallUpdate::Ended {
                            reason,
                            summary: Box::new(summary),
                        });
                    }
                },
            }
        });
        Self {
            commands: command_tx,
            updates: ui_rx,
        }
    }

    /// Never blocks: a command that does not fit is dropped (the call is gone or stuck).
    pub fn send(&self, command: CallCommand) {
        let _ = self.commands.try_send(command);
    }

    pub fn updates(&self) -> Vec<CallUpdate> {
        self.updates.try_iter().collect()
    }
}

/// Runs the call, carrying its description and candidates through the room (if any), and
/// hands everything else to the window, until the call has ended.
async fn carry_call(
    options: CallOptions,
    mut room: Option<RoomLink>,
    command_rx: mpsc::Receiver<CallCommand>,
    commands: mpsc::Sender<CallCommand>,
    window: ToWindow,
) {
    let (update_tx, mut update_rx) = mpsc::channel(64);
    let runner = tokio::spawn(run_call(options, command_rx, update_tx));
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
                if !window.deliver(update) {
                    // The window is gone: nobody is left to talk to.
                    let _ = commands.try_send(CallCommand::HangUp);
                }
            }
            input = RoomLink::next_input(&mut room) => match input {
                RoomInput::Command(command) => {
                    let _ = commands.send(command).await;
                }
                RoomInput::Note(text) => {
                    window.deliver(CallUpdate::Note(text));
                }
            },
        }
    }
    let _ = runner.await;
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.commands.try_send(CallCommand::HangUp);
    }
}
