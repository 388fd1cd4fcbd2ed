//! The status bar: run state, progress, speed, ETA, time trained and the last error.

use super::curves::clock;
use super::history::RunHistory;
use super::run::TrainingRun;
use crate::quality;
use crate::train::worker::Problem;
use crate::train::worker::RunState;
use eframe::egui;
use egui::{Color32, Label, RichText, Ui};

/// Rows the speed (and so the ETA) is averaged over.
const SPEED_WINDOW: usize = 50;

pub struct StatusBar;

impl StatusBar {
    pub fn show(&mut self, ui: &mut Ui, run: &TrainingRun) {
        ui.horizontal(|ui| {
            if run.is_queued() {
                ui.label(RichText::new("queued").strong());
                ui.weak("The run starts when fewer runs are training (see \"Train at most\" in the run list).");
                return;
            }
            let Some(state) = run.state() else {
                ui.weak("No run yet: press Start (or Space) to train.");
                return;
            };
            ui.label(RichText::new(state.label()).strong().color(state_color(ui, state)));
            let history = run.history();
            let budget = run.applied_config().map_or(0, |c| c.train.steps);
            ui.separator();
            ui.label(format!("step {} / {budget}", run.step()));
            if let Some(epoch) = history.last_epoch() {
                ui.separator();
                ui.label(format!("epoch {epoch:.2}"));
            }
            if let Some(text) = quality_text(history) {
                ui.separator();
                let hover = match run.quality() {
                    Some(info) => format!(
                        "Fréchet distance between real held-out items and the model's samples (lower is better) in \
                         the {}; measured every quality.every steps",
                        info.describe()
                    ),
                    None => "Fréchet distance between real held-out items and the model's samples".to_string(),
                };
                ui.label(text).on_hover_text(hover);
            }
            if let Some(speed) = history.latest("images_per_s") {
                ui.separator();
                ui.label(format!("{speed:.0} images/s"));
            }
            if let (RunState::Running, Some(rate)) = (state, history.steps_per_second(SPEED_WINDOW)) {
                let left = budget.saturating_sub(run.step()) as f64 / rate;
                ui.separator();
                ui.label(format!("ETA {}", clock(left)))
                    .on_hover_text("Until the step budget, at the recent speed");
            }
            if let Some(seconds) = history.last_wall_s() {
                ui.separator();
                ui.label(format!("trained {}", clock(seconds)))
                    .on_hover_text("Training time, pauses excluded");
            }
            if let Some((step, path)) = run.last_checkpoint() {
                ui.separator();
                ui.label(format!("checkpoint at step {step}"))
                    .on_hover_text(path.display().to_string());
            }
            if let Some(problem) = run.problem() {
                ui.separator();
                let color = problem_color(ui, problem);
                let heading = problem.label().to_lowercase();
                let text = RichText::new(format!("{heading} — {}", problem.message())).color(color);
                ui.add(Label::new(text).truncate()).on_hover_text(problem.message());
            } else if let Some(dir) = run.info().and_then(|info| info.run_dir.as_ref()) {
                ui.separator();
                ui.add(Label::new(RichText::new(format!("run: {}", dir.display())).weak()).truncate())
                    .on_hover_text("The run's directory: config, metrics.csv, sample PNGs and checkpoint");
            }
        });
    }
}

/// The newest quality score and how it moved since the one before, e.g. `fd 41.2 (-18 % since step 500),
/// 72 % confident, 10 classes`.
pub fn quality_text(history: &RunHistory) -> Option<String> {
    let scores = history.latest_with_steps(quality::FD, 2);
    let &(step, fd) = scores.last()?;
    let latest = |name: &str| {
        history
            .latest_with_steps(name, 1)
            .first()
            .filter(|(s, _)| *s == step)
            .map(|(_, v)| *v)
    };
    let mut text = quality::describe(|name| if name == quality::FD { Some(fd) } else { latest(name) })?;
    if let [(before, previous), _] = scores[..] {
        if previous > 0.0 {
            // Rounded first, so that a change of less than half a percent reads +0 %, not -0 %.
            let percent = (100.0 * (fd - previous) / previous).round() + 0.0;
            let change = format!(" ({percent:+.0} % since step {before})");
            text.insert_str(text.find(',').unwrap_or(text.len()), &change);
        }
    }
    Some(text)
}

/// A failure in the error colour, everything the run survives in the warning colour.
pub fn problem_color(ui: &Ui, problem: &Problem) -> Color32 {
    match problem.is_fatal() {
        true => ui.visuals().error_fg_color,
        false => ui.visuals().warn_fg_color,
    }
}

fn state_color(ui: &Ui, state: RunState) -> Color32 {
    match state {
        RunState::Running => Color32::from_rgb(80, 190, 110),
        RunState::Failed => ui.visuals().error_fg_color,
        RunState::Paused | RunState::Loading => ui.visuals().warn_fg_color,
        RunState::Ready | RunState::Finished | RunState::Stopped => ui.visuals().text_color(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::MetricRow;

    fn scored(fds: &[(u64, f64)]) -> RunHistory {
        let mut history = RunHistory::new(&[], 0.0);
        for &(step, fd) in fds {
            history.push(&MetricRow {
                step,
                epoch: 1.0,
                wall_s: 1.0,
                values: vec![(quality::FD.to_string(), fd)],
            });
        }
        history
    }

    #[test]
    fn the_quality_text_says_how_the_score_moved_and_a_tiny_move_is_no_minus_zero() {
        let text = |fds: &[(u64, f64)]| quality_text(&scored(fds)).unwrap();
        assert_eq!(text(&[(500, 50.0), (750, 41.0)]), "fd 41 (-18 % since step 500)");
        assert_eq!(text(&[(1000, 11.07), (1250, 11.06)]), "fd 11.06 (+0 % since step 1000)");
        assert_eq!(text(&[(250, 11.06)]), "fd 11.06");
    }
}
