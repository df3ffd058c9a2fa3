//! The rendezvous server (`duet signal`): rooms of two over a WebSocket at `/ws`, and the
//! browser page at `/`. It validates every message, caps sizes and rates, closes idle and
//! half-open connections, and relays a client's messages only to the other peer of the room
//! it joined — nothing a client claims is trusted.

use crate::signaling::protocol::{IceServer, MAX_MESSAGE_BYTES, Message, ProtocolError};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use hmac::{Hmac, Mac};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How the server hands out STUN/TURN settings.
#[derive(Clone, Debug, Default)]
pub struct IceConfig {
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`: credentials are made per join and expire.
    pub turn_secret: Option<String>,
    /// Fixed credentials, when there is no shared secret.
    pub turn_user: Option<(String, String)>,
    pub turn_ttl: Duration,
}

impl IceConfig {
    /// The ICE servers a client gets in `joined`, with fresh TURN credentials.
    pub fn ice_servers(&self, now: SystemTime) -> Vec<IceServer> {
        let mut servers = Vec::new();
        if !self.stun_urls.is_empty() {
            servers.push(IceServer {
                urls: self.stun_urls.clone(),
                username: String::new(),
                credential: String::new(),
            });
        }
        if !self.turn_urls.is_empty() {
            let (username, credential) = match (&self.turn_secret, &self.turn_user) {
                (Some(secret), _) => turn_rest_credentials(secret, "duet", now, self.turn_ttl),
                (None, Some((user, password))) => (user.clone(), password.clone()),
                (None, None) => (String::new(), String::new()),
            };
            servers.push(IceServer {
                urls: self.turn_urls.clone(),
                username,
                credential,
            });
        }
        servers
    }
}

/// The TURN REST scheme coturn checks with `use-auth-secret`: the username is
/// `"<unix expiry>:<name>"` and the password base64(HMAC-SHA1(secret, username)).
pub fn turn_rest_credentials(
    secret: &str,
    name: &str,
    now: SystemTime,
    ttl: Duration,
) -> (String, String) {
    let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default() + ttl;
    let username = format!("{}:{name}", expiry.as_secs());
    // HMAC accepts a key of any length.
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// Limits that keep one client from hurting the others.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// A connection that has not joined a room by then is closed.
    pub join_timeout: Duration,
    /// The server pings this often...
    pub ping_interval: Duration,
    /// ...and closes a connection silent for this long (half-open).
    pub idle_timeout: Duration,
    /// Sustained messages per second, and the burst allowed above it.
    pub messages_per_second: f64,
    pub burst: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            join_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            messages_per_second: 20.0,
            burst: 60.0,
        }
    }
}

/// Everything `duet signal` needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub ice: IceConfig,
    pub limits: Limits,
}

/// Messages queued to one connection; a client too slow to drain them is dropped.
const OUTBOX: usize = 16;
/// A client that keeps sending bad or excess messages after being told is closed.
const MAX_VIOLATIONS: u32 = 20;

struct Seat {
    id: u64,
    outbox: mpsc::Sender<Message>,
}

#[derive(Default)]
struct Rooms {
    rooms: HashMap<String, Vec<Seat>>,
}

struct Shared {
    config: ServerConfig,
    rooms: Mutex<Rooms>,
    connections: AtomicUsize,
    next_id: AtomicU64,
}

type AppState = Arc<Shared>;

/// Serves until the process ends. Calls `on_listening` with the bound address (port 0
/// picks a free one).
pub async fn serve(
    config: ServerConfig,
    on_listening: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let tls = config.tls.clone();
    let listen = config.listen;
    let state = Arc::new(Shared {
        config,
        rooms: Mutex::new(Rooms::default()),
        connections: AtomicUsize::new(0),
        next_id: AtomicU64::new(1),
    });
    let app = Router::new()
        .route(
            "/",
            get(|| async { page(PAGE_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(PAGE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(PAGE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/ws", get(upgrade))
        .with_state(state);
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    on_listening(listener.local_addr()?);
    match tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    std::io::Error::other(format!(
                        "TLS certificate {} / key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
            axum_server::from_tcp_rustls(listener, tls)?
                .serve(app.into_make_service())
                .await
        }
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app).await
        }
    }
}

const PAGE_HTML: &str = include_str!("../../assets/web/index.html");
const PAGE_JS: &str = include_str!("../../assets/web/app.js");
const PAGE_CSS: &str = include_str!("../../assets/web/style.css");

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn upgrade(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let limit = state.config.limits.max_connections;
    // Count the connection before it exists, so a flood cannot overshoot the limit.
    if state.connections.fetch_add(1, Ordering::SeqCst) >= limit {
        state.connections.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    }
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_failed_upgrade({
            let state = state.clone();
            move |_| {
                state.connections.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .on_upgrade(move |socket| async move {
            Connection::new(state.clone()).run(socket).await;
            state.connections.fetch_sub(1, Ordering::SeqCst);
        })
}

/// A token bucket: `burst` messages at once, `rate` a second after that.
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    fn allow(&mut self, now: Instant) -> bool {
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Connection {
    state: AppState,
    id: u64,
    room: Option<String>,
    violations: u32,
}

enum Step {
    Continue,
    Close,
}

impl Connection {
    fn new(state: AppState) -> Self {
        let id = state.next_id.fetch_add(1, Ordering::Relaxed);
        Self {
            state,
            id,
            room: None,
            violations: 0,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let limits = self.state.config.limits.clone();
        let (outbox_tx, mut outbox) = mpsc::channel::<Message>(OUTBOX);
        let mut rate = RateLimit {
            tokens: limits.burst,
            rate: limits.messages_per_second,
            burst: limits.burst,
            last: Instant::now(),
        };
        let started = Instant::now();
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval(limits.ping_interval);
        ping.tick().await;
        loop {
            let join_deadline = async {
                if self.room.is_none() {
                    tokio::time::sleep_until((started + limits.join_timeout).into()).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                incoming = socket.recv() => {
                    let Some(Ok(frame)) = incoming else { break };
                    last_heard = Instant::now();
                    let text = match frame {
                        ws::Message::Text(text) => text,
                        ws::Message::Close(_) => break,
                        ws::Message::Ping(_) | ws::Message::Pong(_) => continue,
                        ws::Message::Binary(_) => {
                            if let Step::Close = self.refuse(&mut socket, "binary messages are not part of the protocol").await {
                                break;
                            }
                            continue;
                        }
                    };
                    if !rate.allow(Instant::now()) {
                        if let Step::Close = self.refuse(&mut socket, "too many messages: slow down").await {
                            break;
                        }
                        continue;
                    }
                    let step = match Message::from_client(text.as_str()) {
                        Ok(message) => self.handle(message, &outbox_tx, &mut socket).await,
                        Err(e) => self.refuse(&mut socket, &e.to_string()).await,
                    };
                    if let Step::Close = step {
                        break;
                    }
                }
                Some(message) = outbox.recv() => {
                    if socket.send(ws::Message::text(message.to_json())).await.is_err() {
                        break;
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > limits.idle_timeout {
                        break; // half-open: nothing heard, not even a pong
                    }
                    if socket.send(ws::Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                }
                _ = join_deadline => {
                    let _ = send(&mut socket, &Message::Error { message: format!("join a room within {} s", limits.join_timeout.as_secs()) }).await;
                    break;
                }
            }
        }
        self.leave();
        let _ = socket.send(ws::Message::Close(None)).await;
    }

    async fn refuse(&mut self, socket: &mut WebSocket, why: &str) -> Step {
        self.violations += 1;
        if self.violations > MAX_VIOLATIONS {
            return Step::Close;
        }
        match send(
            socket,
            &Message::Error {
                message: why.to_owned(),
            },
        )
        .await
        {
            Ok(()) => Step::Continue,
            Err(_) => Step::Close,
        }
    }

    async fn handle(
        &mut self,
        message: Message,
        outbox: &mpsc::Sender<Message>,
        socket: &mut WebSocket,
    ) -> Step {
        match message {
            Message::Join { room } => {
                if self.room.is_some() {
                    return self
                        .refuse(socket, "already in a room: one room per connection")
                        .await;
                }
                match self.join(&room, outbox.clone()) {
                    Ok((peers, other)) => {
                        self.room = Some(room);
                        let ice_servers = self.state.config.ice.ice_servers(SystemTime::now());
                        if send(socket, &Message::Joined { peers, ice_servers })
                            .await
                            .is_err()
                        {
                            return Step::Close;
                        }
                        if let Some(other) = other {
                            let _ = other.try_send(Message::PeerJoined);
                        }
                        Step::Continue
                    }
                    Err(why) => {
                        let _ = send(socket, &Message::Error { message: why }).await;
                        Step::Close
                    }
                }
            }
            relayed @ (Message::Offer { .. }
            | Message::Answer { .. }
            | Message::Candidate { .. }
            | Message::Bye) => {
                let Some(other) = self.other_peer() else {
                    let why = if self.room.is_some() {
                        "nobody else is in the room yet"
                    } else {
                        "join a room first"
                    };
                    return self.refuse(socket, why).await;
                };
                let is_bye = matches!(relayed, Message::Bye);
                if other.try_send(relayed).is_err() && !is_bye {
                    return self
                        .refuse(socket, "the other peer is not keeping up; message dropped")
                        .await;
                }
                Step::Continue
            }
            // `from_client` refused the server-only types already.
            Message::Joined { .. } | Message::PeerJoined | Message::Error { .. } => {
                self.refuse(socket, &ProtocolError::Malformed.to_string())
                    .await
            }
        }
    }

    /// Takes a seat; returns the count and the other peer's outbox.
    fn join(
        &self,
        room: &str,
        outbox: mpsc::Sender<Message>,
    ) -> Result<(usize, Option<mpsc::Sender<Message>>), String> {
        let mut rooms = self.state.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let seats = rooms.rooms.entry(room.to_owned()).or_default();
        if seats.len() >= 2 {
            return Err("room busy: two people are already in this room".into());
        }
        let other = seats.first().map(|s| s.outbox.clone());
        seats.push(Seat {
            id: self.id,
            outbox,
        });
        Ok((seats.len(), other))
    }

    fn other_peer(&self) -> Option<mpsc::Sender<Message>> {
        let room = self.room.as_ref()?;
        let rooms = self.state.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms
            .rooms
            .get(room)?
            .iter()
            .find(|s| s.id != self.id)
            .map(|s| s.outbox.clone())
    }

    fn leave(&mut self) {
        let Some(room) = self.room.take() else { return };
        let mut rooms = self.state.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seats) = rooms.rooms.get_mut(&room) {
            seats.retain(|s| s.id != self.id);
            if seats.is_empty() {
                rooms.rooms.remove(&room);
            }
        }
    }
}

async fn send(socket: &mut WebSocket, message: &Message) -> Result<(), axum::Error> {
    socket.send(ws::Message::text(message.to_json())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_rest_credentials_follow_coturns_scheme() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (user, password) =
            turn_rest_credentials("north", "duet", now, Duration::from_secs(3600));
        assert_eq!(user, "1700003600:duet");
        // base64(HMAC-SHA1("north", "1700003600:duet")), computed independently with openssl.
        assert_eq!(password, TURN_REST_EXPECTED);
    }

    const TURN_REST_EXPECTED: &str = "WiBrYTri5EMrPEzUW8mTVacumHk=";

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut limit = RateLimit {
            tokens: 3.0,
            rate: 2.0,
            burst: 3.0,
            last: t0,
        };
        assert!((0..3).all(|_| limit.allow(t0)));
        assert!(!limit.allow(t0));
        assert!(limit.allow(t0 + Duration::from_millis(500)));
        assert!(!limit.allow(t0 + Duration::from_millis(500)));
    }
}
