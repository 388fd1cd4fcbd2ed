//! Loss curves: every metric of the run, grouped into plots that belong together, smoothed as TensorBoard
//! does (a faint raw curve under the smoothed one), on a linear or log scale, against steps or training time.
//!
//! egui_plot has no log axis, so the log scale plots log10 of the values and labels the ticks with the
//! values. Long histories are drawn decimated to a min/max band per pixel column (see `RunHistory::points`).

use super::history::{Curve, RunHistory, XAxis};
use super::settings::{CurveSettings, THROUGHPUT_PLOT};
use crate::config::{ModelKind, OnTrouble};
use crate::numbers::significant;
use eframe::egui;
use egui::{Color32, Slider, Ui, Vec2};
use egui_plot::{
    ColorConflictHandling, Corner, GridInput, GridMark, HoverPosition, Legend, Line, LineStyle, Plot, Points, VLine,
};

/// Metrics that are read together share a plot (a name ending in `.` takes every metric it begins);
/// metrics not listed get a plot each. The quality metric's titles say "samples"; for models that only
/// reconstruct, `titled_for` says what was scored instead.
const GROUPS: [(&str, &[&str]); 15] = [
    ("Sample quality: Fréchet distance (lower is better)", &["fd"]),
    (
        "Real vs generated points: KL and JS divergence (bits)",
        &["toy_kl", "toy_js"],
    ),
    ("Samples read with confidence", &["confident"]),
    ("Classes the confident samples cover", &["classes"]),
    ("GAN losses", &["loss_d", "loss_g"]),
    ("D(x) and D(G(z))", &["d_real", "d_fake"]),
    ("Reconstruction and total loss", &["loss", "recon"]),
    ("KL divergence", &["kl"]),
    ("Held-out reconstruction", &["holdout_recon"]),
    ("Gradient norms", &["grad_norm_d", "grad_norm_g", "grad_norm"]),
    ("Sample diversity", &["diversity", "duplicates"]),
    ("Gradient norms per layer", &["grad_norm_g.", "grad_norm_d."]),
    ("Active latent units", &["active_units"]),
    ("KL per latent dimension", &["kl_dim."]),
    (THROUGHPUT_PLOT, &["images_per_s"]),
];

/// A plot's title as it reads for runs of `kind`: a plain autoencoder's quality metric scores its
/// reconstructions, not samples.
fn titled_for(title: &str, kind: ModelKind) -> String {
    match kind.generates() {
        true => title.to_string(),
        false => title
            .replace("Sample", "Reconstruction")
            .replace("sample", "reconstruction"),
    }
}

/// Whether `metric` belongs to a group listing `members`.
fn member(members: &[&str], metric: &str) -> bool {
    members
        .iter()
        .any(|m| *m == metric || (m.ends_with('.') && metric.starts_with(m)))
}

const PALETTE: [Color32; 3] = [
    Color32::from_rgb(70, 150, 255),
    Color32::from_rgb(255, 140, 40),
    Color32::from_rgb(80, 190, 110),
];

/// The dotted lines where settings were changed while the run trained.
const SETTING_CHANGE_COLOR: Color32 = Color32::from_rgb(120, 170, 255);

/// Height of a plot's title row.
const TITLE_HEIGHT: f32 = 22.0;
const MIN_PLOT_HEIGHT: f32 = 140.0;
/// The most metrics of one run whose legend goes inside the plot; more are named in a line above it (inside,
/// a DCGAN's eight per-layer gradient norms covered the plot's newest steps).
const LEGEND_INSIDE_MAX: usize = 4;
/// Every plot's y axis is at least this wide, so that the plots' step axes line up one under the other.
const Y_AXIS_WIDTH: f32 = 32.0;

#[derive(Default)]
pub struct CurvesView {
    /// The axis settings the plots were last drawn with; when they change, the plots re-fit.
    drawn_as: Option<(XAxis, bool, usize)>,
    /// Whether a click on a curve shows a saved grid (the hover read-out says so then).
    pub click_shows_grid: bool,
}

