//! What the model makes: the fixed-noise sample grid, the reconstruction grid and, for 2D toy data, a
//! scatter of real against generated points.

use super::settings::GridZoom;
use crate::config::ModelKind;
use crate::grid::ImageGrid;
use crate::train::worker::Snapshot;
use crate::train::PointCloud;
use eframe::egui;
use egui::load::SizedTexture;
use egui::{Color32, ColorImage, Image, Slider, TextureHandle, TextureOptions, Ui, Vec2};
use egui_plot::{Legend, Plot, Points};

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
    pub fn show(&mut self, ui: &mut Ui, grid: &ImageGrid, version: u64, zoom: &mut GridZoom, space: Vec2) {
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
        let response = egui::ScrollArea::both()
            .id_salt(self.name)
            .max_height(space.y)
            .show(ui, |ui| {
                ui.add(Image::from_texture(SizedTexture::new(texture.id(), size)).fit_to_exact_size(size))
            })
            .inner;
        if response.hovered() {
            let factor = ui.input(|i| i.zoom_delta());
            if factor != 1.0 {
                zoom.fit = false;
                zoom.factor = (scale * factor).clamp(MIN_ZOOM, MAX_ZOOM);
            }
        }
    }
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

/// Real points (grey) and the model's points (orange) at a fixed 1:1 aspect over the toy data's range.
pub struct ScatterView;

/// Toy data lies within about [-1, 1]; the plot shows a margin around it.
const SCATTER_EXTENT: f64 = 1.3;

impl ScatterView {
    /// `model` is the model's points and their legend name. A zoomable view pans by dragging and zooms with
    /// Ctrl+scroll (and says so, with how to reset); one that is not (a preview in a scrolling panel) leaves
    /// the pointer and the wheel to the panel. The plot's memory is under `Id::unique(id)`.
    pub fn show(
        ui: &mut Ui,
        id: &str,
        real: &[[f32; 2]],
        model: Option<(&str, &[[f32; 2]])>,
        size: Vec2,
        zoomable: bool,
    ) {
        let to_plot = |points: &[[f32; 2]]| points.iter().map(|p| [p[0] as f64, p[1] as f64]).collect::<Vec<_>>();
        let height = if zoomable { size.y - 18.0 } else { size.y };
        Plot::new(id)
            .id(egui::Id::unique(id))
            .width(size.x)
            .height(height)
            .allow_scroll(false)
            .allow_zoom(zoomable)
            .allow_drag(zoomable)
            .allow_boxed_zoom(zoomable)
            .data_aspect(1.0)
            .default_x_bounds(-SCATTER_EXTENT, SCATTER_EXTENT)
            .default_y_bounds(-SCATTER_EXTENT, SCATTER_EXTENT)
            .legend(Legend::default().follow_insertion_order(true))
            .show(ui, |plot| {
                plot.points(
                    Points::new("real", to_plot(real))
                        .radius(1.5)
                        .color(Color32::from_gray(150)),
                );
                if let Some((name, points)) = model {
                    let orange = Color32::from_rgb(255, 140, 40);
                    plot.points(Points::new(name, to_plot(points)).radius(1.5).color(orange));
                }
            });
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
    /// The step of the grids shown last.
    shown_step: Option<u64>,
}

impl Default for PicturesPanel {
    fn default() -> Self {
        PicturesPanel {
            samples: GridView::new("samples"),
            reconstructions: GridView::new("reconstructions"),
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

    pub fn show(&mut self, ui: &mut Ui, kind: ModelKind, snapshot: &Pictures<'_>, zoom: &mut GridZoom) {
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
            let name = if kind.is_gan() || kind.is_vae() {
                "generated"
            } else {
                "reconstructed"
            };
            ui.heading(format!("Real vs {name}, step {}", snapshot.step));
            let size = Vec2::splat(share.x.min(share.y));
            ScatterView::show(ui, "scatter", &points.real, Some((name, &points.generated)), size, true);
        }
        if let Some(grid) = snapshot.samples {
            ui.heading(format!("Samples, step {}", snapshot.step));
            ui.weak(if kind.is_gan() {
                "The same fixed noise vectors every time, so you see the generator change."
            } else {
                "The decoder applied to the same fixed latent vectors every time."
            });
            self.samples.show(ui, grid, version, zoom, share);
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
    }
}
