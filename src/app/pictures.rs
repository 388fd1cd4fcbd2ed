//! What the model makes: the fixed-noise sample grid, the reconstruction grid and, for 2D toy data, a
//! scatter of real against generated points.

use super::settings::{GridZoom, ToyViews};
use crate::config::ModelKind;
use crate::grid::{ImageGrid, GRID_PADDING};
use crate::train::session::Interpolation;
use crate::train::toy_views::{Heatmap, EXTENT, MANIFOLD_CELLS};
use crate::train::worker::Snapshot;
use crate::train::PointCloud;
use eframe::egui;
use egui::load::SizedTexture;
use egui::{Color32, ColorImage, Image, Rect, Slider, TextureHandle, TextureOptions, Ui, Vec2};
use egui_plot::{Arrows, Legend, Line, Plot, PlotImage, PlotPoint, Points};

/// Zoom limits, in screen points per image pixel.
const MIN_ZOOM: f32 = 0.5;
const MAX_ZOOM: f32 = 12.0;

/// An image grid shown crisp (nearest-neighbour) at the grid zoom; Ctrl+scroll or pinch over it zooms.
pub struct GridView {
    name: &'static str,
    texture: Option<TextureHandle>,
    version: u64,
}

impl GridView {
    pub fn new(name: &'static str) -> GridView {
        GridView {
            name,
            texture: None,
            version: 0,
        }
    }

    /// Shows `grid`, uploading it when `version` changed, within `space` when the zoom fits.
    pub fn show(&mut self, ui: &mut Ui, grid: &ImageGrid, version: u64, zoom: &mut GridZoom, space: Vec2) -> ShownGrid {
        let image = || ColorImage::from_rgba_unmultiplied([grid.width, grid.height], &grid.rgba);
        match &mut self.texture {
            Some(texture) if self.version == version => {}
            Some(texture) => texture.set(image(), TextureOptions::NEAREST),
            None => self.texture = Some(ui.ctx().load_texture(self.name, image(), TextureOptions::NEAREST)),
        }
        self.version = version;
        let texture = self.texture.as_ref().expect("uploaded above");
        let pixels = Vec2::new(grid.width as f32, grid.height as f32);
        let scale = if zoom.fit {
            (space.x / pixels.x).min(space.y / pixels.y).clamp(MIN_ZOOM, MAX_ZOOM)
        } else {
            zoom.factor
        };
        let size = pixels * scale;
        let scrolled = egui::ScrollArea::both()
            .id_salt(self.name)
            .max_height(space.y)
            .show(ui, |ui| {
                let image = Image::from_texture(SizedTexture::new(texture.id(), size))
                    .fit_to_exact_size(size)
                    .sense(egui::Sense::click());
                let response = ui.add(image);
                let name = self.name;
                response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, name));
                response
            });
        let response = scrolled.inner;
        if response.hovered() {
            let factor = ui.input(|i| i.zoom_delta());
            if factor != 1.0 {
                zoom.fit = false;
                zoom.factor = (scale * factor).clamp(MIN_ZOOM, MAX_ZOOM);
            }
        }
        let clicked = response.clicked().then(|| response.interact_pointer_pos()).flatten();
        ShownGrid {
            rect: response.rect,
            visible: response.rect.intersect(scrolled.inner_rect),
            clicked: clicked.map(|at| (at - response.rect.min) / scale),
        }
    }
}

/// Where a grid was drawn and what was done to it.
pub struct ShownGrid {
    /// The whole grid on screen (larger than `visible` when zoomed in past the space it has).
    pub rect: Rect,
    /// The part of it in view.
    pub visible: Rect,
    /// The pixel of the grid that was clicked, if one was.
    pub clicked: Option<Vec2>,
}

/// The Fit toggle and zoom slider that scale every grid.
pub fn zoom_controls(ui: &mut Ui, zoom: &mut GridZoom) {
    ui.horizontal(|ui| {
        ui.checkbox(&mut zoom.fit, "Fit");
        let label = ui.label("Zoom");
        ui.add_enabled(
            !zoom.fit,
            Slider::new(&mut zoom.factor, MIN_ZOOM..=MAX_ZOOM)
                .logarithmic(true)
                .suffix("x"),
        )
        .labelled_by(label.id)
        .on_hover_text("Screen pixels per image pixel (Ctrl+scroll over a grid also zooms)");
    });
}

