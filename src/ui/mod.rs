//! The window (eframe/egui): it draws the state it is given and sends commands to the same
//! call runner `duet call` uses; it never waits on I/O. Decoded pictures reach it through a
//! one-slot mailbox, already converted to RGBA off the UI thread.

mod picture;
mod plots;
mod preview;
mod session;
pub mod view;

use crate::call::pipeline::MediaSettings;
use crate::call::session::{Rendezvous, SessionOptions};
use crate::call::{CallCommand, CallOptions, CallState, CallUpdate};
use crate::media::frame::VideoFrame;
use crate::media::mailbox::Mailbox;
use crate::peer::PeerConfig;
use eframe::egui;
use picture::{FeedKind, RgbaFeed};
use preview::SelfPreview;
use session::Session;
use std::sync::Arc;
use view::{Pictures, UiAction, WindowView};

/// What the window starts with.
#[derive(Clone, Debug, Default)]
pub struct WindowOptions {
    pub media: MediaSettings,
    pub bind: Option<std::net::IpAddr>,
    /// Start by answering this offer, and print the answer token on stdout (scripts and
    /// tests drive the window this way).
    pub answer_offer: Option<crate::signaling::PasteToken>,
    /// The signaling server the start screen suggests.
    pub server: String,
    /// Join this room on `server` at once.
    pub join_room: Option<String>,
    pub settings: crate::config::Settings,
    /// Where changed settings are saved (none: they are not).
    pub settings_path: Option<std::path::PathBuf>,
    /// Why the settings file could not be used, to show on the start screen.
    pub settings_warning: Option<String>,
}

/// The pickers' entries for the devices there are.
fn device_choices(direction: crate::media::sound::Direction) -> Vec<view::DeviceChoice> {
    crate::media::sound::list(direction)
        .into_iter()
        .map(|d| view::DeviceChoice {
            setting: d.id,
            label: d.name,
        })
        .collect()
}

/// Opens the window and runs until it is closed.
pub fn run_window(options: WindowOptions) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("duet-net")
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Duet")
            .with_app_id("duet")
            .with_inner_size([1100.0, 760.0])
            .with_min_inner_size([520.0, 420.0]),
        ..Default::default()
    };
    eframe::run_native(
        "Duet",
        native,
        Box::new(move |cc| {
            let first_offer = options.answer_offer.clone();
            let first_room = options.join_room.clone();
            let server = match options.server.as_str() {
                "" => "ws://127.0.0.1:8480/ws".to_owned(),
                server => server.to_owned(),
            };
            let mut window = DuetWindow {
                runtime,
                print_token: first_offer.is_some(),
                ctx: cc.egui_ctx.clone(),
                view: WindowView::with_room(&server, first_room.as_deref().unwrap_or_default()),
                session: None,
                remote: Stream::default(),
                local: Stream::default(),
                preview: None,
                call_pictures: None,
                device_lists: None,
                options,
            };
            window.view.name = window.options.settings.name.clone();
            window.list_devices();
            window.view.warning = window.options.settings_warning.clone();
            window.show_preview();
            if let Some(offer) = first_offer {
                window.start_session(Rendezvous::Answer(Some(offer)));
            } else if let Some(room) = first_room {
                window.act(UiAction::JoinRoom { server, room });
            }
            Ok(Box::new(window))
        }),
    )
    .map_err(|e| format!("opening the window: {e}"))
}

/// One picture stream on the screen: its conversion thread and its texture.
#[derive(Default)]
struct Stream {
    feed: Option<RgbaFeed>,
    texture: Option<egui::TextureHandle>,
}

impl Stream {
    fn show(&mut self, pictures: Arc<Mailbox<VideoFrame>>, kind: FeedKind, ctx: &egui::Context) {
        self.feed = Some(RgbaFeed::start(pictures, kind, ctx.clone()));
    }

    /// Uploads the newest converted picture, if one came, and returns the texture to draw.
    fn texture(
        &mut self,
        name: &str,
        ctx: &egui::Context,
    ) -> Option<(egui::TextureId, egui::Vec2)> {
        if let Some(image) = self.feed.as_ref().and_then(|f| f.latest()) {
            match &mut self.texture {
                Some(texture) => texture.set(image, Default::default()),
                None => self.texture = Some(ctx.load_texture(name, image, Default::default())),
            }
        }
        self.texture.as_ref().map(|t| (t.id(), t.size_vec2()))
    }
}

