//! The `duet` command line.

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Parser, Subcommand};
use duet::call::pipeline::{MediaSettings, VideoSource};
use duet::headless::{HeadlessCall, HeadlessOutcome, PasteRole, Rendezvous};
use duet::loopback::{LoopbackOptions, run_loopback, scratch_dir};
use duet::media::sound::SoundDevice;
use duet::signaling::protocol::{IceServer, valid_room_name};
use duet::signaling::server::{IceConfig, Limits, ServerConfig};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// One-to-one video calls over standard WebRTC.
#[derive(Parser)]
#[command(name = "duet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Open the window answering the offer token in this file; the answer token is printed
    /// on standard output.
    #[arg(long, value_name = "OFFER_FILE", conflicts_with = "room")]
    answer: Option<PathBuf>,
    /// Open the window and join this room on the signaling server.
    #[arg(long)]
    room: Option<String>,
    /// The signaling server for --room (and the one the window suggests; default: the
    /// settings' server, ws://127.0.0.1:8480/ws unless changed).
    #[arg(long)]
    server: Option<String>,
    /// Keep every ICE candidate of the window's calls on this address.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Read and save the settings in this file instead of the platform's config directory.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Make a call without a window: by paste token, through a room, or a whole call on
    /// this machine.
    Call(CallArgs),
    /// Serve signaling (rooms of two over a WebSocket at /ws) and the browser page at /.
    Signal(SignalArgs),
    /// Write the test pattern (Y4M) and test tone (WAV) to files, e.g. for a browser's
    /// fake camera and microphone.
    Pattern(PatternArgs),
    /// List the microphones and speakers (numbers and names for --mic and --speaker).
    Devices,
}

#[derive(Args)]
#[command(group(ArgGroup::new("output").required(true).multiple(true).args(["y4m", "wav"])))]
struct PatternArgs {
    /// Write the stamped test pattern to this Y4M file.
    #[arg(long)]
    y4m: Option<PathBuf>,
    /// Write the test tone with its marks to this WAV file.
    #[arg(long)]
    wav: Option<PathBuf>,
    /// Picture size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    size: (usize, usize),
    /// Frames per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    fps: u32,
    /// Length, seconds (a player loops it).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=600))]
    seconds: u32,
    /// Tone frequency, Hz.
    #[arg(long, default_value_t = 440.0, value_parser = parse_tone)]
    tone: f64,
}

/// Where `duet signal` listens unless told otherwise, and where `duet call --room` looks.
const DEFAULT_SIGNAL_ADDR: &str = "127.0.0.1:8480";

#[derive(Args)]
struct SignalArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = DEFAULT_SIGNAL_ADDR)]
    listen: SocketAddr,
    /// TLS certificate chain (PEM), so browsers on other hosts may use the camera.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A STUN server to hand to clients, e.g. stun:stun.example.org:3478 (repeatable).
    #[arg(long)]
    stun: Vec<String>,
    /// A TURN server to hand to clients, e.g. turn:turn.example.org:3478?transport=udp
    /// (repeatable).
    #[arg(long)]
    turn_url: Vec<String>,
    /// coturn's static-auth-secret: clients get time-limited credentials made from it.
    #[arg(long, requires = "turn_url", conflicts_with = "turn_user")]
    turn_secret: Option<String>,
    /// A fixed TURN user name, when there is no shared secret.
    #[arg(long, requires_all = ["turn_url", "turn_password"])]
    turn_user: Option<String>,
    /// The fixed TURN password.
    #[arg(long, requires = "turn_user")]
    turn_password: Option<String>,
    /// How long time-limited TURN credentials last, seconds.
    #[arg(long, default_value_t = 86_400)]
    turn_ttl: u64,
    /// At most this many WebSocket connections at once.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
}

