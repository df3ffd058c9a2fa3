//! The call as one explicit state machine: events in, effects out, time passed in. It does
//! no I/O and reads no clock, so every path through a call is tested without sockets or
//! sleeps. The window and `duet call` both drive it through the runner.
//!
//! Inputs: [`CallEvent`]. Outputs: [`Effect`]. States: [`CallState`].

use std::fmt;
use std::time::{Duration, Instant};

/// From both descriptions applied to connected, at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A connected call whose transport stays disconnected this long is lost. ICE reports
/// disconnected after a few seconds without traffic, so a vanished peer ends the call in
/// well under 15 s.
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(4);

/// Which side of the negotiation this end is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Offerer,
    Answerer,
}

/// Why a call ended, in words a person understands (its `Display`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    LocalHangUp,
    RemoteHangUp,
    /// The call was up, then the far side stopped answering.
    ConnectionLost,
    /// The two ends never found a path to each other, or negotiation failed.
    FailedToConnect(String),
    /// Connecting took longer than [`CONNECT_TIMEOUT`].
    TimedOut,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::LocalHangUp => f.write_str("you hung up"),
            EndReason::RemoteHangUp => f.write_str("remote hung up"),
            EndReason::ConnectionLost => f.write_str("connection lost"),
            EndReason::FailedToConnect(why) => write!(f, "failed to connect: {why}"),
            EndReason::TimedOut => f.write_str("timed out while connecting"),
        }
    }
}

/// Where the call is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallState {
    Idle,
    /// Our offer is being made or waits for the answer.
    Offering,
    /// An offer came in; our answer is being made.
    Answering,
    /// Both descriptions are applied; ICE and DTLS are working.
    Connecting {
        since: Instant,
    },
    Connected {
        since: Instant,
        /// Set while the transport reports disconnected.
        disconnected_at: Option<Instant>,
    },
    Ended {
        reason: EndReason,
    },
}

/// What the transport (the peer connection) says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportState {
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// Everything that can happen to a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// The user starts a call: make an offer.
    StartOffer,
    /// An offer arrived: answer it.
    OfferReceived,
    /// Both descriptions are applied (the answer was set, or ours was made).
    Negotiated,
    /// Making or applying a description failed.
    NegotiationFailed(String),
    Transport(TransportState),
    /// The far side said goodbye.
    RemoteBye,
    /// The user hangs up.
    HangUp,
    /// Time passes; timeouts are checked.
    Tick,
}

/// What the runner must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    CreateOffer,
    CreateAnswer,
    /// The call is up: start sending media.
    StartMedia,
    /// Tell the far side we are leaving.
    SendBye,
    /// Close the peer connection and stop media.
    Close,
    /// The call ended; show or print the reason.
    Ended(EndReason),
}

/// One call, from idle to ended.
#[derive(Debug)]
pub struct Call {
    state: CallState,
    role: Option<Role>,
}

impl Default for Call {
    fn default() -> Self {
        Self::new()
    }
}

impl Call {
    pub fn new() -> Self {
        Self {
            state: CallState::Idle,
            role: None,
        }
    }

    pub fn state(&self) -> &CallState {
        &self.state
    }

