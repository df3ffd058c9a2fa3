//! The window's screens, driven through egui_kittest's accessibility tree: the right
//! controls for each call state, buttons that send the right commands, the paste error,
//! the end reason.

use duet::call::{CallState, CallUpdate, EndReason, LiveStats};
use duet::signaling::{PasteToken, SdpKind};
use duet::ui::view::{Pictures, UiAction, WindowView};
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
    Harness::builder()
        .with_size(eframe::egui::vec2(1280.0, 800.0))
        .build_ui_state(
            |ui, state: &mut State| {
                let actions = state.0.show(ui, Pictures::default(), Instant::now());
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

fn connected() -> WindowView {
    let mut view = WindowView::default();
    view.apply(
        CallUpdate::State(CallState::Connected {
            since: Instant::now(),
            disconnected_at: None,
        }),
        Instant::now(),
    );
    view
}

#[test]
fn a_connected_call_has_a_hang_up_button_that_hangs_up() {
    let mut h = harness(connected());
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

#[test]
fn the_start_screen_says_which_devices_are_used() {
    let mut h = harness(WindowView::default());
    h.run();
    assert!(h.query_by_value("Test pattern").is_some());
    assert!(h.query_by_value("Test tone").is_some());
    assert!(
        h.query_by_label_contains("Duet sends its test pattern")
            .is_some()
    );
    assert!(h.query_by_label("Your name").is_some());
}

#[test]
fn joining_a_room_asks_for_that_room_on_that_server() {
    let mut h = harness(WindowView::with_room("ws://127.0.0.1:9/ws", "kitchen"));
    h.run();
    h.get_by_label("Join room").click();
    h.run();
    assert_eq!(
        h.state().1,
        vec![UiAction::JoinRoom {
            server: "ws://127.0.0.1:9/ws".into(),
            room: "kitchen".into()
        }]
    );
}

#[test]
fn a_bad_room_name_is_refused_with_a_hint() {
    let mut h = harness(WindowView::with_room("ws://127.0.0.1:9/ws", "my room!"));
    h.run();
    h.get_by_label("Join room").click();
    h.run();
    assert!(h.state().1.is_empty());
    assert!(h.query_by_label_contains("Room names are").is_some());
}

#[test]
fn mute_and_camera_buttons_toggle_and_say_what_they_will_do() {
    let mut h = harness(connected());
    h.run();
    h.get_by_label("Mute microphone").click();
    h.run();
    assert!(h.query_by_label("Unmute microphone").is_some());
    h.get_by_label("Turn camera off").click();
    h.run();
    assert!(h.query_by_label("Turn camera on").is_some());
    assert!(h.query_by_label("Camera off").is_some());
    h.get_by_label("Unmute microphone").click();
    h.run();
    assert_eq!(
        h.state().1,
        vec![
            UiAction::MuteMicrophone(true),
            UiAction::CameraOff(true),
            UiAction::MuteMicrophone(false)
        ]
    );
}

#[test]
fn the_m_key_mutes() {
    let mut h = harness(connected());
    h.run();
    h.key_press(eframe::egui::Key::M);
    h.run();
    assert_eq!(h.state().1, vec![UiAction::MuteMicrophone(true)]);
}

#[test]
fn chat_lines_go_out_and_come_in() {
    let mut view = connected();
    view.apply(CallUpdate::Greeting("Ada".into()), Instant::now());
    view.apply(CallUpdate::Chat("hello there".into()), Instant::now());
    let mut h = harness(view);
    h.run();
    assert!(h.query_by_label_contains("with Ada").is_some());
    h.get_by_label("Chat (1)").click();
    h.run();
    assert!(h.query_by_label("Ada: hello there").is_some());
    let input = h.get_by_role_and_label(eframe::egui::accesskit::Role::TextInput, "Message");
    input.focus();
    h.run();
    h.get_by_role_and_label(eframe::egui::accesskit::Role::TextInput, "Message")
        .type_text("hi Ada");
    h.run();
    h.get_by_label("Send").click();
    h.run();
    assert_eq!(h.state().1, vec![UiAction::SendChat("hi Ada".into())]);
    assert!(h.query_by_label("You: hi Ada").is_some());
}

#[test]
fn the_security_code_and_the_stats_are_shown() {
    let mut view = connected();
    view.apply(CallUpdate::Verification("123 456".into()), Instant::now());
    view.apply(
        CallUpdate::Stats(LiveStats {
            remote_size: Some((640, 480)),
            remote_fps: 30.0,
            rtt_ms: Some(2.0),
            ..Default::default()
        }),
        Instant::now(),
    );
    let mut h = harness(view);
    h.run();
    assert!(h.query_by_label("123 456").is_some());
    assert!(h.query_by_label("640x480").is_none());
    h.get_by_label("Stats").click();
    h.run();
    assert!(h.query_by_label("640x480").is_some());
    assert!(h.query_by_label("30 fps").is_some());
    assert!(h.query_by_label("2.0 ms").is_some());
    assert!(
        h.query_by_label("Bitrate, kbit/s").is_none(),
        "one second is not a plot"
    );
}

#[test]
fn the_stats_plot_the_last_minute() {
    let mut view = connected();
    for second in 0..5 {
        view.apply(
            CallUpdate::Stats(LiveStats {
                send_kbps: 500.0 + 100.0 * second as f64,
                target_kbps: Some(900.0),
                remote_fps: 30.0,
                ..Default::default()
            }),
            Instant::now(),
        );
    }
    let mut h = harness(view);
    h.run();
    h.get_by_label("Stats").click();
    h.run();
    for title in [
        "Bitrate, kbit/s",
        "Delay, ms",
        "Frames per second",
        "Loss, %",
    ] {
        assert!(h.query_by_label(title).is_some(), "no {title} plot");
    }
    assert!(h.query_by_label("path allows").is_some());
    // The bitrate plot's scale: a round number above the highest value (900).
    assert!(h.query_by_label("1000").is_some());
}

/// A connected call whose chat box was opened with C and has some text in it.
fn typing_a_chat_line() -> Harness<'static, State> {
    let mut h = harness(connected());
    h.run();
    h.key_press(eframe::egui::Key::C);
    h.run();
    h.run();
    h.get_by_role_and_label(eframe::egui::accesskit::Role::TextInput, "Message")
        .type_text("typing");
    h.run();
    h
}

#[test]
fn ctrl_w_hangs_up_even_while_typing_a_chat_line() {
    let mut h = typing_a_chat_line();
    h.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::W);
    h.run();
    assert_eq!(h.state().1, vec![UiAction::HangUp]);
}

#[test]
fn an_offer_waiting_for_its_answer_can_be_cancelled() {
    let mut view = WindowView::default();
    view.apply(CallUpdate::State(CallState::Offering), Instant::now());
    let mut h = harness(view);
    h.run();
    assert!(h.query_by_label_contains("paste their answer").is_some());
    h.get_by_label("Cancel").click();
    h.run();
    assert_eq!(h.state().1, vec![UiAction::BackToStart]);
}

#[test]
fn esc_in_the_chat_box_leaves_the_box_and_a_second_esc_hangs_up() {
    let mut h = typing_a_chat_line();
    h.key_press(eframe::egui::Key::Escape);
    h.run();
    assert!(h.state().1.is_empty(), "{:?}", h.state().1);
    h.key_press(eframe::egui::Key::Escape);
    h.run();
    assert_eq!(h.state().1, vec![UiAction::HangUp]);
}

#[test]
fn a_microphone_that_was_found_can_be_chosen_and_is_remembered() {
    use duet::ui::view::DeviceChoice;
    let mut view = WindowView::default();
    view.set_devices(
        vec![DeviceChoice::new("usb_mic", "USB Microphone")],
        vec![DeviceChoice::new("usb_speaker", "USB Speaker")],
        "default",
        "gone_speaker",
    );
    // The saved speaker is not there: no speaker rather than a surprise.
    assert_eq!(view.speaker, "none");
    assert_eq!(view.microphone, "default");
    let mut h = harness(view);
    h.run();
    assert!(
        h.query_by_label_contains("No camera was found: Duet sends its test pattern")
            .is_some()
    );
    h.get_by_value("System default").click();
    h.run();
    h.get_by_label("USB Microphone").click();
    h.run();
    assert_eq!(h.state().0.microphone, "usb_mic");
    assert_eq!(h.state().1, vec![UiAction::SaveSettings]);
}

#[test]
fn a_camera_that_was_found_can_be_chosen_and_is_remembered() {
    use duet::ui::view::DeviceChoice;
    let mut view = WindowView::default();
    view.set_cameras(
        vec![DeviceChoice::new("Logitech BRIO", "Logitech BRIO")],
        "default",
    );
    assert_eq!(view.camera, "default");
    view.camera_note = Some("camera: Logitech BRIO, 640x480 MJPEG at 30 fps".into());
    let mut h = harness(view);
    h.run();
    assert!(
        h.query_by_label_contains("640x480 MJPEG at 30 fps")
            .is_some()
    );
    assert!(h.query_by_label_contains("No camera was found").is_none());
    h.get_by_value("Default camera").click();
    h.run();
    h.get_by_label("Logitech BRIO").click();
    h.run();
    assert_eq!(h.state().0.camera, "Logitech BRIO");
    assert_eq!(h.state().1, vec![UiAction::SaveSettings]);
    // A saved camera that is gone: the test pattern, not an error.
    let mut view = WindowView::default();
    view.set_cameras(Vec::new(), "Logitech BRIO");
    assert_eq!(view.camera, "pattern");
}

#[test]
fn record_starts_and_stops_and_the_end_says_what_was_saved() {
    let mut h = harness(connected());
    h.run();
    h.get_by_label("Record").click();
    h.run();
    assert!(h.query_by_label("Stop recording").is_some());
    h.key_press(eframe::egui::Key::R);
    h.run();
    assert!(h.query_by_label("Record").is_some());
    assert_eq!(
        h.state().1,
        vec![UiAction::Record(true), UiAction::Record(false)]
    );
    let summary = duet::call::CallSummary {
        devices: vec![
            "speaker: none".into(),
            "recorded 90 pictures and 3 s of sound: /r/remote.y4m, /r/remote.wav".into(),
        ],
        ..Default::default()
    };
    h.state_mut().0.apply(
        CallUpdate::Ended {
            reason: EndReason::LocalHangUp,
            summary: Box::new(summary),
        },
        Instant::now(),
    );
    h.run();
    assert!(h.query_by_label_contains("/r/remote.y4m").is_some());
    assert!(h.query_by_label_contains("speaker: none").is_none());
}

#[test]
fn there_is_nothing_to_record_before_the_far_side_is_there() {
    let mut view = WindowView::default();
    view.waiting_in_room();
    let mut h = harness(view);
    h.run();
    assert!(h.query_by_label("Leave room").is_some());
    assert!(h.query_by_label("Record").is_none());
}
