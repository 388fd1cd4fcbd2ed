//! The Health view: each health rule of the run in view with its traffic light, value against threshold,
//! since when and a one-click remedy; what each rule does on trouble; the in-memory snapshots and
//! checkpoints a run can go back to; and what the checks did so far. It reads the run's last report and
//! edits the draft settings (which reach a live run as any edit does).

use super::controls::Action;
use super::history::RunHistory;
use super::run::TrainingRun;
use super::widgets::bounded;
use crate::config::{HealthConfig, OnTrouble, RunConfig};
use crate::numbers::significant;
use crate::train::health::{Finding, Light, Rule};
use eframe::egui;
use egui::{Color32, ComboBox, DragValue, Grid, RichText, ScrollArea, Ui};

#[derive(Default)]
pub struct HealthView {
    /// The step picked in "Roll back to".
    target: Option<u64>,
}

impl HealthView {
    /// Draws the view of `run` (live, or `None` with its `history` from disk); returns what the user asked.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        run: Option<&TrainingRun>,
        history: Option<&RunHistory>,
        checkpoints: &[u64],
        draft: &mut RunConfig,
    ) -> Option<Action> {
        let mut action = None;
        ScrollArea::vertical().show(ui, |ui| {
            let report = run.and_then(TrainingRun::health);
            match report {
                Some(report) => {
                    ui.label(format!("Checked at step {}.", report.step));
                    let own = run.and_then(TrainingRun::applied_config);
                    action = findings(ui, &report.findings, draft, own);
                }
                None if run.is_some_and(TrainingRun::takes_commands) => {
                    ui.weak("The first check comes after a few steps of training.");
                }
                None => {
                    ui.weak("Health is checked while a run trains: start or continue one to see its rules.");
                }
            }
            ui.add_space(8.0);
            ui.collapsing("Thresholds and checks", |ui| {
                thresholds(ui, &mut draft.health, draft.model.kind.is_gan())
            });
            // A run that is not open goes back by a fork from one of its checkpoints.
            let open = run.filter(|r| r.takes_commands());
            if open.is_some() || !checkpoints.is_empty() {
                ui.add_space(8.0);
                ui.strong("Roll back");
                action = self.roll_back(ui, open, checkpoints).or(action.take());
            }
            if let Some(history) = history.filter(|h| !h.events().is_empty()) {
                ui.add_space(8.0);
                ui.strong("What the checks did");
                for event in history.events().iter().rev() {
                    ui.label(event.describe());
                }
            }
        });
        action
    }

    /// Picks a snapshot or checkpoint step; goes back to it in place (a run `open` in this window), or forks a
    /// new run from a checkpoint.
    fn roll_back(&mut self, ui: &mut Ui, open: Option<&TrainingRun>, checkpoints: &[u64]) -> Option<Action> {
        let report = open.and_then(TrainingRun::health);
        let snapshots = report.map(|r| r.snapshot_steps.clone()).unwrap_or_default();
        let mut steps: Vec<(u64, &str)> = snapshots
            .iter()
            .map(|s| match checkpoints.contains(s) {
                true => (*s, "in memory and on disk"),
                false => (*s, "in memory"),
            })
            .collect();
        for step in checkpoints {
            if !snapshots.contains(step) {
                steps.push((*step, "checkpoint"));
            }
        }
        steps.sort_unstable();
        match (open, report) {
            (Some(run), Some(report)) => {
                let count = report.snapshot_steps.len();
                ui.weak(format!(
                    "{count} snapshot{} in memory ({}), every {} steps; checkpoints on disk.",
                    if count == 1 { "" } else { "s" },
                    crate::footprint::bytes(report.snapshot_bytes),
                    run.applied_config().map_or(0, |c| c.health.snapshot_every)
                ));
            }
            (Some(_), None) => {}
            (None, _) => {
                ui.weak("The run is not open in this window: Fork from it starts a new run from a checkpoint.");
            }
        }
        if steps.is_empty() {
            ui.weak("No snapshot or checkpoint yet.");
            return None;
        }
        if self.target.is_none_or(|t| !steps.iter().any(|(s, _)| *s == t)) {
            self.target = steps.last().map(|(s, _)| *s);
        }
        let target = self.target.expect("set above");
        let mut action = None;
        ui.horizontal(|ui| {
            let label = ui.label("Roll back to");
            ComboBox::from_id_salt("roll back to")
                .selected_text(format!("step {target}"))
                .show_ui(ui, |ui| {
                    for (step, kind) in &steps {
                        ui.selectable_value(&mut self.target, Some(*step), format!("step {step} ({kind})"));
                    }
                })
                .response
                .labelled_by(label.id);
            if ui
                .add_enabled(open.is_some(), egui::Button::new("Roll back"))
                .on_hover_text("Go back to this step in this run: later rows, grids and checkpoints are dropped")
                .on_disabled_hover_text("Only a run open in this window goes back in place")
                .clicked()
            {
                action = Some(Action::RollBack(target));
            }
            let on_disk = checkpoints.contains(&target);
            if ui
                .add_enabled(on_disk, egui::Button::new("Fork from it"))
                .on_hover_text("Start a new run from this checkpoint with the settings in the panels")
                .on_disabled_hover_text("Only checkpoints (on disk) can start a new run")
                .clicked()
            {
                action = Some(Action::ForkAt(target));
            }
        });
        action
    }
}

