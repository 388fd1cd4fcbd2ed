//! The Data section: which dataset, its size, resolution and channels where they apply, and a preview of
//! the items the model will see.

use super::data_preview::{PreviewState, Progress};
use super::path_prompt::PathFor;
use super::pictures::{GridView, ScatterView};
use super::settings::GridZoom;
use super::widgets::{bounded, choice, form_row, FITS};
use crate::config::DataConfig;
use crate::data::toy::{MAX_DRAWN, TOY_NAMES};
use crate::data::DataSpec;
use eframe::egui;
use egui::{ComboBox, DragValue, Grid, Slider, Ui, Vec2};
use egui_plot::{Plot, Points};
use rand::Rng;

/// Height the preview may take in the panel.
const PREVIEW_HEIGHT: f32 = 280.0;

/// Datasets read from disk through a folder picker: (source prefix, button label, what the folder holds).
const FOLDER_SOURCES: [(&str, &str, &str); 2] = [
    (
        "idx",
        "IDX folder...",
        "A folder with MNIST-style IDX files (train-images-idx3-ubyte and labels)",
    ),
    (
        "folder",
        "Image folder...",
        "A folder of images (PNG, JPEG, ...), one subfolder per class or flat",
    ),
];

pub struct DataPanel {
    preview: GridView,
    /// Radius of the drawing canvas's brush, in data units.
    brush: f32,
}

impl Default for DataPanel {
    fn default() -> Self {
        DataPanel {
            preview: GridView::new("data-preview"),
            brush: 0.06,
        }
    }
}

/// Points a press on the drawing canvas sprays per frame.
const SPRAY: usize = 4;

impl DataPanel {
    /// Returns the folder to ask for when a From disk button was pressed.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        data: &mut DataConfig,
        preview: PreviewState<'_>,
        preview_version: u64,
    ) -> Option<PathFor> {
        let mut ask = None;
        Grid::new("data").num_columns(2).show(ui, |ui| {
            form_row(ui, "Dataset", |ui| dataset_picker(ui, &mut data.source));
            form_row(ui, "From disk", |ui| {
                for (prefix, label, hint) in FOLDER_SOURCES {
                    if ui.button(label).on_hover_text(hint).clicked() {
                        ask = Some(PathFor::DataFolder(prefix));
                    }
                }
            });
            if generated(&data.source) {
                form_row(ui, "Items", |ui| {
                    bounded(ui, 16..=1_000_000, DragValue::new(&mut data.count).speed(50.0))
                })
                .on_hover_text("How many items to generate");
            }
            form_row(ui, "Held-out fraction", |ui| {
                bounded(
                    ui,
                    0.0..=0.5,
                    DragValue::new(&mut data.holdout).speed(0.005).fixed_decimals(3),
                )
            })
            .on_hover_text("Kept out of training, for held-out losses and reconstructions");
            if takes_size(&data.source) {
                form_row(ui, "Resolution", |ui| {
                    choice(
                        ui,
                        "resolution",
                        &mut data.image_size,
                        &[(28, "28 x 28"), (32, "32 x 32"), (64, "64 x 64")],
                    )
                });
                form_row(ui, "Channels", |ui| {
                    choice(
                        ui,
                        "channels",
                        &mut data.channels,
                        &[(1, "1 (grayscale)"), (3, "3 (RGB)")],
                    )
                });
            }
            if matches!(DataSpec::parse(&data.source), Ok(DataSpec::Folder(_))) {
                form_row(ui, "Fit", |ui| choice(ui, "fit", &mut data.fit, &FITS));
            }
        });
        ui.add_space(4.0);
        if DataSpec::parse(&data.source) == Ok(DataSpec::Drawn) {
            let side = ui.available_width().min(PREVIEW_HEIGHT);
            draw_points(ui, &mut data.points, &mut self.brush, side);
            return ask;
        }
        match preview {
            PreviewState::Loading(progress) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(match progress {
                        Some(progress) => describe_progress(&progress),
                        None => "Loading the data...".to_string(),
                    });
                });
            }
            PreviewState::Failed(reason) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Cannot load the data: {reason}"));
            }
            PreviewState::Ready(preview) => {
                ui.label(preview.summary.describe());
                let space = Vec2::new(ui.available_width(), PREVIEW_HEIGHT);
                if let Some(grid) = &preview.summary.preview {
                    self.preview
                        .show(ui, grid, preview_version, &mut GridZoom::default(), space);
                } else if let Some(points) = &preview.points {
                    let size = Vec2::splat(space.x.min(space.y));
                    ScatterView::show(ui, DATA_PREVIEW_PLOT, points, None, size, false);
                }
                for note in &preview.summary.notes {
                    ui.weak(note);
                }
            }
        }
        ask
    }
}

