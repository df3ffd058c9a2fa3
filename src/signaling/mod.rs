//! How two peers exchange session descriptions: the paste token today; the WebSocket
//! rendezvous later.

pub mod token;

pub use token::{PasteToken, SdpKind, TokenError};
