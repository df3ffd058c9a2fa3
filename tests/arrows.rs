//! The arrows of the design hold: `ui -> call -> {peer, signaling, media, codec}`, `peer`
//! and `codec` never import `ui` or `call`, `peer` and `signaling` do not know each other,
//! and `media` imports nothing of ours (its own `frame` and friends aside). Read from the
//! source: a `use crate::` (or a `crate::` path) across a forbidden edge fails here, named.

use std::path::Path;

/// For each part, the parts of ours it may use besides itself.
const MAY_USE: &[(&str, &[&str])] = &[
    ("media", &[]),
    ("codec", &["media"]),
    ("peer", &["media"]),
    ("signaling", &[]),
    ("config", &["media", "signaling"]),
    ("call", &["peer", "signaling", "media", "codec", "config"]),
    ("loopback", &["call"]),
    (
        "headless",
        &["call", "peer", "signaling", "media", "codec", "config"],
    ),
    (
        "ui",
        &["call", "peer", "signaling", "media", "codec", "config"],
    ),
];

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The identifier `text` starts with.
fn leading_name(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The parts of ours a file names through `crate::`, with the line each is on.
fn uses(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let after_crate = code
            .match_indices("crate::")
            .map(|(at, _)| &code[at + "crate::".len()..]);
        // `use crate::{a, b}` names several at once.
        let in_group = code
            .strip_prefix("use crate::{")
            .into_iter()
            .flat_map(|group| group.split([',', '}']).map(|n| n.trim()));
        for name in after_crate.chain(in_group).map(leading_name) {
            if !name.is_empty() {
                found.push((name, number + 1));
            }
        }
    }
    found
}

#[test]
fn the_arrows_of_the_design_hold() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for path in &all {
        let relative = path.strip_prefix(&src).expect("under src");
        let part = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs").to_owned())
            .expect("a part");
        let Some((_, allowed)) = MAY_USE.iter().find(|(name, _)| *name == part) else {
            continue; // main.rs and lib.rs tie everything together
        };
        checked += 1;
        let text = std::fs::read_to_string(path).expect("source");
        for (used, line) in uses(&text) {
            if used != part && !allowed.contains(&used.as_str()) {
                wrong.push(format!("{}:{line}: {part} uses {used}", relative.display()));
            }
        }
    }
    assert!(checked > 30, "only {checked} files were read");
    assert!(
        wrong.is_empty(),
        "arrows against the design:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_forbidden_edge_is_seen() {
    let text = "use crate::media::frame::VideoFrame;\n// crate::ui is only a comment\nlet x = crate::call::state::Call::new();\nuse crate::{peer, signaling::token};\n";
    let names: Vec<String> = uses(text).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["media", "call", "peer", "signaling"]);
}
