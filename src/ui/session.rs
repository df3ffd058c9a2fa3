//! One call as the window sees it: the call session on the async runtime, commands in, and
//! updates left in an inbox that never blocks the call (the newest state and stats replace
//! older ones), with a repaint whenever one arrives.

use crate::call::inbox::UpdateInbox;
use crate::call::session::{Rendezvous, SessionOptions};
use crate::call::{CallCommand, CallUpdate};
use eframe::egui;
use tokio::sync::mpsc;

pub struct Session {
    commands: mpsc::Sender<CallCommand>,
    inbox: UpdateInbox,
}

impl Session {
    pub fn start(
        runtime: &tokio::runtime::Handle,
        rendezvous: Rendezvous,
        options: SessionOptions,
        ctx: egui::Context,
    ) -> Self {
        let inbox = UpdateInbox::new();
        let session = {
            let _inside = runtime.enter();
            crate::call::session::Session::start(rendezvous, options)
        };
        let commands = session.commands;
        let mut updates = session.updates;
        let to_window = inbox.clone();
        runtime.spawn(async move {
            while let Some(update) = updates.recv().await {
                if !to_window.push(update) {
                    // The window is gone; dropping `updates` hangs the call up.
                    break;
                }
                ctx.request_repaint();
            }
        });
        Self { commands, inbox }
    }

    /// Never blocks: a command that does not fit is dropped (the call is gone or stuck).
    pub fn send(&self, command: CallCommand) {
        let _ = self.commands.try_send(command);
    }

    pub fn updates(&self) -> Vec<CallUpdate> {
        self.inbox.take()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.inbox.close();
        let _ = self.commands.try_send(CallCommand::HangUp);
    }
}