#[derive(Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["offer", "answer", "loopback", "room"])))]
struct CallArgs {
    /// Call: print the offer token, then read the answer token.
    #[arg(long)]
    offer: bool,
    /// Answer: read the offer token, then print the answer token.
    #[arg(long)]
    answer: bool,
    /// Call between two Duet processes on this machine and print what arrived and how late.
    #[arg(long)]
    loopback: bool,
    /// Join this room on the signaling server; the second to join makes the call.
    #[arg(long)]
    room: Option<String>,
    /// The signaling server for --room.
    #[arg(long, default_value = "ws://127.0.0.1:8480/ws", requires = "room")]
    server: String,
    /// A STUN or TURN server, e.g. turn:host:3478 (repeatable).
    #[arg(long)]
    ice_server: Vec<String>,
    /// User name for the TURN servers given with --ice-server.
    #[arg(long, requires = "ice_server")]
    ice_username: Option<String>,
    /// Password for the TURN servers given with --ice-server.
    #[arg(long, requires = "ice_server")]
    ice_credential: Option<String>,
    /// Connect through TURN relays only.
    #[arg(long)]
    relay_only: bool,
    /// Read the far side's token from this file instead of standard input (waits for it).
    token_file: Option<PathBuf>,
    /// Keep every ICE candidate on this address (e.g. 127.0.0.1).
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Picture size of the test pattern, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    size: (usize, usize),
    /// Frames per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    fps: u32,
    /// The most video may use, kbit/s: congestion control sends less when the path
    /// carries less.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(30..=20_000))]
    bitrate: u32,
    /// Where congestion control starts before the path has said anything, kbit/s for
    /// everything sent (it climbs fast from there, to --bitrate).
    #[arg(long, value_parser = clap::value_parser!(u32).range(60..=20_000))]
    start_bitrate: Option<u32>,
    /// Send video at --bitrate whatever the path carries (no congestion control, no
    /// pacing): for comparison only.
    #[arg(long)]
    no_congestion_control: bool,
    /// Send no video.
    #[arg(long)]
    no_video: bool,
    /// Send no sound.
    #[arg(long)]
    no_audio: bool,
    /// Frequency of the test tone, Hz (default 440 when offering, 660 when answering).
    #[arg(long, value_parser = parse_tone)]
    tone: Option<f64>,
    /// Hang up this many seconds after connecting (loopback: default 10).
    #[arg(long, value_parser = parse_seconds)]
    duration: Option<f64>,
    /// When the path goes silent, keep reconnecting this many seconds before the call ends
    /// as "connection lost" (default: the settings' reconnect_timeout, 30).
    #[arg(long, value_parser = parse_seconds)]
    reconnect_timeout: Option<f64>,
    /// Write the end-of-call summary as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Microphone: `tone` (the test tone), `default`, a number or name from `duet devices`,
    /// or a .wav file (looped).
    #[arg(long, default_value = "tone")]
    mic: String,
    /// Record the far side's pictures (remote.y4m) and sound (remote.wav) into this directory.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// Send a real microphone as it is, without echo cancellation.
    #[arg(long)]
    no_echo_cancellation: bool,
    /// Without noise suppression.
    #[arg(long)]
    no_noise_suppression: bool,
    /// Without automatic gain control.
    #[arg(long)]
    no_gain_control: bool,
    /// Camera: `pattern` (the stamped test pattern), a .y4m file (looped at its own rate),
    /// or a camera: `default`, or a number or name from `duet devices`. A camera that is
    /// missing, busy or unplugged leaves the pattern in its place, with a note why.
    #[arg(long, default_value = "pattern", value_parser = VideoSource::parse)]
    camera: VideoSource,
    /// Speaker: `none` (the far side's sound is measured, not played), `default`, or a
    /// number or name from `duet devices`.
    #[arg(long, default_value = "none")]
    speaker: String,
}

fn parse_size(text: &str) -> Result<(usize, usize), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT such as 640x480, not {text:?}"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("expected WIDTHxHEIGHT such as 640x480, not {text:?}"))
    };
    let (w, h) = (parse(w)?, parse(h)?);
    if w < 64 || h < 48 || w % 2 == 1 || h % 2 == 1 {
        return Err(format!(
            "{w}x{h}: width and height must be even and at least 64x48"
        ));
    }
    if w * h > 1280 * 720 || w > 2048 || h > 2048 {
        return Err(format!(
            "{w}x{h}: at most 1280x720 pixels, the largest picture H.264 level 3.1 (42e01f) allows"
        ));
    }
    Ok((w, h))
}

fn parse_tone(text: &str) -> Result<f64, String> {
    let hz: f64 = text
        .parse()
        .map_err(|_| format!("expected a frequency in Hz, not {text:?}"))?;
    if !(50.0..=4000.0).contains(&hz) {
        return Err(format!(
            "{hz} Hz: the test tone must be between 50 and 4000 Hz"
        ));
    }
    Ok(hz)
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("expected seconds, not {text:?}"))?;
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{seconds}: expected between 0 and 86400 seconds"));
    }
    Ok(seconds)
}

