//! The call controller: one state machine ([`state`]), the runner that carries out its
//! effects ([`runner`]), the media threads ([`pipeline`]) and the end-of-call summary.

pub mod pipeline;
pub mod runner;
pub mod state;
pub mod summary;

pub use runner::{CallCommand, CallOptions, CallUpdate, run_call};
pub use state::{Call, CallEvent, CallState, EndReason, Role};
pub use summary::CallSummary;
