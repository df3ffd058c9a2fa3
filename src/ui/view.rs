//! What the window shows, as plain state: the start screen (self-view, devices, name, join a
//! room, call by paste), the call screen (remote picture large, self-view in a corner,
//! controls, stats, chat, verification code) and the end. It draws from this state and
//! returns what the person asked for; it knows nothing of sockets or threads, so it is
//! tested with egui_kittest on its own.

use crate::call::{CallState, CallUpdate, EndReason, LiveStats};
use crate::signaling::{PasteToken, SdpKind};
use eframe::egui;
use std::time::{Duration, Instant};

/// What the person asked for.
#[derive(Debug, PartialEq)]
pub enum UiAction {
    CreateOffer,
    AnswerOffer(PasteToken),
    AcceptAnswer(PasteToken),
    JoinRoom {
        server: String,
        room: String,
    },
    HangUp,
    BackToStart,
    /// Mute (true) or unmute the microphone.
    MuteMicrophone(bool),
    /// Turn the camera off (true) or on.
    CameraOff(bool),
    /// Start (true) or stop recording the far side.
    Record(bool),
    SendChat(String),
    ToggleFullscreen,
    /// The person changed a setting (name, device, server): remember it.
    SaveSettings,
}

/// One entry of a device picker: what the setting says, and what the person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceChoice {
    pub setting: String,
    pub label: String,
}

impl DeviceChoice {
    pub fn new(setting: &str, label: &str) -> Self {
        Self {
            setting: setting.into(),
            label: label.into(),
        }
    }
}

#[derive(Debug, Default, PartialEq)]
enum Phase {
    #[default]
    Start,
    /// Our offer is being made or waits for the answer to be pasted.
    Offering,
    /// Our answer is being made.
    Answering,
    /// In a room, waiting for the other person.
    Waiting,
    Connecting,
    Connected {
        since: Instant,
        interrupted: bool,
    },
    Ended(String),
}

/// One line of the chat.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatLine {
    pub mine: bool,
    pub text: String,
}

/// Pictures to draw this frame: texture and size of each, if one arrived.
#[derive(Clone, Copy, Default)]
pub struct Pictures {
    pub remote: Option<(egui::TextureId, egui::Vec2)>,
    pub local: Option<(egui::TextureId, egui::Vec2)>,
}

/// The window's state.
pub struct WindowView {
    phase: Phase,
    my_token: String,
    their_token: String,
    paste_error: Option<String>,
    /// How we introduce ourselves to the far side.
    pub name: String,
    server: String,
    room: String,
    /// The call goes through a room, which can carry an ICE restart; a pasted one cannot.
    in_room: bool,
    room_error: Option<String>,
    remote_name: Option<String>,
    /// The newest thing worth telling the person (from the room or the call).
    note: Option<String>,
    chat: Vec<ChatLine>,
    chat_draft: String,
    chat_open: bool,
    /// Put the cursor in the chat's message box on the next frame.
    focus_chat: bool,
    /// A text box had the keyboard at the end of the last frame. (egui drops the focus on
    /// Esc before the frame that sees the key, so this frame cannot tell.)
    was_typing: bool,
    unread: usize,
    microphone_muted: bool,
    camera_off: bool,
    stats_shown: bool,
    stats: Option<LiveStats>,
    /// The last minute of stats, for the plots under them.
    history: crate::ui::plots::StatsHistory,
    verification: Option<String>,
    recording: bool,
    /// What the call recorded, said at its end.
    recorded: Vec<String>,
    cameras: Vec<DeviceChoice>,
    microphones: Vec<DeviceChoice>,
    speakers: Vec<DeviceChoice>,
    /// The chosen camera, microphone and speaker, as settings say them (`pattern`, `tone`,
    /// `default`, a name).
    pub camera: String,
    pub microphone: String,
    pub speaker: String,
    /// What became of the camera of the self-view (shown on the start screen).
    pub camera_note: Option<String>,
    /// Something wrong that the person should know before calling (e.g. the settings).
    pub warning: Option<String>,
}