/// One run's curves in the plots, with the label that tells it from the others.
pub struct Overlay<'a> {
    /// The settings that set it apart from the other runs drawn (its name when none do).
    pub label: String,
    /// Its name and every setting that differs, for the legend's hover.
    pub details: String,
    pub history: &'a RunHistory,
}

/// A run's colour when several overlay (one colour per run).
const RUN_PALETTE: [Color32; 8] = [
    Color32::from_rgb(70, 150, 255),
    Color32::from_rgb(255, 140, 40),
    Color32::from_rgb(80, 190, 110),
    Color32::from_rgb(220, 80, 200),
    Color32::from_rgb(230, 70, 70),
    Color32::from_rgb(150, 120, 255),
    Color32::from_rgb(200, 190, 60),
    Color32::from_rgb(60, 200, 210),
];

impl CurvesView {
    /// Draws the curves of every overlay (smoothed as the settings say: set before, as that needs the
    /// histories mutable); returns the step clicked on a plot, in the first run's steps.
    /// Draws the plots of `overlays`, runs of one model `kind`; returns the step of a clicked curve.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        overlays: &[Overlay<'_>],
        kind: ModelKind,
        settings: &mut CurveSettings,
    ) -> Option<u64> {
        let runs: Vec<(&str, &RunHistory)> = overlays.iter().map(|o| (o.label.as_str(), o.history)).collect();
        let groups = plot_groups(&runs, kind);
        controls(ui, settings, &groups);
        if overlays.len() > 1 {
            run_legend(ui, overlays);
        }
        let shown: Vec<_> = groups
            .iter()
            .filter(|(title, _)| !settings.hidden.contains(title))
            .collect();
        let drawn_as = (settings.x_axis, settings.log_scale, runs.len());
        let refit = self.drawn_as != Some(drawn_as);
        self.drawn_as = Some(drawn_as);
        if shown.is_empty() {
            ui.weak("Every plot is hidden: tick one above.");
            return None;
        }
        let columns = if ui.available_width() > 720.0 && shown.len() > 1 {
            2
        } else {
            1
        };
        let rows = shown.len().div_ceil(columns);
        let spacing = ui.spacing().item_spacing;
        let size = Vec2::new(
            (ui.available_width() - spacing.x * (columns - 1) as f32) / columns as f32,
            ((ui.available_height() - spacing.y * (rows - 1) as f32) / rows as f32).max(MIN_PLOT_HEIGHT),
        );
        let mut clicked = None;
        egui::ScrollArea::vertical().id_salt("curves").show(ui, |ui| {
            for row in shown.chunks(columns) {
                ui.horizontal(|ui| {
                    for (title, metrics) in row {
                        ui.allocate_ui(size, |ui| {
                            ui.vertical(|ui| {
                                let hint = self.click_shows_grid;
                                let x = curve_plot(ui, &runs, settings, (title, metrics), size, refit, hint);
                                clicked = clicked.or(x);
                            });
                        });
                    }
                });
            }
        });
        // A click reads the step of the first run's row nearest the clicked x.
        let x = clicked?;
        let (_, history) = runs.first()?;
        let metric = history.metric_names().find(|m| history.count(m) > 0)?;
        history.readout(metric, settings.x_axis, x).map(|r| r.step)
    }
}

