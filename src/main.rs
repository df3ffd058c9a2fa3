//! The `duet` command line.

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Parser, Subcommand};
use duet::call::pipeline::MediaSettings;
use duet::headless::{HeadlessCall, HeadlessOutcome, PasteRole};
use duet::loopback::{LoopbackOptions, run_loopback, scratch_dir};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// One-to-one video calls over standard WebRTC.
#[derive(Parser)]
#[command(name = "duet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Make a call without a window: by paste token, or a whole call on this machine.
    Call(CallArgs),
}

#[derive(Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["offer", "answer", "loopback"])))]
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
    /// Video bitrate, kbit/s.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(30..=20_000))]
    bitrate: u32,
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
    /// Write the end-of-call summary as JSON to this file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
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
        send_video: !args.no_video,
        send_audio: !args.no_audio,
        tone_hz: args.tone.unwrap_or(default_tone),
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
                        "warn,rtc_dtls::config=error,rtc_ice::agent=error",
                    )
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Call(args)) => match call(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("duet: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => {
            eprintln!(
                "duet: the window is not built yet. Try `duet call --loopback`, or `duet --help`."
            );
            ExitCode::from(2)
        }
    }
}

fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    if args.loopback {
        return loopback(&args);
    }
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
    let default_tone = if role == PasteRole::Offer {
        440.0
    } else {
        660.0
    };
    let headless = HeadlessCall {
        role,
        token_file: args.token_file.clone(),
        bind: args.bind,
        media: media_settings(&args, default_tone),
        duration: args.duration.map(Duration::from_secs_f64),
        stats_json: args.stats_json.clone(),
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
