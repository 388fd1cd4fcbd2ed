//! The Latent space tab: an autoencoder's held-out items on its latent plane, coloured by label; hovering a
//! point shows its item, clicking anywhere decodes that point; for two-dimensional latent spaces the grid of
//! decodes over the plane. The engine makes all of it (`train::latent_views`); this only draws.

use super::controls::Action;
use super::pictures::GridView;
use super::settings::GridZoom;
use super::widgets::bounded;
use crate::data::{expected_shape, ItemShape};
use crate::grid::GRID_PADDING;
use crate::runs::RunSummary;
use crate::train::latent_views::{LatentMap, ITEM_COLUMNS, MANIFOLD_SIDE};
use crate::train::session::LatentWalk;
use crate::train::worker::Snapshot;
use eframe::egui;
use egui::load::SizedTexture;
use egui::{Color32, ColorImage, Image, Rect, TextureHandle, TextureOptions, Ui, Vec2};
use egui_plot::{Legend, MarkerShape, Plot, PlotPoint, Points};

/// Ten colours that tell labels apart (matplotlib's tab10).
const LABEL_COLORS: [Color32; 10] = [
    Color32::from_rgb(31, 119, 180),
    Color32::from_rgb(255, 127, 14),
    Color32::from_rgb(44, 160, 44),
    Color32::from_rgb(214, 39, 40),
    Color32::from_rgb(148, 103, 189),
    Color32::from_rgb(140, 86, 75),
    Color32::from_rgb(227, 119, 194),
    Color32::from_rgb(127, 127, 127),
    Color32::from_rgb(188, 189, 34),
    Color32::from_rgb(23, 190, 207),
];

const ABOUT: &str = "The latent space of an image model: for autoencoders (AE, conv AE, denoising AE, VAE) held-out \
                     items as points on the latent plane; for GANs a walk through one sample's latent vector. \
                     Start such a run, or view one that is open.";

/// What the tab offers for a run viewed from its folder: its model is in its newest checkpoint, so it opens
/// the run there (without training it) where that loses nothing.
pub fn closed_run(ui: &mut Ui, summary: &RunSummary) -> Option<Action> {
    if expected_shape(&summary.config.data).is_ok_and(|shape| shape == ItemShape::Point) {
        ui.weak(ABOUT);
        return None;
    }
    ui.label(format!(
        "{} is not open: its latent space is drawn from its model, which is in its checkpoints.",
        summary.meta.name
    ));
    match summary.step_to_open() {
        Ok(step) => open_button(ui, summary, step),
        Err(why) => {
            ui.add_enabled(false, egui::Button::new("Open it"));
            ui.weak(format!("It cannot open: {why}."));
            None
        }
    }
}

/// The button that opens a run viewed from its folder at `step` (its newest checkpoint) without training it.
pub fn open_button(ui: &mut Ui, summary: &RunSummary, step: u64) -> Option<Action> {
    ui.button(format!("Open it at step {step}"))
        .on_hover_text(
            "Loads its newest checkpoint without training it, for the views of its model (the latent space; a 2D \
             run's points and D's surface). Start then trains it on; Stop (in the run list) closes it as it was.",
        )
        .clicked()
        .then(|| Action::OpenRun(summary.path.clone()))
}

/// How near (in screen points) the pointer must be to a point for its item to show.
const HOVER_REACH: f32 = 8.0;

pub struct LatentView {
    /// The items' images as one texture, with the version it was made from.
    items: Option<(u64, TextureHandle)>,
    decoded: GridView,
    manifold: GridView,
    walked: GridView,
    /// The latent walk's sample, its slider values, and whether the user set them (else they follow the
    /// run's: a snapshot from before "Back to the sample" must not become the user's setting).
    walk: Option<(usize, Vec<f32>, bool)>,
}

impl Default for LatentView {
    fn default() -> Self {
        LatentView {
            items: None,
            decoded: GridView::new("decoded image"),
            manifold: GridView::new("latent manifold"),
            walked: GridView::new("walked image"),
            walk: None,
        }
    }
}