/// One line above the plots naming each overlaid run in its colour (the full differences on hover), and how
/// the line styles tell a plot's metrics apart.
fn run_legend(ui: &mut Ui, overlays: &[Overlay<'_>]) {
    ui.horizontal_wrapped(|ui| {
        for (run, overlay) in overlays.iter().enumerate() {
            let color = RUN_PALETTE[run % RUN_PALETTE.len()];
            let (swatch, painter) = ui.allocate_painter(Vec2::new(18.0, 12.0), egui::Sense::hover());
            let y = swatch.rect.center().y;
            painter.hline(swatch.rect.x_range(), y, egui::Stroke::new(2.5, color));
            ui.label(egui::RichText::new(&overlay.label).color(color))
                .on_hover_text(&overlay.details);
        }
        ui.weak("| in each plot: 1st metric solid, 2nd dashed, 3rd dotted");
    });
}

/// The plots these runs need: the known groups with any recorded metric, then one per other metric.
fn plot_groups(runs: &[(&str, &RunHistory)], kind: ModelKind) -> Vec<(String, Vec<String>)> {
    let mut recorded: Vec<&str> = Vec::new();
    for (_, history) in runs {
        for metric in history.metric_names().filter(|m| history.count(m) > 0) {
            if !recorded.contains(&metric) {
                recorded.push(metric);
            }
        }
    }
    let mut groups: Vec<(String, Vec<String>)> = GROUPS
        .iter()
        .map(|(title, metrics)| {
            let members = recorded.iter().filter(|m| member(metrics, m)).map(|m| m.to_string());
            (titled_for(title, kind), members.collect())
        })
        .filter(|(_, metrics): &(String, Vec<String>)| !metrics.is_empty())
        .collect();
    for metric in recorded {
        if !GROUPS.iter().any(|(_, metrics)| member(metrics, metric)) {
            groups.push((metric.to_string(), vec![metric.to_string()]));
        }
    }
    groups
}

fn controls(ui: &mut Ui, settings: &mut CurveSettings, groups: &[(String, Vec<String>)]) {
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Smoothing");
        ui.add(Slider::new(&mut settings.smoothing, 0.0..=0.999).fixed_decimals(3))
            .labelled_by(label.id)
            .on_hover_text("Weight of the exponential moving average drawn over the faint raw curve");
        ui.checkbox(&mut settings.log_scale, "Log scale");
        let label = ui.label("X axis");
        ui.label_inputs_by(label.id, |ui| {
            ui.radio_value(&mut settings.x_axis, XAxis::Step, "by step");
            ui.radio_value(&mut settings.x_axis, XAxis::WallTime, "by training time");
        });
        ui.separator();
        ui.label("Show");
        for (title, _) in groups {
            let mut shown = !settings.hidden.contains(title);
            if ui.checkbox(&mut shown, title.as_str()).changed() {
                if shown {
                    settings.hidden.retain(|t| t != title);
                } else {
                    settings.hidden.push(title.clone());
                }
            }
        }
        ui.separator();
        ui.weak("double-click a plot: reset its view")
            .on_hover_text("Drag a plot to pan it, Ctrl+scroll to zoom, double-click to fit the data again");
    });
    ui.add_space(4.0);
}