const NO_SPEAKER: &str = "None (sound is measured, not played)";

/// At most this many chat lines are kept on screen.
const CHAT_LINES: usize = 200;
/// A chat line is cut to this many characters.
const CHAT_CHARS: usize = 500;

impl Default for WindowView {
    fn default() -> Self {
        Self {
            phase: Phase::Start,
            my_token: String::new(),
            their_token: String::new(),
            paste_error: None,
            name: "Duet".into(),
            server: "ws://127.0.0.1:8480/ws".into(),
            room: String::new(),
            in_room: false,
            room_error: None,
            remote_name: None,
            note: None,
            chat: Vec::new(),
            chat_draft: String::new(),
            chat_open: false,
            focus_chat: false,
            was_typing: false,
            unread: 0,
            microphone_muted: false,
            camera_off: false,
            stats_shown: false,
            stats: None,
            history: Default::default(),
            verification: None,
            recording: false,
            recorded: Vec::new(),
            cameras: vec![DeviceChoice::new("pattern", "Test pattern")],
            microphones: vec![DeviceChoice::new("tone", "Test tone")],
            speakers: vec![DeviceChoice::new("none", NO_SPEAKER)],
            camera: "pattern".into(),
            microphone: "tone".into(),
            speaker: "none".into(),
            camera_note: None,
            warning: None,
        }
    }
}

fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

impl WindowView {
    pub fn is_in_call(&self) -> bool {
        matches!(
            self.phase,
            Phase::Waiting | Phase::Connecting | Phase::Connected { .. }
        )
    }

    /// The start screen with this server and room filled in.
    pub fn with_room(server: &str, room: &str) -> Self {
        Self {
            server: server.into(),
            room: room.into(),
            ..Self::default()
        }
    }

    /// The start screen again, keeping what the person typed in and chose.
    pub fn fresh_start(&self) -> Self {
        Self {
            name: self.name.clone(),
            server: self.server.clone(),
            room: self.room.clone(),
            cameras: self.cameras.clone(),
            microphones: self.microphones.clone(),
            speakers: self.speakers.clone(),
            camera: self.camera.clone(),
            microphone: self.microphone.clone(),
            speaker: self.speaker.clone(),
            ..Self::default()
        }
    }

    /// The signaling server typed in.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The devices the pickers offer (besides the test tone and no speaker, always there),
    /// and the ones chosen. A choice that is not there falls back to the synthetic one.
    pub fn set_devices(
        &mut self,
        microphones: Vec<DeviceChoice>,
        speakers: Vec<DeviceChoice>,
        microphone: &str,
        speaker: &str,
    ) {
        let with = |first: DeviceChoice, found: Vec<DeviceChoice>| {
            let mut all = vec![first];
            if !found.is_empty() {
                all.push(DeviceChoice::new("default", "System default"));
            }
            all.extend(found);
            all
        };
        self.microphones = with(DeviceChoice::new("tone", "Test tone"), microphones);
        self.speakers = with(DeviceChoice::new("none", NO_SPEAKER), speakers);
        let pick = |choices: &[DeviceChoice], wanted: &str| {
            choices
                .iter()
                .find(|c| c.setting == wanted)
                .unwrap_or(&choices[0])
                .setting
                .clone()
        };
        self.microphone = pick(&self.microphones, microphone);
        self.speaker = pick(&self.speakers, speaker);
    }

    /// The cameras the picker offers (besides the test pattern, always there), and the one
    /// chosen. A camera that is not there falls back to the pattern.
    pub fn set_cameras(&mut self, cameras: Vec<DeviceChoice>, camera: &str) {
        let mut all = vec![DeviceChoice::new("pattern", "Test pattern")];
        if !cameras.is_empty() {
            all.push(DeviceChoice::new("default", "Default camera"));
        }
        all.extend(cameras);
        self.camera = all
            .iter()
            .find(|c| c.setting == camera)
            .unwrap_or(&all[0])
            .setting
            .clone();
        self.cameras = all;
    }

