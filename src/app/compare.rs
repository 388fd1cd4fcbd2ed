//! Comparing pictures across steps and runs: A/B (two saved grids side by side, as a wipe, or as an amplified
//! difference) and the contact sheet (the grids of many runs at one step, sorted by a setting, exportable
//! as one PNG). Grids are read from the runs' folders through the catalog's bounded cache.

use super::catalog::{compare_setting_values, describe, short_key, Catalog};
use super::pictures::{version_of, GridView, ShownGrid};
use super::settings::GridZoom;
use crate::grid::{contact_sheet, ImageGrid};
use crate::numbers::significant;
use crate::quality;
use crate::runs::{nearest_step, GridKind};
use eframe::egui;
use egui::{Color32, ComboBox, Slider, Ui, Vec2};
use std::path::{Path, PathBuf};

/// How the two grids of an A/B comparison are shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AbMode {
    #[default]
    SideBySide,
    Wipe,
    Difference,
}

/// One side of an A/B comparison: a run and one of its saved steps.
#[derive(Clone, Debug, Default, PartialEq, Hash)]
pub struct Side {
    pub run: Option<PathBuf>,
    pub step: u64,
}

pub struct AbView {
    pub a: Side,
    pub b: Side,
    pub mode: AbMode,
    pub kind: GridKind,
    /// Where the wipe splits, 0 (all B) to 1 (all A).
    pub wipe: f32,
    /// How much the difference image is amplified.
    pub gain: f32,
    views: [GridView; 2],
    composite: GridView,
    /// The last wipe or difference image and the version of the inputs it was made from.
    composed: Option<(u64, Result<ImageGrid, String>)>,
    /// The runs (ticked, else the one in view) the sides were last filled for.
    filled_for: Vec<PathBuf>,
    /// B shows one run's newest grid as the run saves more, until the user picks B's step.
    b_follows_newest: bool,
}

impl Default for AbView {
    fn default() -> Self {
        AbView {
            a: Side::default(),
            b: Side::default(),
            mode: AbMode::default(),
            kind: GridKind::Samples,
            wipe: 0.5,
            gain: 4.0,
            views: [GridView::new("grid A"), GridView::new("grid B")],
            composite: GridView::new("A/B composite"),
            composed: None,
            filled_for: Vec::new(),
            b_follows_newest: false,
        }
    }
}

impl AbView {
    /// Fills empty sides: A the first of `runs`, B the second (at A's step) or A's run at its newest step.
    /// Sides picked by hand stay while `runs` do.
    /// The kind of grid follows the runs' models when A is first filled. A side waits for its run's list of
    /// grids (read in the background): picked from the empty list, one run's A and B were the same step.
    pub fn default_sides(&mut self, catalog: &mut Catalog, runs: &[&Path]) {
        // Other runs viewed or ticked: the sides follow them (they kept the first runs ever compared).
        if !runs.is_empty() && take_if_other(&mut self.filled_for, runs) {
            (self.a, self.b) = (Side::default(), Side::default());
        }
        if self.a.run.is_none() {
            let Some(first) = runs.first() else { return };
            let kind = kind_for(catalog, runs).unwrap_or(self.kind);
            let step = catalog.grid_steps(first, kind).first().copied();
            if !catalog.grid_steps_read(first, kind) {
                return;
            }
            self.kind = kind;
            self.a = Side {
                run: Some(first.to_path_buf()),
                step: step.unwrap_or(0),
            };
        }
        if self.b.run.is_none() {
            let Some(second) = runs.get(1).or(runs.first()) else {
                return;
            };
            let steps = catalog.grid_steps(second, self.kind);
            let step = if runs.len() > 1 {
                nearest_step(steps, self.a.step)
            } else {
                steps.last().copied()
            };
            if catalog.grid_steps_read(second, self.kind) {
                self.b = Side {
                    run: Some(second.to_path_buf()),
                    step: step.unwrap_or(0),
                };
                self.b_follows_newest = runs.len() == 1;
            }
        }
        if let (true, Some(run)) = (self.b_follows_newest, self.b.run.as_deref()) {
            if let Some(&newest) = catalog.grid_steps(run, self.kind).last() {
                self.b.step = self.b.step.max(newest);
            }
        }
    }