fn media_settings(args: &CallArgs, default_tone: f64) -> MediaSettings {
    MediaSettings {
        width: args.size.0,
        height: args.size.1,
        fps: args.fps,
        video_bitrate_bps: args.bitrate * 1000,
        start_bitrate_bps: args.start_bitrate.map(|kbps| kbps * 1000),
        congestion_control: !args.no_congestion_control,
        send_video: !args.no_video,
        send_audio: !args.no_audio,
        tone_hz: args.tone.unwrap_or(default_tone),
        microphone: SoundDevice::parse(&args.mic),
        speaker: SoundDevice::parse(&args.speaker),
        camera: args.camera.clone(),
        record: args.record.clone(),
        processing: duet::media::echo::ProcessingSwitches {
            echo_cancellation: !args.no_echo_cancellation,
            noise_suppression: !args.no_noise_suppression,
            gain_control: !args.no_gain_control,
        },
        ..MediaSettings::default()
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // Two library warnings fire on every healthy call; they are noise to a user.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(
                        // The PulseAudio client says "disconnected" as a call's streams close.
                        "warn,rtc_dtls::config=error,rtc_ice::agent=error,pulseaudio::client::reactor=off",
                    )
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    // One TLS backend for the whole process (wss:// and the server's TLS): ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let settings_path = cli.config.clone().or_else(duet::config::default_path);
    let (settings, settings_warning) = match &settings_path {
        Some(path) => duet::config::load(path),
        None => (duet::config::Settings::default(), None),
    };
    if let Some(warning) = &settings_warning {
        eprintln!("duet: warning: {warning}");
    }
    match cli.command {
        Some(Command::Pattern(args)) => match pattern(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("duet pattern: {e:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Devices) => {
            devices();
            ExitCode::SUCCESS
        }
        Some(Command::Signal(args)) => match signal(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("duet signal: {e:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Call(args)) => match call(args, &settings) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("duet: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => {
            let has_display = std::env::var_os("DISPLAY").is_some()
                || std::env::var_os("WAYLAND_DISPLAY").is_some();
            if !has_display {
                eprintln!(
                    "duet: no display to open a window on. Try `duet call --loopback`, or `duet --help`."
                );
                return ExitCode::from(2);
            }
            let answer_offer = match &cli.answer {
                Some(path) => match std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
                    .and_then(|text| {
                        duet::signaling::PasteToken::parse(&text, duet::signaling::SdpKind::Offer)
                            .map_err(|e| e.to_string())
                    }) {
                    Ok(token) => Some(token),
                    Err(e) => {
                        eprintln!("duet: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => None,
            };
            if let Some(room) = &cli.room
                && !valid_room_name(room)
            {
                eprintln!(
                    "duet: {room:?}: room names are 1 to 64 letters, digits, '-', '_' or '.'"
                );
                return ExitCode::from(2);
            }
            let options = duet::ui::WindowOptions {
                bind: cli.bind,
                answer_offer,
                server: cli.server.unwrap_or_else(|| settings.server.clone()),
                join_room: cli.room,
                settings,
                settings_path,
                settings_warning,
                ..Default::default()
            };
            match duet::ui::run_window(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("duet: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn call(args: CallArgs, settings: &duet::config::Settings) -> anyhow::Result<ExitCode> {
    if args.loopback {
        return loopback(&args);
    }
    let (rendezvous, default_tone) = match &args.room {
        Some(room) => {
            if !valid_room_name(room) {
                bail!("{room:?}: room names are 1 to 64 letters, digits, '-', '_' or '.'");
            }
            let rendezvous = Rendezvous::Room {
                server: args.server.clone(),
                room: room.clone(),
            };
            (rendezvous, 440.0)
        }
        None => {
            let role = if args.offer {
                PasteRole::Offer
            } else {
                PasteRole::Answer
            };
            if let (PasteRole::Answer, Some(path)) = (role, &args.token_file)
                && !path.exists()
            {
                bail!(
                    "{} does not exist: expected a file holding the offer token",
                    path.display()
                );
            }
            let tone = if role == PasteRole::Offer {
                440.0
            } else {
                660.0
            };
            let rendezvous = Rendezvous::Paste {
                role,
                token_file: args.token_file.clone(),
            };
            (rendezvous, tone)
        }
    };
    let ice_servers = if args.ice_server.is_empty() {
        // The settings' servers, when the command line names none.
        settings
            .ice_servers
            .iter()
            .map(|s| IceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect()
    } else {
        vec![IceServer {
            urls: args.ice_server.clone(),
            username: args.ice_username.clone().unwrap_or_default(),
            credential: args.ice_credential.clone().unwrap_or_default(),
        }]
    };
    let headless = HeadlessCall {
        rendezvous,
        bind: args.bind,
        ice_servers,
        relay_only: args.relay_only,
        tone_by_role: args.tone.is_none(),
        media: media_settings(&args, default_tone),
        duration: args.duration.map(Duration::from_secs_f64),
        stats_json: args.stats_json.clone(),
        reconnect_timeout: Duration::from_secs_f64(
            args.reconnect_timeout
                .unwrap_or(settings.reconnect_timeout as f64)
                .clamp(1.0, 3600.0),
        ),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("duet-net")
        .build()
        .context("starting the async runtime")?;
    Ok(match runtime.block_on(headless.run()) {
        HeadlessOutcome::Completed(_) => ExitCode::SUCCESS,
        HeadlessOutcome::Failed(_) => ExitCode::FAILURE,
        HeadlessOutcome::BadToken(e) => {
            eprintln!("duet: {e}");
            ExitCode::from(2)
        }
    })
}

fn pattern(args: PatternArgs) -> anyhow::Result<()> {
    use duet::media::pattern::StampedPattern;
    use duet::media::tone::StampedTone;
    let start_us = duet::media::frame::wall_clock_us();
    if let Some(path) = &args.y4m {
        let (w, h) = args.size;
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer =
            duet::media::file::Y4mWriter::new(std::io::BufWriter::new(file), w, h, args.fps)?;
        let mut pattern = StampedPattern::new(w, h);
        let frame_us = 1_000_000 / args.fps as u64;
        for i in 0..(args.seconds * args.fps) as u64 {
            writer.write_frame(&pattern.next_frame(start_us + i * frame_us))?;
        }
        writer.finish()?;
    }
    if let Some(path) = &args.wav {
        let mut tone = StampedTone::new(args.tone);
        let mut samples = Vec::new();
        for _ in 0..args.seconds * 50 {
            samples.extend(tone.next_frame(start_us).samples);
        }
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        duet::media::file::write_wav(std::io::BufWriter::new(file), &samples)?;
    }
    Ok(())
}

fn devices() {
    use duet::media::sound::{Direction, list};
    println!("Cameras:\n  pattern  the stamped test pattern (the default of duet call)");
    let cameras = duet::media::camera::list();
    if cameras.is_empty() {
        println!("  (no camera found)");
    }
    for camera in &cameras {
        println!("  {:<8} {}", camera.index, camera.name);
        match duet::media::camera::modes(camera) {
            Ok(modes) => {
                for line in duet::media::camera::describe_modes(&modes) {
                    println!("           {line}");
                }
            }
            Err(e) => println!("           ({e})"),
        }
    }
    for (title, direction, synthetic) in [
        (
            "Microphones",
            Direction::Input,
            "tone     the test tone (the default of duet call)",
        ),
        (
            "Speakers",
            Direction::Output,
            "none     nowhere: the far side's sound is measured, not played",
        ),
    ] {
        println!("{title}:\n  {synthetic}");
        let found = list(direction);
        if found.is_empty() {
            println!("  (no device found: is a sound server running?)");
        }
        for (index, device) in found.iter().enumerate() {
            let default = if device.is_default {
                ", the default"
            } else {
                ""
            };
            println!(
                "  {index:<8} {} [{}] {}{default}",
                device.name, device.id, device.format
            );
        }
    }
}

fn signal(args: SignalArgs) -> anyhow::Result<()> {
    let listen = args.listen;
    let config = ServerConfig {
        listen,
        tls: args.tls_cert.zip(args.tls_key),
        ice: IceConfig {
            stun_urls: args.stun,
            turn_urls: args.turn_url,
            turn_secret: args.turn_secret,
            turn_user: args.turn_user.zip(args.turn_password),
            turn_ttl: Duration::from_secs(args.turn_ttl),
        },
        limits: Limits {
            max_connections: args.max_connections,
            ..Limits::default()
        },
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("duet-signal")
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(duet::signaling::server::serve(config, |addr| {
            println!("duet signal: listening on {scheme}://{addr} (rooms at {scheme}://{addr}/#ROOM, WebSocket at /ws)");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }))
        .with_context(|| format!("serving on {listen}"))
}

fn loopback(args: &CallArgs) -> anyhow::Result<ExitCode> {
    let options = LoopbackOptions {
        duet: std::env::current_exe().context("finding the duet binary")?,
        media: media_settings(args, 440.0),
        duration: Duration::from_secs_f64(args.duration.unwrap_or(10.0)),
        work_dir: scratch_dir("loopback"),
    };
    eprintln!(
        "duet: calling between two processes on 127.0.0.1 for {:.0} s ({}x{} @ {} fps, {} kbit/s)",
        options.duration.as_secs_f64(),
        options.media.width,
        options.media.height,
        options.media.fps,
        args.bitrate
    );
    let result = run_loopback(&options)?;
    println!("== offering side\n{}\n", result.offerer);
    println!("== answering side\n{}", result.answerer);
    if let Some(path) = &args.stats_json {
        let json = serde_json::json!({ "offerer": result.offerer, "answerer": result.answerer });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let _ = std::fs::remove_dir_all(&options.work_dir);
    if result.offerer.video_received.frames_decoded == 0
        && result.answerer.video_received.frames_decoded == 0
        && !args.no_video
    {
        bail!("no video arrived on either side");
    }
    Ok(ExitCode::SUCCESS)
}
