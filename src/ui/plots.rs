//! The last minute of a call's numbers as small line plots under the stats overlay, as
//! people know them from chrome://webrtc-internals: bitrate (what the path allows, what
//! goes out, what comes in), delay (picture latency, round trip), frame rate each way and
//! loss each way. Drawn with the painter from the per-second stats the call sends.

use crate::call::LiveStats;
use eframe::egui;
use std::collections::VecDeque;

/// Seconds of history kept and drawn.
pub const HISTORY_SECONDS: usize = 60;

/// The stats of the last minute, oldest first.
#[derive(Default)]
pub struct StatsHistory {
    points: VecDeque<LiveStats>,
}

/// One line of a plot: its name (shown in the legend), colour and value each second.
struct Line {
    name: &'static str,
    color: egui::Color32,
    values: Vec<Option<f64>>,
}

const BLUE: egui::Color32 = egui::Color32::from_rgb(90, 160, 255);
const GREEN: egui::Color32 = egui::Color32::from_rgb(110, 200, 110);
const ORANGE: egui::Color32 = egui::Color32::from_rgb(240, 160, 60);

impl StatsHistory {
    pub fn push(&mut self, stats: LiveStats) {
        if self.points.len() == HISTORY_SECONDS {
            self.points.pop_front();
        }
        self.points.push_back(stats);
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    fn series(&self, value: impl Fn(&LiveStats) -> Option<f64>) -> Vec<Option<f64>> {
        self.points.iter().map(value).collect()
    }

    /// The four plots, one under the other, each `width` wide.
    pub fn show(&self, ui: &mut egui::Ui, width: f32) {
        let plots = [
            (
                "Bitrate, kbit/s",
                vec![
                    Line {
                        name: "path allows",
                        color: ORANGE,
                        values: self.series(|s| s.target_kbps),
                    },
                    Line {
                        name: "sending",
                        color: BLUE,
                        values: self.series(|s| Some(s.send_kbps)),
                    },
                    Line {
                        name: "receiving",
                        color: GREEN,
                        values: self.series(|s| Some(s.receive_kbps)),
                    },
                ],
            ),
            (
                "Delay, ms",
                vec![
                    Line {
                        name: "their picture",
                        color: GREEN,
                        values: self.series(|s| s.stamp_latency_ms),
                    },
                    Line {
                        name: "round trip",
                        color: BLUE,
                        values: self.series(|s| s.rtt_ms),
                    },
                ],
            ),
            (
                "Frames per second",
                vec![
                    Line {
                        name: "ours",
                        color: BLUE,
                        values: self.series(|s| Some(s.sent_fps)),
                    },
                    Line {
                        name: "theirs",
                        color: GREEN,
                        values: self.series(|s| Some(s.remote_fps)),
                    },
                ],
            ),
            (
                "Loss, %",
                vec![
                    Line {
                        name: "ours",
                        color: BLUE,
                        values: self.series(|s| s.sent_loss_percent),
                    },
                    Line {
                        name: "theirs",
                        color: GREEN,
                        values: self.series(|s| s.video_loss_percent),
                    },
                ],
            ),
        ];
        for (title, lines) in plots {
            plot(ui, title, &lines, width);
        }
    }
}

fn plot(ui: &mut egui::Ui, title: &str, lines: &[Line], width: f32) {
    let top = lines
        .iter()
        .flat_map(|line| line.values.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b));
    // A round scale a little above the highest value, so the lines do not touch the top.
    let scale = nice_ceiling(top.max(1.0) * 1.1);
    ui.horizontal(|ui| {
        ui.small(title);
        for line in lines {
            ui.colored_label(line.color, egui::RichText::new(line.name).small());
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            ui.small(format!("{scale:.0}"));
        });
    });
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 36.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let step = rect.width() / (HISTORY_SECONDS - 1) as f32;
    for line in lines {
        // Newest at the right edge; a missing value breaks the line.
        let offset = HISTORY_SECONDS - line.values.len();
        let mut run: Vec<egui::Pos2> = Vec::new();
        for (i, value) in line.values.iter().enumerate() {
            match value {
                Some(v) => run.push(egui::pos2(
                    rect.left() + (offset + i) as f32 * step,
                    rect.bottom() - (v / scale) as f32 * rect.height(),
                )),
                None => draw_run(&painter, &mut run, line.color),
            }
        }
        draw_run(&painter, &mut run, line.color);
    }
}

fn draw_run(painter: &egui::Painter, run: &mut Vec<egui::Pos2>, color: egui::Color32) {
    match run.len() {
        0 => {}
        1 => {
            painter.circle_filled(run[0], 1.5, color);
        }
        _ => {
            painter.add(egui::Shape::line(
                std::mem::take(run),
                egui::Stroke::new(1.5, color),
            ));
        }
    }
    run.clear();
}

/// 1, 2 or 5 times a power of ten, at least `value`.
fn nice_ceiling(value: f64) -> f64 {
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|v| *v >= value)
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round_numbers_above_the_top() {
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(1.3), 2.0);
        assert_eq!(nice_ceiling(2600.0), 5000.0);
        assert_eq!(nice_ceiling(38.0), 50.0);
    }

    #[test]
    fn the_history_keeps_the_last_minute() {
        let mut history = StatsHistory::default();
        for second in 0..90 {
            history.push(LiveStats {
                send_kbps: second as f64,
                ..Default::default()
            });
        }
        assert_eq!(history.len(), HISTORY_SECONDS);
        assert_eq!(history.series(|s| Some(s.send_kbps))[0], Some(30.0));
    }
}