    pub fn show(&mut self, ui: &mut Ui, catalog: &mut Catalog, zoom: &mut GridZoom) {
        ui.horizontal_wrapped(|ui| {
            kind_choice(ui, &mut self.kind);
            ui.separator();
            let label = ui.label("Show");
            ui.label_inputs_by(label.id, |ui| {
                ui.radio_value(&mut self.mode, AbMode::SideBySide, "side by side");
                ui.radio_value(&mut self.mode, AbMode::Wipe, "wipe");
                ui.radio_value(&mut self.mode, AbMode::Difference, "difference");
            });
            match self.mode {
                AbMode::Wipe => {
                    let label = ui.label("Wipe");
                    ui.add(Slider::new(&mut self.wipe, 0.0..=1.0).show_value(false))
                        .labelled_by(label.id)
                        .on_hover_text("A left of the line, B right of it");
                }
                AbMode::Difference => {
                    let label = ui.label("Amplify");
                    ui.add(Slider::new(&mut self.gain, 1.0..=32.0).logarithmic(true).suffix("x"))
                        .labelled_by(label.id)
                        .on_hover_text("|A - B| per pixel, multiplied so small differences show");
                }
                AbMode::SideBySide => {}
            }
        });
        let b_before = self.b.clone();
        for (name, side) in [("A", &mut self.a), ("B", &mut self.b)] {
            ui.horizontal_wrapped(|ui| side_picker(ui, catalog, name, side, self.kind));
        }
        self.b_follows_newest &= self.b == b_before;
        let (Some(run_a), Some(run_b)) = (self.a.run.as_deref(), self.b.run.as_deref()) else {
            ui.weak("Pick a run and a step for A and for B: runs with saved grids are listed.");
            return;
        };
        // A run without grids of this kind (a plain autoencoder's samples) has no step to show.
        for (name, run) in [("A", run_a), ("B", run_b)] {
            if catalog.grid_steps(run, self.kind).is_empty() {
                match catalog.grid_steps_read(run, self.kind) {
                    true => {
                        let (kind, other) = kind_words(self.kind);
                        ui.weak(format!(
                            "Run {name} saved no {kind} grids: pick {other} or another run."
                        ));
                    }
                    false => {
                        ui.spinner();
                    }
                }
                return;
            }
        }
        // Ask for both (read in the background into the catalog's cache), then borrow them from it.
        let mut waiting = false;
        for (run, side) in [(run_a, &self.a), (run_b, &self.b)] {
            match catalog.grid(run, self.kind, side.step) {
                Ok(grid) => waiting |= grid.is_none(),
                Err(message) => {
                    ui.colored_label(ui.visuals().error_fg_color, message);
                    return;
                }
            }
        }
        let cached = |run, side: &Side| catalog.cached_grid(run, self.kind, side.step);
        let (Some(a), Some(b), false) = (cached(run_a, &self.a), cached(run_b, &self.b), waiting) else {
            ui.spinner();
            return;
        };
        let space = ui.available_size();
        match self.mode {
            AbMode::SideBySide => {
                let half = Vec2::new(space.x / 2.0 - 8.0, space.y - 24.0);
                ui.horizontal_top(|ui| {
                    for ((name, side, grid), view) in
                        [("A", &self.a, a), ("B", &self.b, b)].into_iter().zip(&mut self.views)
                    {
                        ui.vertical(|ui| {
                            ui.strong(format!("{name}: {}", caption(catalog, side)));
                            view.show(ui, grid, version_of(&(name, side, self.kind)), zoom, half);
                        });
                    }
                });
            }
            AbMode::Wipe | AbMode::Difference => {
                let key = (
                    &self.a,
                    &self.b,
                    self.kind,
                    self.mode,
                    self.wipe.to_bits(),
                    self.gain.to_bits(),
                );
                let version = version_of(&key);
                if self.composed.as_ref().is_none_or(|(v, _)| *v != version) {
                    let composite = if self.mode == AbMode::Wipe {
                        a.wipe(b, self.wipe)
                    } else {
                        a.difference(b, self.gain)
                    };
                    self.composed = Some((version, composite));
                }
                match &self.composed.as_ref().expect("made above").1 {
                    Ok(grid) => {
                        ui.strong(format!(
                            "A: {}   B: {}",
                            caption(catalog, &self.a),
                            caption(catalog, &self.b)
                        ));
                        let shown = self
                            .composite
                            .show(ui, grid, version, zoom, space - Vec2::new(0.0, 24.0));
                        if self.mode == AbMode::Wipe {
                            wipe_divider(ui, &shown, self.wipe);
                        }
                    }
                    Err(message) => {
                        ui.colored_label(ui.visuals().error_fg_color, message);
                    }
                }
            }
        }
    }
}