/// Real points (grey) and the model's points (orange) at a fixed 1:1 aspect over the toy data's range; for
/// a model, what it computes over the plane as well (see [`ModelViews`]).
pub struct ScatterView;

/// What the scatter shows of the model itself, over its points: D's output as a heatmap, G's image of a
/// latent grid as a mesh, and the direction G's loss moves each generated point as arrows.
pub struct ModelViews<'a> {
    pub cloud: &'a PointCloud,
    /// The legend name of the model's points ("generated" or "reconstructed").
    pub name: &'a str,
    /// D's output as a texture, when the heatmap is shown.
    pub heatmap: Option<&'a TextureHandle>,
    pub shown: &'a ToyViews,
}

/// Diverging colours of D's output: purple where D says fake (0), grey at 0.5, green where it says real (1),
/// as GAN Lab colours them.
fn decision_color(p: f32) -> Color32 {
    let (fake, middle, real) = ([120.0, 60.0, 170.0], [90.0, 90.0, 90.0], [40.0, 160.0, 90.0]);
    let (from, to, t) = match p < 0.5 {
        true => (fake, middle, p / 0.5),
        false => (middle, real, (p - 0.5) / 0.5),
    };
    let channel = |k: usize| (from[k] + (to[k] - from[k]) * t.clamp(0.0, 1.0)) as u8;
    Color32::from_rgb(channel(0), channel(1), channel(2))
}

/// D's output as an image, top row the largest y.
pub fn heatmap_image(heatmap: &Heatmap) -> ColorImage {
    let n = heatmap.cells;
    let pixels = (0..n)
        .rev()
        .flat_map(|row| (0..n).map(move |col| decision_color(heatmap.values[row * n + col])))
        .collect();
    ColorImage::new([n, n], pixels)
}

/// The heatmap's colour scale, with its ends named.
fn heatmap_legend(ui: &mut Ui) {
    ui.horizontal(|ui| {
        ui.weak("D(x): fake 0");
        let (rect, _) = ui.allocate_exact_size(Vec2::new(120.0, 10.0), egui::Sense::hover());
        let steps = 24;
        for k in 0..steps {
            let x0 = rect.left() + rect.width() * k as f32 / steps as f32;
            let x1 = rect.left() + rect.width() * (k + 1) as f32 / steps as f32;
            let cell = egui::Rect::from_x_y_ranges(x0..=x1, rect.y_range());
            ui.painter()
                .rect_filled(cell, 0.0, decision_color((k as f32 + 0.5) / steps as f32));
        }
        ui.weak("1 real");
    });
}

