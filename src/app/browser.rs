//! The run browser: every run under the runs folder as a sortable, filterable table (what differs from its
//! siblings, steps, final and lowest loss, status, creation time). Ticking runs overlays their curves;
//! rows can be viewed, continued, stopped, renamed, tagged and deleted; sweeps are queued from here.

use super::catalog::{compare_setting_values, describe, short_key, Catalog, CatalogRun};
use super::controls::Action;
use super::fleet::Fleet;
use super::path_prompt::PathFor;
use super::widgets::bounded;
use crate::config::RunConfig;
use crate::numbers::significant;
use crate::quality;
use crate::sweep::{self, Axis};
use crate::train::worker::RunState;
use eframe::egui;
use egui::{Button, Grid, RichText, ScrollArea, TextEdit, Ui};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// What the table is sorted by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortBy {
    Name,
    Status,
    Steps,
    /// The last Fréchet distance of the quality metric.
    Quality,
    Final,
    Lowest,
    #[default]
    Created,
    /// A setting's value (`optimizer.lr`), compared as a number where both are numbers.
    Setting(String),
}

/// How the browser lists runs; remembered across restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrowserSettings {
    pub sort: SortBy,
    pub ascending: bool,
    /// Shows runs whose name, tags, model, data, status or differing settings contain it.
    pub filter: String,
    /// The metric of the Final and Lowest columns; empty means each run's main loss (`loss_g` for GANs,
    /// `loss` for autoencoders).
    pub metric: String,
    /// How many runs train at once; the others wait in the queue.
    pub parallel: usize,
    /// How many CPU threads each training step's kernels split their work over.
    pub threads: usize,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        BrowserSettings {
            sort: SortBy::Created,
            ascending: false,
            filter: String::new(),
            metric: String::new(),
            parallel: 2,
            threads: crate::threads::pool_size(),
        }
    }
}

/// One row as shown: the run on disk with what its live worker (if any) says on top.
struct Row<'a> {
    run: &'a CatalogRun,
    status: String,
    steps: u64,
    last: Option<f64>,
    lowest: Option<f64>,
    /// The last Fréchet distance, and all quality values in words.
    quality: Option<(f64, String)>,
    losses: String,
    live: bool,
}

#[derive(Default)]
pub struct RunBrowser {
    /// The run being renamed and the name typed so far.
    renaming: Option<(PathBuf, String)>,
    tagging: Option<(PathBuf, String)>,
    /// A name or tag editor has just opened: it takes the keyboard.
    focus_editor: bool,
    /// The run a delete waits for confirmation of.
    deleting: Option<PathBuf>,
    sweep_open: bool,
    sweep_axes: [String; 2],
    /// The sweep form's axes and run count, or why they cannot queue, for the draft and texts they were
    /// worked out from (each value is applied to the draft and checked, so typing shows a bad value at once).
    sweep_points: Option<SweepPoints>,
}

type SweepPoints = ((RunConfig, [String; 2]), Result<(Vec<Axis>, usize), String>);

/// What new runs start from: the draft settings, and whether they can start.
pub struct Draft<'a> {
    pub config: &'a RunConfig,
    pub launch: &'a Result<(), String>,
}