/// The line where a wipe splits A (left) from B: white edged in black, to show on any grid.
fn wipe_divider(ui: &Ui, shown: &ShownGrid, fraction: f32) {
    let x = shown.rect.left() + fraction * shown.rect.width();
    if shown.visible.x_range().contains(x) {
        let painter = ui.painter().with_clip_rect(shown.visible);
        painter.vline(x, shown.visible.y_range(), (3.0, Color32::BLACK));
        painter.vline(x, shown.visible.y_range(), (1.0, Color32::WHITE));
    }
}

/// The grids worth showing of `runs`: reconstructions where none of their models generates (plain
/// autoencoders save no samples), samples where all do; `None` for a mix (or no runs).
fn kind_for(catalog: &Catalog, runs: &[&Path]) -> Option<GridKind> {
    let generates: Vec<bool> = runs
        .iter()
        .filter_map(|run| catalog.find(run))
        .map(|run| run.summary.config.model.kind.generates())
        .collect();
    match (generates.contains(&true), generates.contains(&false)) {
        (true, false) => Some(GridKind::Samples),
        (false, true) => Some(GridKind::Reconstructions),
        _ => None,
    }
}

/// Whether `runs` are other runs than `seen`, which then become them.
fn take_if_other(seen: &mut Vec<PathBuf>, runs: &[&Path]) -> bool {
    let other = !runs.iter().eq(seen.iter());
    if other {
        *seen = runs.iter().map(|run| run.to_path_buf()).collect();
    }
    other
}

/// A kind of grid as words ("sample" grids) and the other kind ("reconstructions").
fn kind_words(kind: GridKind) -> (&'static str, &'static str) {
    match kind {
        GridKind::Samples => ("sample", "reconstructions"),
        GridKind::Reconstructions => ("reconstruction", "samples"),
    }
}

/// Samples or reconstructions.
fn kind_choice(ui: &mut Ui, kind: &mut GridKind) {
    let label = ui.label("Grid");
    ui.label_inputs_by(label.id, |ui| {
        ui.radio_value(kind, GridKind::Samples, "samples");
        ui.radio_value(kind, GridKind::Reconstructions, "reconstructions");
    });
}

/// A run picker and a step slider over the run's saved grids.
fn side_picker(ui: &mut Ui, catalog: &mut Catalog, name: &str, side: &mut Side, kind: GridKind) {
    let runs: Vec<(PathBuf, String)> = catalog
        .runs()
        .iter()
        .map(|r| (r.path().to_path_buf(), r.name().to_string()))
        .collect();
    let label = ui.label(format!("Run {name}"));
    let selected = side
        .run
        .as_deref()
        .and_then(|p| runs.iter().find(|(path, _)| path == p))
        .map_or("(pick a run)", |(_, n)| n.as_str());
    ComboBox::from_id_salt(("ab run", name))
        .selected_text(selected)
        .show_ui(ui, |ui| {
            for (path, run_name) in &runs {
                ui.selectable_value(&mut side.run, Some(path.clone()), run_name);
            }
        })
        .response
        .labelled_by(label.id);
    let Some(run) = side.run.clone() else { return };
    let steps = catalog.grid_steps(&run, kind).to_vec();
    step_slider(ui, &format!("Step {name}"), &steps, &mut side.step);
}

/// A slider over the saved `steps` (by index, so every position is a saved grid), showing the step.
pub fn step_slider(ui: &mut Ui, label: &str, steps: &[u64], step: &mut u64) -> bool {
    let label = ui.label(label);
    let Some(last) = steps.len().checked_sub(1) else {
        ui.weak("no saved grids");
        return false;
    };
    let mut index = steps.partition_point(|s| s < step).min(last);
    let changed = ui
        .add(
            Slider::new(&mut index, 0..=last)
                .custom_formatter(|i, _| steps[(i as usize).min(last)].to_string())
                .custom_parser(|text| {
                    let wanted: u64 = text.trim().parse().ok()?;
                    Some(steps.partition_point(|s| *s < wanted).min(last) as f64)
                }),
        )
        .labelled_by(label.id)
        .changed();
    *step = steps[index];
    changed
}

