//! Frames and where they come from or go to. Knows nothing of the network.

pub mod file;
pub mod frame;
pub mod mailbox;
pub mod pattern;
pub mod tone;
