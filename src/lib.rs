//! Duet: one-to-one video calls over standard WebRTC. The binary (`main.rs`) and the tests
//! use this library. Arrows point one way: `call -> {peer, signaling, media, codec}`.

pub mod call;
pub mod codec;
pub mod config;
pub mod headless;
pub mod loopback;
pub mod media;
pub mod peer;
pub mod signaling;
pub mod ui;