/// Draws one plot; returns the x of a click on it.
fn curve_plot(
    ui: &mut Ui,
    runs: &[(&str, &RunHistory)],
    settings: &CurveSettings,
    (title, metrics): (&str, &[String]),
    size: Vec2,
    refit: bool,
    click_hint: bool,
) -> Option<f64> {
    let (axis, log) = (settings.x_axis, settings.log_scale);
    ui.strong(title);
    let named_above = runs.len() == 1 && (LEGEND_INSIDE_MAX + 1..=RUN_PALETTE.len()).contains(&metrics.len());
    let names_height = match named_above {
        true => metric_names(ui, metrics),
        false => 0.0,
    };
    let mut plot = Plot::new(title)
        .id(plot_id(title))
        .width(size.x)
        .height((size.y - names_height).max(MIN_PLOT_HEIGHT) - TITLE_HEIGHT)
        .y_axis_min_width(Y_AXIS_WIDTH)
        .x_axis_label(match axis {
            XAxis::Step => "step",
            XAxis::WallTime => "training time",
        })
        .label_formatter(|hovered| {
            let readout = hover_readout(runs, metrics, axis, hovered)?;
            Some(match click_hint {
                true => format!("{readout}\nClick: show the grid saved nearest this step"),
                false => readout,
            })
        })
        .allow_scroll(false);
    // More lines than colours (a VAE's KL per latent dimension, 20) get no legend, which would cover the plot
    // and name lines it cannot tell apart; the hover readout names each value.
    if metrics.len() <= RUN_PALETTE.len() && !named_above {
        // Overlaid runs share one legend entry per metric (their colours are in the run legend above).
        plot = plot.legend(
            Legend::default()
                .position(Corner::RightTop)
                .follow_insertion_order(true)
                .color_conflict_handling(match runs.len() > 1 {
                    true => ColorConflictHandling::RemoveColor,
                    false => ColorConflictHandling::PickLast,
                }),
        );
    }
    if axis == XAxis::WallTime {
        plot = plot.x_axis_formatter(|mark, _| clock(mark.value));
    }
    plot = if log {
        plot.y_grid_spacer(decade_marks)
            .y_axis_formatter(|mark, _| power_of_ten(mark.value))
    } else {
        plot.y_grid_spacer(one_two_five_marks)
            .y_axis_formatter(|mark, _| tick_label(mark))
    };
    if refit {
        plot = plot.reset();
    }
    plot.show(ui, |plot| {
        // A zoomed view draws a third of its points beyond each side, so a pan shows no gap before the
        // next frame decimates again.
        let view = (!plot.auto_bounds().x).then(|| {
            let bounds = plot.plot_bounds();
            let (lo, hi) = (bounds.min()[0], bounds.max()[0]);
            (lo - (hi - lo), hi + (hi - lo))
        });
        let width = plot.transform().frame().width().max(100.0) as usize;
        let columns = if view.is_some() { 3 * width } else { width };
        let scale = |points: Vec<[f64; 2]>| -> Vec<[f64; 2]> {
            if log {
                points
                    .into_iter()
                    .filter(|p| p[1] > 0.0)
                    .map(|p| [p[0], p[1].log10()])
                    .collect()
            } else {
                points
            }
        };
        // What the health checks did to the run in view, and its setting changes, as vertical lines (described
        // on hover).
        if let Some((_, history)) = runs.first() {
            for event in history.events() {
                if let Some(x) = history.x_at_step(axis, event.step) {
                    let color = match event.action {
                        OnTrouble::Rollback | OnTrouble::Pause => Color32::from_rgb(230, 80, 70),
                        OnTrouble::Warn => Color32::from_rgb(220, 160, 40),
                    };
                    plot.vline(
                        VLine::new("", x)
                            .color(color.gamma_multiply(0.7))
                            .style(LineStyle::dashed_dense()),
                    );
                }
            }
            // Settings changed while it trained, one dotted line per step that had changes.
            let mut changed_steps: Vec<u64> = history.changes().iter().map(|c| c.step).collect();
            changed_steps.dedup();
            for step in changed_steps {
                if let Some(x) = history.x_at_step(axis, step) {
                    plot.vline(
                        VLine::new("", x)
                            .color(SETTING_CHANGE_COLOR.gamma_multiply(0.7))
                            .style(LineStyle::dotted_dense()),
                    );
                }
            }
        }
        let overlaid = runs.len() > 1;
        // The lowest and highest value drawn, and the first and last x they were drawn at.
        let (mut values, mut xs) = ((f64::INFINITY, f64::NEG_INFINITY), (f64::INFINITY, f64::NEG_INFINITY));
        let mut extend = |points: &[[f64; 2]]| {
            for p in points.iter().filter(|p| p[1].is_finite()) {
                values = (values.0.min(p[1]), values.1.max(p[1]));
                xs = (xs.0.min(p[0]), xs.1.max(p[0]));
            }
        };
        for (run, (_, history)) in runs.iter().enumerate() {
            for (index, metric) in metrics.iter().enumerate() {
                // One run: a colour per metric. Several: a colour per run, and metrics told apart by dashes.
                let (color, style) = if overlaid {
                    let style = [LineStyle::Solid, LineStyle::dashed_loose(), LineStyle::dotted_dense()][index % 3];
                    (RUN_PALETTE[run % RUN_PALETTE.len()], style)
                } else {
                    (metric_color(index, metrics.len()), LineStyle::Solid)
                };
                let name = metric.clone();
                let metric = metric.as_str();
                if history.smoothing() > 0.0 {
                    let raw = scale(history.points(metric, Curve::Raw, axis, view, columns));
                    extend(&raw);
                    plot.line(
                        Line::new(name.clone(), raw)
                            .id(("raw", run, metric))
                            .color(color.gamma_multiply(0.3))
                            .width(1.0),
                    );
                }
                let smoothed = scale(history.points(metric, Curve::Smoothed, axis, view, columns));
                extend(&smoothed);
                // A line of one point draws nothing: the first quality score, or a run viewed early.
                if let [point] = smoothed[..] {
                    plot.points(Points::new("", vec![point]).color(color).radius(4.0).allow_hover(false));
                }
                plot.line(
                    Line::new(name, smoothed)
                        .id(("smoothed", run, metric))
                        .color(color)
                        .style(style)
                        .width(1.6),
                );
            }
        }
        // A value that never changed (the classes a GAN covers, 10 all run) would get as tall a range as the
        // plot is wide (egui_plot's fit for a flat line): 10 drawn on the 0 of a -1000..1000 axis.
        // (A single point is left to egui_plot, which makes its x range a step wide.)
        let line = xs.0 < xs.1;
        if let (true, true, Some([low, high])) = (line, plot.auto_bounds().y, flat_line_range(values.0, values.1)) {
            // No width rather than no colour: egui_plot gives a transparent item a colour of its own.
            plot.line(
                Line::new("", vec![[xs.0, low], [xs.0, high]])
                    .width(0.0)
                    .allow_hover(false),
            );
        }
        // Every plot spans its runs' rows, so that a step sits at one x in all of them: a metric measured
        // from step 250 on (the quality score) drew its plot from there.
        let extent = runs
            .iter()
            .filter_map(|(_, history)| history.x_extent(axis))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        if let (true, Some((first, last))) = (plot.auto_bounds().x && values.0.is_finite(), extent) {
            plot.line(
                Line::new("", vec![[first, values.0], [last, values.0]])
                    .width(0.0)
                    .allow_hover(false),
            );
        }
        plot.response()
            .clicked()
            .then(|| plot.pointer_coordinate().map(|p| p.x))
            .flatten()
    })
    .inner
}