struct DuetWindow {
    runtime: tokio::runtime::Runtime,
    options: WindowOptions,
    ctx: egui::Context,
    view: WindowView,
    session: Option<Session>,
    remote: Stream,
    local: Stream,
    /// The self-view's source while no call sends pictures.
    preview: Option<SelfPreview>,
    /// Where the call leaves the pictures it sends, once it has a call.
    call_pictures: Option<Arc<Mailbox<VideoFrame>>>,
    /// Print our token on stdout (the window was started with an offer to answer).
    print_token: bool,
    /// The device lists being made aside, if they are.
    device_lists: Option<std::sync::mpsc::Receiver<DeviceLists>>,
}

/// The devices the pickers offer.
struct DeviceLists {
    cameras: Vec<view::DeviceChoice>,
    microphones: Vec<view::DeviceChoice>,
    speakers: Vec<view::DeviceChoice>,
}

impl DeviceLists {
    fn now() -> Self {
        Self {
            cameras: crate::media::camera::list()
                .into_iter()
                .map(|c| view::DeviceChoice {
                    setting: c.name.clone(),
                    label: c.name,
                })
                .collect(),
            microphones: device_choices(crate::media::sound::Direction::Input),
            speakers: device_choices(crate::media::sound::Direction::Output),
        }
    }
}

impl DuetWindow {
    fn act(&mut self, action: UiAction) {
        match action {
            UiAction::CreateOffer => self.start_session(Rendezvous::Offer),
            UiAction::AnswerOffer(offer) => self.start_session(Rendezvous::Answer(Some(offer))),
            UiAction::JoinRoom { server, room } => {
                self.start_session(Rendezvous::Room { server, room });
                self.view.waiting_in_room();
            }
            UiAction::AcceptAnswer(answer) => self.command(CallCommand::AcceptAnswer(answer)),
            UiAction::HangUp => self.command(CallCommand::HangUp),
            UiAction::MuteMicrophone(muted) => self.command(CallCommand::MuteMicrophone(muted)),
            UiAction::CameraOff(off) => self.command(CallCommand::CameraOff(off)),
            UiAction::Record(true) => {
                let dir = crate::config::recordings_dir(&self.options.settings)
                    .join(crate::media::recorder::name_for_now());
                self.command(CallCommand::StartRecording(dir));
            }
            UiAction::Record(false) => self.command(CallCommand::StopRecording),
            UiAction::SendChat(text) => self.command(CallCommand::SendChat(text)),
            UiAction::SaveSettings => self.save_settings(),
            UiAction::ToggleFullscreen => {
                let fullscreen = self.ctx.input(|i| i.viewport().fullscreen.unwrap_or(false));
                self.ctx
                    .send_viewport_cmd(egui::ViewportCommand::Fullscreen(!fullscreen));
            }
            UiAction::BackToStart => {
                self.session = None;
                self.remote = Stream::default();
                self.call_pictures = None;
                self.view = self.view.fresh_start();
                self.show_preview();
                // A camera or headset plugged in during the call is there to pick soon.
                self.list_devices_aside();
            }
        }
    }

    /// Fills the pickers with the devices there are now, the saved choices chosen. (At
    /// start, before the first frame: the window has nothing to show yet.)
    fn list_devices(&mut self) {
        self.show_devices(DeviceLists::now());
    }