/// `name, step N (lr=...)`.
fn caption(catalog: &Catalog, side: &Side) -> String {
    let Some(run) = side.run.as_deref().and_then(|p| catalog.find(p)) else {
        return String::new();
    };
    let differences = describe(&run.differences);
    match differences.is_empty() {
        true => format!("{}, step {}", run.name(), side.step),
        false => format!("{}, step {} ({differences})", run.name(), side.step),
    }
}

/// The contact sheet's order by the quality metric (lowest Fréchet distance first).
const QUALITY_SORT: &str = "quality (fd, best first)";

/// The grids of several runs at one step, side by side.
pub struct ContactSheetView {
    pub step: u64,
    pub kind: GridKind,
    /// The setting the tiles are ordered by (`optimizer.lr`), `fd` for the quality metric; empty orders by
    /// name.
    pub sort_key: String,
    sheet: GridView,
    /// The sheet last composed and the order of its tiles, with the version of the tiles it was composed
    /// from: grids are read and laid out again only when the tiles change.
    composed: Option<(u64, ImageGrid, String)>,
    /// The tiles' grids as they arrive from the catalog (read in the background), for the sheet of that
    /// version: `Some(None)` is a grid that could not be read (its run is left out).
    gathered: (u64, Vec<Option<Option<ImageGrid>>>),
    /// The runs last shown, whose models chose `kind`.
    runs: Vec<PathBuf>,
}

impl Default for ContactSheetView {
    fn default() -> Self {
        ContactSheetView {
            // The newest saved grids until a step is picked.
            step: u64::MAX,
            kind: GridKind::Samples,
            sort_key: String::new(),
            sheet: GridView::new("contact sheet"),
            composed: None,
            gathered: (0, Vec::new()),
            runs: Vec::new(),
        }
    }
}

/// One tile of the sheet: a run's grid saved at `step`.
#[derive(Hash)]
pub struct Tile<'a> {
    pub run: &'a Path,
    pub label: String,
    pub step: u64,
}

