//! The toolbar: run controls, exports, the frame rate of live runs and the theme switch.

use super::controls::{Action, Controls, PauseResume};
use super::pacing::LiveRefresh;
use super::settings::Theme;
use crate::runs::GridKind;
use eframe::egui;
use egui::{Button, Ui};

/// What the export buttons can export now.
pub struct Exportable {
    pub samples: bool,
    pub reconstructions: bool,
    pub metrics: bool,
}

pub struct Toolbar;

impl Toolbar {
    pub fn show(
        &mut self,
        ui: &mut Ui,
        controls: &Controls,
        exportable: &Exportable,
        theme: &mut Theme,
        refresh: &mut LiveRefresh,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        ui.horizontal(|ui| {
            let mut button = |ui: &mut Ui, label: &str, allowed: Result<(), &str>, hint: &str, action: Action| {
                let response = ui.add_enabled(allowed.is_ok(), Button::new(label));
                let response = match allowed {
                    Ok(()) => response.on_hover_text(hint),
                    Err(reason) => response.on_disabled_hover_text(reason),
                };
                if response.clicked() {
                    actions.push(action);
                }
            };
            let start = controls.start.as_ref().map(|_| ()).map_err(String::as_str);
            button(
                ui,
                "Start",
                start,
                "Start a new run with these settings (Space)",
                Action::Start,
            );
            match &controls.pause_resume {
                PauseResume::Pause => button(ui, "Pause", Ok(()), "Pause training (Space)", Action::TogglePause),
                PauseResume::Resume => button(ui, "Resume", Ok(()), "Continue training (Space)", Action::TogglePause),
                PauseResume::Disabled { label, reason } => button(ui, label, Err(reason), "", Action::TogglePause),
            }
            let step = controls.step.as_ref().map(|_| ()).map_err(String::as_str);
            button(
                ui,
                "Step",
                step,
                "Train one iteration, then pause (Right arrow)",
                Action::Step,
            );
            let stop = if controls.stop {
                Ok(())
            } else {
                Err("nothing is training")
            };
            button(
                ui,
                "Stop",
                stop,
                "End the run and write its last checkpoint",
                Action::Stop,
            );
            let reset = if controls.reset {
                Ok(())
            } else {
                Err("there is no run to clear")
            };
            button(ui, "Reset", reset, "Stop the run and clear the plots", Action::Reset);
            let (fork, hint) = match &controls.fork {
                Ok(step) => (
                    Ok(()),
                    format!(
                        "Start a child run from step {step} with the settings on the left; this run stays as it is"
                    ),
                ),
                Err(reason) => (Err(reason.as_str()), String::new()),
            };
            button(ui, "Fork", fork, &hint, Action::Fork);
            ui.separator();
            if exportable.samples {
                button(
                    ui,
                    "Save samples...",
                    Ok(()),
                    "Save the sample grid as PNG",
                    Action::SaveGrid(GridKind::Samples),
                );
            }
            if exportable.reconstructions {
                let action = Action::SaveGrid(GridKind::Reconstructions);
                button(
                    ui,
                    "Save reconstructions...",
                    Ok(()),
                    "Save the reconstruction grid as PNG",
                    action,
                );
            }
            let metrics = if exportable.metrics {
                Ok(())
            } else {
                Err("no metrics yet")
            };
            button(
                ui,
                "Export CSV...",
                metrics,
                "Save every metric of the run as CSV",
                Action::ExportCsv,
            );
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.selectable_value(theme, Theme::Light, "Light");
                ui.selectable_value(theme, Theme::Dark, "Dark");
                ui.label("Theme");
                ui.separator();
                // Right to left: the box first, then its label on its left.
                let combo = egui::ComboBox::from_id_salt("live frames")
                    .width(64.0)
                    .selected_text(refresh.label())
                    .show_ui(ui, |ui| {
                        for choice in LiveRefresh::CHOICES {
                            ui.selectable_value(refresh, choice, choice.label());
                        }
                    })
                    .response;
                let label = ui.label("Live frames");
                combo.labelled_by(label.id).on_hover_text(
                    "How often a training run redraws the window. Auto: up to 20 frames a second, fewer when \
                     drawing is slow (a software renderer), so drawing takes a small share of the machine.",
                );
            });
        });
        actions
    }
}
