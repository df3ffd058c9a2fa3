//! The window's screens, driven through egui_kittest's accessibility tree: the right
//! controls for each call state, buttons that send the right commands, the paste error,
//! the end reason.

use duet::call::{CallState, CallUpdate, EndReason};
use duet::signaling::{PasteToken, SdpKind};
use duet::ui::view::{UiAction, WindowView};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::time::Instant;

type State = (WindowView, Vec<UiAction>);

fn their_token_box<'a>(h: &'a Harness<'static, State>) -> egui_kittest::Node<'a> {
    h.get_by_role_and_label(
        eframe::egui::accesskit::Role::MultilineTextInput,
        "Their token",
    )
}

fn harness(view: WindowView) -> Harness<'static, State> {
    Harness::new_ui_state(
        |ui, state: &mut State| {
            let actions = state.0.show(ui, None, Instant::now());
            state.1.extend(actions);
        },
        (view, Vec::new()),
    )
}

const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n";

#[test]
fn the_start_screen_offers_to_make_or_take_a_call() {
    let mut h = harness(WindowView::default());
    h.run();
    assert!(h.query_by_label("Hang up").is_none());
    h.get_by_label("Create offer").click();
    h.run();
    assert_eq!(h.state().1, vec![UiAction::CreateOffer]);
}

#[test]
fn a_bad_token_shows_the_error_next_to_the_paste_box() {
    let mut h = harness(WindowView::default());
    h.run();
    their_token_box(&h).focus();
    h.run();
    their_token_box(&h).type_text("hello, this is my offer");
    h.run();
    h.get_by_label("Use their token").click();
    h.run();
    assert!(
        h.query_by_label_contains("this is not a Duet token")
            .is_some()
    );
    assert!(h.state().1.is_empty());
}

#[test]
fn a_pasted_offer_is_answered() {
    let mut h = harness(WindowView::default());
    h.run();
    let token = PasteToken::new(SdpKind::Offer, SDP.into());
    their_token_box(&h).focus();
    h.run();
    their_token_box(&h).type_text(&format!("  \"{}\"\n", token.encode()));
    h.run();
    h.get_by_label("Use their token").click();
    h.run();
    assert_eq!(h.state().1, vec![UiAction::AnswerOffer(token)]);
}

#[test]
fn a_connected_call_has_a_hang_up_button_that_hangs_up() {
    let mut view = WindowView::default();
    view.apply(
        CallUpdate::State(CallState::Connected {
            since: Instant::now(),
            disconnected_at: None,
        }),
        Instant::now(),
    );
    let mut h = harness(view);
    h.run();
    assert!(h.query_by_label("Create offer").is_none());
    assert!(h.query_by_label_contains("In a call").is_some());
    h.get_by_label("Hang up").click();
    h.run();
    assert_eq!(h.state().1, vec![UiAction::HangUp]);
}

#[test]
fn the_end_reason_is_shown_in_words() {
    let mut h = harness(WindowView::ended(EndReason::ConnectionLost));
    h.run();
    assert!(
        h.query_all_by_label_contains("connection lost")
            .next()
            .is_some()
    );
    h.get_by_label("Back to start").click();
    h.run();
    assert_eq!(h.state().1, vec![UiAction::BackToStart]);
}
