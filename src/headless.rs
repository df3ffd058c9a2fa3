//! `duet call`: a call without a window, driving the same call runner as the window. By
//! paste: tokens go out on stdout (one line, nothing else before it) and come in on stdin or
//! from a file. By room: through a `duet signal` server, candidates trickled. Progress goes
//! to stderr; the summary ends the output.

use crate::call::pipeline::MediaSettings;
use crate::call::session::{Rendezvous as SessionRendezvous, Session, SessionOptions};
use crate::call::{CallCommand, CallOptions, CallState, CallSummary, CallUpdate, EndReason};
use crate::peer::PeerConfig;
use crate::signaling::protocol::IceServer;
use crate::signaling::token::{PasteToken, SdpKind, TokenError};
use rtc::peer_connection::transport::RTCIceServer;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Which side of the paste exchange this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasteRole {
    Offer,
    Answer,
}

/// How the two ends find each other.
#[derive(Clone, Debug)]
pub enum Rendezvous {
    /// By copy and paste; `token_file` replaces stdin.
    Paste {
        role: PasteRole,
        token_file: Option<PathBuf>,
    },
    /// Through a signaling server's room.
    Room { server: String, room: String },
}

/// Everything `duet call` was asked to do.
#[derive(Clone, Debug)]
pub struct HeadlessCall {
    pub rendezvous: Rendezvous,
    pub bind: Option<IpAddr>,
    pub media: MediaSettings,
    /// ICE servers of our own; a room's server may add more.
    pub ice_servers: Vec<IceServer>,
    pub relay_only: bool,
    /// In a room, pick the test tone by role once known (440 Hz calling, 660 Hz answering),
    /// so each side hears a different tone.
    pub tone_by_role: bool,
    /// Hang up this long after connecting.
    pub duration: Option<Duration>,
    pub stats_json: Option<PathBuf>,
    /// How long a call whose path went silent keeps reconnecting.
    pub reconnect_timeout: Duration,
}

/// How a headless call ended, for the exit code.
#[derive(Debug)]
pub enum HeadlessOutcome {
    /// Hung up by either side: the call did what calls do.
    Completed(Box<CallSummary>),
    /// Lost, failed or timed out.
    Failed(Box<CallSummary>),
    /// The far side's token was unusable.
    BadToken(TokenError),
}

/// Reads a token: one line of base64, or JSON / raw SDP spread over several lines (SDP ends
/// at an empty line or the end of input).
async fn read_token<R: tokio::io::AsyncRead + Unpin>(
    reader: R,
    expected: SdpKind,
) -> Result<PasteToken, TokenError> {
    const LIMIT: usize = 512 * 1024;
    let mut lines = BufReader::new(reader).lines();
    let mut text = String::new();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            // End of input (or unreadable input): judge what we have.
            _ => return PasteToken::parse(&text, expected),
        };
        if text.trim().is_empty() && line.trim().is_empty() {
            continue;
        }
        let is_sdp = text.trim_start().starts_with("v=0")
            || (text.is_empty() && line.trim_start().starts_with("v=0"));
        if is_sdp && line.trim().is_empty() {
            return PasteToken::parse(&text, expected);
        }
        text.push_str(&line);
        text.push('\n');
        if text.len() > LIMIT {
            return PasteToken::parse(&text, expected);
        }
        if is_sdp {
            continue;
        }
        match PasteToken::parse(&text, expected) {
            Err(TokenError::CutOff { .. }) if text.trim_start().starts_with('{') => continue,
            result => return result,
        }
    }
}

/// Waits for the token file to appear (the far side writes it when it answers).
async fn read_token_file(path: &Path, expected: SdpKind) -> Result<PasteToken, TokenError> {
    loop {
        match tokio::fs::read(path).await {
            Ok(bytes) if !bytes.is_empty() => {
                // Give a writer that is still writing a moment to finish.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let bytes = tokio::fs::read(path).await.unwrap_or(bytes);
                return read_token(&bytes[..], expected).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "duet: {message}");
}

fn rtc_ice_servers(servers: &[IceServer]) -> Vec<RTCIceServer> {
    servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: s.credential.clone(),
        })
        .collect()
}