impl RunBrowser {
    /// Draws the browser; `selection` holds the ticked runs (their curves overlay), `draft` what a sweep's
    /// runs start from.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        catalog: &Catalog,
        fleet: &Fleet,
        settings: &mut BrowserSettings,
        selection: &mut Vec<PathBuf>,
        draft: &Draft<'_>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        self.header(ui, catalog, settings, draft, &mut actions);
        for problem in catalog.problems() {
            ui.colored_label(ui.visuals().warn_fg_color, problem);
        }
        let rows = rows(catalog, fleet, settings);
        if rows.is_empty() {
            ui.weak(if catalog.runs().is_empty() {
                "No runs yet: each Start writes one here."
            } else {
                "No run matches the filter."
            });
        }
        // The settings that differ between the listed runs each get a column (a sweep's axes, say).
        let mut setting_keys: Vec<&str> = rows
            .iter()
            .flat_map(|r| r.run.differences.iter().map(|(k, _)| k.as_str()))
            .collect();
        setting_keys.sort_unstable();
        setting_keys.dedup();
        // The table fills the panel, so the panel keeps the height it was given (or dragged to).
        ScrollArea::both()
            .id_salt("run table")
            .auto_shrink(false)
            .show(ui, |ui| {
                Grid::new("runs")
                    .striped(true)
                    .min_col_width(40.0)
                    .spacing([12.0, 4.0])
                    .show(ui, |ui| {
                        let metric = match settings.metric.trim() {
                            "" => "loss".to_string(),
                            named => named.to_string(),
                        };
                        self.header_row(ui, settings, &setting_keys, &metric);
                        for row in &rows {
                            self.table_row(ui, row, &setting_keys, fleet, selection, &mut actions);
                        }
                    });
            });
        self.confirm_delete(ui, &mut actions);
        actions
    }

    fn header(
        &mut self,
        ui: &mut Ui,
        catalog: &Catalog,
        settings: &mut BrowserSettings,
        draft: &Draft<'_>,
        actions: &mut Vec<Action>,
    ) {
        ui.horizontal_wrapped(|ui| {
            ui.strong("Runs");
            ui.weak(catalog.root().display().to_string());
            if ui
                .button("Change folder...")
                .on_hover_text("List and write runs in another folder")
                .clicked()
            {
                actions.push(Action::ChoosePath(PathFor::RunsFolder));
            }
            if ui
                .button("Refresh")
                .on_hover_text("Read the runs folder again")
                .clicked()
            {
                actions.push(Action::RefreshRuns);
            }
            ui.separator();
            let label = ui.label("Filter");
            ui.add(TextEdit::singleline(&mut settings.filter).desired_width(140.0))
                .labelled_by(label.id)
                .on_hover_text("Name, tag, model, dataset, status or setting; runs that are training always show");
            let label = ui.label("Metric");
            ui.add(
                TextEdit::singleline(&mut settings.metric)
                    .desired_width(90.0)
                    .hint_text("main loss"),
            )
            .labelled_by(label.id)
            .on_hover_text(
                "The metric of the Final and Lowest columns (empty: loss_g for GANs, loss for autoencoders)",
            );
            let label = ui.label("Train at most");
            bounded(ui, 1..=16, egui::DragValue::new(&mut settings.parallel))
                .labelled_by(label.id)
                .on_hover_text("Runs beyond this wait in the queue and start as others finish or pause");
            ui.label("runs at once");
            let label = ui.label("CPU threads");
            let cores = crate::threads::pool_size();
            bounded(ui, 1..=cores, egui::DragValue::new(&mut settings.threads))
                .labelled_by(label.id)
                .on_hover_text(format!(
                    "Threads each training step's convolutions, matrix products and element-wise kernels use \
                     (at most {cores}, one per physical core; takes effect from the next step)"
                ));
            ui.separator();
            ui.toggle_value(&mut self.sweep_open, "Sweep...")
                .on_hover_text("Queue one run per value of one or two settings");
        });
        if self.sweep_open {
            self.sweep_form(ui, draft, actions);
        }
    }

    fn sweep_form(&mut self, ui: &mut Ui, draft: &Draft<'_>, actions: &mut Vec<Action>) {
        ui.horizontal_wrapped(|ui| {
            for (i, text) in self.sweep_axes.iter_mut().enumerate() {
                let label = ui.label(format!("Sweep setting {}", i + 1));
                ui.add(
                    TextEdit::singleline(text)
                        .desired_width(220.0)
                        .hint_text(["optimizer.lr=1e-4..1e-2:3", "data.batch_size=32,64"][i]),
                )
                .labelled_by(label.id);
            }
            // Worked out again only when the draft or the texts changed (each value goes through the config).
            let stale = self
                .sweep_points
                .as_ref()
                .is_none_or(|((config, texts), _)| config != draft.config || *texts != self.sweep_axes);
            if stale {
                let points = sweep_points(draft.config, &self.sweep_axes);
                self.sweep_points = Some(((draft.config.clone(), self.sweep_axes.clone()), points));
            }
            let points = &self.sweep_points.as_ref().expect("worked out above").1;
            let allowed = match (points, draft.launch) {
                (Ok(points), Ok(())) => Ok(points),
                (Err(reason), _) | (_, Err(reason)) => Err(reason.clone()),
            };
            let count = allowed.as_ref().map_or(0, |(_, count)| *count);
            let button = ui.add_enabled(allowed.is_ok(), Button::new(format!("Queue {count} runs")));
            match allowed {
                Ok((axes, _)) => {
                    if button
                        .on_hover_text("Each run uses the settings on the left with its sweep values")
                        .clicked()
                    {
                        actions.push(Action::QueueSweep(axes.clone()));
                        self.sweep_open = false;
                    }
                }
                // Nothing typed yet is no error.
                Err(reason) if self.sweep_axes.iter().all(|t| t.trim().is_empty()) => {
                    ui.weak(reason);
                }
                Err(reason) => {
                    ui.colored_label(ui.visuals().error_fg_color, reason);
                }
            }
        });
    }

    fn header_row(&self, ui: &mut Ui, settings: &mut BrowserSettings, setting_keys: &[&str], metric: &str) {
        let mut sortable = |ui: &mut Ui, title: &str, by: SortBy| {
            let arrow = match (settings.sort == by, settings.ascending) {
                (true, true) => " ^",
                (true, false) => " v",
                (false, _) => "",
            };
            let response = ui
                .add(Button::new(RichText::new(format!("{title}{arrow}")).strong()).frame(false))
                .on_hover_text("Sort by this column (again: reverse)");
            if response.clicked() {
                if settings.sort == by {
                    settings.ascending = !settings.ascending;
                } else {
                    settings.sort = by;
                    settings.ascending = true;
                }
            }
        };
        sortable(ui, "Run (tick to compare)", SortBy::Name);
        ui.strong("");
        sortable(ui, "Status", SortBy::Status);
        ui.strong("Model");
        ui.strong("Data");
        for key in setting_keys {
            sortable(ui, short_key(key), SortBy::Setting(key.to_string()));
        }
        sortable(ui, "Steps", SortBy::Steps);
        sortable(ui, "Quality (fd)", SortBy::Quality);
        sortable(ui, &format!("Final {metric}"), SortBy::Final);
        sortable(ui, &format!("Lowest {metric}"), SortBy::Lowest);
        ui.strong("Last losses");
        ui.strong("Tags");
        sortable(ui, "Created", SortBy::Created);
        ui.end_row();
    }

    fn table_row(
        &mut self,
        ui: &mut Ui,
        row: &Row<'_>,
        setting_keys: &[&str],
        fleet: &Fleet,
        selection: &mut Vec<PathBuf>,
        actions: &mut Vec<Action>,
    ) {
        let path = row.run.path();
        match &mut self.renaming {
            Some((dir, name)) if dir == path => match edited_line(
                ui,
                ("New name", name, 160.0),
                "Save name",
                std::mem::take(&mut self.focus_editor),
            ) {
                Some(Edit::Save) => {
                    actions.push(Action::RenameRun(dir.clone(), name.trim().to_string()));
                    self.renaming = None;
                }
                Some(Edit::Cancel) => self.renaming = None,
                None => {}
            },
            _ => {
                ui.horizontal(|ui| {
                    let mut ticked = selection.iter().any(|p| p == path);
                    let tick = ui.checkbox(&mut ticked, "").on_hover_text("Tick to overlay its curves");
                    let viewed = fleet.focus_dir() == Some(path);
                    let name = ui
                        .selectable_label(viewed, row.run.name())
                        .on_hover_text(format!("View this run's curves and pictures\n{}", path.display()));
                    // Screen readers and tests find the tick box by the run's name too.
                    let tick = tick.labelled_by(name.id);
                    if tick.changed() {
                        if ticked {
                            selection.push(path.to_path_buf());
                        } else {
                            selection.retain(|p| p != path);
                        }
                    }
                    if name.clicked() && !viewed {
                        actions.push(Action::ViewRun(path.to_path_buf()));
                    }
                });
            }
        }
        // The actions sit beside the name, so they show however many setting columns the table has.
        self.row_actions(ui, row, actions);
        ui.label(&row.status);
        let config = &row.run.summary.config;
        ui.label(config.model.kind.label());
        ui.label(&config.data.source);
        for key in setting_keys {
            ui.label(row.run.setting(key).unwrap_or(""));
        }
        // Cells that change with every training step get room to change in: a grid whose columns change
        // width asks for another frame to lay itself out again, which doubled the frames while training.
        let changing = |ui: &mut Ui, width: f32, text: &str| {
            ui.scope(|ui| {
                ui.set_min_width(width);
                ui.label(text);
            });
        };
        changing(ui, 50.0, &row.steps.to_string());
        match &row.quality {
            Some((fd, words)) => {
                ui.scope(|ui| {
                    ui.set_min_width(60.0);
                    let scored = match row.run.summary.config.model.kind.generates() {
                        true => "samples",
                        false => "reconstructions",
                    };
                    ui.label(significant(*fd)).on_hover_text(format!(
                        "{words}. Fréchet distance between real held-out items and the run's {scored} in a \
                         feature network's space: lower is better"
                    ));
                });
            }
            None => changing(ui, 60.0, ""),
        }
        changing(ui, 60.0, &row.last.map(significant).unwrap_or_default());
        changing(ui, 60.0, &row.lowest.map(significant).unwrap_or_default());
        changing(ui, 170.0, &row.losses);
        ui.label(row.run.summary.meta.tags.join(", "));
        ui.label(created(row.run.summary.meta.created));
        ui.end_row();
    }

    /// The row's buttons, its tag editor while its tags are being edited, or nothing while it is renamed
    /// (the name's editor pushes the cell right: its Continue landed under the pointer that clicked Rename).
    fn row_actions(&mut self, ui: &mut Ui, row: &Row<'_>, actions: &mut Vec<Action>) {
        let path = row.run.path();
        if self.renaming.as_ref().is_some_and(|(dir, _)| dir == path) {
            ui.label("");
            return;
        }
        match &mut self.tagging {
            Some((dir, tags)) if dir == path => {
                let focus = std::mem::take(&mut self.focus_editor);
                match edited_line(ui, ("Tags (comma separated)", tags, 120.0), "Save tags", focus) {
                    Some(Edit::Save) => {
                        actions.push(Action::TagRun(dir.clone(), parse_tags(tags)));
                        self.tagging = None;
                    }
                    Some(Edit::Cancel) => self.tagging = None,
                    None => {}
                }
            }
            _ => self.row_buttons(ui, row, actions),
        }
    }

    fn row_buttons(&mut self, ui: &mut Ui, row: &Row<'_>, actions: &mut Vec<Action>) {
        let path = row.run.path();
        ui.horizontal(|ui| {
            if row.live {
                if ui
                    .button("Stop")
                    .on_hover_text("End this run (its last checkpoint is written)")
                    .clicked()
                {
                    actions.push(Action::StopRun(path.to_path_buf()));
                }
            } else if ui
                .button("Continue")
                .on_hover_text(match row.run.summary.rows_past_checkpoints() {
                    Some((newest, last)) => format!(
                        "Train this run on from its newest checkpoint, of step {newest}: its metric rows of steps \
                         {} to {last} are dropped (Fork from the checkpoint in the Health tab keeps them)",
                        newest + 1
                    ),
                    None => "Train this run on from its last checkpoint (or from the start if it has none)".into(),
                })
                .clicked()
            {
                actions.push(Action::ContinueRun(path.to_path_buf()));
            }
            if ui.button("Rename").clicked() {
                self.renaming = Some((path.to_path_buf(), row.run.name().to_string()));
                self.focus_editor = true;
            }
            if ui.button("Tags").clicked() {
                self.tagging = Some((path.to_path_buf(), row.run.summary.meta.tags.join(", ")));
                self.focus_editor = true;
            }
            if ui
                .add_enabled(!row.live, Button::new("Delete"))
                .on_disabled_hover_text("Stop the run first")
                .clicked()
            {
                self.deleting = Some(path.to_path_buf());
            }
        });
    }

    fn confirm_delete(&mut self, ui: &mut Ui, actions: &mut Vec<Action>) {
        let Some(dir) = self.deleting.clone() else { return };
        let name = crate::runs::dir_name(&dir);
        egui::Modal::new(egui::Id::unique("confirm delete")).show(ui.ctx(), |ui| {
            ui.heading(format!("Delete run {name}?"));
            ui.label(format!(
                "{} and everything in it (curves, grids, checkpoints) is removed from disk.",
                dir.display()
            ));
            ui.horizontal(|ui| {
                if ui.button("Delete run").clicked() {
                    actions.push(Action::DeleteRun(dir.clone()));
                    self.deleting = None;
                }
                if ui.button("Cancel").clicked() {
                    self.deleting = None;
                }
            });
        });
    }
}

