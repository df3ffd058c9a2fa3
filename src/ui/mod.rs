//! The window (eframe/egui): it draws the state it is given and sends commands to the same
//! call runner `duet call` uses; it never waits on I/O. Decoded pictures reach it through a
//! one-slot mailbox, already converted to RGBA off the UI thread.

mod picture;
mod session;
pub mod view;

use crate::call::CallUpdate;
use crate::call::pipeline::MediaSettings;
use picture::RgbaFeed;
use session::Session;
use view::{UiAction, WindowView};

/// What the window starts with.
#[derive(Clone, Debug, Default)]
pub struct WindowOptions {
    pub media: MediaSettings,
    pub bind: Option<std::net::IpAddr>,
    /// Start by answering this offer, and print the answer token on stdout (scripts and
    /// tests drive the window this way).
    pub answer_offer: Option<crate::signaling::PasteToken>,
}

/// Opens the window and runs until it is closed.
pub fn run_window(options: WindowOptions) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("duet-net")
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    let native = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("Duet")
            .with_inner_size([1024.0, 720.0])
            .with_min_inner_size([480.0, 360.0]),
        ..Default::default()
    };
    eframe::run_native(
        "Duet",
        native,
        Box::new(move |cc| {
            let first_offer = options.answer_offer.clone();
            let mut window = DuetWindow {
                runtime,
                print_token: first_offer.is_some(),
                options,
                ctx: cc.egui_ctx.clone(),
                view: WindowView::default(),
                session: None,
                feed: None,
                texture: None,
            };
            if let Some(offer) = first_offer {
                window.start_session(Some(offer));
            }
            Ok(Box::new(window))
        }),
    )
    .map_err(|e| format!("opening the window: {e}"))
}

struct DuetWindow {
    runtime: tokio::runtime::Runtime,
    options: WindowOptions,
    ctx: eframe::egui::Context,
    view: WindowView,
    session: Option<Session>,
    feed: Option<RgbaFeed>,
    texture: Option<eframe::egui::TextureHandle>,
    /// Print our token on stdout (the window was started with an offer to answer).
    print_token: bool,
}

impl DuetWindow {
    fn act(&mut self, action: UiAction) {
        match action {
            UiAction::CreateOffer => self.start_session(None),
            UiAction::AnswerOffer(offer) => self.start_session(Some(offer)),
            UiAction::AcceptAnswer(answer) => {
                if let Some(session) = &self.session {
                    session.send(crate::call::CallCommand::AcceptAnswer(answer));
                }
            }
            UiAction::HangUp => {
                if let Some(session) = &self.session {
                    session.send(crate::call::CallCommand::HangUp);
                }
            }
            UiAction::BackToStart => {
                self.session = None;
                self.feed = None;
                self.texture = None;
                self.view = WindowView::default();
            }
        }
    }

    fn start_session(&mut self, offer: Option<crate::signaling::PasteToken>) {
        let mut media = self.options.media.clone();
        media.tone_hz = if offer.is_some() { 660.0 } else { 440.0 };
        let session = Session::start(
            self.runtime.handle(),
            self.options.bind,
            media,
            self.ctx.clone(),
        );
        session.send(match offer {
            Some(offer) => crate::call::CallCommand::AcceptOffer(offer),
            None => crate::call::CallCommand::StartOffer,
        });
        self.session = Some(session);
    }

    fn poll(&mut self) {
        let Some(session) = &self.session else { return };
        for update in session.updates() {
            if let CallUpdate::RemotePictures(pictures) = &update {
                self.feed = Some(RgbaFeed::start(pictures.clone(), self.ctx.clone()));
            }
            if let (CallUpdate::LocalToken(token), true) = (&update, self.print_token) {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", token.encode());
                let _ = out.flush();
            }
            self.view.apply(update, std::time::Instant::now());
        }
    }

    fn remote_texture(
        &mut self,
        ctx: &eframe::egui::Context,
    ) -> Option<&eframe::egui::TextureHandle> {
        if let Some(image) = self.feed.as_ref().and_then(|f| f.latest()) {
            match &mut self.texture {
                Some(texture) => texture.set(image, Default::default()),
                None => self.texture = Some(ctx.load_texture("remote", image, Default::default())),
            }
        }
        self.texture.as_ref()
    }
}

impl eframe::App for DuetWindow {
    fn ui(&mut self, ui: &mut eframe::egui::Ui, _frame: &mut eframe::Frame) {
        self.poll();
        let ctx = ui.ctx().clone();
        let texture = self.remote_texture(&ctx).map(|t| (t.id(), t.size_vec2()));
        let actions = self.view.show(ui, texture, std::time::Instant::now());
        for action in actions {
            self.act(action);
        }
        if self.view.is_in_call() {
            // The call duration ticks on the screen.
            ctx.request_repaint_after(std::time::Duration::from_millis(500));
        }
    }
}