impl LatentView {
    /// Shows the latent views of the run in view's newest snapshot: the latent walk of an image GAN, the
    /// latent map of an autoencoder (or what the tab is for). Returns what the user asked the run to make.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        snapshot: Option<&Snapshot>,
        version: u64,
        zoom: &mut GridZoom,
    ) -> Option<Action> {
        if let Some(walk) = snapshot.and_then(|s| s.walk.as_ref()) {
            return self.walk(ui, walk, version, zoom);
        }
        let Some(map) = snapshot.and_then(|s| s.latent.as_ref()) else {
            ui.weak(ABOUT);
            return None;
        };
        ui.weak(match map.principal {
            true => format!(
                "{} held-out items, encoded: the plane of the codes' two principal components, {:.0} % of their \
                 variance. Hover a point to see its item; click anywhere to decode that point.",
                map.points.len(),
                100.0 * map.explained
            ),
            false => format!(
                "{} held-out items, encoded: the latent space's own two axes. Hover a point to see its item; \
                 click anywhere to decode that point.",
                map.points.len()
            ),
        });
        if self.items.as_ref().is_none_or(|(v, _)| *v != version) {
            let image = ColorImage::from_rgba_unmultiplied([map.items.width, map.items.height], &map.items.rgba);
            let texture = ui.ctx().load_texture("latent items", image, TextureOptions::NEAREST);
            self.items = Some((version, texture));
        }
        let side = (ui.available_width() * 0.55)
            .min(ui.available_height() - 24.0)
            .max(200.0);
        let mut clicked = None;
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(side);
                clicked = self.scatter(ui, map, side);
            });
            ui.vertical(|ui| {
                // The one decoded image small, the grid of decodes (when there is one) large.
                let width = ui.available_width();
                let (one, grid_space) = match map.manifold {
                    Some(_) => (Vec2::new(width, side * 0.28), Vec2::new(width, side * 0.62)),
                    None => (Vec2::new(width, side * 0.5), Vec2::ZERO),
                };
                match &map.decoded {
                    Some((at, grid)) => {
                        ui.strong(format!("Decoded at ({:.2}, {:.2})", at[0], at[1]));
                        self.decoded.show(ui, grid, version, zoom, one);
                    }
                    None => {
                        ui.weak("Click the plane to decode a point.");
                    }
                }
                if let Some((grid, bounds)) = &map.manifold {
                    ui.strong("Decoded over the plane").on_hover_text(format!(
                        "{MANIFOLD_SIDE} x {MANIFOLD_SIDE} decodes on a grid over x {:.2} to {:.2}, y {:.2} to {:.2} \
                         (the points' extent), largest y on top",
                        bounds[0], bounds[1], bounds[2], bounds[3]
                    ));
                    self.manifold.show(ui, grid, version, zoom, grid_space);
                }
            });
        });
        clicked.map(Action::DecodeLatent)
    }

    /// Sliders over the first latent dimensions of one sample's vector, and G's image of it.
    fn walk(&mut self, ui: &mut Ui, walk: &LatentWalk, version: u64, zoom: &mut GridZoom) -> Option<Action> {
        // The sliders start from the run's values, and follow them until the user moves one.
        if self
            .walk
            .as_ref()
            .is_none_or(|(sample, values, set)| *sample != walk.sample || !set && *values != walk.values)
        {
            self.walk = Some((walk.sample, walk.values.clone(), false));
        }
        let (sample, values, set) = self.walk.as_mut().expect("set above");
        let mut changed = false;
        ui.weak(format!(
            "One latent vector of the sample grid with its first {} dimensions set by the sliders, through G \
             (made with the samples, so it follows training).",
            values.len()
        ));
        let mut number = *sample + 1;
        ui.horizontal(|ui| {
            let label = ui.label("Sample");
            let response = bounded(ui, 1..=walk.samples, egui::DragValue::new(&mut number)).labelled_by(label.id);
            if response.changed() {
                // Another sample: its own values, which the next snapshot brings.
                *sample = number - 1;
                values.clear();
                (*set, changed) = (false, true);
            }
            if ui
                .button("Back to the sample")
                .on_hover_text("The sample's own values")
                .clicked()
            {
                values.clear();
                (*set, changed) = (false, true);
            }
        });
        for (k, value) in values.iter_mut().enumerate() {
            // The sample's own values are shown as they are (one can lie beyond 3): only a move is the user's.
            let slider = egui::Slider::new(value, -3.0..=3.0)
                .clamping(egui::SliderClamping::Edits)
                .fixed_decimals(2)
                .text(format!("z{}", k + 1));
            if ui.add(slider).changed() {
                (*set, changed) = (true, true);
            }
        }
        let space = Vec2::new(ui.available_width(), ui.available_height() - 8.0).min(Vec2::splat(360.0));
        self.walked.show(ui, &walk.image, version, zoom, space);
        changed.then(|| Action::WalkLatent(*sample, values.clone()))
    }

    /// The items as points, one series per label; returns the plane point clicked.
    fn scatter(&self, ui: &mut Ui, map: &LatentMap, side: f32) -> Option<[f32; 2]> {
        let mut series: Vec<(String, Color32, Vec<[f64; 2]>)> = Vec::new();
        for (k, p) in map.points.iter().enumerate() {
            let label = map.labels.as_ref().map(|l| l[k] as usize);
            let name = match label {
                Some(l) => map.label_names.get(l).cloned().unwrap_or_else(|| l.to_string()),
                None => "held-out items".to_string(),
            };
            let color = label.map_or(LABEL_COLORS[0], |l| LABEL_COLORS[l % LABEL_COLORS.len()]);
            match series.iter_mut().find(|(n, ..)| *n == name) {
                Some((_, _, points)) => points.push([f64::from(p[0]), f64::from(p[1])]),
                None => series.push((name, color, vec![[f64::from(p[0]), f64::from(p[1])]])),
            }
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let mark_color = ui.visuals().strong_text_color();
        let response = Plot::new("latent scatter")
            .width(side)
            .height(side)
            .legend(Legend::default())
            .allow_scroll(false)
            .show(ui, |plot| {
                for (name, color, points) in series {
                    plot.points(Points::new(name, points).color(color).radius(2.5));
                }
                if let Some((at, _)) = &map.decoded {
                    let mark = vec![[f64::from(at[0]), f64::from(at[1])]];
                    plot.points(
                        Points::new("clicked point", mark)
                            .shape(MarkerShape::Cross)
                            .radius(7.0)
                            .color(mark_color),
                    );
                }
                let pointer = plot.pointer_coordinate();
                let nearest = pointer.and_then(|at| nearest_item(map, at, plot.transform()));
                let clicked = plot.response().clicked().then_some(pointer).flatten();
                (nearest, clicked)
            });
        response
            .response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "latent plane"));
        let (nearest, clicked) = response.inner;
        if let (Some(k), Some((_, texture))) = (nearest, &self.items) {
            let label = map.labels.as_ref().map(|l| l[k] as usize);
            let name = label.map(|l| map.label_names.get(l).cloned().unwrap_or_else(|| l.to_string()));
            response.response.on_hover_ui_at_pointer(|ui| {
                let uv = item_uv(map, k);
                let size = Vec2::new(
                    uv.width() * map.items.width as f32,
                    uv.height() * map.items.height as f32,
                ) * 3.0;
                ui.add(Image::from_texture(SizedTexture::new(texture.id(), size)).uv(uv));
                ui.label(match name {
                    Some(name) => format!("item {} ({name})", k + 1),
                    None => format!("item {}", k + 1),
                });
            });
        }
        clicked.map(|p| [p.x as f32, p.y as f32])
    }
}

