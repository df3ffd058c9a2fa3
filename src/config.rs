//! Settings: a TOML file in the platform's config directory (on Linux
//! `~/.config/duet/settings.toml`), or the file `--config` names. It holds what a person
//! chose (name, devices, signaling server, ICE servers). A missing file means the defaults;
//! an unreadable or broken one means the defaults and a warning that says which file and
//! what is wrong. It is never a reason not to start.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One STUN or TURN server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IceServerSetting {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// Everything Duet remembers between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// How this end introduces itself to the far side.
    pub name: String,
    /// `tone`, `default`, or a device's name as `duet devices` lists it.
    pub microphone: String,
    /// `none`, `default`, or a device's name.
    pub speaker: String,
    /// `pattern`, `default` (the first camera), a camera's name or number, or a .y4m file.
    pub camera: String,
    /// Where the window's Record button saves (empty: the platform's videos folder, in
    /// `Duet`).
    pub recordings: String,
    /// The signaling server the window suggests.
    pub server: String,
    /// STUN/TURN servers of our own (a room's server may hand out more). None by default:
    /// no public server is asked anything unless configured.
    pub ice_servers: Vec<IceServerSetting>,
    /// Processing of a real microphone's sound, each on unless switched off.
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
    /// How long a call whose path went silent keeps reconnecting before it ends as
    /// "connection lost", seconds.
    pub reconnect_timeout: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            name: "Duet".into(),
            microphone: "default".into(),
            speaker: "default".into(),
            camera: "default".into(),
            recordings: String::new(),
            server: "ws://127.0.0.1:8480/ws".into(),
            ice_servers: Vec::new(),
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
            reconnect_timeout: 30,
        }
    }
}

/// Where the settings live unless `--config` says otherwise.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "duet", "duet")
        .map(|dirs| dirs.config_dir().join("settings.toml"))
}

/// The folder recordings go to: the setting, or `Duet` in the videos folder (the home
/// folder, or the temporary one, where there is none).
pub fn recordings_dir(settings: &Settings) -> PathBuf {
    if !settings.recordings.trim().is_empty() {
        return PathBuf::from(settings.recordings.trim());
    }
    let user = directories::UserDirs::new();
    let base = user
        .as_ref()
        .and_then(|u| u.video_dir().map(Path::to_path_buf))
        .or_else(|| user.as_ref().map(|u| u.home_dir().to_path_buf()))
        .unwrap_or_else(std::env::temp_dir);
    base.join("Duet")
}

/// The settings in `path`, and a warning when they could not be read.
pub fn load(path: &Path) -> (Settings, Option<String>) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Settings::default(), None),
        Err(e) => {
            let warning = format!(
                "cannot read the settings file {}: {e}; using the defaults",
                path.display()
            );
            return (Settings::default(), Some(warning));
        }
    };
    match toml::from_str::<Settings>(&text) {
        Ok(settings) => (settings, None),
        Err(e) => {
            let warning = format!(
                "the settings file {} is not valid ({}); using the defaults until it is fixed or saved again",
                path.display(),
                e.message()
            );
            (Settings::default(), Some(warning))
        }
    }
}

/// Writes the settings to `path` (through a temporary file, so a crash never leaves half a
/// file).
pub fn save(settings: &Settings, path: &Path) -> Result<(), String> {
    let text = toml::to_string_pretty(settings).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let temporary = path.with_extension("toml.new");
    std::fs::write(&temporary, text).map_err(|e| format!("{}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("duet-config-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir.join("settings.toml")
    }

    #[test]
    fn settings_survive_a_save_and_a_load() {
        let path = scratch("roundtrip");
        let settings = Settings {
            name: "Ada".into(),
            microphone: "USB Headset".into(),
            ice_servers: vec![IceServerSetting {
                urls: vec!["turn:turn.example.org:3478".into()],
                username: "u".into(),
                credential: "p".into(),
            }],
            ..Settings::default()
        };
        save(&settings, &path).expect("save"); // test: a panic is the failure
        assert_eq!(load(&path), (settings, None));
    }

    #[test]
    fn a_missing_file_is_the_defaults_without_a_warning() {
        assert_eq!(
            load(Path::new("/nonexistent/duet/settings.toml")),
            (Settings::default(), None)
        );
    }

    #[test]
    fn corrupt_settings_file_gives_defaults_and_a_warning() {
        let path = scratch("corrupt");
        for junk in ["name = \"unterminated", "name = 5", "\u{0}\u{1}garbage[[["] {
            std::fs::write(&path, junk).expect("write"); // test: a panic is the failure
            let (settings, warning) = load(&path);
            assert_eq!(settings, Settings::default());
            let warning = warning.expect("a warning"); // test: a panic is the failure
            assert!(warning.contains("settings.toml"), "{warning}");
            assert!(warning.contains("using the defaults"), "{warning}");
        }
        // A file with only some settings keeps the others at their defaults.
        std::fs::write(&path, "name = \"Grace\"\nunknown = 1\n").expect("write"); // test: a panic is the failure
        let (settings, warning) = load(&path);
        assert_eq!(warning, None);
        assert_eq!(settings.name, "Grace");
        assert_eq!(settings.speaker, Settings::default().speaker);
    }
}
