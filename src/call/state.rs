//! The call as one explicit state machine: events in, effects out, time passed in. It does
//! no I/O and reads no clock, so every path through a call is tested without sockets or
//! sleeps. It owns every decision of a call: who makes which description, the far side's
//! candidates held until its description is set, the greeting on the data channel, the
//! goodbye and how long it is given to leave, and when and why the call ends. The runner
//! carries out the effects, feeds their results back as events, and wakes the machine at
//! the [`Call::deadline`] it asks for.
//!
//! Inputs: [`CallEvent`]. Outputs: [`Effect`]. States: [`CallState`].

pub use crate::peer::TransportState;
use crate::peer::{Candidate, Description};
use std::fmt;
use std::time::{Duration, Instant};

/// From both descriptions applied to connected, at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A connected call whose path has gone silent is reconnecting, and is lost only after
/// this long without a path (ICE says disconnected about 3 s after the last packet): long
/// enough to live through a Wi-Fi hand-over, a tunnel, a router's reboot. A setting.
pub const RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Once our goodbye is on the data channel, this long for SCTP to put it on the wire before
/// the connection closes.
pub const BYE_FLUSH: Duration = Duration::from_millis(150);
/// A call that can renegotiate (through a room) restarts ICE after the path has been
/// silent this long, and again this often while it stays silent.
pub const ICE_RESTART_AFTER: Duration = Duration::from_secs(1);
pub const ICE_RESTART_EVERY: Duration = Duration::from_secs(4);
/// The far side's candidates held until its description is set, at most.
pub const HELD_CANDIDATES: usize = 64;

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
        /// Set while the path is silent (the transport reports disconnected): the call is
        /// reconnecting.
        disconnected_at: Option<Instant>,
    },
    /// We hung up: our goodbye is on its way; the call ends when it has had time to leave.
    Ending {
        reason: EndReason,
    },
    Ended {
        reason: EndReason,
    },
}

/// Everything that can happen to a call: what the person asks, what the far side sends,
/// what the transport reports, and the results of effects the runner carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// The person starts a call: make an offer.
    StartOffer,
    /// The far side's offer arrived: answer it.
    OfferReceived(Description),
    /// The far side's answer to our offer arrived.
    AnswerReceived(Description),
    /// A candidate the far side trickled.
    RemoteCandidate(Candidate),
    /// Our offer or answer is made (in paste mode, with every candidate in it).
    LocalDescription(Description),
    /// The far side's answer is applied.
    AnswerApplied,
    /// Making or applying a description failed, or the call cannot go on before it began.
    NegotiationFailed(String),
    Transport(TransportState),
    /// The data channel can carry messages.
    ChannelOpen,
    /// The data channel closed: the far side closed its connection.
    ChannelClosed,
    /// The far side said goodbye.
    RemoteBye,
    /// Our goodbye is on the data channel (true), or there was no channel to say it on.
    ByeSent(bool),
    /// The person hangs up.
    HangUp,
    /// This machine's network addresses changed (a laptop moved to another network).
    LocalAddressesChanged,
    /// The [`Call::deadline`] has come.
    Timeout,
}