/// The datasets to pick from: (source, description).
fn dataset_choices() -> Vec<(String, &'static str)> {
    let mut choices = vec![
        (
            "digits".to_string(),
            "Handwritten-style digits drawn on the fly: 28x28 grayscale, 10 classes",
        ),
        (
            "shapes".to_string(),
            "Circles, squares, triangles and crosses drawn on the fly, at the resolution you choose",
        ),
        (
            "drawn".to_string(),
            "2D points you draw: press or drag on the canvas that appears below",
        ),
        ("mnist".to_string(), "MNIST handwritten digits, downloaded once"),
        (
            "fashion-mnist".to_string(),
            "Fashion-MNIST clothing images, downloaded once",
        ),
    ];
    choices.extend(
        TOY_NAMES
            .iter()
            .map(|name| (format!("toy:{name}"), "2D points, to watch a GAN cover the modes")),
    );
    choices
}

fn dataset_picker(ui: &mut Ui, source: &mut String) {
    ComboBox::from_id_salt("dataset")
        .selected_text(source.as_str())
        .width(190.0)
        .truncate()
        .show_ui(ui, |ui| {
            for (choice, description) in dataset_choices() {
                if ui
                    .selectable_label(*source == choice, &choice)
                    .on_hover_text(description)
                    .clicked()
                {
                    *source = choice;
                }
            }
        });
}

/// Whether the data is made up on the spot, so `data.count` sets its size.
fn generated(source: &str) -> bool {
    matches!(
        DataSpec::parse(source),
        Ok(DataSpec::Digits | DataSpec::Shapes | DataSpec::Toy(_) | DataSpec::Drawn)
    )
}

/// The canvas `drawn` data comes from: pressing or dragging sprays points within the brush, up to
/// `MAX_DRAWN`; the items are made around them.
fn draw_points(ui: &mut Ui, points: &mut Vec<[f32; 2]>, brush: &mut f32, side: f32) {
    ui.horizontal(|ui| {
        ui.label("Brush");
        ui.add(Slider::new(brush, 0.0..=0.3).fixed_decimals(2))
            .on_hover_text("Radius the points are sprayed within (0: exactly where you press)");
        if ui.button("Clear points").clicked() {
            points.clear();
        }
    });
    ui.weak(match points.len() {
        0 => "Press or drag on the plane to draw the distribution to learn.".to_string(),
        n if n >= MAX_DRAWN => format!("{n} points drawn: the most kept."),
        n => format!("{n} points drawn; each item is one of them, moved by a little noise."),
    });
    let response = Plot::new("drawing canvas")
        .width(side)
        .height(side)
        .data_aspect(1.0)
        .include_x(-1.0)
        .include_x(1.0)
        .include_y(-1.0)
        .include_y(1.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .allow_double_click_reset(false)
        .show(ui, |plot| {
            let shown: Vec<[f64; 2]> = points.iter().map(|p| p.map(f64::from)).collect();
            plot.points(Points::new("drawn points", shown).radius(2.0));
            let pressed = plot.response().clicked() || plot.response().is_pointer_button_down_on();
            pressed.then(|| plot.pointer_coordinate()).flatten()
        });
    response
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "drawing canvas"));
    if let Some(at) = response.inner {
        let mut rng = rand::rng();
        for _ in 0..SPRAY.min(MAX_DRAWN.saturating_sub(points.len())) {
            let (sin, cos) = rng.random_range(0.0..std::f32::consts::TAU).sin_cos();
            let radius = *brush * rng.random_range(0.0f32..1.0).sqrt();
            points.push([at.x as f32 + radius * cos, at.y as f32 + radius * sin]);
        }
        ui.ctx().request_repaint();
    }
}

/// Whether the data is drawn or resized to `image_size` and `channels`.
fn takes_size(source: &str) -> bool {
    matches!(DataSpec::parse(source), Ok(DataSpec::Shapes | DataSpec::Folder(_)))
}

/// The id of the toy data's preview plot.
pub const DATA_PREVIEW_PLOT: &str = "data-preview";

/// `downloading train-images: 45%`, or the megabytes so far when the total is unknown.
pub fn describe_progress((what, done, total): &Progress) -> String {
    if *total > 0 {
        format!("{what}: {}%", done * 100 / total)
    } else {
        format!("{what}: {:.1} MB", *done as f64 / 1e6)
    }
}
