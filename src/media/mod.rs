//! Frames and where they come from or go to. Knows nothing of the network.

pub mod camera;
pub mod echo;
pub mod file;
pub mod frame;
pub mod jitter;
pub mod level;
pub mod mailbox;
pub mod microphone;
pub mod pattern;
pub mod recorder;
pub mod resample;
pub mod scale;
pub mod sound;
pub mod source;
pub mod speaker;
pub mod tone;