/// What the runner must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Make our offer; its result comes back as [`CallEvent::LocalDescription`].
    CreateOffer,
    /// Apply the far side's offer and make our answer ([`CallEvent::LocalDescription`]).
    CreateAnswer(Description),
    /// Apply the far side's answer ([`CallEvent::AnswerApplied`]).
    ApplyAnswer(Description),
    /// Give the peer connection the far side's candidates.
    AddCandidates(Vec<Candidate>),
    /// Hand our description to the far side (a token to paste, a room message).
    SendDescription(Description),
    /// The call is up: start sending media.
    StartMedia,
    /// Introduce ourselves on the data channel.
    SendGreeting,
    /// Tell the far side we are leaving ([`CallEvent::ByeSent`]).
    SendBye,
    /// Restart ICE: make an offer with new credentials, gathering afresh on the addresses
    /// there are now ([`CallEvent::LocalDescription`]); it goes to the far side through the
    /// room, whose answer comes back as [`CallEvent::AnswerReceived`].
    RestartIce,
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
    /// The far side's candidates that came before its description was set.
    held: Vec<Candidate>,
    remote_description_set: bool,
    greeted: bool,
    /// While ending: when the goodbye has had its time.
    bye_flushed_at: Option<Instant>,
    reconnect_timeout: Duration,
    /// New descriptions can reach the far side mid-call (a room): the offerer restarts ICE.
    can_restart_ice: bool,
    /// Our restart's offer is out and its answer not yet applied; when we last restarted.
    restarting: bool,
    last_restart: Option<Instant>,
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
            held: Vec::new(),
            remote_description_set: false,
            greeted: false,
            bye_flushed_at: None,
            reconnect_timeout: RECONNECT_TIMEOUT,
            can_restart_ice: false,
            restarting: false,
            last_restart: None,
        }
    }

    /// A call whose descriptions go through a channel that lasts (a room): as the offerer,
    /// it restarts ICE when the path goes silent or its addresses change.
    pub fn with_ice_restart(mut self, can: bool) -> Self {
        self.can_restart_ice = can;
        self
    }

    /// A call that gives up reconnecting after `timeout` instead of [`RECONNECT_TIMEOUT`].
    pub fn with_reconnect_timeout(timeout: Duration) -> Self {
        Self {
            reconnect_timeout: timeout,
            ..Self::new()
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

    /// When the machine next needs a [`CallEvent::Timeout`], if ever: the connect timeout,
    /// the end of a disconnect's grace, the end of the goodbye's time.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            CallState::Connecting { since } => Some(*since + CONNECT_TIMEOUT),
            CallState::Connected {
                disconnected_at: Some(at),
                ..
            } => {
                let gives_up = *at + self.reconnect_timeout;
                Some(match self.next_restart(*at) {
                    Some(restart) => restart.min(gives_up),
                    None => gives_up,
                })
            }
            CallState::Ending { .. } => self.bye_flushed_at,
            CallState::Idle
            | CallState::Offering
            | CallState::Answering
            | CallState::Connected {
                disconnected_at: None,
                ..
            }
            | CallState::Ended { .. } => None,
        }
    }

    /// Steps the call by one event at time `now`. Every state is handled on its own; an
    /// event that does not fit the state is logged and ignored.
    pub fn step(&mut self, event: CallEvent, now: Instant) -> Vec<Effect> {
        use CallEvent as E;
        match self.state.clone() {
            CallState::Idle => match event {
                E::StartOffer => {
                    self.role = Some(Role::Offerer);
                    self.state = CallState::Offering;
                    vec![Effect::CreateOffer]
                }
                E::OfferReceived(offer) => {
                    self.role = Some(Role::Answerer);
                    self.state = CallState::Answering;
                    vec![Effect::CreateAnswer(offer)]
                }
                E::RemoteCandidate(candidate) => self.hold(candidate),
                E::NegotiationFailed(why) => self.end(EndReason::FailedToConnect(why), false),
                E::RemoteBye => self.end(EndReason::RemoteHangUp, false),
                E::HangUp => self.end(EndReason::LocalHangUp, false),
                other => self.ignore(other),
            },
            CallState::Offering => match event {
                E::LocalDescription(offer) => vec![Effect::SendDescription(offer)],
                E::AnswerReceived(answer) => vec![Effect::ApplyAnswer(answer)],
                E::AnswerApplied => {
                    self.state = CallState::Connecting { since: now };
                    self.remote_set()
                }
                other => self.negotiating(other, now),
            },
            CallState::Answering => match event {
                E::LocalDescription(answer) => {
                    // Making the answer applied the far side's offer first.
                    self.state = CallState::Connecting { since: now };
                    let mut effects = vec![Effect::SendDescription(answer)];
                    effects.extend(self.remote_set());
                    effects
                }
                other => self.negotiating(other, now),
            },
            CallState::Connecting { since } => match event {
                E::Timeout if now.saturating_duration_since(since) >= CONNECT_TIMEOUT => {
                    self.end(EndReason::TimedOut, false)
                }
                other => self.negotiating(other, now),
            },
            CallState::Connected {
                since,
                disconnected_at,
            } => match event {
                E::Transport(TransportState::Connected) => {
                    self.state = CallState::Connected {
                        since,
                        disconnected_at: None,
                    };
                    vec![]
                }
                E::Transport(TransportState::Disconnected) => {
                    self.state = CallState::Connected {
                        since,
                        disconnected_at: disconnected_at.or(Some(now)),
                    };
                    vec![]
                }
                E::Transport(TransportState::Failed) => self.end(EndReason::ConnectionLost, false),
                // Closed without a goodbye: the far side closed its connection (its DTLS
                // close_notify, which also closes the data channel).
                E::Transport(TransportState::Closed) | E::ChannelClosed => {
                    self.end(EndReason::RemoteHangUp, false)
                }
                E::Timeout
                    if disconnected_at.is_some_and(|at| {
                        now.saturating_duration_since(at) >= self.reconnect_timeout
                    }) =>
                {
                    self.end(EndReason::ConnectionLost, false)
                }
                E::Timeout
                    if disconnected_at
                        .and_then(|at| self.next_restart(at))
                        .is_some_and(|at| now >= at) =>
                {
                    self.restart_ice(now)
                }
                E::LocalAddressesChanged if self.restarts() => self.restart_ice(now),
                // Our restart's offer, or our answer to the far side's.
                E::LocalDescription(description) => vec![Effect::SendDescription(description)],
                E::AnswerReceived(answer) if self.restarting => vec![Effect::ApplyAnswer(answer)],
                E::AnswerApplied => {
                    self.restarting = false;
                    vec![]
                }
                // The far side restarts ICE: answer with our own new credentials.
                E::OfferReceived(offer) => vec![Effect::CreateAnswer(offer)],
                E::NegotiationFailed(why) => {
                    // A restart that failed is tried again while the path stays silent;
                    // the call itself is not over.
                    tracing::warn!("renegotiation failed: {why}");
                    self.restarting = false;
                    vec![]
                }
                E::ChannelOpen => self.greet(),
                E::RemoteCandidate(candidate) => vec![Effect::AddCandidates(vec![candidate])],
                E::RemoteBye => self.end(EndReason::RemoteHangUp, false),
                E::HangUp => self.end(EndReason::LocalHangUp, true),
                other => self.ignore(other),
            },
            CallState::Ending { reason } => match event {
                E::ByeSent(true) => {
                    self.bye_flushed_at = Some(now + BYE_FLUSH);
                    vec![]
                }
                E::ByeSent(false) => self.finish(reason),
                E::Timeout if self.bye_flushed_at.is_some_and(|at| now >= at) => {
                    self.finish(reason)
                }
                other => self.ignore(other),
            },
            CallState::Ended { .. } => self.ignore(event),
        }
    }

    /// What every state between the first description and connected answers alike.
    fn negotiating(&mut self, event: CallEvent, now: Instant) -> Vec<Effect> {
        use CallEvent as E;
        match event {
            E::Transport(TransportState::Connected) => {
                self.state = CallState::Connected {
                    since: now,
                    disconnected_at: None,
                };
                vec![Effect::StartMedia]
            }
            E::Transport(TransportState::Failed) => self.end(
                EndReason::FailedToConnect("no network path between the two ends".into()),
                false,
            ),
            E::RemoteCandidate(candidate) if self.remote_description_set => {
                vec![Effect::AddCandidates(vec![candidate])]
            }
            E::RemoteCandidate(candidate) => self.hold(candidate),
            E::ChannelOpen => self.greet(),
            E::NegotiationFailed(why) => self.end(EndReason::FailedToConnect(why), false),
            E::RemoteBye => self.end(EndReason::RemoteHangUp, false),
            E::HangUp => self.end(EndReason::LocalHangUp, true),
            other => self.ignore(other),
        }
    }

    /// Whether this side restarts ICE: the offerer, when a room can carry the new offer.
    fn restarts(&self) -> bool {
        self.can_restart_ice && self.role == Some(Role::Offerer)
    }

    /// When the next restart is due, for a path silent since `silent_since`.
    fn next_restart(&self, silent_since: Instant) -> Option<Instant> {
        if !self.restarts() {
            return None;
        }
        let first = silent_since + ICE_RESTART_AFTER;
        Some(match self.last_restart {
            Some(last) if last + ICE_RESTART_EVERY > first => last + ICE_RESTART_EVERY,
            _ => first,
        })
    }

    fn restart_ice(&mut self, now: Instant) -> Vec<Effect> {
        self.restarting = true;
        self.last_restart = Some(now);
        vec![Effect::RestartIce]
    }

    /// The far side's description is set: the candidates held for it can go in.
    fn remote_set(&mut self) -> Vec<Effect> {
        self.remote_description_set = true;
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            vec![]
        } else {
            vec![Effect::AddCandidates(held)]
        }
    }

    fn hold(&mut self, candidate: Candidate) -> Vec<Effect> {
        if self.held.len() < HELD_CANDIDATES {
            self.held.push(candidate);
        }
        vec![]
    }

    /// The answering side hears of the channel twice (handed over, then open): greet once.
    fn greet(&mut self) -> Vec<Effect> {
        if std::mem::replace(&mut self.greeted, true) {
            vec![]
        } else {
            vec![Effect::SendGreeting]
        }
    }

    fn ignore(&self, event: CallEvent) -> Vec<Effect> {
        tracing::debug!(state = ?self.state, ?event, "an event that does not fit the state: ignored");
        vec![]
    }

    /// Ends the call; when we hang up on a far side that may be listening, first says
    /// goodbye and gives it [`BYE_FLUSH`] to leave.
    fn end(&mut self, reason: EndReason, say_bye: bool) -> Vec<Effect> {
        if say_bye {
            self.state = CallState::Ending { reason };
            return vec![Effect::SendBye];
        }
        self.finish(reason)
    }

    fn finish(&mut self, reason: EndReason) -> Vec<Effect> {
        self.state = CallState::Ended {
            reason: reason.clone(),
        };
        vec![Effect::Close, Effect::Ended(reason)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::DescriptionKind;

    fn description(kind: DescriptionKind) -> Description {
        Description {
            kind,
            sdp: "v=0\r\n".into(),
        }
    }

    fn candidate(n: u32) -> Candidate {
        Candidate {
            candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {n} typ host"),
            ..Default::default()
        }
    }

    fn connected_call(role: Role, t0: Instant) -> Call {
        connected(Call::new(), role, t0)
    }

    fn connected(mut call: Call, role: Role, t0: Instant) -> Call {
        match role {
            Role::Offerer => {
                call.step(CallEvent::StartOffer, t0);
                call.step(
                    CallEvent::LocalDescription(description(DescriptionKind::Offer)),
                    t0,
                );
                call.step(
                    CallEvent::AnswerReceived(description(DescriptionKind::Answer)),
                    t0,
                );
                call.step(CallEvent::AnswerApplied, t0);
            }
            Role::Answerer => {
                call.step(
                    CallEvent::OfferReceived(description(DescriptionKind::Offer)),
                    t0,
                );
                call.step(
                    CallEvent::LocalDescription(description(DescriptionKind::Answer)),
                    t0,
                );
            }
        }
        assert_eq!(
            call.step(CallEvent::Transport(TransportState::Connected), t0),
            vec![Effect::StartMedia]
        );
        call
    }

    #[test]
    fn an_offer_is_made_sent_answered_and_leads_to_a_connected_call() {
        let t0 = Instant::now();
        let mut call = Call::new();
        assert_eq!(
            call.step(CallEvent::StartOffer, t0),
            vec![Effect::CreateOffer]
        );
        assert_eq!(call.state(), &CallState::Offering);
        let offer = description(DescriptionKind::Offer);
        assert_eq!(
            call.step(CallEvent::LocalDescription(offer.clone()), t0),
            vec![Effect::SendDescription(offer)]
        );
        let answer = description(DescriptionKind::Answer);
        assert_eq!(
            call.step(CallEvent::AnswerReceived(answer.clone()), t0),
            vec![Effect::ApplyAnswer(answer)]
        );
        assert_eq!(call.step(CallEvent::AnswerApplied, t0), vec![]);
        assert!(matches!(call.state(), CallState::Connecting { .. }));
        assert_eq!(call.deadline(), Some(t0 + CONNECT_TIMEOUT));
        assert_eq!(
            call.step(CallEvent::Transport(TransportState::Connected), t0),
            vec![Effect::StartMedia]
        );
        assert_eq!(call.role(), Some(Role::Offerer));
        assert_eq!(call.deadline(), None);
    }

    #[test]
    fn an_incoming_offer_is_answered_and_the_answer_sent() {
        let t0 = Instant::now();
        let mut call = Call::new();
        let offer = description(DescriptionKind::Offer);
        assert_eq!(
            call.step(CallEvent::OfferReceived(offer.clone()), t0),
            vec![Effect::CreateAnswer(offer)]
        );
        assert_eq!(call.role(), Some(Role::Answerer));
        let answer = description(DescriptionKind::Answer);
        assert_eq!(
            call.step(CallEvent::LocalDescription(answer.clone()), t0),
            vec![Effect::SendDescription(answer)]
        );
        assert!(matches!(call.state(), CallState::Connecting { .. }));
    }

    #[test]
    fn candidates_that_come_early_are_held_until_the_far_sides_description_is_set() {
        let t0 = Instant::now();
        let mut call = Call::new();
        call.step(CallEvent::StartOffer, t0);
        assert_eq!(
            call.step(CallEvent::RemoteCandidate(candidate(1)), t0),
            vec![]
        );
        assert_eq!(
            call.step(CallEvent::RemoteCandidate(candidate(2)), t0),
            vec![]
        );
        call.step(
            CallEvent::AnswerReceived(description(DescriptionKind::Answer)),
            t0,
        );
        assert_eq!(
            call.step(CallEvent::AnswerApplied, t0),
            vec![Effect::AddCandidates(vec![candidate(1), candidate(2)])]
        );
        // Later ones go straight in.
        assert_eq!(
            call.step(CallEvent::RemoteCandidate(candidate(3)), t0),
            vec![Effect::AddCandidates(vec![candidate(3)])]
        );
        // A flood of early candidates is held only so far.
        let mut call = Call::new();
        for n in 0..1000 {
            call.step(CallEvent::RemoteCandidate(candidate(n)), t0);
        }
        call.step(
            CallEvent::OfferReceived(description(DescriptionKind::Offer)),
            t0,
        );
        let effects = call.step(
            CallEvent::LocalDescription(description(DescriptionKind::Answer)),
            t0,
        );
        assert!(matches!(
            effects.last(),
            Some(Effect::AddCandidates(held)) if held.len() == HELD_CANDIDATES
        ));
    }

    #[test]
    fn the_greeting_goes_once_though_the_channel_is_heard_of_twice() {
        let t0 = Instant::now();
        let mut call = connected_call(Role::Answerer, t0);
        assert_eq!(
            call.step(CallEvent::ChannelOpen, t0),
            vec![Effect::SendGreeting]
        );
        assert_eq!(call.step(CallEvent::ChannelOpen, t0), vec![]);
    }

    #[test]
    fn hanging_up_says_goodbye_gives_it_time_to_leave_and_closes() {
        let t0 = Instant::now();
        let mut call = connected_call(Role::Offerer, t0);
        assert_eq!(call.step(CallEvent::HangUp, t0), vec![Effect::SendBye]);
        assert!(matches!(call.state(), CallState::Ending { .. }));
        assert_eq!(call.step(CallEvent::ByeSent(true), t0), vec![]);
        assert_eq!(call.deadline(), Some(t0 + BYE_FLUSH));
        // A second hang-up or the far side's goodbye changes nothing meanwhile.
        assert_eq!(call.step(CallEvent::HangUp, t0), vec![]);
        assert_eq!(call.step(CallEvent::RemoteBye, t0), vec![]);
        assert_eq!(call.step(CallEvent::Timeout, t0), vec![]);
        assert_eq!(
            call.step(CallEvent::Timeout, t0 + BYE_FLUSH),
            vec![Effect::Close, Effect::Ended(EndReason::LocalHangUp)]
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
    fn a_goodbye_with_no_channel_to_go_on_ends_at_once() {
        let t0 = Instant::now();
        let mut call = Call::new();
        call.step(CallEvent::StartOffer, t0);
        assert_eq!(call.step(CallEvent::HangUp, t0), vec![Effect::SendBye]);
        assert_eq!(
            call.step(CallEvent::ByeSent(false), t0),
            vec![Effect::Close, Effect::Ended(EndReason::LocalHangUp)]
        );
        // Hanging up before anything began says no goodbye.
        let mut call = Call::new();
        assert_eq!(
            call.step(CallEvent::HangUp, t0),
            vec![Effect::Close, Effect::Ended(EndReason::LocalHangUp)]
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
        // Its connection closing (a lost goodbye, or a peer without Duet's channel) too.
        let mut call = connected_call(Role::Offerer, t0);
        assert_eq!(
            call.step(CallEvent::ChannelClosed, t0).last(),
            Some(&Effect::Ended(EndReason::RemoteHangUp))
        );
    }

    #[test]
    fn the_settings_default_is_the_calls_default() {
        assert_eq!(
            u64::from(crate::config::Settings::default().reconnect_timeout),
            RECONNECT_TIMEOUT.as_secs()
        );
    }

    #[test]
    fn a_silent_path_is_reconnecting_and_lost_only_after_the_reconnect_timeout() {
        let t0 = Instant::now();
        let mut call = connected_call(Role::Offerer, t0);
        let t1 = t0 + Duration::from_secs(10);
        call.step(CallEvent::Transport(TransportState::Disconnected), t1);
        assert_eq!(call.deadline(), Some(t1 + RECONNECT_TIMEOUT));
        // A second report does not restart the clock.
        call.step(
            CallEvent::Transport(TransportState::Disconnected),
            t1 + Duration::from_secs(5),
        );
        assert_eq!(call.deadline(), Some(t1 + RECONNECT_TIMEOUT));
        assert_eq!(
            call.step(CallEvent::Timeout, t1 + Duration::from_secs(29)),
            vec![]
        );
        let effects = call.step(CallEvent::Timeout, t1 + RECONNECT_TIMEOUT);
        assert_eq!(
            effects,
            vec![Effect::Close, Effect::Ended(EndReason::ConnectionLost)]
        );
        // A shorter setting gives up sooner.
        let mut call = Call::with_reconnect_timeout(Duration::from_secs(4));
        call.step(CallEvent::StartOffer, t0);
        call.step(
            CallEvent::AnswerReceived(description(DescriptionKind::Answer)),
            t0,
        );
        call.step(CallEvent::AnswerApplied, t0);
        call.step(CallEvent::Transport(TransportState::Connected), t0);
        call.step(CallEvent::Transport(TransportState::Disconnected), t1);
        let effects = call.step(CallEvent::Timeout, t1 + Duration::from_secs(4));
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
        assert_eq!(call.deadline(), None);
        assert_eq!(
            call.step(CallEvent::Timeout, t0 + Duration::from_secs(60)),
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
        call.step(
            CallEvent::OfferReceived(description(DescriptionKind::Offer)),
            t0,
        );
        call.step(
            CallEvent::LocalDescription(description(DescriptionKind::Answer)),
            t0,
        );
        assert_eq!(
            call.step(CallEvent::Timeout, t0 + Duration::from_secs(5)),
            vec![]
        );
        let effects = call.step(CallEvent::Timeout, t0 + CONNECT_TIMEOUT);
        assert_eq!(effects.last(), Some(&Effect::Ended(EndReason::TimedOut)));
    }

    #[test]
    fn a_bad_description_fails_the_call_with_the_reason() {
        let mut call = Call::new();
        call.step(
            CallEvent::OfferReceived(description(DescriptionKind::Offer)),
            Instant::now(),
        );
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

    #[test]
    fn events_that_do_not_fit_are_ignored() {
        let t0 = Instant::now();
        // An answer with no offer of ours, an offer while we offer, a stray result.
        let mut call = Call::new();
        assert_eq!(
            call.step(
                CallEvent::AnswerReceived(description(DescriptionKind::Answer)),
                t0
            ),
            vec![]
        );
        call.step(CallEvent::StartOffer, t0);
        assert_eq!(
            call.step(
                CallEvent::OfferReceived(description(DescriptionKind::Offer)),
                t0
            ),
            vec![]
        );
        let mut call = connected_call(Role::Offerer, t0);
        assert_eq!(call.step(CallEvent::AnswerApplied, t0), vec![]);
        assert_eq!(call.step(CallEvent::StartOffer, t0), vec![]);
        assert!(matches!(call.state(), CallState::Connected { .. }));
    }

    #[test]
    fn an_offerer_in_a_room_restarts_ice_when_the_path_stays_silent() {
        let t0 = Instant::now();
        let mut call = connected(Call::new().with_ice_restart(true), Role::Offerer, t0);
        let offer = description(DescriptionKind::Offer);
        let answer = description(DescriptionKind::Answer);
        call.step(CallEvent::Transport(TransportState::Disconnected), t0);
        let first = t0 + ICE_RESTART_AFTER;
        assert_eq!(call.deadline(), Some(first));
        assert_eq!(
            call.step(CallEvent::Timeout, first),
            vec![Effect::RestartIce]
        );
        assert_eq!(
            call.step(CallEvent::LocalDescription(offer.clone()), first),
            vec![Effect::SendDescription(offer)]
        );
        // Still silent: the next restart comes ICE_RESTART_EVERY after this one.
        assert_eq!(call.deadline(), Some(first + ICE_RESTART_EVERY));
        assert_eq!(
            call.step(CallEvent::AnswerReceived(answer.clone()), first),
            vec![Effect::ApplyAnswer(answer)]
        );
        assert_eq!(call.step(CallEvent::AnswerApplied, first), vec![]);
        call.step(CallEvent::Transport(TransportState::Connected), first);
        assert_eq!(call.deadline(), None, "back: nothing more to do");
        assert!(matches!(
            call.state(),
            CallState::Connected {
                disconnected_at: None,
                ..
            }
        ));
        // A failed restart does not end the call.
        assert_eq!(
            call.step(CallEvent::NegotiationFailed("no".into()), first),
            vec![]
        );
        assert!(matches!(call.state(), CallState::Connected { .. }));
    }

    #[test]
    fn an_offerer_whose_addresses_change_restarts_at_once() {
        let t0 = Instant::now();
        let mut call = connected(Call::new().with_ice_restart(true), Role::Offerer, t0);
        assert_eq!(
            call.step(CallEvent::LocalAddressesChanged, t0),
            vec![Effect::RestartIce]
        );
        // Not in a room: no channel for a new offer.
        let mut paste = connected_call(Role::Offerer, t0);
        assert_eq!(paste.step(CallEvent::LocalAddressesChanged, t0), vec![]);
        paste.step(CallEvent::Transport(TransportState::Disconnected), t0);
        assert_eq!(paste.deadline(), Some(t0 + RECONNECT_TIMEOUT));
    }

    #[test]
    fn an_answerer_answers_the_far_sides_restart() {
        let t0 = Instant::now();
        let mut call = connected(Call::new().with_ice_restart(true), Role::Answerer, t0);
        call.step(CallEvent::Transport(TransportState::Disconnected), t0);
        // The offerer restarts; the answerer waits for it.
        assert_eq!(call.deadline(), Some(t0 + RECONNECT_TIMEOUT));
        assert_eq!(call.step(CallEvent::LocalAddressesChanged, t0), vec![]);
        let offer = description(DescriptionKind::Offer);
        let answer = description(DescriptionKind::Answer);
        assert_eq!(
            call.step(CallEvent::OfferReceived(offer.clone()), t0),
            vec![Effect::CreateAnswer(offer)]
        );
        assert_eq!(
            call.step(CallEvent::LocalDescription(answer.clone()), t0),
            vec![Effect::SendDescription(answer)]
        );
    }
}