    /// Shows that we joined a room and wait there (the window calls this on joining).
    pub fn waiting_in_room(&mut self) {
        self.phase = Phase::Waiting;
        self.in_room = true;
    }

    /// Takes in what the call says.
    pub fn apply(&mut self, update: CallUpdate, now: Instant) {
        match update {
            CallUpdate::LocalToken(token) => self.my_token = token.encode(),
            CallUpdate::State(state) => {
                self.phase = match state {
                    // Hanging up takes a moment (the goodbye leaves first): the call stays
                    // on screen until it has ended.
                    CallState::Idle | CallState::Ending { .. } => return,
                    CallState::Offering if self.phase == Phase::Waiting => Phase::Connecting,
                    CallState::Offering => Phase::Offering,
                    CallState::Answering if self.phase == Phase::Waiting => Phase::Connecting,
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
            CallUpdate::Ended { reason, summary } => {
                self.phase = Phase::Ended(reason.to_string());
                // What was recorded, and where, is worth telling at the end.
                self.recorded = summary
                    .devices
                    .iter()
                    .filter(|d| d.starts_with("recorded "))
                    .cloned()
                    .collect();
            }
            CallUpdate::Greeting(name) => {
                let name: String = name.chars().take(64).collect();
                self.remote_name = Some(name);
            }
            CallUpdate::Chat(text) => {
                self.push_chat(false, text);
                if !self.chat_open {
                    self.unread += 1;
                }
            }
            CallUpdate::Note(text) => self.note = Some(text),
            CallUpdate::Verification(code) => self.verification = Some(code),
            CallUpdate::Stats(stats) => {
                self.history.push(stats.clone());
                self.stats = Some(stats);
            }
            CallUpdate::LocalCandidate(_)
            | CallUpdate::InRoom { .. }
            | CallUpdate::RemotePictures(_)
            | CallUpdate::LocalPictures(_) => {}
        }
    }

    fn push_chat(&mut self, mine: bool, text: String) {
        let text: String = text.chars().take(CHAT_CHARS).collect();
        self.chat.push(ChatLine { mine, text });
        if self.chat.len() > CHAT_LINES {
            self.chat.remove(0);
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
            Phase::Waiting => format!("In room {:?}: waiting for the other person", self.room),
            Phase::Connecting => "Connecting".into(),
            Phase::Connected {
                interrupted: true,
                since,
            } => format!(
                "Reconnecting… {}{}",
                duration_text(now.saturating_duration_since(*since)),
                if self.in_room {
                    ""
                } else {
                    " (a pasted call cannot follow a move to another network)"
                }
            ),
            Phase::Connected { since, .. } => {
                let with = match &self.remote_name {
                    Some(name) => format!(" with {name}"),
                    None => String::new(),
                };
                format!(
                    "In a call{with} {}",
                    duration_text(now.saturating_duration_since(*since))
                )
            }
            Phase::Ended(reason) => format!("Call ended: {reason}"),
        }
    }

    /// Draws the window and returns what the person asked for.
    pub fn show(&mut self, ui: &mut egui::Ui, pictures: Pictures, now: Instant) -> Vec<UiAction> {
        let mut actions = Vec::new();
        egui::Panel::top("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Duet");
                ui.separator();
                ui.label(self.status(now));
                if let Some(code) = &self.verification {
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        ui.label(egui::RichText::new(code).strong().size(15.0))
                            .on_hover_text(
                                "Read this code aloud: the other side must see the same one. \
                                 If it differs, someone is between you.",
                            );
                        ui.label("Security code");
                    });
                }
            });
            if let Some(note) = &self.note
                && self.is_in_call()
            {
                ui.weak(note);
            }
        });
        match &self.phase {
            Phase::Connecting | Phase::Connected { .. } | Phase::Waiting => {
                self.call_screen(ui, pictures, &mut actions)
            }
            Phase::Ended(reason) => {
                let reason = reason.clone();
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.vertical_centered(|ui| {
                        ui.add_space(60.0);
                        ui.heading(format!("Call ended: {reason}"));
                        for line in &self.recorded {
                            ui.label(line);
                        }
                        ui.add_space(12.0);
                        if ui.button("Back to start").clicked() {
                            actions.push(UiAction::BackToStart);
                        }
                    });
                });
            }
            _ => {
                egui::CentralPanel::default().show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .show(ui, |ui| self.start_screen(ui, pictures.local, &mut actions));
                });
            }
        }
        self.was_typing = ui.ctx().egui_wants_keyboard_input();
        actions
    }

    fn call_screen(&mut self, ui: &mut egui::Ui, pictures: Pictures, actions: &mut Vec<UiAction>) {
        // Shortcuts, unless the person is typing (in the chat box): there Esc only leaves
        // the box. In fullscreen Esc leaves fullscreen.
        let typing = self.was_typing || ui.ctx().egui_wants_keyboard_input();
        let in_fullscreen = ui.input(|i| i.viewport().fullscreen.unwrap_or(false));
        let record_key = ui.input(|i| !typing && i.key_pressed(egui::Key::R));
        let (hang_up, mute, camera, chat_key, fullscreen) = ui.input(|i| {
            let escape = i.key_pressed(egui::Key::Escape);
            (
                (!typing && !in_fullscreen && escape)
                    || (i.modifiers.command && i.key_pressed(egui::Key::W)),
                !typing && i.key_pressed(egui::Key::M),
                !typing && i.key_pressed(egui::Key::V),
                !typing && i.key_pressed(egui::Key::C),
                i.key_pressed(egui::Key::F11) || (in_fullscreen && escape && !typing),
            )
        });
        egui::Panel::bottom("controls").show(ui, |ui| {
            ui.add_space(4.0);
            ui.horizontal(|ui| {
                let labels = ("Mute microphone", "Unmute microphone", "M");
                if toggle(ui, &mut self.microphone_muted, labels, mute) {
                    actions.push(UiAction::MuteMicrophone(self.microphone_muted));
                }
                let labels = ("Turn camera off", "Turn camera on", "V");
                if toggle(ui, &mut self.camera_off, labels, camera) {
                    actions.push(UiAction::CameraOff(self.camera_off));
                }
                let labels = (
                    "Record",
                    "Stop recording",
                    "R: save their picture and sound",
                );
                if matches!(self.phase, Phase::Connected { .. })
                    && toggle(ui, &mut self.recording, labels, record_key)
                {
                    actions.push(UiAction::Record(self.recording));
                }
                let leave = if self.phase == Phase::Waiting {
                    "Leave room"
                } else {
                    "Hang up"
                };
                let hang =
                    egui::Button::new(egui::RichText::new(leave).color(egui::Color32::WHITE))
                        .fill(egui::Color32::from_rgb(190, 40, 40));
                if ui.add(hang).on_hover_text("Esc or Ctrl+W").clicked() || hang_up {
                    actions.push(UiAction::HangUp);
                }
                ui.separator();
                ui.toggle_value(&mut self.stats_shown, "Stats")
                    .on_hover_text("Resolution, frame rate, bitrate, round trip, loss, latency");
                let chat = if self.unread > 0 {
                    format!("Chat ({})", self.unread)
                } else {
                    "Chat".to_owned()
                };
                if ui
                    .selectable_label(self.chat_open, chat)
                    .on_hover_text("C")
                    .clicked()
                    || chat_key
                {
                    self.chat_open = !self.chat_open;
                    self.focus_chat = self.chat_open;
                    self.unread = 0;
                }
                if ui.button("Fullscreen").on_hover_text("F11").clicked() || fullscreen {
                    actions.push(UiAction::ToggleFullscreen);
                }
            });
            ui.add_space(2.0);
        });
        if self.chat_open {
            egui::Panel::right("chat")
                .default_size(280.0)
                .min_size(200.0)
                .show(ui, |ui| self.chat_panel(ui, actions));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let area = ui.available_rect_before_wrap();
            match pictures.remote {
                Some((texture, size)) if size.x > 0.0 && size.y > 0.0 => {
                    // Largest picture that fits, aspect kept.
                    let scale = (area.width() / size.x).min(area.height() / size.y);
                    let rect = egui::Rect::from_center_size(area.center(), size * scale);
                    ui.put(
                        rect,
                        egui::Image::new((texture, size * scale)).alt_text("The other person"),
                    );
                }
                _ => {
                    let waiting = match self.phase {
                        Phase::Waiting => "Waiting for the other person to join",
                        Phase::Connecting => "Connecting",
                        _ => "Waiting for the other person's picture",
                    };
                    ui.put(area, egui::Label::new(waiting));
                }
            }
            self.self_view(ui, area, pictures.local);
            if self.stats_shown {
                self.stats_overlay(ui, area);
            }
        });
    }

    /// Our own picture, small in the bottom-right corner of the call.
    fn self_view(
        &self,
        ui: &mut egui::Ui,
        area: egui::Rect,
        local: Option<(egui::TextureId, egui::Vec2)>,
    ) {
        let width = (area.width() / 4.0).clamp(120.0, 320.0);
        let size = match local {
            Some((_, s)) if s.x > 0.0 => egui::vec2(width, width * s.y / s.x),
            _ => egui::vec2(width, width * 0.75),
        };
        let rect = egui::Rect::from_min_size(area.max - size - egui::vec2(12.0, 12.0), size);
        if self.camera_off {
            ui.painter()
                .rect_filled(rect, 6.0, egui::Color32::from_gray(40));
            ui.put(rect, egui::Label::new("Camera off"));
        } else if let Some((texture, _)) = local {
            ui.put(rect, egui::Image::new((texture, size)).alt_text("You"));
        }
        ui.painter().rect_stroke(
            rect,
            0.0,
            egui::Stroke::new(1.0, egui::Color32::from_gray(160)),
            egui::StrokeKind::Outside,
        );
    }

    fn stats_overlay(&self, ui: &mut egui::Ui, area: egui::Rect) {
        let rect =
            egui::Rect::from_min_size(area.min + egui::vec2(12.0, 12.0), egui::vec2(300.0, 10.0));
        ui.scope_builder(egui::UiBuilder::new().max_rect(rect), |ui| {
            egui::Frame::popup(ui.style()).show(ui, |ui| {
                ui.set_min_width(260.0);
                match &self.stats {
                    Some(stats) => {
                        for (name, value) in stats.lines() {
                            ui.horizontal(|ui| {
                                ui.label(name);
                                ui.with_layout(
                                    egui::Layout::right_to_left(egui::Align::Center),
                                    |ui| ui.monospace(value),
                                );
                            });
                        }
                        if self.history.len() >= 2 {
                            ui.separator();
                            self.history.show(ui, 276.0);
                        }
                    }
                    None => {
                        ui.label("No statistics yet");
                    }
                }
            });
        });
    }

    fn chat_panel(&mut self, ui: &mut egui::Ui, actions: &mut Vec<UiAction>) {
        ui.heading("Chat");
        let them = self.remote_name.clone().unwrap_or_else(|| "Them".into());
        let input_height = 64.0;
        egui::ScrollArea::vertical()
            .max_height((ui.available_height() - input_height).max(40.0))
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if self.chat.is_empty() {
                    ui.weak("Messages go over the call's encrypted data channel.");
                }
                for line in &self.chat {
                    let who = if line.mine { "You" } else { them.as_str() };
                    ui.label(format!("{who}: {}", line.text));
                }
            });
        ui.separator();
        let label = ui.label("Message");
        let mut send = false;
        ui.horizontal(|ui| {
            let input = ui
                .add(
                    egui::TextEdit::singleline(&mut self.chat_draft)
                        .desired_width(ui.available_width() - 60.0)
                        .hint_text("Say something"),
                )
                .labelled_by(label.id);
            if input.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                send = true;
                input.request_focus();
            }
            if std::mem::take(&mut self.focus_chat) {
                input.request_focus();
            }
            if ui.button("Send").clicked() {
                send = true;
            }
        });
        let text = self.chat_draft.trim().to_owned();
        if send && !text.is_empty() {
            self.chat_draft.clear();
            self.push_chat(true, text.clone());
            actions.push(UiAction::SendChat(text));
        }
    }

    fn start_screen(
        &mut self,
        ui: &mut egui::Ui,
        local: Option<(egui::TextureId, egui::Vec2)>,
        actions: &mut Vec<UiAction>,
    ) {
        if let Some(warning) = &self.warning {
            ui.colored_label(ui.visuals().warn_fg_color, warning);
            ui.add_space(6.0);
        }
        let wide = ui.available_width() >= 900.0;
        if wide {
            ui.columns(2, |columns| {
                self.you_column(&mut columns[0], local, 480.0, actions);
                self.call_column(&mut columns[1], actions);
            });
        } else {
            // A small window: what to do first, then a small self-view.
            self.call_column(ui, actions);
            ui.separator();
            self.you_column(ui, local, 240.0, actions);
        }
    }

    fn you_column(
        &mut self,
        ui: &mut egui::Ui,
        local: Option<(egui::TextureId, egui::Vec2)>,
        widest: f32,
        actions: &mut Vec<UiAction>,
    ) {
        ui.heading("You");
        let width = ui.available_width().min(widest);
        let size = egui::vec2(width, width * 0.75);
        match local {
            Some((texture, _)) => {
                ui.add(egui::Image::new((texture, size)).alt_text("You"));
            }
            None => {
                let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
                ui.painter()
                    .rect_filled(rect, 4.0, egui::Color32::from_gray(40));
            }
        }
        ui.add_space(6.0);
        let mut changed = false;
        egui::Grid::new("devices")
            .num_columns(2)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                let name = ui.label("Your name");
                let edit = ui
                    .add(egui::TextEdit::singleline(&mut self.name).char_limit(64))
                    .labelled_by(name.id);
                changed |= edit.lost_focus();
                ui.end_row();
                changed |= picker(ui, "Camera", &self.cameras, &mut self.camera);
                changed |= picker(ui, "Microphone", &self.microphones, &mut self.microphone);
                changed |= picker(ui, "Speaker", &self.speakers, &mut self.speaker);
            });
        if changed {
            actions.push(UiAction::SaveSettings);
        }
        let no_devices =
            self.cameras.len() == 1 && self.microphones.len() == 1 && self.speakers.len() == 1;
        if no_devices {
            ui.weak(
                "No camera, microphone or speaker was found: Duet sends its test pattern and \
                 test tone, so calls work on any machine.",
            );
        } else if self.cameras.len() == 1 {
            ui.weak("No camera was found: Duet sends its test pattern.");
        }
        if let Some(note) = &self.camera_note {
            ui.weak(note);
        }
    }

    fn call_column(&mut self, ui: &mut egui::Ui, actions: &mut Vec<UiAction>) {
        let idle = self.phase == Phase::Start;
        ui.heading("Join a room");
        ui.label("Both of you join the same room on a Duet signaling server (duet signal).");
        egui::Grid::new("room")
            .num_columns(2)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                let server = ui.label("Server");
                ui.add(egui::TextEdit::singleline(&mut self.server).desired_width(280.0))
                    .labelled_by(server.id);
                ui.end_row();
                let room = ui.label("Room");
                ui.add(
                    egui::TextEdit::singleline(&mut self.room)
                        .desired_width(280.0)
                        .hint_text("e.g. kitchen"),
                )
                .labelled_by(room.id);
                ui.end_row();
            });
        let clicked = ui
            .horizontal(|ui| {
                ui.add_enabled(idle, egui::Button::new("Join room"))
                    .clicked()
            })
            .inner;
        if clicked {
            let room = self.room.trim().to_owned();
            let server = self.server.trim().to_owned();
            if !crate::signaling::protocol::valid_room_name(&room) {
                self.room_error =
                    Some("Room names are 1 to 64 letters, digits, '-', '_' or '.'".into());
            } else if let Err(e) = crate::signaling::client::normalize_url(&server) {
                self.room_error = Some(e.to_string());
            } else {
                self.room_error = None;
                actions.push(UiAction::JoinRoom { server, room });
            }
        }
        if let Some(error) = &self.room_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }

        ui.add_space(16.0);
        ui.heading("Call by paste");
        ui.label("Make an offer and send your token to the other person, or paste the token they sent you.");
        ui.add_space(4.0);
        let clicked = ui
            .horizontal(|ui| {
                ui.add_enabled(idle, egui::Button::new("Create offer"))
                    .clicked()
            })
            .inner;
        if clicked {
            self.my_token.clear();
            actions.push(UiAction::CreateOffer);
        }
        ui.add_space(6.0);
        let mine = ui.label("Your token");
        let box_width = (ui.available_width() - 70.0).max(200.0);
        ui.horizontal(|ui| {
            let mut shown = self.my_token.as_str();
            ui.add(
                egui::TextEdit::multiline(&mut shown)
                    .desired_rows(3)
                    .desired_width(box_width)
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
                .desired_width(box_width)
                .hint_text("Paste their offer or answer here"),
        )
        .labelled_by(theirs.id);
        let can_use = matches!(self.phase, Phase::Start | Phase::Offering);
        let clicked = ui
            .horizontal(|ui| {
                ui.add_enabled(can_use, egui::Button::new("Use their token"))
                    .clicked()
            })
            .inner;
        if clicked {
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
        if matches!(self.phase, Phase::Offering | Phase::Answering) {
            ui.add_space(6.0);
            let cancel = ui
                .horizontal(|ui| {
                    ui.button("Cancel")
                        .on_hover_text("Forget this offer")
                        .clicked()
                })
                .inner;
            if cancel {
                // Leaving the start screen's call drops it (and hangs it up).
                actions.push(UiAction::BackToStart);
            }
        }
    }
}

/// A button that turns something on and off: it says what a click will do (`labels`: the
/// text while off, the text while on, the hint), and flips `on` when clicked or when its
/// shortcut was `pressed`. True when it flipped.
fn toggle(ui: &mut egui::Ui, on: &mut bool, labels: (&str, &str, &str), pressed: bool) -> bool {
    let (when_off, when_on, hint) = labels;
    let text = if *on { when_on } else { when_off };
    let clicked = ui.selectable_label(*on, text).on_hover_text(hint).clicked();
    if clicked || pressed {
        *on = !*on;
    }
    clicked || pressed
}

/// A labelled device picker in a grid row; true when the person picked another one.
fn picker(ui: &mut egui::Ui, title: &str, choices: &[DeviceChoice], chosen: &mut String) -> bool {
    let label = ui.label(title);
    let shown = choices
        .iter()
        .find(|c| c.setting == *chosen)
        .map_or(chosen.as_str(), |c| c.label.as_str())
        .to_owned();
    let before = chosen.clone();
    egui::ComboBox::from_id_salt(title)
        .selected_text(shown)
        .width(ui.available_width().min(280.0))
        .show_ui(ui, |ui| {
            for choice in choices {
                ui.selectable_value(chosen, choice.setting.clone(), &choice.label);
            }
        })
        .response
        .labelled_by(label.id);
    ui.end_row();
    *chosen != before
}