/// The rules as a table; returns a remedy the user applied. Remedies and on-trouble choices change the draft,
/// so they are offered only while the panels hold the settings of the run in view (`own`) or edits it can
/// take, and for the rules the draft is checked by.
fn findings(ui: &mut Ui, findings: &[Finding], draft: &mut RunConfig, own: Option<&RunConfig>) -> Option<Action> {
    let mut action = None;
    let another_run = own.is_some_and(|own| own.restart_needed_for(draft).is_some());
    if another_run {
        ui.horizontal_wrapped(|ui| {
            ui.weak(OTHER_RUN);
            if ui.button("Use this run's settings").clicked() {
                action = Some(Action::RevertDraft);
            }
        });
    }
    Grid::new("health rules")
        .num_columns(6)
        .striped(true)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            for heading in ["", "Rule", "Value", "Since", "On trouble", "Remedy"] {
                ui.strong(heading);
            }
            ui.end_row();
            for finding in findings {
                let color = light_color(ui, finding.light);
                ui.horizontal(|ui| {
                    let (dot, _) = ui.allocate_exact_size(egui::Vec2::splat(12.0), egui::Sense::hover());
                    ui.painter().circle_filled(dot.center(), 5.0, color);
                    ui.colored_label(color, light_word(finding.light));
                });
                ui.label(finding.rule.label()).on_hover_text(finding.rule.diagnosis());
                let value = finding.value.map_or("-".into(), significant);
                let value = match &finding.metric {
                    Some(metric) => format!("{value} ({metric})"),
                    None => value,
                };
                ui.label(value).on_hover_text(&finding.measure);
                ui.label(finding.since.map_or("-".into(), |s| format!("step {s}")));
                let applies = !another_run && finding.rule.applies_to(draft);
                ui.add_enabled_ui(applies, |ui| on_trouble_choice(ui, finding.rule, &mut draft.health));
                // Made from the draft, so that it keeps the edits a paused run has not taken yet.
                let from_draft;
                let remedy = match applies {
                    true => {
                        from_draft = finding.rule.remedy(draft);
                        &from_draft
                    }
                    false => &finding.remedy,
                };
                if ui
                    .add_enabled(applies, egui::Button::new(format!("Apply: {}", remedy.summary)))
                    .on_hover_text("Changes the settings in the panels: a live run takes them at once")
                    .on_disabled_hover_text(match another_run {
                        true => OTHER_RUN,
                        false => "The settings in the panels are not checked by this rule",
                    })
                    .clicked()
                {
                    action = Some(Action::ApplyRemedy(Box::new(remedy.config.clone())));
                }
                ui.end_row();
            }
        });
    action
}

/// Why the rules of the run in view offer no remedy or choice.
const OTHER_RUN: &str = "The panels hold settings this run cannot take (another model, data or shape): remedies \
                         and choices here would change those, so they are off.";

fn on_trouble_choice(ui: &mut Ui, rule: Rule, health: &mut HealthConfig) {
    let slot = rule.action_mut(health);
    ComboBox::from_id_salt(("on trouble", rule.key()))
        .selected_text(slot.label())
        .show_ui(ui, |ui| {
            for choice in OnTrouble::ALL {
                ui.selectable_value(slot, choice, choice.label());
            }
        })
        .response
        .on_hover_text(format!(
            "What the run does when {} is found",
            rule.label().to_lowercase()
        ));
}

