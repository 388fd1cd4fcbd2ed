//! The Experiment section: preset, model family and kind, the architecture controls that apply to the
//! chosen model, and the live parameter count / shape pre-flight.

use super::launch_check::Verdict;
use super::settings::Settings;
use super::widgets::{bounded, choice, form_row, ACTIVATIONS, NORMS, RECONS};
use crate::config::{ModelConfig, ModelKind};
use crate::presets::{self, PRESETS};
use eframe::egui;
use egui::{ComboBox, DragValue, Grid, Ui};

pub struct ExperimentPanel;

impl ExperimentPanel {
    /// `check` is the launch check of the config as it was at the start of the frame.
    /// `speed` (multiply-adds/s) turns the estimate's work into time, once known.
    pub fn show(&mut self, ui: &mut Ui, settings: &mut Settings, check: &Verdict, speed: Option<f64>) {
        ui.horizontal(|ui| {
            let label = ui.label("Preset");
            ui.label_inputs_by(label.id, |ui| preset_picker(ui, settings));
        });
        match PRESETS
            .iter()
            .find(|(name, _)| Some(*name) == presets::matching(&settings.config))
        {
            Some((_, text)) => ui.weak(presets::description(text)),
            None => ui.weak("Custom settings: edited, or another run's. Pick a preset to start from one."),
        };
        let model = &mut settings.config.model;
        ui.horizontal(|ui| {
            let label = ui.label("Family");
            ui.label_inputs_by(label.id, |ui| family_picker(ui, model));
        });
        let gan = model.kind.is_gan();
        ui.horizontal_wrapped(|ui| {
            ui.label("Model");
            for kind in ModelKind::ALL.into_iter().filter(|k| k.is_gan() == gan) {
                ui.selectable_value(&mut model.kind, kind, kind.label());
            }
        });
        ui.add_space(4.0);
        Grid::new("architecture")
            .num_columns(2)
            .show(ui, |ui| architecture(ui, model));
        ui.add_space(4.0);
        match check {
            Ok(launchable) => {
                for net in &launchable.networks {
                    ui.label(format!("{}: {} parameters", net.name, thousands(net.params)));
                }
                ui.label(launchable.footprint.describe(speed)).on_hover_text(
                    "Estimated before starting: memory of the data, the parameters with their gradients and \
                     optimiser state, and one step's activations; time per step from its multiply-adds and \
                     this machine's measured speed",
                );
            }
            Err(reason) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Cannot start: {reason}"));
            }
        }
    }
}

fn preset_picker(ui: &mut Ui, settings: &mut Settings) {
    let mut chosen = None;
    // The box names a preset only while the settings in view are exactly that preset's.
    let shown = presets::matching(&settings.config);
    ComboBox::from_id_salt("preset")
        .selected_text(shown.unwrap_or("custom"))
        .show_ui(ui, |ui| {
            for (name, text) in PRESETS {
                let response = ui.selectable_label(shown == Some(name), name);
                // Beside the list, not under the pointer: below, it hid the entries that follow.
                let mut description = egui::Tooltip::for_enabled(&response);
                description.popup = description.popup.align(egui::RectAlign::RIGHT_START);
                description.show(|ui| ui.label(presets::description(text)));
                if response.clicked() {
                    chosen = Some(name);
                }
            }
        });
    if let Some(name) = chosen {
        settings.config = presets::preset(name).expect("shipped presets are valid");
        settings.preset = name.to_string();
    }
}

/// GAN or autoencoder; switching keeps the model convolutional or not, so it still fits the data.
fn family_picker(ui: &mut Ui, model: &mut ModelConfig) {
    let (gan, conv) = (model.kind.is_gan(), model.kind.is_conv());
    if ui.radio(gan, "GAN").clicked() && !gan {
        model.kind = if conv { ModelKind::Dcgan } else { ModelKind::MlpGan };
    }
    if ui.radio(!gan, "Autoencoder").clicked() && gan {
        model.kind = if conv { ModelKind::ConvAe } else { ModelKind::Ae };
    }
}

fn architecture(ui: &mut Ui, model: &mut ModelConfig) {
    let kind = model.kind;
    form_row(ui, "Latent size", |ui| {
        bounded(ui, 1..=1024, DragValue::new(&mut model.latent).speed(0.5))
    })
    .on_hover_text(if kind.is_gan() {
        "Size of the noise vector z"
    } else {
        "Size of the code"
    });
    if !kind.is_conv() {
        let hint = if kind.is_gan() {
            "G's widths from z outwards; D uses them reversed"
        } else {
            "The decoder's widths from the code outwards; the encoder mirrors them"
        };
        for (i, width) in model.hidden.iter_mut().enumerate() {
            form_row(ui, &format!("Hidden layer {}", i + 1), |ui| {
                bounded(ui, 1..=4096, DragValue::new(width).speed(2.0))
            })
            .on_hover_text(hint);
        }
        ui.label("");
        ui.horizontal(|ui| {
            if ui.button("Add layer").clicked() {
                model.hidden.push(model.hidden.last().copied().unwrap_or(256));
            }
            if ui
                .add_enabled(model.hidden.len() > 1, egui::Button::new("Remove layer"))
                .clicked()
            {
                model.hidden.pop();
            }
        });
        ui.end_row();
    }
    form_row(ui, "Activation", |ui| {
        choice(ui, "activation", &mut model.activation, &ACTIVATIONS)
    });
    // Convolutional models take no layer norm (validation says so too).
    let norms = if kind.is_conv() { &NORMS[..2] } else { &NORMS[..] };
    form_row(ui, "Normalisation", |ui| choice(ui, "norm", &mut model.norm, norms));
    if kind.is_conv() {
        form_row(ui, "Base width", |ui| {
            bounded(ui, 4..=256, DragValue::new(&mut model.base_width).speed(0.5))
        })
        .on_hover_text("Channels of the first convolution (DCGAN's ngf = ndf); later layers double it");
    }
    if kind.is_gan() {
        form_row(ui, "Classes", |ui| {
            bounded(ui, 0..=1000, DragValue::new(&mut model.classes).speed(0.1))
        })
        .on_hover_text(
            "A conditional GAN: G makes a sample of the class it is given and D judges a sample with its \
             class, over as many classes as the data's labels (10 for digits); 0 is the plain GAN",
        );
    }
    if !kind.is_gan() {
        form_row(ui, "Reconstruction loss", |ui| {
            choice(ui, "recon", &mut model.recon, &RECONS)
        });
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