/// The tags typed as "a, b, a": each once, in the order typed, without blanks.
fn parse_tags(text: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    tags
}

/// The axes typed in the sweep form and how many runs they make over `draft`, or the first text or value
/// that cannot make a run (naming the setting and what it expects).
fn sweep_points(draft: &RunConfig, texts: &[String; 2]) -> Result<(Vec<Axis>, usize), String> {
    let axes = texts
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| Axis::parse(t))
        .collect::<Result<Vec<Axis>, String>>()?;
    if axes.is_empty() {
        return Err("type a setting and its values, e.g. optimizer.lr=1e-4..1e-2:3".to_string());
    }
    let count = sweep::expand(draft, &axes)?.len();
    Ok((axes, count))
}

/// A labelled one-line text field (label, text, width) with its save and cancel buttons: what was pressed
/// (Enter saves, Escape cancels). With `focus` (it has just opened), the field takes the keyboard.
fn edited_line(ui: &mut Ui, (label, text, width): (&str, &mut String, f32), save: &str, focus: bool) -> Option<Edit> {
    ui.horizontal(|ui| {
        let label = ui.label(label);
        let edit = ui
            .add(TextEdit::singleline(text).desired_width(width))
            .labelled_by(label.id);
        if focus {
            edit.request_focus();
        }
        let key = |key| edit.lost_focus() && ui.input(|i| i.key_pressed(key));
        let (enter, escape) = (key(egui::Key::Enter), key(egui::Key::Escape));
        let saved = ui.button(save).clicked() || enter;
        let cancelled = ui.button("Cancel").clicked() || escape;
        match (saved, cancelled) {
            (true, _) => Some(Edit::Save),
            (false, true) => Some(Edit::Cancel),
            (false, false) => None,
        }
    })
    .inner
}

