//! The call controller: one state machine ([`state`]), the runner that carries out its
//! effects ([`runner`]), the media threads ([`pipeline`]), the room a call may go through
//! ([`room`]), the live numbers ([`live`]) and the end-of-call summary.

pub mod adapt;
mod edge;
pub mod inbox;
pub mod live;
pub mod pipeline;
pub mod room;
pub mod runner;
pub mod session;
pub mod state;
pub mod summary;

pub use live::LiveStats;
pub use runner::{CallCommand, CallOptions, CallUpdate, run_call};
pub use state::{Call, CallEvent, CallState, EndReason, Role};
pub use summary::CallSummary;