impl ScatterView {
    /// `model` is the model's points and what it computes over the plane. A zoomable view pans by dragging
    /// and zooms with Ctrl+scroll (and says so, with how to reset); one that is not (a preview in a
    /// scrolling panel) leaves the pointer and the wheel to the panel. The plot's memory is under
    /// `Id::unique(id)`.
    pub fn show(ui: &mut Ui, id: &str, real: &[[f32; 2]], model: Option<ModelViews<'_>>, size: Vec2, zoomable: bool) {
        let to_plot = |points: &[[f32; 2]]| points.iter().map(|p| [p[0] as f64, p[1] as f64]).collect::<Vec<_>>();
        let heatmap_shown = model.as_ref().is_some_and(|m| m.heatmap.is_some());
        let height = size.y - if zoomable { 18.0 } else { 0.0 } - if heatmap_shown { 18.0 } else { 0.0 };
        let extent = f64::from(EXTENT);
        // The theme's strongest text colour: light on the dark theme, dark on the light one's white plane.
        let arrow_color = ui.visuals().strong_text_color();
        Plot::new(id)
            .id(egui::Id::unique(id))
            .width(size.x)
            .height(height)
            .allow_scroll(false)
            .allow_zoom(zoomable)
            .allow_drag(zoomable)
            .allow_boxed_zoom(zoomable)
            .data_aspect(1.0)
            .default_x_bounds(-extent, extent)
            .default_y_bounds(-extent, extent)
            .legend(Legend::default().follow_insertion_order(true))
            .show(ui, |plot| {
                if let Some(texture) = model.as_ref().and_then(|m| m.heatmap) {
                    let side = 2.0 * EXTENT;
                    plot.image(PlotImage::new(
                        "D(x)",
                        texture.id(),
                        PlotPoint::new(0.0, 0.0),
                        Vec2::splat(side),
                    ));
                }
                if let Some(mesh) = model
                    .as_ref()
                    .filter(|m| m.shown.manifold)
                    .and_then(|m| m.cloud.manifold.as_ref())
                {
                    let side = MANIFOLD_CELLS + 1;
                    let color = Color32::from_rgba_unmultiplied(255, 200, 120, 110);
                    for k in 0..side {
                        let row: Vec<[f32; 2]> = (0..side).map(|i| mesh[k * side + i]).collect();
                        let column: Vec<[f32; 2]> = (0..side).map(|i| mesh[i * side + k]).collect();
                        for line in [row, column] {
                            plot.line(
                                Line::new("latent grid through G", to_plot(&line))
                                    .color(color)
                                    .width(1.0),
                            );
                        }
                    }
                }
                plot.points(
                    Points::new("real", to_plot(real))
                        .radius(1.5)
                        .color(Color32::from_gray(150)),
                );
                if let Some(model) = &model {
                    let orange = Color32::from_rgb(255, 140, 40);
                    let generated = &model.cloud.generated;
                    plot.points(Points::new(model.name, to_plot(generated)).radius(1.5).color(orange));
                    if let Some(arrows) = model.cloud.arrows.as_ref().filter(|_| model.shown.arrows) {
                        // The longest arrow is a tenth of the plane; the others in proportion.
                        let longest = arrows.iter().map(|a| a[0].hypot(a[1])).fold(0.0, f32::max);
                        let scale = if longest > 0.0 { 0.2 * EXTENT / longest } else { 0.0 };
                        let tips: Vec<[f32; 2]> = generated
                            .iter()
                            .zip(arrows)
                            .map(|(p, a)| [p[0] + scale * a[0], p[1] + scale * a[1]])
                            .collect();
                        plot.arrows(
                            Arrows::new("G's gradient", to_plot(generated), to_plot(&tips))
                                .color(arrow_color)
                                .tip_length(4.0),
                        );
                    }
                }
            });
        if heatmap_shown {
            heatmap_legend(ui);
        }
        if zoomable {
            ui.weak("Drag to pan, Ctrl+scroll to zoom, double-click to reset");
        }
    }
}

/// A texture version for grids identified by `key` (a run and step, say): a new key uploads again.
pub fn version_of(key: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// The right-hand side of the central area: whatever pictures the run's newest snapshot holds.
pub struct PicturesPanel {
    samples: GridView,
    reconstructions: GridView,
    interpolation: GridView,
    /// Whether the next click on a sample moves the interpolation's second end (else its first).
    moves_second_end: bool,
    /// D's heatmap as a texture, with the snapshot version it was made from.
    heatmap: Option<(u64, TextureHandle)>,
    /// The step of the grids shown last.
    shown_step: Option<u64>,
}

impl Default for PicturesPanel {
    fn default() -> Self {
        PicturesPanel {
            samples: GridView::new("samples"),
            reconstructions: GridView::new("reconstructions"),
            interpolation: GridView::new("interpolation"),
            moves_second_end: true,
            heatmap: None,
            shown_step: None,
        }
    }
}

/// What the pictures panel shows: the live snapshot, or a filmstrip frame read back from disk.
pub struct Pictures<'a> {
    pub step: u64,
    pub samples: Option<&'a ImageGrid>,
    pub reconstructions: Option<&'a ImageGrid>,
    pub points: Option<&'a PointCloud>,
    /// Live only: the model's images between two samples.
    pub interpolation: Option<&'a Interpolation>,
    /// Changes whenever the grids do (their textures are uploaded again then).
    pub version: u64,
}

impl<'a> Pictures<'a> {
    pub fn live(snapshot: &'a Snapshot, version: u64) -> Pictures<'a> {
        Pictures {
            step: snapshot.step,
            samples: snapshot.samples.as_ref(),
            reconstructions: snapshot.reconstructions.as_ref(),
            points: snapshot.points.as_ref(),
            interpolation: snapshot.interpolation.as_ref(),
            version,
        }
    }
}

impl PicturesPanel {
    pub fn shown_step(&self) -> Option<u64> {
        self.shown_step
    }

    /// Nothing is shown (no run in view).
    pub fn forget_step(&mut self) {
        self.shown_step = None;
    }