impl ContactSheetView {
    /// The tiles of `runs` at the saved step nearest `self.step`, ordered by the sort setting.
    pub fn tiles<'a>(&self, catalog: &mut Catalog, runs: &[&'a Path]) -> Vec<Tile<'a>> {
        let mut tiles: Vec<(Option<String>, Tile<'a>)> = Vec::new();
        // What tells each run apart from the others of its model and data; the runs shown may share it.
        let described: Vec<String> = runs
            .iter()
            .map(|run| {
                catalog
                    .find(run)
                    .map_or(String::new(), |listed| describe(&listed.differences))
            })
            .collect();
        for (&run, differences) in runs.iter().zip(&described) {
            let Some(step) = nearest_step(catalog.grid_steps(run, self.kind), self.step) else {
                continue;
            };
            let Some(listed) = catalog.find(run) else {
                continue;
            };
            let shared = described.iter().filter(|d| *d == differences).count() > 1;
            let mut label = match (differences.is_empty(), shared) {
                (true, _) => listed.name().to_string(),
                (false, true) => format!("{} ({differences})", listed.name()),
                (false, false) => differences.clone(),
            };
            let sort_value = if self.sort_key == quality::FD {
                // The run's latest score: the sheet ranks runs by how good their samples are (the label says
                // which step scored it: the tiles may be of another).
                let scored = listed.summary.scored.as_ref();
                let fd = scored.and_then(|row| Some((row.get(quality::FD)?, row.step)));
                match fd {
                    Some((fd, at)) if at == step => label.push_str(&format!(", fd {}", significant(fd))),
                    Some((fd, at)) => label.push_str(&format!(", fd {} at step {at}", significant(fd))),
                    None => {}
                }
                fd.map(|(fd, _)| fd.to_string())
            } else if self.sort_key.is_empty() {
                // By name: the label may be the settings that tell the run apart instead.
                Some(listed.name().to_string())
            } else {
                listed.setting(&self.sort_key).map(str::to_string)
            };
            tiles.push((sort_value, Tile { run, label, step }));
        }
        tiles.sort_by(|(x, a), (y, b)| {
            compare_setting_values(x.as_deref(), y.as_deref()).then_with(|| a.label.cmp(&b.label))
        });
        tiles.into_iter().map(|(_, tile)| tile).collect()
    }

    /// Draws the sheet; returns it as one image when the user asks to export it.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        catalog: &mut Catalog,
        runs: &[&Path],
        zoom: &mut GridZoom,
    ) -> Option<ImageGrid> {
        // The grids worth showing of a new set of runs (a plain autoencoder saves no samples).
        if take_if_other(&mut self.runs, runs) {
            self.kind = kind_for(catalog, runs).unwrap_or(self.kind);
        }
        let mut keys: Vec<String> = runs
            .iter()
            .filter_map(|r| catalog.find(r))
            .flat_map(|r| r.differences.iter().map(|(k, _)| k.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        let mut all_steps: Vec<u64> = runs
            .iter()
            .flat_map(|r| catalog.grid_steps(r, self.kind).to_vec())
            .collect();
        all_steps.sort_unstable();
        all_steps.dedup();
        let mut export = false;
        ui.horizontal_wrapped(|ui| {
            kind_choice(ui, &mut self.kind);
            ui.separator();
            let mut step = self.step;
            if step_slider(ui, "Sheet step", &all_steps, &mut step) {
                // The last position keeps following the newest grids, as before any pick.
                self.step = match all_steps.last() == Some(&step) {
                    true => u64::MAX,
                    false => step,
                };
            }
            ui.separator();
            let label = ui.label("Sort by");
            let shown = match self.sort_key.as_str() {
                "" => "name".to_string(),
                quality::FD => QUALITY_SORT.to_string(),
                key => short_key(key).to_string(),
            };
            ComboBox::from_id_salt("sheet sort")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.sort_key, String::new(), "name");
                    ui.selectable_value(&mut self.sort_key, quality::FD.to_string(), QUALITY_SORT);
                    for key in &keys {
                        ui.selectable_value(&mut self.sort_key, key.clone(), short_key(key));
                    }
                })
                .response
                .labelled_by(label.id);
            export = ui
                .button("Export PNG...")
                .on_hover_text("Save the sheet as one image")
                .clicked();
        });
        let tiles = self.tiles(catalog, runs);
        if tiles.is_empty() {
            let (kind, other) = kind_words(self.kind);
            ui.weak(match runs.len() {
                0 => "Tick runs in the run list (or list some): their saved grids show here, one per run.".into(),
                n => format!("None of the {n} runs saved {kind} grids (yet): pick {other}, or wait for them."),
            });
            return None;
        }
        let version = version_of(&(&tiles, self.kind));
        if self.composed.as_ref().is_none_or(|(v, _, _)| *v != version) {
            if self.gathered.0 != version {
                self.gathered = (version, vec![None; tiles.len()]);
            }
            for (tile, slot) in tiles.iter().zip(&mut self.gathered.1) {
                if slot.is_none() {
                    match catalog.grid(tile.run, self.kind, tile.step) {
                        Ok(Some(grid)) => *slot = Some(Some(grid.clone())),
                        Ok(None) => {}
                        Err(_) => *slot = Some(None),
                    }
                }
            }
            if self.gathered.1.iter().any(Option::is_none) {
                ui.spinner();
                return None;
            }
            let (mut grids, mut order) = (Vec::new(), Vec::new());
            for (tile, grid) in tiles.iter().zip(std::mem::take(&mut self.gathered.1)) {
                if let Some(Some(grid)) = grid {
                    grids.push(grid);
                    order.push(format!("{}. {} (step {})", grids.len(), tile.label, tile.step));
                }
            }
            let sheet = contact_sheet(&grids, columns_for(grids.len()));
            self.composed = Some((version, sheet, order.join("   ")));
        }
        let (_, sheet, order) = self.composed.as_ref().expect("composed above");
        ui.label(format!("Left to right, top to bottom: {order}"));
        self.sheet.show(ui, sheet, version, zoom, ui.available_size());
        export.then(|| sheet.clone())
    }
}

