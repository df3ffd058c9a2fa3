//! How two peers exchange session descriptions: the paste token, and the WebSocket
//! rendezvous server with its client.

pub mod client;
pub mod protocol;
pub mod server;
pub mod token;

pub use token::{PasteToken, SdpKind, TokenError};