/// What the user did with a line being edited.
enum Edit {
    Save,
    Cancel,
}

/// The listed runs that pass the filter, in the chosen order, with live values where a worker runs them.
fn rows<'a>(catalog: &'a Catalog, fleet: &Fleet, settings: &BrowserSettings) -> Vec<Row<'a>> {
    let filter = settings.filter.trim().to_lowercase();
    let chosen = settings.metric.trim();
    let mut rows: Vec<Row<'a>> = catalog
        .runs()
        .iter()
        .map(|run| {
            let summary = &run.summary;
            let metric = match (chosen, summary.config.model.kind.is_gan()) {
                ("", true) => "loss_g",
                ("", false) => "loss",
                (named, _) => named,
            };
            let live = fleet.get(run.path());
            let history = live.map(|l| l.history()).filter(|h| !h.is_empty());
            let status = match live {
                Some(l) if l.is_queued() => "queued".to_string(),
                Some(l) => l.state().map_or("starting", RunState::label).to_string(),
                None => summary.meta.status.closed_label().to_string(),
            };
            let last_losses = |value: &dyn Fn(&str) -> Option<f64>, names: Vec<&str>| {
                names
                    .into_iter()
                    .filter(|n| n.starts_with("loss") || *n == "recon" || *n == "kl")
                    .filter_map(|n| value(n).map(|v| format!("{n} {}", significant(v))))
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            let (steps, last, lowest, quality, losses) = match history {
                Some(h) => (
                    live.map_or(0, |l| l.step()),
                    h.latest(metric),
                    h.lowest(metric),
                    h.latest(quality::FD).zip(super::status_bar::quality_text(h)),
                    last_losses(&|n| h.latest(n), h.metric_names().collect()),
                ),
                None => (
                    summary.last.as_ref().map_or(summary.meta.steps_done, |r| r.step),
                    summary.last_value(metric),
                    summary.lowest_value(metric),
                    summary
                        .scored
                        .as_ref()
                        .and_then(|r| r.get(quality::FD))
                        .zip(summary.quality()),
                    last_losses(
                        &|n| summary.last_value(n),
                        summary
                            .last
                            .iter()
                            .flat_map(|r| r.values.iter().map(|(n, _)| n.as_str()))
                            .collect(),
                    ),
                ),
            };
            Row {
                run,
                status,
                steps,
                last,
                lowest,
                quality,
                losses,
                // A finished run's worker stays open (to train on if the budget is raised) but does nothing.
                live: live
                    .is_some_and(|l| l.is_queued() || l.takes_commands() && l.state() != Some(RunState::Finished)),
            }
        })
        // Runs that train (or wait to) always show, so a filter set for an earlier sweep never hides a new run.
        .filter(|row| row.live || filter.is_empty() || haystack(row).contains(&filter))
        .collect();
    rows.sort_by(|a, b| {
        let order = compare(a, b, &settings.sort);
        if settings.ascending {
            order
        } else {
            order.reverse()
        }
    });
    rows
}