    /// Lists the devices on a thread of its own (a sound server or a camera driver can be
    /// slow to answer; the window must not wait); `poll` shows them when they come.
    fn list_devices_aside(&mut self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("device-list".into())
            .spawn(move || {
                let _ = tx.send(DeviceLists::now());
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => self.device_lists = Some(rx),
            Err(e) => tracing::warn!("the device lists are not refreshed: {e}"),
        }
    }

    fn show_devices(&mut self, lists: DeviceLists) {
        let settings = &self.options.settings;
        self.view.set_devices(
            lists.microphones,
            lists.speakers,
            &settings.microphone,
            &settings.speaker,
        );
        let camera = self.view.camera.clone();
        self.view.set_cameras(lists.cameras, &settings.camera);
        if self.view.camera != camera && self.preview.is_some() {
            self.show_preview();
        }
    }

    /// Remembers what the person chose, off the UI thread.
    fn save_settings(&mut self) {
        let settings = &mut self.options.settings;
        settings.name = self.view.name.trim().to_owned();
        let camera_changed = settings.camera != self.view.camera;
        settings.camera = self.view.camera.clone();
        settings.microphone = self.view.microphone.clone();
        settings.speaker = self.view.speaker.clone();
        settings.server = self.view.server().trim().to_owned();
        let (settings, path) = (settings.clone(), self.options.settings_path.clone());
        if camera_changed && self.preview.is_some() {
            self.show_preview();
        }
        if let Some(path) = path {
            self.runtime.spawn_blocking(move || {
                if let Err(e) = crate::config::save(&settings, &path) {
                    tracing::warn!("the settings were not saved: {e}");
                }
            });
        }
    }

    fn command(&self, command: CallCommand) {
        if let Some(session) = &self.session {
            session.send(command);
        }
    }

    fn show_preview(&mut self) {
        // The old preview lets its camera go first.
        self.preview = None;
        let media = &self.options.media;
        let preview = SelfPreview::start(self.chosen_camera(), media.width, media.height);
        self.local
            .show(preview.pictures.clone(), FeedKind::SelfView, &self.ctx);
        self.preview = Some(preview);
    }

    fn chosen_camera(&self) -> crate::call::pipeline::VideoSource {
        crate::call::pipeline::VideoSource::parse(&self.view.camera).unwrap_or_default()
    }

    fn start_session(&mut self, rendezvous: Rendezvous) {
        let mut media = self.options.media.clone();
        media.camera = self.chosen_camera();
        media.microphone = crate::media::sound::SoundDevice::parse(&self.view.microphone);
        media.speaker = crate::media::sound::SoundDevice::parse(&self.view.speaker);
        let settings = &self.options.settings;
        media.processing = crate::media::echo::ProcessingSwitches {
            echo_cancellation: settings.echo_cancellation,
            noise_suppression: settings.noise_suppression,
            gain_control: settings.gain_control,
        };
        let name = self.view.name.trim();
        let options = SessionOptions {
            call: CallOptions {
                peer: PeerConfig {
                    bind: self.options.bind,
                    // The settings' STUN and TURN servers; a room adds its own.
                    ice_servers: settings
                        .ice_servers
                        .iter()
                        .map(|s| rtc::peer_connection::transport::RTCIceServer {
                            urls: s.urls.clone(),
                            username: s.username.clone(),
                            credential: s.credential.clone(),
                        })
                        .collect(),
                    ..Default::default()
                },
                media,
                trickle: false,
                name: if name.is_empty() { "Duet" } else { name }.to_owned(),
                reconnect_timeout: Some(std::time::Duration::from_secs(
                    settings.reconnect_timeout.clamp(1, 3600).into(),
                )),
                // The session turns it on for a room.
                ice_restart: false,
            },
            tone_by_role: true,
        };
        let session = Session::start(self.runtime.handle(), rendezvous, options, self.ctx.clone());
        self.session = Some(session);
    }

    fn poll(&mut self) {
        if let Some(Ok(lists)) = self.device_lists.as_ref().map(|rx| rx.try_recv()) {
            self.device_lists = None;
            self.show_devices(lists);
        }
        if let Some(preview) = &self.preview {
            self.view.camera_note = preview.note();
        }
        let Some(session) = &self.session else { return };
        for update in session.updates() {
            match &update {
                CallUpdate::RemotePictures(pictures) => {
                    self.remote
                        .show(pictures.clone(), FeedKind::Remote, &self.ctx)
                }
                CallUpdate::LocalPictures(pictures) => self.call_pictures = Some(pictures.clone()),
                // From now on the call makes the pictures the self-view shows.
                CallUpdate::State(CallState::Connected { .. }) if self.preview.is_some() => {
                    if let Some(pictures) = self.call_pictures.clone() {
                        self.preview = None;
                        self.local.show(pictures, FeedKind::SelfView, &self.ctx);
                    }
                }
                CallUpdate::LocalToken(token) if self.print_token => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", token.encode());
                    let _ = out.flush();
                }
                _ => {}
            }
            self.view.apply(update, std::time::Instant::now());
        }
    }
}

impl eframe::App for DuetWindow {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.poll();
        let ctx = ui.ctx().clone();
        let pictures = Pictures {
            remote: self.remote.texture("remote", &ctx),
            local: self.local.texture("local", &ctx),
        };
        let actions = self.view.show(ui, pictures, std::time::Instant::now());
        for action in actions {
            self.act(action);
        }
        if self.view.is_in_call() {
            // The call duration ticks on the screen.
            ctx.request_repaint_after(std::time::Duration::from_millis(500));
        }
    }
}
