//! Where a call's updates wait for a screen that draws when it can. Pushing never blocks
//! and never grows without bound: the newest call state and the newest stats replace older
//! ones still waiting, and when a screen does not read for a long time (a minimized window)
//! the oldest chat lines and notes give way, counted. The call's own task is never held up
//! by whoever shows it.

use crate::call::CallUpdate;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// At most this many updates wait; past it chat lines and notes are dropped, oldest first.
const WAITING: usize = 512;

#[derive(Default)]
struct Waiting {
    updates: VecDeque<CallUpdate>,
    dropped: u64,
    closed: bool,
}

/// The two ends share one inbox: the call pushes, the screen takes.
#[derive(Clone, Default)]
pub struct UpdateInbox {
    waiting: Arc<Mutex<Waiting>>,
}

impl UpdateInbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves `update` for the screen. False once the screen is gone ([`Self::close`]).
    pub fn push(&self, update: CallUpdate) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.closed {
            return false;
        }
        let replaces = |old: &CallUpdate| {
            matches!(
                (old, &update),
                (CallUpdate::State(_), CallUpdate::State(_))
                    | (CallUpdate::Stats(_), CallUpdate::Stats(_))
            )
        };
        waiting.updates.retain(|old| !replaces(old));
        if waiting.updates.len() >= WAITING
            && let Some(at) = waiting
                .updates
                .iter()
                .position(|u| matches!(u, CallUpdate::Chat(_) | CallUpdate::Note(_)))
        {
            waiting.updates.remove(at);
            waiting.dropped += 1;
        }
        waiting.updates.push_back(update);
        true
    }

    /// Everything waiting, oldest first.
    pub fn take(&self) -> Vec<CallUpdate> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.updates.drain(..).collect()
    }

    /// How many chat lines and notes gave way to newer ones so far.
    pub fn dropped(&self) -> u64 {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dropped
    }

    /// The screen is gone: pushes are refused from now on.
    pub fn close(&self) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{CallState, LiveStats};

    #[test]
    fn the_newest_state_and_stats_replace_older_ones_and_the_rest_keeps_its_order() {
        let inbox = UpdateInbox::new();
        inbox.push(CallUpdate::State(CallState::Offering));
        inbox.push(CallUpdate::Chat("hello".into()));
        inbox.push(CallUpdate::Stats(LiveStats::default()));
        inbox.push(CallUpdate::State(CallState::Idle));
        inbox.push(CallUpdate::Stats(LiveStats::default()));
        let taken = inbox.take();
        assert_eq!(taken.len(), 3, "{taken:?}");
        assert!(matches!(&taken[0], CallUpdate::Chat(text) if text == "hello"));
        assert!(matches!(taken[1], CallUpdate::State(CallState::Idle)));
        assert!(matches!(taken[2], CallUpdate::Stats(_)));
        assert!(inbox.take().is_empty());
    }

    #[test]
    fn a_screen_that_never_reads_holds_a_bounded_inbox_and_keeps_what_matters() {
        let inbox = UpdateInbox::new();
        inbox.push(CallUpdate::Verification("123456".into()));
        for i in 0..10_000 {
            inbox.push(CallUpdate::Chat(format!("flood {i}")));
            inbox.push(CallUpdate::Stats(LiveStats::default()));
        }
        let taken = inbox.take();
        assert!(taken.len() <= WAITING, "{}", taken.len());
        assert!(matches!(&taken[0], CallUpdate::Verification(code) if code == "123456"));
        assert!(matches!(taken.last(), Some(CallUpdate::Stats(_))));
        assert!(matches!(&taken[taken.len() - 2], CallUpdate::Chat(t) if t == "flood 9999"));
        assert!(inbox.dropped() > 9_000);
    }

    #[test]
    fn a_closed_inbox_refuses_updates() {
        let inbox = UpdateInbox::new();
        inbox.close();
        assert!(!inbox.push(CallUpdate::Note("late".into())));
        assert!(inbox.take().is_empty());
    }
}
