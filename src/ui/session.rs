//! One call as the window sees it: the call runner on the async runtime, commands in,
//! updates out, and a repaint whenever an update arrives.

use crate::call::pipeline::MediaSettings;
use crate::call::{CallCommand, CallOptions, CallUpdate, run_call};
use crate::peer::PeerConfig;
use eframe::egui;
use std::net::IpAddr;
use tokio::sync::mpsc;

pub struct Session {
    commands: mpsc::Sender<CallCommand>,
    updates: std::sync::mpsc::Receiver<CallUpdate>,
}

impl Session {
    pub fn start(
        runtime: &tokio::runtime::Handle,
        bind: Option<IpAddr>,
        media: MediaSettings,
        ctx: egui::Context,
    ) -> Self {
        let (command_tx, command_rx) = mpsc::channel(16);
        let (update_tx, mut update_rx) = mpsc::channel(64);
        let options = CallOptions {
            peer: PeerConfig {
                bind,
                ..Default::default()
            },
            media,
            trickle: false,
            name: "duet".into(),
        };
        runtime.spawn(run_call(options, command_rx, update_tx));
        // Call updates are few (state changes, tokens, the end): a small bounded queue.
        let (ui_tx, ui_rx) = std::sync::mpsc::sync_channel(256);
        runtime.spawn(async move {
            while let Some(update) = update_rx.recv().await {
                if ui_tx.send(update).is_err() {
                    break;
                }
                ctx.request_repaint();
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

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.commands.try_send(CallCommand::HangUp);
    }
}