impl HeadlessCall {
    /// Runs the call to its end.
    pub async fn run(self) -> HeadlessOutcome {
        let rendezvous = match &self.rendezvous {
            Rendezvous::Paste {
                role: PasteRole::Offer,
                ..
            } => SessionRendezvous::Offer,
            Rendezvous::Paste {
                role: PasteRole::Answer,
                ..
            } => SessionRendezvous::Answer(None),
            Rendezvous::Room { server, room } => {
                say(&format!("joining room {room:?} at {server}"));
                SessionRendezvous::Room {
                    server: server.clone(),
                    room: room.clone(),
                }
            }
        };
        let in_room = matches!(self.rendezvous, Rendezvous::Room { .. });
        let options = SessionOptions {
            call: CallOptions {
                peer: PeerConfig {
                    bind: self.bind,
                    ice_servers: rtc_ice_servers(&self.ice_servers),
                    relay_only: self.relay_only,
                    ..Default::default()
                },
                media: self.media.clone(),
                trickle: false,
                name: "duet".into(),
                reconnect_timeout: Some(self.reconnect_timeout),
                // The session turns it on for a room.
                ice_restart: false,
            },
            // On paste the command line already chose the tone by role.
            tone_by_role: in_room && self.tone_by_role,
        };
        let Session {
            commands: command_tx,
            updates: mut update_rx,
        } = Session::start(rendezvous, options);

        let paste_role = match &self.rendezvous {
            Rendezvous::Paste { role, .. } => Some(*role),
            Rendezvous::Room { .. } => None,
        };
        if paste_role == Some(PasteRole::Answer) {
            say("paste the offer token and press Enter");
            match self.incoming_token(SdpKind::Offer).await {
                Ok(offer) => {
                    let _ = command_tx.send(CallCommand::AcceptOffer(offer)).await;
                }
                Err(e) => {
                    drop(command_tx);
                    while update_rx.recv().await.is_some() {}
                    return HeadlessOutcome::BadToken(e);
                }
            }
        }

        let mut interrupt = Box::pin(interrupted());
        let mut interrupted_once = false;
        let mut hang_up_at: Option<tokio::time::Instant> = None;
        let mut answer_reader: Option<tokio::task::JoinHandle<Result<PasteToken, TokenError>>> =
            None;
        loop {
            let hang_up_timer = async {
                match hang_up_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let answer = async {
                match answer_reader.as_mut() {
                    Some(reader) => reader.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                update = update_rx.recv() => {
                    match update {
                    Some(CallUpdate::LocalToken(token)) => {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "{}", token.encode());
                            let _ = out.flush();
                            if paste_role == Some(PasteRole::Offer) {
                                say("offer token printed above; paste the answer token and press Enter");
                                let this = self.clone();
                                answer_reader = Some(tokio::spawn(async move { this.incoming_token(SdpKind::Answer).await }));
                            }
                    },
                    Some(CallUpdate::Greeting(name)) => say(&format!("the far side is {name:?}")),
                    Some(CallUpdate::Chat(text)) => say(&format!("the far side says: {text}")),
                    Some(CallUpdate::Verification(code)) => say(&format!("security code {code} (the far side must show the same)")),
                    Some(CallUpdate::Note(text)) => say(&text),
                    Some(CallUpdate::InRoom { we_offer }) => say(if we_offer {
                        "the other person is here: calling"
                    } else {
                        "waiting for the other person to join"
                    }),
                    Some(CallUpdate::LocalCandidate(_) | CallUpdate::RemotePictures(_) | CallUpdate::LocalPictures(_) | CallUpdate::Stats(_)) => {}
                    Some(CallUpdate::State(state)) => match &state {
                        CallState::Connecting { .. } => say("connecting"),
                        CallState::Connected { disconnected_at: None, .. } => {
                            say("connected");
                            if let (Some(duration), None) = (self.duration, hang_up_at) {
                                hang_up_at = Some(tokio::time::Instant::now() + duration);
                            }
                        }
                        CallState::Connected { disconnected_at: Some(_), .. } => say(&format!(
                            "reconnecting… (the path went silent; giving up after {:.0} s{})",
                            self.reconnect_timeout.as_secs_f64(),
                            if in_room {
                                "; ICE is restarted through the room"
                            } else {
                                "; a pasted call cannot follow a move to another network"
                            }
                        )),
                        _ => {}
                    },
                    Some(CallUpdate::Ended { reason, summary }) => {
                        if summary.role.is_empty()
                            && let Some(why) = summary.end_reason.strip_prefix("failed to connect: ")
                        {
                            // The call never began (the room could not be joined): say why.
                            say(why);
                        }
                        while update_rx.recv().await.is_some() {}
                        return self.finish(reason, summary);
                    }
                    None => {
                        let summary = CallSummary { end_reason: "the call stopped unexpectedly".into(), ..Default::default() };
                        return HeadlessOutcome::Failed(Box::new(summary));
                    }
                    }
                },
                read = answer => {
                    answer_reader = None;
                    match read {
                        Ok(Ok(token)) => { let _ = command_tx.send(CallCommand::AcceptAnswer(token)).await; }
                        Ok(Err(e)) => {
                            let _ = command_tx.send(CallCommand::HangUp).await;
                            while update_rx.recv().await.is_some() {}
                            return HeadlessOutcome::BadToken(e);
                        }
                        Err(_) => {}
                    }
                }
                _ = hang_up_timer => {
                    hang_up_at = None;
                    let _ = command_tx.send(CallCommand::HangUp).await;
                }
                _ = &mut interrupt, if !interrupted_once => {
                    interrupted_once = true;
                    say("hanging up");
                    let _ = command_tx.send(CallCommand::HangUp).await;
                }
            }
        }
    }

    async fn incoming_token(&self, expected: SdpKind) -> Result<PasteToken, TokenError> {
        match &self.rendezvous {
            Rendezvous::Paste {
                token_file: Some(path),
                ..
            } => read_token_file(path, expected).await,
            _ => read_token(tokio::io::stdin(), expected).await,
        }
    }

    fn write_stats(&self, summary: &CallSummary) {
        if let Some(path) = &self.stats_json {
            match serde_json::to_string_pretty(summary) {
                Ok(json) => {
                    if let Err(e) = std::fs::write(path, json) {
                        say(&format!("could not write {}: {e}", path.display()));
                    }
                }
                Err(e) => say(&format!("could not write the stats: {e}")),
            }
        }
    }

    fn finish(&self, reason: EndReason, summary: Box<CallSummary>) -> HeadlessOutcome {
        // Whoever read our token may have stopped reading: a closed stdout is not an error.
        let _ = writeln!(std::io::stdout(), "{summary}");
        self.write_stats(&summary);
        match reason {
            EndReason::LocalHangUp | EndReason::RemoteHangUp => HeadlessOutcome::Completed(summary),
            _ => HeadlessOutcome::Failed(summary),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_read_in_every_accepted_form() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n";
        let token = PasteToken::new(SdpKind::Offer, sdp.into());
        let line = format!("\n{}\nignored\n", token.encode());
        assert_eq!(
            read_token(line.as_bytes(), SdpKind::Offer).await,
            Ok(token.clone())
        );
        let json = serde_json::to_string_pretty(&token).expect("json"); // test: a panic is the failure
        assert_eq!(
            read_token(json.as_bytes(), SdpKind::Offer).await,
            Ok(token.clone())
        );
        let raw = format!("{}\n\nnext", sdp.replace("\r\n", "\n"));
        let parsed = read_token(raw.as_bytes(), SdpKind::Offer)
            .await
            .expect("sdp"); // test: a panic is the failure
        assert_eq!(parsed.kind, SdpKind::Offer);
        assert_eq!(
            read_token(&b""[..], SdpKind::Offer).await,
            Err(TokenError::Empty(SdpKind::Offer))
        );
    }
}