fn haystack(row: &Row<'_>) -> String {
    let summary = &row.run.summary;
    let family = family(summary.config.model.kind);
    format!(
        "{} {} {family} {} {} {} {}",
        summary.meta.name,
        summary.meta.tags.join(" "),
        summary.config.model.kind.label(),
        summary.config.data.source,
        row.status,
        describe(&row.run.differences)
    )
    .to_lowercase()
}

fn compare(a: &Row<'_>, b: &Row<'_>, by: &SortBy) -> Ordering {
    let numbers = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        // Runs without the value go last.
        (x, y) => y.is_some().cmp(&x.is_some()).reverse(),
    };
    match by {
        SortBy::Name => a.run.name().cmp(b.run.name()),
        SortBy::Status => a.status.cmp(&b.status),
        SortBy::Steps => a.steps.cmp(&b.steps),
        SortBy::Quality => numbers(a.quality.as_ref().map(|q| q.0), b.quality.as_ref().map(|q| q.0)),
        SortBy::Final => numbers(a.last, b.last),
        SortBy::Lowest => numbers(a.lowest, b.lowest),
        SortBy::Created => a.run.summary.meta.created.cmp(&b.run.summary.meta.created),
        SortBy::Setting(key) => compare_setting_values(a.run.setting(key), b.run.setting(key)),
    }
    .then_with(|| a.run.path().cmp(b.run.path()))
}

fn family(kind: crate::config::ModelKind) -> &'static str {
    if kind.is_gan() {
        "GAN"
    } else {
        "autoencoder"
    }
}

/// Creation time as `YYYY-MM-DD HH:MM` (UTC).
fn created(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let minutes = seconds % 86_400 / 60;
    // Howard Hinnant's days-to-civil conversion.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year}-{month:02}-{day:02} {:02}:{:02}", minutes / 60, minutes % 60)
}

/// The run directories among `selection` the catalog still lists, in selection order.
pub fn listed<'a>(catalog: &Catalog, selection: &'a [PathBuf]) -> Vec<&'a Path> {
    selection
        .iter()
        .filter(|p| catalog.find(p).is_some())
        .map(PathBuf::as_path)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_kept_once_each_in_the_order_typed() {
        assert_eq!(parse_tags("half, ,beta,half"), ["half", "beta"]);
        assert!(parse_tags(" , ").is_empty());
    }

    #[test]
    fn creation_times_read_as_calendar_dates() {
        assert_eq!(created(0), "1970-01-01 00:00");
        assert_eq!(created(951_782_400), "2000-02-29 00:00");
        assert_eq!(created(1_795_651_200 + 3_660), "2026-11-26 01:01");
    }
}
