//! What the window shows, as plain state: the start screen (call by paste), the call screen
//! (remote picture, state, duration, hang up) and the end. It draws from this state and
//! returns what the person asked for; it knows nothing of sockets or threads, so it is
//! tested with egui_kittest on its own.

use crate::call::{CallState, CallUpdate, EndReason};
use crate::signaling::{PasteToken, SdpKind};
use eframe::egui;
use std::time::{Duration, Instant};

/// What the person asked for.
#[derive(Debug, PartialEq)]
pub enum UiAction {
    CreateOffer,
    AnswerOffer(PasteToken),
    AcceptAnswer(PasteToken),
    HangUp,
    BackToStart,
}

#[derive(Debug, Default, PartialEq)]
enum Phase {
    #[default]
    Start,
    /// Our offer is being made or waits for the answer to be pasted.
    Offering,
    /// Our answer is being made.
    Answering,
    Connecting,
    Connected {
        since: Instant,
        interrupted: bool,
    },
    Ended(String),
}

/// The window's state.
#[derive(Default)]
pub struct WindowView {
    phase: Phase,
    my_token: String,
    their_token: String,
    paste_error: Option<String>,
    messages: Vec<String>,
}

fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

impl WindowView {
    pub fn is_in_call(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Connected { .. })
    }

    /// Takes in what the call says.
    pub fn apply(&mut self, update: CallUpdate, now: Instant) {
        match update {
            CallUpdate::LocalToken(token) => self.my_token = token.encode(),
            CallUpdate::State(state) => {
                self.phase = match state {
                    CallState::Idle => Phase::Start,
                    CallState::Offering => Phase::Offering,
                    CallState::Answering => Phase::Answering,
                    CallState::Connecting { .. } if self.phase == Phase::Offering => {
                        Phase::Offering
                    }
                    CallState::Connecting { .. } => Phase::Connecting,
                    CallState::Connected {
                        disconnected_at, ..
                    } => Phase::Connected {
                        since: match self.phase {
                            Phase::Connected { since, .. } => since,
                            _ => now,
                        },
                        interrupted: disconnected_at.is_some(),
                    },
                    CallState::Ended { reason } => Phase::Ended(reason.to_string()),
                }
            }
            CallUpdate::Ended { reason, .. } => self.phase = Phase::Ended(reason.to_string()),
            CallUpdate::Message(text) => self.messages.push(text),
            CallUpdate::LocalCandidate(_) | CallUpdate::RemotePictures(_) => {}
        }
    }

    /// Shows a call that ended this way (for tests and the demo of each screen).
    pub fn ended(reason: EndReason) -> Self {
        Self {
            phase: Phase::Ended(reason.to_string()),
            ..Self::default()
        }
    }

    fn status(&self, now: Instant) -> String {
        match &self.phase {
            Phase::Start => "Not in a call".into(),
            Phase::Offering => "Calling: send your token, then paste their answer".into(),
            Phase::Answering => "Answering".into(),
            Phase::Connecting => "Connecting".into(),
            Phase::Connected {
                interrupted: true, ..
            } => "Connection interrupted, trying to recover".into(),
            Phase::Connected { since, .. } => format!(
                "In a call {}",
                duration_text(now.saturating_duration_since(*since))
            ),
            Phase::Ended(reason) => format!("Call ended: {reason}"),
        }
    }

    /// Draws the window; `remote` is the remote picture's texture and size, if one arrived.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        remote: Option<(egui::TextureId, egui::Vec2)>,
        now: Instant,
    ) -> Vec<UiAction> {
        let mut actions = Vec::new();
        egui::Panel::top("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Duet");
                ui.label(self.status(now));
            });
        });
        egui::CentralPanel::default().show(ui, |ui| match &self.phase {
            Phase::Connecting | Phase::Connected { .. } => {
                self.call_screen(ui, remote, &mut actions)
            }
            Phase::Ended(reason) => {
                ui.vertical_centered(|ui| {
                    ui.add_space(40.0);
                    ui.heading(format!("Call ended: {reason}"));
                    if ui.button("Back to start").clicked() {
                        actions.push(UiAction::BackToStart);
                    }
                });
            }
            _ => self.start_screen(ui, &mut actions),
        });
        actions
    }

    fn call_screen(
        &mut self,
        ui: &mut egui::Ui,
        remote: Option<(egui::TextureId, egui::Vec2)>,
        actions: &mut Vec<UiAction>,
    ) {
        let hang_up = ui.input(|i| {
            i.key_pressed(egui::Key::Escape) || (i.modifiers.command && i.key_pressed(egui::Key::W))
        });
        let button = ui.button("Hang up").on_hover_text("Esc or Ctrl+W");
        if button.clicked() || hang_up {
            actions.push(UiAction::HangUp);
        }
        let area = ui.available_size();
        match remote {
            Some((texture, size)) if size.x > 0.0 && size.y > 0.0 => {
                // Largest picture that fits, aspect kept.
                let scale = (area.x / size.x).min(area.y / size.y);
                ui.centered_and_justified(|ui| {
                    ui.add(egui::Image::new((texture, size * scale)).alt_text("The other person"));
                });
            }
            _ => {
                ui.centered_and_justified(|ui| ui.label("Waiting for the other person's picture"));
            }
        }
    }

    fn start_screen(&mut self, ui: &mut egui::Ui, actions: &mut Vec<UiAction>) {
        ui.heading("Call by paste");
        ui.label("Make an offer and send your token to the other person, or paste the token they sent you.");
        ui.label("Camera: test pattern. Microphone: test tone. (Real devices come later.)");
        ui.add_space(8.0);
        let idle = self.phase == Phase::Start;
        if ui
            .add_enabled(idle, egui::Button::new("Create offer"))
            .clicked()
        {
            self.my_token.clear();
            actions.push(UiAction::CreateOffer);
        }
        ui.add_space(8.0);
        let mine = ui.label("Your token");
        ui.horizontal(|ui| {
            let mut shown = self.my_token.as_str();
            ui.add(
                egui::TextEdit::multiline(&mut shown)
                    .desired_rows(3)
                    .desired_width(560.0)
                    .hint_text("Your token appears here"),
            )
            .labelled_by(mine.id);
            if ui
                .add_enabled(!self.my_token.is_empty(), egui::Button::new("Copy"))
                .clicked()
            {
                ui.ctx().copy_text(self.my_token.clone());
            }
        });
        let theirs = ui.label("Their token");
        ui.add(
            egui::TextEdit::multiline(&mut self.their_token)
                .desired_rows(3)
                .desired_width(560.0)
                .hint_text("Paste their offer or answer here"),
        )
        .labelled_by(theirs.id);
        let can_use = matches!(self.phase, Phase::Start | Phase::Offering);
        if ui
            .add_enabled(can_use, egui::Button::new("Use their token"))
            .clicked()
        {
            let expected = if self.phase == Phase::Offering {
                SdpKind::Answer
            } else {
                SdpKind::Offer
            };
            match PasteToken::parse(&self.their_token, expected) {
                Ok(token) => {
                    self.paste_error = None;
                    actions.push(match expected {
                        SdpKind::Offer => UiAction::AnswerOffer(token),
                        SdpKind::Answer => UiAction::AcceptAnswer(token),
                    });
                }
                Err(e) => self.paste_error = Some(e.to_string()),
            }
        }
        if let Some(error) = &self.paste_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    }
}
