//! Calls through a real `duet signal` server: two Duets in a room, a busy room, a server that
//! cannot be reached or goes away mid-call, and clients that try to break the server.

mod common;

use common::{RoomCall, SignalServer};
use duet::signaling::protocol::Message;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

const SECOND: Duration = Duration::from_secs(1);

/// A whole call seen from `receiver`: the far side's pictures and tone as on a clean
/// loopback (`common::assert_clean_video`), and its greeting over the data channel.
fn assert_call_worked(
    receiver: &duet::call::CallSummary,
    sender: &duet::call::CallSummary,
    tone: f64,
    name: &str,
) {
    common::assert_clean_video(receiver, sender, name);
    common::assert_heard_tone(receiver, tone, name);
    assert!(
        receiver.messages_received.iter().any(|m| m == "duet"),
        "{name} got no greeting over the data channel: {:?}",
        receiver.messages_received
    );
}

#[test]
fn two_duets_call_through_a_room() {
    let server = SignalServer::start(&[]);
    let dir = common::scratch("room");
    let mut first = RoomCall::start(&server.ws_url(), "kitchen", dir.join("first.json"), &[]);
    first.wait_for("waiting for the other person", 10 * SECOND);
    let mut second = RoomCall::start(
        &server.ws_url(),
        "kitchen",
        dir.join("second.json"),
        &["--duration", "4"],
    );
    second.wait_for("calling", 10 * SECOND);
    assert_eq!(second.wait(30 * SECOND), Some(0));
    assert_eq!(first.wait(15 * SECOND), Some(0));
    let (first, second) = (first.summary(), second.summary());
    // The second to join makes the offer, and the tones follow the roles.
    assert_eq!(second.role, "offerer");
    assert_eq!(first.role, "answerer");
    assert_call_worked(&first, &second, 440.0, "first");
    assert_call_worked(&second, &first, 660.0, "second");
    assert_eq!(second.end_reason, "you hung up");
    assert_eq!(first.end_reason, "remote hung up");
}

#[test]
fn a_third_joiner_is_told_the_room_is_busy() {
    let server = SignalServer::start(&[]);
    let url = server.ws_url();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _seats = runtime.block_on(async {
        let mut seats = Vec::new();
        for _ in 0..2 {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .expect("connect");
            ws.send(tungstenite::Message::text(
                r#"{"type":"join","room":"full"}"#,
            ))
            .await
            .expect("join");
            let reply = ws.next().await.expect("reply").expect("frame");
            assert!(
                reply.to_text().unwrap_or("").contains("joined"),
                "{reply:?}"
            );
            seats.push(ws);
        }
        seats
    });
    let dir = common::scratch("busy");
    let mut third = RoomCall::start(&url, "full", dir.join("third.json"), &[]);
    let lines = third.wait_for("room busy", 10 * SECOND);
    assert_eq!(third.wait(10 * SECOND), Some(1), "{lines:#?}");
    assert!(third.summary().end_reason.contains("room busy"));
}

#[test]
fn an_unreachable_server_is_reported() {
    let dir = common::scratch("unreachable");
    // Port 9 (discard) on loopback: nothing listens there.
    let mut call = RoomCall::start("ws://127.0.0.1:9/ws", "nobody", dir.join("call.json"), &[]);
    call.wait_for(
        "cannot reach the signaling server at ws://127.0.0.1:9/ws",
        15 * SECOND,
    );
    assert_eq!(call.wait(15 * SECOND), Some(1));
}

