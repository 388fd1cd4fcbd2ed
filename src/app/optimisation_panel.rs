//! The Optimisation section: optimiser and its hyperparameters, the loss and its knobs, seed and budget.
//! Rows appear only where they apply to the chosen model and optimiser.

use super::widgets::{bounded, choice, form_row, learning_rate, CORRUPTIONS, GAN_LOSSES, OPTIMIZERS};
use crate::config::{Corruption, GanLoss, ModelKind, OptimizerKind, RunConfig, Updates};
use eframe::egui;
use egui::{DragValue, Grid, Response, Ui};

pub struct OptimisationPanel;

impl OptimisationPanel {
    pub fn show(&mut self, ui: &mut Ui, config: &mut RunConfig) {
        let kind = config.model.kind;
        Grid::new("optimisation").num_columns(2).show(ui, |ui| {
            let o = &mut config.optimizer;
            form_row(ui, "Optimiser", |ui| choice(ui, "optimizer", &mut o.kind, &OPTIMIZERS));
            if kind.is_gan() {
                form_row(ui, "G learning rate", |ui| learning_rate(ui, &mut o.lr));
                form_row(ui, "D learning rate", |ui| {
                    let mut lr_d = o.lr_d();
                    if learning_rate(ui, &mut lr_d).changed() {
                        o.lr_d = Some(lr_d);
                    }
                });
            } else {
                form_row(ui, "Learning rate", |ui| learning_rate(ui, &mut o.lr));
            }
            if matches!(o.kind, OptimizerKind::Adam | OptimizerKind::AdamW) {
                form_row(ui, "beta1", |ui| unit(ui, &mut o.beta1)).on_hover_text("Momentum of the gradient average");
                form_row(ui, "beta2", |ui| unit(ui, &mut o.beta2)).on_hover_text("Momentum of the squared gradients");
            }
            if o.kind == OptimizerKind::Rmsprop {
                form_row(ui, "alpha", |ui| unit(ui, &mut o.alpha)).on_hover_text("Squared-gradient smoothing");
            }
            if matches!(o.kind, OptimizerKind::Sgd | OptimizerKind::Rmsprop) {
                form_row(ui, "Momentum", |ui| unit(ui, &mut o.momentum));
            }
            form_row(ui, "Weight decay", |ui| {
                bounded(
                    ui,
                    0.0..=1.0,
                    DragValue::new(&mut o.weight_decay).speed(1e-4).max_decimals(5),
                )
            })
            .on_hover_text(if o.kind == OptimizerKind::AdamW {
                "Decoupled weight decay"
            } else {
                "L2 penalty"
            });

            let t = &mut config.train;
            form_row(ui, "Batch size", |ui| {
                bounded(ui, 1..=4096, DragValue::new(&mut t.batch_size).speed(1.0))
            });
            if kind.is_gan() {
                form_row(ui, "Loss", |ui| choice(ui, "gan-loss", &mut t.loss, &GAN_LOSSES));
                form_row(ui, "D steps per G step", |ui| {
                    bounded(ui, 1..=10, DragValue::new(&mut t.d_steps).speed(0.05))
                });
                // Each choice keeps its own name (form_row would name them all "Update").
                ui.label("Update").on_hover_text(
                    "Which networks a step updates: hold one still to watch what the other does (Step then takes \
                     one D or one G update)",
                );
                ui.horizontal(|ui| {
                    for (updates, name) in [
                        (Updates::Both, "D and G"),
                        (Updates::Discriminator, "D only"),
                        (Updates::Generator, "G only"),
                    ] {
                        ui.selectable_value(&mut t.updates, updates, name);
                    }
                });
                ui.end_row();
                form_row(ui, "Label smoothing", |ui| {
                    bounded(
                        ui,
                        0.0..=0.45,
                        DragValue::new(&mut t.label_smoothing).speed(0.005).fixed_decimals(2),
                    )
                })
                .on_hover_text("One-sided: D's target for real data is 1 minus this");
                form_row(ui, "G average (EMA)", |ui| {
                    bounded(
                        ui,
                        0.0..=0.9999,
                        DragValue::new(&mut t.ema).speed(0.0005).max_decimals(4),
                    )
                })
                .on_hover_text(
                    "Decay of a moving average of G's weights (EMA) that the samples, the quality metric and the \
                     views come from: 0.99-0.999 smooths out the oscillation of GAN training; 0 shows G as trained",
                );
                if t.loss == GanLoss::Wasserstein {
                    form_row(ui, "Weight clip", |ui| {
                        bounded(
                            ui,
                            0.001..=1.0,
                            DragValue::new(&mut t.clip).speed(0.001).max_decimals(3),
                        )
                    })
                    .on_hover_text("The critic's weights are clipped to [-clip, clip]");
                }
            }
            let m = &mut config.model;
            if kind.is_vae() {
                form_row(ui, "beta (KL weight)", |ui| {
                    bounded(ui, 0.0..=20.0, DragValue::new(&mut m.beta).speed(0.01).max_decimals(3))
                })
                .on_hover_text("Weight of the KL term: higher gives smoother codes, blurrier reconstructions");
            }
            if kind == ModelKind::DenoisingAe {
                form_row(ui, "Corruption", |ui| {
                    choice(ui, "corruption", &mut m.corruption, &CORRUPTIONS)
                });
                let (range, hint) = match m.corruption {
                    Corruption::Gaussian => (0.0..=2.0, "Standard deviation of the added noise"),
                    Corruption::Mask => (0.0..=0.95, "Fraction of pixels blanked"),
                };
                form_row(ui, "Noise level", |ui| {
                    bounded(
                        ui,
                        range,
                        DragValue::new(&mut m.noise_level).speed(0.005).max_decimals(3),
                    )
                })
                .on_hover_text(hint);
            }
            form_row(ui, "Seed", |ui| ui.add(DragValue::new(&mut t.seed).speed(0.2)))
                .on_hover_text("Fixes weights, batches and noise");
            form_row(ui, "Step budget", |ui| {
                bounded(ui, 1..=10_000_000, DragValue::new(&mut t.steps).speed(10.0))
            })
            .on_hover_text("The run finishes after this many steps; raise it to continue a finished run");
            form_row(ui, "Steps per second", |ui| {
                bounded(ui, 0.0..=1000.0, DragValue::new(&mut t.max_steps_per_s).speed(0.2))
            })
            .on_hover_text(
                "At most this many steps a second, to follow each update by eye (slow motion); 0 is as fast as it goes",
            );
            form_row(ui, "Samples every", |ui| {
                bounded(ui, 1..=100_000, DragValue::new(&mut t.sample_every).speed(1.0))
            });
            if !kind.is_gan() {
                form_row(ui, "Evaluate every", |ui| {
                    bounded(ui, 1..=100_000, DragValue::new(&mut t.eval_every).speed(1.0))
                })
                .on_hover_text("Steps between held-out reconstruction losses");
            }
        });
    }
}

/// A field for a value in [0, 1): betas, momentum, alpha.
fn unit(ui: &mut Ui, value: &mut f64) -> Response {
    bounded(ui, 0.0..=0.9999, DragValue::new(value).speed(0.001).max_decimals(4))
}