/// The held-out item nearest the pointer, if one lies within `HOVER_REACH` screen points.
fn nearest_item(map: &LatentMap, at: PlotPoint, transform: &egui_plot::PlotTransform) -> Option<usize> {
    let pointer = transform.position_from_point(&at);
    map.points
        .iter()
        .map(|p| {
            transform
                .position_from_point(&PlotPoint::new(p[0], p[1]))
                .distance(pointer)
        })
        .enumerate()
        .filter(|(_, d)| *d <= HOVER_REACH)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

/// Where item `k` lies in the items' grid, in texture coordinates.
fn item_uv(map: &LatentMap, k: usize) -> Rect {
    let rows = map.points.len().div_ceil(ITEM_COLUMNS).max(1);
    let (w, h) = (map.items.width as f32, map.items.height as f32);
    let pad = GRID_PADDING as f32;
    let tile = Vec2::new((w - pad) / ITEM_COLUMNS as f32, (h - pad) / rows as f32);
    let min = egui::pos2(
        pad + (k % ITEM_COLUMNS) as f32 * tile.x,
        pad + (k / ITEM_COLUMNS) as f32 * tile.y,
    );
    let max = min + tile - Vec2::splat(pad);
    Rect::from_min_max(egui::pos2(min.x / w, min.y / h), egui::pos2(max.x / w, max.y / h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::accesskit::Role;
    use egui_kittest::kittest::{NodeT as _, Queryable as _};
    use egui_kittest::Harness;

    /// The walk view over the run's newest walk, as the tab shows it.
    struct Walked {
        view: LatentView,
        walk: LatentWalk,
        zoom: GridZoom,
    }

    fn drawn(values: Vec<f32>) -> LatentWalk {
        LatentWalk {
            sample: 0,
            samples: 4,
            values,
            image: crate::grid::ImageGrid::filled(4, 4, 0),
        }
    }

    /// The view over a run whose walk shows a sample's own `values`.
    fn walking(values: Vec<f32>) -> Walked {
        Walked {
            view: LatentView::default(),
            walk: drawn(values),
            zoom: GridZoom::default(),
        }
    }

    #[test]
    fn back_to_the_sample_takes_its_values_though_the_run_draws_them_a_frame_later() {
        let own = vec![0.5, -0.5];
        let mut harness = Harness::new_ui_state(
            |ui, w: &mut Walked| {
                w.view.walk(ui, &w.walk, 1, &mut w.zoom);
            },
            walking(own.clone()),
        );
        let z1 = |h: &Harness<'_, Walked>| {
            h.get_by_role_and_label(Role::Slider, "z1")
                .accesskit_node()
                .numeric_value()
                .unwrap()
        };
        // The user sets z1 to 0 (a click in the slider's middle) and the run draws it.
        harness.get_by_role_and_label(Role::Slider, "z1").click();
        harness.run_steps(2);
        assert_eq!(z1(&harness), 0.0);
        harness.state_mut().walk = drawn(vec![0.0, -0.5]);
        harness.run_steps(2);
        // Back: the run's walk of the set value shows until the run draws the sample's own.
        harness.get_by_label("Back to the sample").click();
        harness.run_steps(3);
        harness.state_mut().walk = drawn(own);
        harness.run_steps(2);
        assert_eq!(z1(&harness), 0.5, "one click is enough");
    }

    #[test]
    fn a_samples_own_values_are_shown_unchanged_and_not_taken_as_the_users() {
        let own = vec![3.5, 2.0201];
        let mut harness = Harness::new_ui_state(
            |ui, w: &mut Walked| {
                assert!(
                    w.view.walk(ui, &w.walk, 1, &mut w.zoom).is_none(),
                    "nothing asked of the run"
                );
            },
            walking(own.clone()),
        );
        harness.run_steps(2);
        let (_, values, set) = harness.state().view.walk.clone().unwrap();
        assert_eq!((values, set), (own, false));
        let shown = |label: &str| {
            let field = harness.get_by_role_and_label(Role::SpinButton, label);
            field.accesskit_node().value().map(|v| v.to_string())
        };
        assert_eq!((shown("z1"), shown("z2")), (Some("3.50".into()), Some("2.02".into())));
    }
}