/// One run's `metrics` named in their lines' colours, in a wrapped line; returns the height it took.
fn metric_names(ui: &mut Ui, metrics: &[String]) -> f32 {
    let names = ui.horizontal_wrapped(|ui| {
        for (index, metric) in metrics.iter().enumerate() {
            let color = metric_color(index, metrics.len());
            // Not wrapped: a name stays on one line with its dash.
            ui.add(egui::Label::new(egui::RichText::new(format!("\u{2014} {metric}")).small().color(color)).extend());
        }
    });
    names.response.rect.height() + ui.spacing().item_spacing.y
}

/// The id of the curve plot titled `title` (its view is kept in egui's memory under it).
pub fn plot_id(title: &str) -> egui::Id {
    egui::Id::unique(("curve plot", title))
}

/// The colour of a plot's `index`th of `count` metrics (one run): the three of `PALETTE` where they suffice,
/// the eight of `RUN_PALETTE` for larger groups (a DCGAN's gradient norm per layer).
fn metric_color(index: usize, count: usize) -> Color32 {
    match count <= PALETTE.len() {
        true => PALETTE[index],
        false => RUN_PALETTE[index % RUN_PALETTE.len()],
    }
}

/// The y range a plot whose values run from `low` to `high` shows when they are all one value (a tenth of it
/// either side, at least 0.1); `None` when they differ (or there are none).
fn flat_line_range(low: f64, high: f64) -> Option<[f64; 2]> {
    (low == high).then(|| {
        let pad = (low.abs() * 0.1).max(0.1);
        [low - pad, low + pad]
    })
}

