//! `duet call`: a call without a window, driving the same call runner as the window. Tokens
//! go out on stdout (one line, nothing else before it) and come in on stdin or from a file;
//! progress goes to stderr; the summary ends the output.

use crate::call::pipeline::MediaSettings;
use crate::call::{
    CallCommand, CallOptions, CallState, CallSummary, CallUpdate, EndReason, run_call,
};
use crate::peer::PeerConfig;
use crate::signaling::token::{PasteToken, SdpKind, TokenError};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Which side of the paste exchange this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasteRole {
    Offer,
    Answer,
}

/// Everything `duet call` was asked to do.
#[derive(Clone, Debug)]
pub struct HeadlessCall {
    pub role: PasteRole,
    /// Read the far side's token from this file instead of stdin.
    pub token_file: Option<PathBuf>,
    pub bind: Option<IpAddr>,
    pub media: MediaSettings,
    /// Hang up this long after connecting.
    pub duration: Option<Duration>,
    pub stats_json: Option<PathBuf>,
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

impl HeadlessCall {
    /// Runs the call to its end.
    pub async fn run(self) -> HeadlessOutcome {
        let (command_tx, command_rx) = mpsc::channel(8);
        let (update_tx, mut update_rx) = mpsc::channel(32);
        let options = CallOptions {
            peer: PeerConfig {
                bind: self.bind,
                ..Default::default()
            },
            media: self.media.clone(),
        };
        let runner = tokio::spawn(run_call(options, command_rx, update_tx));

        let first = match self.role {
            PasteRole::Offer => CallCommand::StartOffer,
            PasteRole::Answer => {
                say("paste the offer token and press Enter");
                match self.incoming_token(SdpKind::Offer).await {
                    Ok(offer) => CallCommand::AcceptOffer(offer),
                    Err(e) => {
                        drop(command_tx);
                        let _ = runner.await;
                        return HeadlessOutcome::BadToken(e);
                    }
                }
            }
        };
        let _ = command_tx.send(first).await;

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
                update = update_rx.recv() => match update {
                    Some(CallUpdate::LocalToken(token)) => {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "{}", token.encode());
                        let _ = out.flush();
                        if self.role == PasteRole::Offer {
                            say("offer token printed above; paste the answer token and press Enter");
                            let this = self.clone();
                            answer_reader = Some(tokio::spawn(async move { this.incoming_token(SdpKind::Answer).await }));
                        }
                    }
                    Some(CallUpdate::State(state)) => {
                        match &state {
                            CallState::Connecting { .. } => say("connecting"),
                            CallState::Connected { disconnected_at: None, .. } => {
                                say("connected");
                                if let (Some(duration), None) = (self.duration, hang_up_at) {
                                    hang_up_at = Some(tokio::time::Instant::now() + duration);
                                }
                            }
                            CallState::Connected { disconnected_at: Some(_), .. } => say("the connection is interrupted"),
                            _ => {}
                        }
                    }
                    Some(CallUpdate::Ended { reason, summary }) => {
                        let _ = runner.await;
                        return self.finish(reason, summary);
                    }
                    None => {
                        let summary = CallSummary { end_reason: "the call stopped unexpectedly".into(), ..Default::default() };
                        return HeadlessOutcome::Failed(Box::new(summary));
                    }
                },
                read = answer => {
                    answer_reader = None;
                    match read {
                        Ok(Ok(token)) => { let _ = command_tx.send(CallCommand::AcceptAnswer(token)).await; }
                        Ok(Err(e)) => {
                            let _ = command_tx.send(CallCommand::HangUp).await;
                            while let Some(update) = update_rx.recv().await {
                                if matches!(update, CallUpdate::Ended { .. }) { break; }
                            }
                            let _ = runner.await;
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
        match &self.token_file {
            Some(path) => read_token_file(path, expected).await,
            None => read_token(tokio::io::stdin(), expected).await,
        }
    }

    fn finish(&self, reason: EndReason, summary: Box<CallSummary>) -> HeadlessOutcome {
        // Whoever read our token may have stopped reading: a closed stdout is not an error.
        let _ = writeln!(std::io::stdout(), "{summary}");
        if let Some(path) = &self.stats_json {
            match serde_json::to_string_pretty(&summary) {
                Ok(json) => {
                    if let Err(e) = std::fs::write(path, json) {
                        say(&format!("could not write {}: {e}", path.display()));
                    }
                }
                Err(e) => say(&format!("could not write the stats: {e}")),
            }
        }
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
        let json = serde_json::to_string_pretty(&token).expect("json");
        assert_eq!(
            read_token(json.as_bytes(), SdpKind::Offer).await,
            Ok(token.clone())
        );
        let raw = format!("{}\n\nnext", sdp.replace("\r\n", "\n"));
        let parsed = read_token(raw.as_bytes(), SdpKind::Offer)
            .await
            .expect("sdp");
        assert_eq!(parsed.kind, SdpKind::Offer);
        assert_eq!(
            read_token(&b""[..], SdpKind::Offer).await,
            Err(TokenError::Empty(SdpKind::Offer))
        );
    }
}
