//! A one-slot mailbox between two threads: the newest item wins, a stale one is dropped,
//! never queued. Capture hands frames to the encoder this way, and the decoder hands
//! pictures to the screen, so a slow stage costs frames, not latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

pub struct Mailbox<T> {
    slot: Mutex<Option<T>>,
    ready: Condvar,
    replaced: AtomicU64,
}

impl<T> std::fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("replaced", &self.replaced())
            .finish_non_exhaustive()
    }
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Mailbox<T> {
    pub fn new() -> Self {
        Self {
            slot: Mutex::new(None),
            ready: Condvar::new(),
            replaced: AtomicU64::new(0),
        }
    }

    /// Leaves `item` for the reader, dropping one it has not taken yet.
    pub fn put(&self, item: T) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.replace(item).is_some() {
            self.replaced.fetch_add(1, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    /// Takes the newest item, if there is one, without waiting.
    pub fn take(&self) -> Option<T> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Takes the newest item, waiting up to `timeout` for one.
    pub fn take_timeout(&self, timeout: Duration) -> Option<T> {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let (mut slot, _) = self
            .ready
            .wait_timeout_while(slot, timeout, |s| s.is_none())
            .unwrap_or_else(|e| e.into_inner());
        slot.take()
    }

    /// How many items were dropped because a newer one came first.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_item_wins_and_stale_ones_are_counted() {
        let mailbox = Mailbox::new();
        mailbox.put(1);
        mailbox.put(2);
        mailbox.put(3);
        assert_eq!(mailbox.take(), Some(3));
        assert_eq!(mailbox.take(), None);
        assert_eq!(mailbox.replaced(), 2);
        assert_eq!(mailbox.take_timeout(Duration::from_millis(5)), None);
    }
}