fn thresholds(ui: &mut Ui, h: &mut HealthConfig, gan: bool) {
    Grid::new("health thresholds").num_columns(2).show(ui, |ui| {
        let row = |ui: &mut Ui, label: &str, hint: &str, add: &mut dyn FnMut(&mut Ui) -> egui::Response| {
            ui.label(label).on_hover_text(hint);
            ui.horizontal(|ui| add(ui));
            ui.end_row();
        };
        row(
            ui,
            "Measure signals every",
            "Diversity, per-layer gradient norms, active units (0 = off)",
            &mut |ui| bounded(ui, 0..=100_000, DragValue::new(&mut h.every).suffix(" steps")),
        );
        row(
            ui,
            "Trouble after",
            "How long a condition must hold to count as trouble",
            &mut |ui| bounded(ui, 0..=1_000_000, DragValue::new(&mut h.patience).suffix(" steps")),
        );
        row(
            ui,
            "Spike factor",
            "A loss or gradient norm this many times off its recent median",
            &mut |ui| {
                bounded(
                    ui,
                    1.5..=1e6,
                    DragValue::new(&mut h.spike_factor).speed(0.5).suffix("x"),
                )
            },
        );
        if gan {
            row(
                ui,
                "D(G(z)) below",
                "D is winning when its score of generated samples stays below this",
                &mut |ui| bounded(ui, 0.0..=0.99, DragValue::new(&mut h.d_fake_below).speed(0.005)),
            );
            row(
                ui,
                "G gradient below",
                "G's gradients vanish below this norm",
                &mut |ui| {
                    bounded(
                        ui,
                        0.0..=10.0,
                        DragValue::new(&mut h.grad_g_below).speed(1e-4).max_decimals(6),
                    )
                },
            );
            row(
                ui,
                "Diversity below",
                "Generated over real diversity; mode collapse below this",
                &mut |ui| bounded(ui, 0.0..=0.99, DragValue::new(&mut h.diversity_below).speed(0.01)),
            );
        } else {
            row(
                ui,
                "Active units below",
                "VAEs: posterior collapse below this many active dimensions",
                &mut |ui| bounded(ui, 0..=4096, DragValue::new(&mut h.active_units_below)),
            );
            row(
                ui,
                "Held-out ratio above",
                "Held-out over training reconstruction; overfitting above",
                &mut |ui| bounded(ui, 1.01..=100.0, DragValue::new(&mut h.overfit_ratio).speed(0.05)),
            );
        }
        row(
            ui,
            "Snapshot every",
            "In-memory snapshots that a rollback returns to",
            &mut |ui| {
                bounded(
                    ui,
                    1..=1_000_000,
                    DragValue::new(&mut h.snapshot_every).suffix(" steps"),
                )
            },
        );
        row(
            ui,
            "Snapshots kept",
            "Each holds the weights and optimiser state",
            &mut |ui| {
                bounded(
                    ui,
                    0..=crate::config::MAX_SNAPSHOTS as usize,
                    DragValue::new(&mut h.snapshots),
                )
            },
        );
    });
}

fn light_word(light: Light) -> &'static str {
    match light {
        Light::Waiting => "waiting",
        Light::Good => "good",
        Light::Watch => "watch",
        Light::Trouble => "trouble",
    }
}

pub fn light_color(ui: &Ui, light: Light) -> Color32 {
    match light {
        Light::Waiting => ui.visuals().weak_text_color(),
        Light::Good => Color32::from_rgb(80, 190, 110),
        Light::Watch => ui.visuals().warn_fg_color,
        Light::Trouble => ui.visuals().error_fg_color,
    }
}

/// The worst light of a report, for the tab's marker.
pub fn worst_light(findings: &[Finding]) -> Light {
    let rank = |l: Light| match l {
        Light::Waiting => 0,
        Light::Good => 1,
        Light::Watch => 2,
        Light::Trouble => 3,
    };
    findings
        .iter()
        .map(|f| f.light)
        .max_by_key(|l| rank(*l))
        .unwrap_or(Light::Waiting)
}

/// The tab's title in the colour of its worst light while another tab is open (the same words, so it is
/// found by its label); plain when selected, where red on the selection's blue reads poorly and the view
/// shows each light.
pub fn tab_title(ui: &Ui, run: &TrainingRun, selected: bool) -> RichText {
    let light = run.health().map_or(Light::Waiting, |r| worst_light(&r.findings));
    match light {
        Light::Watch | Light::Trouble if !selected => RichText::new("Health").color(light_color(ui, light)).strong(),
        _ => RichText::new("Health"),
    }
}