/// The hover label: the step and time nearest the pointer, and each metric's value there (per run).
fn hover_readout(
    runs: &[(&str, &RunHistory)],
    metrics: &[String],
    axis: XAxis,
    hovered: &HoverPosition<'_>,
) -> Option<String> {
    let (HoverPosition::NearDataPoint { position, .. } | HoverPosition::Elsewhere { position }) = hovered;
    let mut lines = Vec::new();
    let mut hovered_step = None;
    for (label, history) in runs {
        for metric in metrics {
            let Some(readout) = history.readout(metric, axis, position.x) else {
                continue;
            };
            if lines.is_empty() {
                lines.push(format!("step {}, {}", readout.step, clock(readout.wall_s)));
                hovered_step = Some(readout.step);
            }
            let name = if runs.len() > 1 {
                format!("{label}: {metric}")
            } else {
                metric.clone()
            };
            lines.push(if history.smoothing() > 0.0 {
                format!(
                    "{name}: {} (smoothed {})",
                    significant(readout.raw),
                    significant(readout.smoothed)
                )
            } else {
                format!("{name}: {}", significant(readout.raw))
            });
        }
    }
    // Health events and setting changes near the pointer (within a hundredth of the run) are described under
    // the values.
    if let (Some((_, history)), Some(step)) = (runs.first(), hovered_step) {
        let near = (history.last_step().unwrap_or(0) / 100).max(1);
        for event in history.events().iter().filter(|e| e.step.abs_diff(step) <= near) {
            lines.push(format!("Health: {}", event.describe()));
        }
        for change in history.changes().iter().filter(|c| c.step.abs_diff(step) <= near) {
            lines.push(format!("Changed at step {}: {}", change.step, change.describe()));
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Ticks at multiples of 1, 2 and 5 times a power of ten, in three sizes: egui_plot's default (powers of
/// ten only) leaves a short plot with one labelled tick or none.
fn one_two_five_marks(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    if !(input.base_step_size > 0.0 && (hi - lo).is_finite()) {
        return Vec::new();
    }
    let rung = |at_least: f64| {
        let decade = 10f64.powf(at_least.log10().floor());
        [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * decade)
            .find(|s| *s >= at_least)
            .unwrap_or(10.0 * decade)
    };
    // Each size a multiple of the one below (1, 2, 10, 20, ... or 5, 10, 20, ...): a labelled mark is then
    // never closer to another labelled one than its own size, so labels cannot overlap (0.2s beside 0.5s
    // put 1.4 right under 1.5).
    let coarser = |size: f64| {
        let mantissa = (size / 10f64.powf(size.log10().floor())).round();
        size * if mantissa == 2.0 { 5.0 } else { 2.0 }
    };
    let finest = rung(input.base_step_size);
    let middle = coarser(finest);
    let mut marks: Vec<GridMark> = Vec::new();
    for step_size in [finest, middle, coarser(middle)] {
        // The tolerance keeps a mark that lies on a bound despite rounding (0.55 / 0.05 = 11.000000000000002).
        for k in (lo / step_size - 1e-9).ceil() as i64..=(hi / step_size + 1e-9).floor() as i64 {
            marks.push(GridMark {
                value: k as f64 * step_size,
                step_size,
            });
        }
    }
    // Where sizes coincide, keep the coarsest mark (it draws the stronger line and the label).
    marks.sort_by(|a, b| a.value.total_cmp(&b.value).then(b.step_size.total_cmp(&a.step_size)));
    marks.dedup_by(|later, kept| (later.value - kept.value).abs() < finest * 1e-3);
    marks
}

/// A linear tick with the decimals its step needs (egui_plot's default rounds 0.5 steps to whole numbers), at
/// most six significant digits (a flat curve's plot spans a sliver around its value, with steps of 1e-18).
fn tick_label(mark: GridMark) -> String {
    let for_step = (-mark.step_size.log10()).ceil().max(0.0);
    let for_value = (5.0 - mark.value.abs().log10().floor()).max(0.0);
    let decimals = for_step.min(for_value) as usize;
    format!("{:.decimals$}", mark.value)
}

/// Ticks of a log10 axis: every decade, with 2 and 5 between (and faint lines at the other digits) when few
/// decades show, and 1-2-5 steps of the values themselves when less than a decade shows. A minor mark's step size is the gap
/// to the next mark, which is what decides whether egui_plot has room for its label.
fn decade_marks(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let decades = hi - lo;
    if !(decades.is_finite() && decades <= 300.0 && input.base_step_size > 0.0) {
        return Vec::new();
    }
    if decades < 1.0 {
        let (low, high) = (10f64.powf(lo), 10f64.powf(hi));
        // The value step that spans the base step (8 points) at the bottom of the plot.
        let linear = GridInput {
            bounds: (low, high),
            base_step_size: low * (10f64.powf(input.base_step_size) - 1.0),
        };
        return one_two_five_marks(linear)
            .into_iter()
            .filter(|m| m.value > 0.0)
            .map(|m| GridMark {
                value: m.value.log10(),
                step_size: (m.value + m.step_size).log10() - m.value.log10(),
            })
            .collect();
    }
    // Labelled multiples of each decade, and (over few decades) faint lines at the other digits.
    let (multiples, fine): (&[f64], &[f64]) = match decades {
        d if d > 6.0 => (&[1.0], &[]),
        d if d > 2.0 => (&[1.0, 2.0, 5.0], &[]),
        _ => (&[1.0, 2.0, 5.0], &[3.0, 4.0, 6.0, 7.0, 8.0, 9.0]),
    };
    let mut marks = Vec::new();
    for decade in lo.floor() as i32..=hi.ceil() as i32 {
        let decade = f64::from(decade);
        for (i, m) in multiples.iter().enumerate() {
            let value = decade + m.log10();
            let next = multiples.get(i + 1).map_or(decade + 1.0, |n| decade + n.log10());
            marks.push(GridMark {
                value,
                step_size: if i == 0 { 1.0 } else { next - value },
            });
        }
        marks.extend(fine.iter().map(|m| GridMark {
            value: decade + m.log10(),
            step_size: 0.04,
        }));
    }
    marks.retain(|m| (lo..=hi).contains(&m.value));
    marks
}

/// The value at `exponent` on a log10 axis: `0.01`, `200`, `1e-6`.
fn power_of_ten(exponent: f64) -> String {
    let rounded = exponent.round();
    if (exponent - rounded).abs() < 1e-9 && !(-3.0..=4.0).contains(&rounded) {
        format!("1e{rounded}")
    } else {
        significant(10f64.powf(exponent))
    }
}

/// Seconds as `m:ss` (or `h:mm:ss`).
pub fn clock(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_of_up_to_eight_metrics_tells_each_apart_by_colour() {
        for count in [2, 3, 5, 8] {
            let mut colours: Vec<[u8; 4]> = (0..count).map(|i| metric_color(i, count).to_array()).collect();
            colours.sort_unstable();
            colours.dedup();
            assert_eq!(colours.len(), count, "{count} metrics");
        }
        assert_eq!(metric_color(1, 2), PALETTE[1]);
    }

    #[test]
    fn a_flat_line_gets_a_range_around_its_value_and_others_their_own() {
        // egui_plot gives a flat line a range as tall as the plot is wide: 10 on the 0 of -1000..1000.
        assert_eq!(flat_line_range(10.0, 10.0), Some([9.0, 11.0]));
        assert_eq!(flat_line_range(0.0, 0.0), Some([-0.1, 0.1]));
        assert_eq!(flat_line_range(-20.0, -20.0), Some([-22.0, -18.0]));
        assert_eq!(flat_line_range(9.0, 10.0), None);
        assert_eq!(flat_line_range(f64::INFINITY, f64::NEG_INFINITY), None, "nothing drawn");
    }

    #[test]
    fn the_quality_plots_name_what_was_scored() {
        let mut history = RunHistory::new(&[], 0.0);
        history.push(&crate::train::MetricRow {
            step: 250,
            epoch: 1.0,
            wall_s: 1.0,
            values: [("fd", 12.0), ("confident", 0.8), ("classes", 9.0), ("loss", 0.1)]
                .map(|(name, value)| (name.to_string(), value))
                .to_vec(),
        });
        let titles = |kind| -> Vec<String> {
            plot_groups(&[("run", &history)], kind)
                .into_iter()
                .map(|(title, _)| title)
                .collect()
        };
        let reconstructed = titles(ModelKind::ConvAe);
        assert_eq!(
            reconstructed[..3],
            [
                "Reconstruction quality: Fréchet distance (lower is better)",
                "Reconstructions read with confidence",
                "Classes the confident reconstructions cover"
            ]
        );
        assert_eq!(
            titles(ModelKind::Vae)[..3],
            [
                "Sample quality: Fréchet distance (lower is better)",
                "Samples read with confidence",
                "Classes the confident samples cover"
            ]
        );
        assert_eq!(
            titles(ModelKind::Vae)[3],
            titles(ModelKind::ConvAe)[3],
            "other plots keep their title"
        );
    }

    #[test]
    fn log_ticks_read_as_values() {
        assert_eq!(power_of_ten(-2.0), "0.01");
        assert_eq!(power_of_ten(2.0), "100");
        assert_eq!(power_of_ten(-6.0), "1e-6");
        assert_eq!(power_of_ten(2f64.log10()), "2");
        let marks: Vec<f64> = decade_marks(GridInput {
            bounds: (-3.5, 1.2),
            base_step_size: 0.01,
        })
        .iter()
        .filter(|m| m.step_size == 1.0)
        .map(|m| m.value)
        .collect();
        assert_eq!(marks, vec![-3.0, -2.0, -1.0, 0.0, 1.0]);
        // Within a decade (here 95 to 560), the ticks are round values.
        let within = GridInput {
            bounds: (95f64.log10(), 560f64.log10()),
            base_step_size: 0.02,
        };
        let labels: Vec<String> = decade_marks(within).iter().map(|m| power_of_ten(m.value)).collect();
        assert!(
            labels.iter().all(|l| l.parse::<f64>().unwrap() % 5.0 == 0.0),
            "{labels:?}"
        );
        assert!(
            ["100", "200", "500"].iter().all(|v| labels.contains(&v.to_string())),
            "{labels:?}"
        );
    }

    #[test]
    fn linear_ticks_step_by_one_two_and_five() {
        let marks = one_two_five_marks(GridInput {
            bounds: (0.55, 1.45),
            base_step_size: 0.03,
        });
        let sizes: Vec<f64> = marks.iter().map(|m| m.step_size).collect();
        assert!(sizes.iter().all(|s| [0.05, 0.1, 0.2].contains(s)), "{sizes:?}");
        let coarse: Vec<f64> = marks
            .iter()
            .filter(|m| m.step_size == 0.2)
            .map(|m| (m.value * 10.0).round())
            .collect();
        assert_eq!(coarse, vec![6.0, 8.0, 10.0, 12.0, 14.0]);
        assert_eq!(marks.len(), 19, "one mark per multiple of 0.05, no duplicates");
        // A flat curve's sliver of a range keeps six significant digits, not its step's eighteen decimals.
        let labels: Vec<String> = [(0.5, 0.5), (2.0, 2.0), (0.15, 0.05), (300.0, 100.0), (0.0234375, 1e-18)]
            .map(|(value, step_size)| tick_label(GridMark { value, step_size }))
            .into();
        assert_eq!(labels, ["0.5", "2", "0.15", "300", "0.0234375"]);
    }

    #[test]
    fn every_tick_size_is_a_multiple_of_the_finer_ones_so_labels_never_overlap() {
        for (bounds, base_step_size) in [((1.0, 2.0), 0.07), ((0.0, 3.0), 0.15), ((-7.0, 40.0), 3.3)] {
            let marks = one_two_five_marks(GridInput { bounds, base_step_size });
            let mut sizes: Vec<f64> = marks.iter().map(|m| m.step_size).collect();
            sizes.sort_by(f64::total_cmp);
            sizes.dedup();
            for pair in sizes.windows(2) {
                let ratio = pair[1] / pair[0];
                assert!((ratio - ratio.round()).abs() < 1e-9, "{sizes:?}");
            }
            // Marks of a size lie at least that size apart from every mark as coarse or coarser.
            for a in &marks {
                for b in marks
                    .iter()
                    .filter(|b| b.step_size >= a.step_size && b.value != a.value)
                {
                    assert!((a.value - b.value).abs() >= a.step_size * (1.0 - 1e-9), "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn times_read_as_clocks() {
        assert_eq!(clock(75.0), "1:15");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
