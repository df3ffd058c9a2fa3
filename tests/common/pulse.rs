//! A PulseAudio server of the test's own (user mode, every file under the test's scratch
//! directory), with null sinks standing in for sound cards: a sink's `.monitor` source hears
//! what was played into it, so a null sink is a speaker one can record and a microphone one
//! can play into.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PulseAudio {
    dir: PathBuf,
}

impl PulseAudio {
    pub fn start(dir: &Path) -> Self {
        let pulse = Self {
            dir: dir.to_path_buf(),
        };
        for sub in ["run/pulse", "state", "home"] {
            std::fs::create_dir_all(dir.join(sub)).expect("pulse dirs");
        }
        let status = pulse
            .command("pulseaudio")
            .args(["-D", "--exit-idle-time=-1", "--disallow-exit"])
            .arg(format!(
                "--log-target=file:{}",
                dir.join("pa.log").display()
            ))
            .status()
            .expect("pulseaudio (scripts/setup.sh installs it)");
        assert!(status.success(), "pulseaudio did not start");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pulse.socket().exists() {
            assert!(Instant::now() < deadline, "pulseaudio made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        pulse
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("run/pulse/native")
    }

    /// The environment a client of this server needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let path = |p: &str| self.dir.join(p).display().to_string();
        vec![
            ("HOME", path("home")),
            ("XDG_RUNTIME_DIR", path("run")),
            ("PULSE_RUNTIME_PATH", path("run/pulse")),
            ("PULSE_STATE_PATH", path("state")),
            ("PULSE_SERVER", format!("unix:{}", self.socket().display())),
        ]
    }

    /// A command that talks to this server.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env());
        command
    }

    /// A null sink: a "sound card" whose `NAME.monitor` records what it played.
    pub fn null_sink(&self, name: &str) {
        let status = self
            .command("pactl")
            .args(["load-module", "module-null-sink"])
            .arg(format!("sink_name={name}"))
            .stdout(Stdio::null())
            .status()
            .expect("pactl (pulseaudio-utils)");
        assert!(status.success(), "no null sink {name}");
    }

    /// Plays raw 48 kHz mono s16le from the returned child's stdin into `sink`.
    pub fn player(&self, sink: &str) -> Child {
        self.command("pacat")
            .args(["--playback", "-d", sink])
            .args([
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=20",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("pacat")
    }

    /// Records raw 48 kHz mono s16le of `source` on the returned child's stdout.
    pub fn recorder(&self, source: &str) -> Child {
        self.command("parec")
            .args(["-d", source])
            .args([
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=20",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("parec")
    }
}

impl Drop for PulseAudio {
    fn drop(&mut self) {
        let _ = self
            .command("pulseaudio")
            .arg("--kill")
            .stderr(Stdio::null())
            .status();
    }
}
