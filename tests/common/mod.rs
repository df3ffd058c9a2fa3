//! Helpers shared by the integration tests: the built `duet` binary and a scratch directory.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn duet() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_duet"))
}

pub fn scratch(label: &str) -> PathBuf {
    let dir = duet::loopback::scratch_dir(label);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