    /// `columns`: the sample grid's, to find the sample a click picks.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        kind: ModelKind,
        columns: usize,
        snapshot: &Pictures<'_>,
        zoom: &mut GridZoom,
        toy: &mut ToyViews,
    ) -> Option<(usize, usize)> {
        let version = snapshot.version;
        self.shown_step = Some(snapshot.step);
        if snapshot.samples.is_some() || snapshot.reconstructions.is_some() {
            zoom_controls(ui, zoom);
        }
        let shown = [
            snapshot.points.is_some(),
            snapshot.samples.is_some(),
            snapshot.reconstructions.is_some(),
        ];
        let views = shown.iter().filter(|s| **s).count().max(1) as f32;
        // Each view gets an equal share of the height, less its heading and caption.
        let share = Vec2::new(ui.available_width(), ui.available_height() / views - 48.0).max(Vec2::splat(64.0));
        if let Some(points) = snapshot.points {
            // Plain autoencoders reconstruct the real points; GANs and VAEs generate new ones.
            let name = if kind.generates() { "generated" } else { "reconstructed" };
            ui.heading(format!("Real vs {name}, step {}", snapshot.step));
            ui.horizontal(|ui| {
                if points.heatmap.is_some() {
                    ui.checkbox(&mut toy.heatmap, "D heatmap")
                        .on_hover_text("D's probability that a point is real, over the plane");
                }
                if points.manifold.is_some() {
                    ui.checkbox(&mut toy.manifold, "G manifold")
                        .on_hover_text("A regular grid over the first two latent dimensions, drawn through G");
                }
                if points.arrows.is_some() {
                    ui.checkbox(&mut toy.arrows, "Gradient arrows")
                        .on_hover_text("Where G's loss moves each generated point (longest scaled to a tenth)");
                }
            });
            let texture = match (&points.heatmap, toy.heatmap) {
                (Some(heatmap), true) => {
                    if self.heatmap.as_ref().is_none_or(|(v, _)| *v != version) {
                        let image = heatmap_image(heatmap);
                        let texture = ui.ctx().load_texture("d-heatmap", image, TextureOptions::LINEAR);
                        self.heatmap = Some((version, texture));
                    }
                    self.heatmap.as_ref().map(|(_, t)| t)
                }
                _ => None,
            };
            let size = Vec2::splat(share.x.min(share.y));
            let model = ModelViews {
                cloud: points,
                name,
                heatmap: texture,
                shown: toy,
            };
            ScatterView::show(ui, "scatter", &points.real, Some(model), size, true);
        }
        let mut ends = None;
        if let Some(grid) = snapshot.samples {
            ui.heading(format!("Samples, step {}", snapshot.step));
            ui.weak(if kind.is_gan() {
                "The same fixed noise vectors every time, so you see the generator change."
            } else {
                "The decoder applied to the same fixed latent vectors every time."
            });
            // The interpolation strip (two rows under a heading) takes 30 % of the samples' space.
            let (grid_share, strip_share) = match snapshot.interpolation {
                Some(_) => (share * Vec2::new(1.0, 0.7), Vec2::new(share.x, share.y * 0.3 - 20.0)),
                None => (share, Vec2::ZERO),
            };
            let clicked = self.samples.show(ui, grid, version, zoom, grid_share).clicked;
            if let (Some(at), Some(strip)) = (clicked, snapshot.interpolation) {
                // A click on a tile moves one end of the strip there, the two ends in turn.
                let cell = ((grid.width - GRID_PADDING) / columns) as f32;
                let tile = (at.y / cell) as usize * columns + ((at.x / cell) as usize).min(columns - 1);
                self.moves_second_end = !self.moves_second_end;
                ends = Some(match self.moves_second_end {
                    true => (strip.ends.0, tile),
                    false => (tile, strip.ends.1),
                });
            }
            if let Some(strip) = snapshot.interpolation {
                ui.strong(format!(
                    "From sample {} to sample {}",
                    strip.ends.0 + 1,
                    strip.ends.1 + 1
                ))
                .on_hover_text(
                    "Top: the straight line between their latent vectors; below: along the sphere (slerp). \
                     Click samples to choose the ends.",
                );
                self.interpolation
                    .show(ui, &strip.grid, version, zoom, strip_share.max(Vec2::splat(32.0)));
            }
        }
        if let Some(grid) = snapshot.reconstructions {
            ui.heading(format!("Reconstructions, step {}", snapshot.step));
            ui.weak(if kind == ModelKind::DenoisingAe {
                "Pairs of columns: a held-out input with noise added, then the model's clean reconstruction."
            } else {
                "Pairs of columns: a held-out input, then the model's reconstruction of it."
            });
            self.reconstructions.show(ui, grid, version, zoom, share);
        }
        ends
    }
}