/// Columns of a roughly square sheet of `count` tiles.
fn columns_for(count: usize) -> usize {
    (count as f64).sqrt().ceil().max(1.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::grid_path;
    use std::time::{Duration, Instant};

    /// Empty sample-grid files of `steps` in the run folder `dir` (their names are all the lists read).
    fn saved_grids(dir: &Path, steps: &[u64]) {
        std::fs::create_dir_all(dir.join(GridKind::Samples.folder())).unwrap();
        for &step in steps {
            std::fs::write(grid_path(dir, GridKind::Samples, step), b"").unwrap();
        }
    }

    /// Takes in the catalog's background answers until `done`, failing after a generous timeout.
    fn poll_until(catalog: &mut Catalog, what: &str, mut done: impl FnMut(&mut Catalog) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(catalog) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
            catalog.poll();
        }
    }

    #[test]
    fn one_runs_sides_wait_for_its_list_of_grids_then_take_its_first_and_newest_steps() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a");
        saved_grids(&dir, &[100, 200, 300]);
        let mut catalog = Catalog::new(root.path().to_path_buf());
        let mut ab = AbView::default();
        ab.default_sides(&mut catalog, &[&dir]);
        assert_eq!(
            (&ab.a.run, &ab.b.run),
            (&None, &None),
            "nothing picked from a list not read yet"
        );
        poll_until(&mut catalog, "the list", |c| c.grid_steps_read(&dir, GridKind::Samples));
        ab.default_sides(&mut catalog, &[&dir]);
        assert_eq!((ab.a.step, ab.b.step), (100, 300));
    }

    #[test]
    fn the_sides_follow_another_run_put_in_view_and_keep_a_hand_picked_step_while_it_stays() {
        let root = tempfile::tempdir().unwrap();
        let [a, b] = ["a", "b"].map(|name| root.path().join(name));
        for dir in [&a, &b] {
            saved_grids(dir, &[100, 200]);
        }
        let mut catalog = Catalog::new(root.path().to_path_buf());
        let mut ab = AbView::default();
        let mut filled = |ab: &mut AbView, runs: &[&Path]| {
            poll_until(&mut catalog, "the lists", |c| {
                ab.default_sides(c, runs);
                ab.b.run.is_some()
            })
        };
        filled(&mut ab, &[&a]);
        // As B's picker does when the user moves it.
        (ab.b.step, ab.b_follows_newest) = (100, false);
        filled(&mut ab, &[&a]);
        assert_eq!((&ab.a.run, ab.b.step), (&Some(a.clone()), 100), "picked by hand");
        filled(&mut ab, &[&b]);
        assert_eq!(
            (&ab.a.run, &ab.b.run, ab.b.step),
            (&Some(b.clone()), &Some(b.clone()), 200)
        );
        // The run saves a newer grid: B, not picked by hand, shows it.
        saved_grids(&b, &[300]);
        catalog.forget_grid_steps(&b);
        poll_until(&mut catalog, "the new list", |c| {
            c.grid_steps(&b, GridKind::Samples).last() == Some(&300)
        });
        ab.default_sides(&mut catalog, &[&b]);
        assert_eq!((ab.a.step, ab.b.step), (100, 300));
    }

    #[test]
    fn tiles_of_runs_with_the_same_differences_are_told_apart_by_name() {
        let root = tempfile::tempdir().unwrap();
        let made = |name: &str, lr: f64| {
            let dir = root.path().join(name);
            let mut config = crate::config::RunConfig::default();
            config.optimizer.lr = lr;
            saved_grids(&dir, &[10]);
            crate::runs::write_config(&dir, &config).unwrap();
            dir
        };
        let (a, b, _c) = (made("a", 1e-3), made("b", 1e-3), made("c", 2e-4));
        let mut catalog = Catalog::new(root.path().to_path_buf());
        catalog.refresh_if_stale(|| std::sync::Arc::new(|| {}));
        let sheet = ContactSheetView::default();
        let mut labels = Vec::new();
        poll_until(&mut catalog, "the runs to be listed", |c| {
            labels = sheet.tiles(c, &[&a, &b]).into_iter().map(|t| t.label).collect();
            labels.len() == 2
        });
        assert_eq!(labels, ["a (lr=0.001)", "b (lr=0.001)"]);
    }
}