    pub fn role(&self) -> Option<Role> {
        self.role
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.state, CallState::Ended { .. })
    }

    /// Steps the call by one event at time `now`.
    pub fn step(&mut self, event: CallEvent, now: Instant) -> Vec<Effect> {
        use CallEvent as E;
        use CallState as S;
        match (&self.state, event) {
            (S::Ended { .. }, _) => vec![],
            (S::Idle, E::StartOffer) => {
                self.role = Some(Role::Offerer);
                self.state = S::Offering;
                vec![Effect::CreateOffer]
            }
            (S::Idle, E::OfferReceived) => {
                self.role = Some(Role::Answerer);
                self.state = S::Answering;
                vec![Effect::CreateAnswer]
            }
            (S::Offering | S::Answering, E::Negotiated) => {
                self.state = S::Connecting { since: now };
                vec![]
            }
            (
                S::Idle | S::Offering | S::Answering | S::Connecting { .. },
                E::NegotiationFailed(why),
            ) => self.end(EndReason::FailedToConnect(why), false),
            (
                S::Idle | S::Offering | S::Answering | S::Connecting { .. },
                E::Transport(TransportState::Connected),
            ) => {
                self.state = S::Connected {
                    since: now,
                    disconnected_at: None,
                };
                vec![Effect::StartMedia]
            }
            (S::Connected { since, .. }, E::Transport(TransportState::Connected)) => {
                self.state = S::Connected {
                    since: *since,
                    disconnected_at: None,
                };
                vec![]
            }
            (
                S::Connected {
                    since,
                    disconnected_at: None,
                },
                E::Transport(TransportState::Disconnected),
            ) => {
                self.state = S::Connected {
                    since: *since,
                    disconnected_at: Some(now),
                };
                vec![]
            }
            (S::Connected { .. }, E::Transport(TransportState::Failed)) => {
                self.end(EndReason::ConnectionLost, false)
            }
            (_, E::Transport(TransportState::Failed)) => self.end(
                EndReason::FailedToConnect("no network path between the two ends".into()),
                false,
            ),
            // Closed without a goodbye: the far side closed its connection.
            (S::Connected { .. }, E::Transport(TransportState::Closed)) => {
                self.end(EndReason::RemoteHangUp, false)
            }
            (_, E::RemoteBye) => self.end(EndReason::RemoteHangUp, false),
            (_, E::HangUp) => self.end(EndReason::LocalHangUp, true),
            (
                S::Connected {
                    disconnected_at: Some(at),
                    ..
                },
                E::Tick,
            ) if now.saturating_duration_since(*at) >= DISCONNECT_GRACE => {
                self.end(EndReason::ConnectionLost, false)
            }
            (S::Connecting { since }, E::Tick)
                if now.saturating_duration_since(*since) >= CONNECT_TIMEOUT =>
            {
                self.end(EndReason::TimedOut, false)
            }
            _ => vec![],
        }
    }

    fn end(&mut self, reason: EndReason, say_bye: bool) -> Vec<Effect> {
        let was_negotiating = !matches!(self.state, CallState::Idle);
        self.state = CallState::Ended {
            reason: reason.clone(),
        };
        let mut effects = Vec::new();
        if say_bye && was_negotiating {
            effects.push(Effect::SendBye);
        }
        effects.push(Effect::Close);
        effects.push(Effect::Ended(reason));
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected_call(role: Role, t0: Instant) -> Call {
        let mut call = Call::new();
        let first = match role {
            Role::Offerer => CallEvent::StartOffer,
            Role::Answerer => CallEvent::OfferReceived,
        };
        call.step(first, t0);
        call.step(CallEvent::Negotiated, t0);
        assert_eq!(
            call.step(CallEvent::Transport(TransportState::Connected), t0),
            vec![Effect::StartMedia]
        );
        call
    }

    #[test]
    fn an_offer_leads_to_a_connected_call_that_starts_media() {
        let t0 = Instant::now();
        let mut call = Call::new();
        assert_eq!(
            call.step(CallEvent::StartOffer, t0),
            vec![Effect::CreateOffer]
        );
        assert_eq!(call.state(), &CallState::Offering);
        assert_eq!(call.step(CallEvent::Negotiated, t0), vec![]);
        assert!(matches!(call.state(), CallState::Connecting { .. }));
        assert_eq!(
            call.step(CallEvent::Transport(TransportState::Connected), t0),
            vec![Effect::StartMedia]
        );
        assert_eq!(call.role(), Some(Role::Offerer));
    }

    #[test]
    fn an_incoming_offer_is_answered() {
        let mut call = Call::new();
        assert_eq!(
            call.step(CallEvent::OfferReceived, Instant::now()),
            vec![Effect::CreateAnswer]
        );
        assert_eq!(call.role(), Some(Role::Answerer));
    }

    #[test]
    fn hanging_up_says_goodbye_and_closes() {
        let t0 = Instant::now();
        let mut call = connected_call(Role::Offerer, t0);
        assert_eq!(
            call.step(CallEvent::HangUp, t0),
            vec![
                Effect::SendBye,
                Effect::Close,
                Effect::Ended(EndReason::LocalHangUp)
            ]
        );
        assert!(call.is_ended());
        // Nothing moves an ended call.
        assert_eq!(call.step(CallEvent::RemoteBye, t0), vec![]);
        assert_eq!(
            call.step(CallEvent::Transport(TransportState::Connected), t0),
            vec![]
        );
    }

    #[test]
    fn the_far_side_hanging_up_ends_with_remote_hung_up() {
        let t0 = Instant::now();
        let mut call = connected_call(Role::Answerer, t0);
        let effects = call.step(CallEvent::RemoteBye, t0);
        assert_eq!(
            effects,
            vec![Effect::Close, Effect::Ended(EndReason::RemoteHangUp)]
        );
        assert_eq!(EndReason::RemoteHangUp.to_string(), "remote hung up");
    }

    #[test]
    fn a_disconnect_that_lasts_is_a_lost_connection() {
        let t0 = Instant::now();
        let mut call = connected_call(Role::Offerer, t0);
        let t1 = t0 + Duration::from_secs(10);
        call.step(CallEvent::Transport(TransportState::Disconnected), t1);
        assert_eq!(
            call.step(CallEvent::Tick, t1 + Duration::from_secs(1)),
            vec![]
        );
        let effects = call.step(CallEvent::Tick, t1 + DISCONNECT_GRACE);
        assert_eq!(
            effects,
            vec![Effect::Close, Effect::Ended(EndReason::ConnectionLost)]
        );
        assert_eq!(EndReason::ConnectionLost.to_string(), "connection lost");
    }

    #[test]
    fn a_disconnect_that_heals_keeps_the_call() {
        let t0 = Instant::now();
        let mut call = connected_call(Role::Offerer, t0);
        call.step(CallEvent::Transport(TransportState::Disconnected), t0);
        call.step(
            CallEvent::Transport(TransportState::Connected),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(
            call.step(CallEvent::Tick, t0 + Duration::from_secs(60)),
            vec![]
        );
        assert!(matches!(
            call.state(),
            CallState::Connected { since, disconnected_at: None } if *since == t0
        ));
    }

    #[test]
    fn failure_before_connecting_is_failed_to_connect_and_after_is_lost() {
        let t0 = Instant::now();
        let mut call = Call::new();
        call.step(CallEvent::StartOffer, t0);
        call.step(CallEvent::Negotiated, t0);
        let effects = call.step(CallEvent::Transport(TransportState::Failed), t0);
        assert!(matches!(
            effects.last(),
            Some(Effect::Ended(EndReason::FailedToConnect(_)))
        ));

        let mut call = connected_call(Role::Answerer, t0);
        let effects = call.step(CallEvent::Transport(TransportState::Failed), t0);
        assert_eq!(
            effects.last(),
            Some(&Effect::Ended(EndReason::ConnectionLost))
        );
    }

    #[test]
    fn connecting_too_long_times_out() {
        let t0 = Instant::now();
        let mut call = Call::new();
        call.step(CallEvent::OfferReceived, t0);
        call.step(CallEvent::Negotiated, t0);
        assert_eq!(
            call.step(CallEvent::Tick, t0 + Duration::from_secs(5)),
            vec![]
        );
        let effects = call.step(CallEvent::Tick, t0 + CONNECT_TIMEOUT);
        assert_eq!(effects.last(), Some(&Effect::Ended(EndReason::TimedOut)));
    }

    #[test]
    fn a_bad_description_fails_the_call_with_the_reason() {
        let mut call = Call::new();
        call.step(CallEvent::OfferReceived, Instant::now());
        let effects = call.step(
            CallEvent::NegotiationFailed("no codec in common".into()),
            Instant::now(),
        );
        assert_eq!(
            effects.last(),
            Some(&Effect::Ended(EndReason::FailedToConnect(
                "no codec in common".into()
            )))
        );
    }
}