#[test]
fn the_call_goes_on_when_the_server_goes_away() {
    let server = SignalServer::start(&[]);
    let dir = common::scratch("server-gone");
    let mut first = RoomCall::start(&server.ws_url(), "porch", dir.join("first.json"), &[]);
    first.wait_for("waiting for the other person", 10 * SECOND);
    let mut second = RoomCall::start(
        &server.ws_url(),
        "porch",
        dir.join("second.json"),
        &["--duration", "5"],
    );
    second.wait_for("connected", 10 * SECOND);
    std::thread::sleep(SECOND);
    let stopped_at = Instant::now();
    server.stop();
    second.wait_for(
        "the signaling server went away; the call goes on",
        5 * SECOND,
    );
    assert_eq!(second.wait(30 * SECOND), Some(0));
    assert_eq!(first.wait(15 * SECOND), Some(0));
    let (first, second) = (first.summary(), second.summary());
    assert!(
        stopped_at.elapsed() > 3 * SECOND,
        "the call kept going after the server left"
    );
    // About 5 s of video at 30 fps, most of it after the server was gone: as whole as on
    // any clean call.
    common::assert_clean_video(&first, &second, "first");
    common::assert_clean_video(&second, &first, "second");
    assert_eq!(first.end_reason, "remote hung up");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Socket {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

/// The next text message within a second, if any.
async fn next_text(ws: &mut Socket) -> Option<String> {
    match tokio::time::timeout(SECOND, ws.next()).await {
        Ok(Some(Ok(tungstenite::Message::Text(text)))) => Some(text.to_string()),
        _ => None,
    }
}

/// Reads until the server closes the connection; true if it did within `timeout`.
async fn closed_within(ws: &mut Socket, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(tungstenite::Message::Close(_)))) => {
                return true;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[test]
fn hostile_clients_cannot_break_the_server() {
    let mut server = SignalServer::start(&[]);
    let url = server.ws_url();
    let dir = common::scratch("hostile");
    let rss_at_start = server.rss_mb();

    // A legitimate pair makes a call in its own room while the abuse goes on.
    let mut first = RoomCall::start(&url, "legit", dir.join("first.json"), &[]);
    first.wait_for("waiting for the other person", 10 * SECOND);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let idle = runtime.block_on(async {
        // 200 connections that never join.
        let mut idle = Vec::new();
        for _ in 0..200 {
            idle.push(connect(&url).await);
        }

        // Invalid JSON and unknown types get an error and the connection stays usable.
        let mut rude = connect(&url).await;
        rude.send(tungstenite::Message::text("{not json"))
            .await
            .expect("send");
        let reply = next_text(&mut rude).await.unwrap_or_default();
        assert!(
            reply.contains("\"error\"") && reply.contains("expected JSON"),
            "{reply}"
        );
        rude.send(tungstenite::Message::text(
            r#"{"type":"dance","room":"legit"}"#,
        ))
        .await
        .expect("send");
        assert!(
            next_text(&mut rude)
                .await
                .unwrap_or_default()
                .contains("\"error\"")
        );

        // A client in another room cannot reach the legitimate pair: naming their room in a
        // relayed message does nothing, and a second join is refused.
        rude.send(tungstenite::Message::text(
            r#"{"type":"join","room":"elsewhere"}"#,
        ))
        .await
        .expect("send");
        assert!(
            next_text(&mut rude)
                .await
                .unwrap_or_default()
                .contains("joined")
        );
        rude.send(tungstenite::Message::text(
            r#"{"type":"join","room":"legit"}"#,
        ))
        .await
        .expect("send");
        assert!(
            next_text(&mut rude)
                .await
                .unwrap_or_default()
                .contains("already in a room")
        );
        rude.send(tungstenite::Message::text(
            r#"{"type":"bye","room":"legit"}"#,
        ))
        .await
        .expect("send");
        assert!(
            next_text(&mut rude)
                .await
                .unwrap_or_default()
                .contains("nobody else")
        );
        let offer = Message::Offer {
            sdp: "v=0\r\ns=hijack\r\n".into(),
        }
        .to_json();
        rude.send(tungstenite::Message::text(offer))
            .await
            .expect("send");
        assert!(
            next_text(&mut rude)
                .await
                .unwrap_or_default()
                .contains("nobody else")
        );

        // An oversize message closes that connection.
        let mut big = connect(&url).await;
        let huge = format!(r#"{{"type":"join","room":"{}"}}"#, "x".repeat(200 * 1024));
        let _ = big.send(tungstenite::Message::text(huge)).await;
        assert!(
            closed_within(&mut big, 5 * SECOND).await,
            "an oversize message did not close the connection"
        );

        // A flood of 1,000 messages is throttled and then cut off.
        let mut flood = connect(&url).await;
        flood
            .send(tungstenite::Message::text(
                r#"{"type":"join","room":"flood"}"#,
            ))
            .await
            .expect("join");
        for _ in 0..1000 {
            if flood
                .send(tungstenite::Message::text(r#"{"type":"bye"}"#))
                .await
                .is_err()
            {
                break;
            }
        }
        assert!(
            closed_within(&mut flood, 5 * SECOND).await,
            "the flood was not cut off"
        );

        // A third joiner of a full room is refused (joins one after another: the server
        // takes connections in parallel).
        let join_pair = r#"{"type":"join","room":"pair"}"#;
        let mut seats = Vec::new();
        for _ in 0..2 {
            let mut ws = connect(&url).await;
            ws.send(tungstenite::Message::text(join_pair))
                .await
                .expect("join");
            assert!(
                next_text(&mut ws)
                    .await
                    .unwrap_or_default()
                    .contains("\"joined\"")
            );
            seats.push(ws);
        }
        let mut third = connect(&url).await;
        third
            .send(tungstenite::Message::text(join_pair))
            .await
            .expect("join");
        assert!(
            next_text(&mut third)
                .await
                .unwrap_or_default()
                .contains("room busy")
        );
        idle
    });

    // The legitimate call completes while all that is going on.
    let mut second = RoomCall::start(&url, "legit", dir.join("second.json"), &["--duration", "3"]);
    assert_eq!(second.wait(30 * SECOND), Some(0));
    assert_eq!(first.wait(15 * SECOND), Some(0));
    let (first, second) = (first.summary(), second.summary());
    common::assert_clean_video(&first, &second, "first");
    common::assert_clean_video(&second, &first, "second");

    // Connections that never joined are closed by the server (join timeout, 10 s).
    runtime.block_on(async {
        let mut idle = idle;
        for ws in idle.iter_mut().take(5) {
            assert!(
                closed_within(ws, 15 * SECOND).await,
                "an idle connection was left open"
            );
        }
    });

    assert!(server.is_running(), "the server died");
    let rss = server.rss_mb();
    assert!(
        rss < rss_at_start + 40.0 && rss < 80.0,
        "server memory grew from {rss_at_start:.1} to {rss:.1} MB"
    );
    let stderr = server.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_server_speaks_tls_with_the_given_certificate() {
    let dir = common::scratch("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=duet-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        // An end-entity certificate (webpki refuses a CA certificate as a server's own).
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cert_arg = cert.display().to_string();
    let key_arg = key.display().to_string();
    let server = SignalServer::start(&["--tls-cert", &cert_arg, "--tls-key", &key_arg]);

    // The page over https, trusting only our certificate.
    let page = std::process::Command::new("curl")
        .args([
            "--silent",
            "--fail",
            "--max-time",
            "10",
            "--cacert",
            &cert_arg,
        ])
        .arg(format!("https://127.0.0.1:{}/", server.port))
        .output()
        .expect("curl");
    assert!(page.status.success(), "https fetch failed");
    assert!(String::from_utf8_lossy(&page.stdout).contains("<title>Duet</title>"));

    // A room over wss.
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert).expect("cert"))
        .expect("root");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let url = format!("wss://127.0.0.1:{}/ws", server.port);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(config));
        let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            None,
            false,
            Some(connector),
        )
        .await
        .expect("wss connect");
        ws.send(tungstenite::Message::text(
            r#"{"type":"join","room":"secure"}"#,
        ))
        .await
        .expect("join");
        assert!(
            next_text(&mut ws)
                .await
                .unwrap_or_default()
                .contains("\"joined\"")
        );
    });
}
