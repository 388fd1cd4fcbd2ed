//! The workbench window: settings on the left, curves and pictures in the middle, controls on top, status
//! below. Views read the run and the settings; user actions become commands to the worker.

use super::browser::{listed, Draft, RunBrowser};
use super::catalog::{describe, Catalog};
use super::compare::{step_slider, AbView, ContactSheetView};
use super::controls::{Action, Controls};
use super::curves::{CurvesView, Overlay};
use super::data_panel::{describe_progress, DataPanel};
use super::data_preview::{PreviewLoader, PreviewState};
use super::experiment_panel::ExperimentPanel;
use super::fleet::Fleet;
use super::health_view::{self, HealthView};
use super::history::RunHistory;
use super::latent_view::{self, LatentView};
use super::launch_check::LaunchCheck;
use super::lifecycle::{self, Lifecycle, Notice, Outcome};
use super::optimisation_panel::OptimisationPanel;
use super::pacing::FramePacer;
use super::path_prompt::{Answer, PathFor, PathPrompt};
use super::pictures::{version_of, Pictures, PicturesPanel};
use super::run::{ConfigSync, TrainingRun};
use super::settings::{CentralView, Settings, Theme, STORAGE_KEY};
use super::status_bar::{problem_color, StatusBar};
use super::toolbar::{Exportable, Toolbar};
use crate::config::RunConfig;
use crate::runs::{self, nearest_step, GridKind};
use crate::train::worker::{Command, RunState, Waker};
use eframe::egui;
use egui::{CentralPanel, CollapsingHeader, Context, Frame, Panel, ScrollArea, Ui};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Longest a frame spends handling worker events; the rest wait for the next frame.
const EVENT_BUDGET: Duration = Duration::from_millis(4);
/// How often, and how far apart, the workbench measures this machine's speed (about 20 ms each).
const SPEED_ROUNDS: usize = 8;
const SPEED_APART: Duration = Duration::from_millis(400);

/// How the app is set up, apart from the remembered settings.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// Where runs are written; `None` is the platform's data directory (`.../gantry/runs`).
    pub runs_dir: Option<PathBuf>,
    /// Crash every run's training thread at this step: how the tests check that the window reports a
    /// crash (there is no control for it).
    pub crash_training_at_step: Option<u64>,
    /// The matrix-product speed (multiply-adds/s) step-time estimates use, instead of measuring this
    /// machine's (snapshots that must not vary with the machine).
    pub machine_speed: Option<f64>,
    /// Ask for paths with the path field only, never the system's file dialog (tests, which must not
    /// open windows).
    pub no_system_dialogs: bool,
}

pub struct GantryApp {
    settings: Settings,
    machine_speed: Option<f64>,
    /// The thread measuring this machine's speed, while it does: the estimate it changes is redrawn.
    speed_thread: Option<std::thread::JoinHandle<()>>,
    /// Whether paths are asked for with the system's file dialog too (else the path field only).
    system_dialogs: bool,
    /// The path being asked for, if one is.
    path_prompt: Option<PathPrompt>,
    /// Every open run; dropping it stops and joins the training threads.
    fleet: Fleet,
    /// The runs on disk.
    catalog: Catalog,
    browser: RunBrowser,
    /// Runs ticked in the browser: their curves overlay, the contact sheet shows their grids.
    selection: Vec<PathBuf>,
    filmstrip: Filmstrip,
    /// Starting, continuing, forking, deleting runs and exports.
    lifecycle: Lifecycle,
    /// The labels of the runs the curves showed last frame.
    shown_curves: Vec<String>,
    ab: AbView,
    sheet: ContactSheetView,
    health: HealthView,
    launch_check: LaunchCheck,
    preview: PreviewLoader,
    /// How the draft config relates to the live run, as of the last frame.
    sync: ConfigSync,
    /// What the last action did or why it failed (an export, a start, a deletion), above every tab until
    /// dismissed or replaced.
    notice: Option<Notice>,
    applied_theme: Option<Theme>,
    toolbar: Toolbar,
    status_bar: StatusBar,
    experiment: ExperimentPanel,
    data: DataPanel,
    optimisation: OptimisationPanel,
    curves: CurvesView,
    pictures: PicturesPanel,
    pacer: FramePacer,
    latent: LatentView,
}

/// Which saved grid the pictures show: the newest live one, or a step picked on the slider or a curve.
#[derive(Clone, Debug, Default)]
struct Filmstrip {
    /// The run the filmstrip belongs to; another run in view starts it over.
    run: Option<PathBuf>,
    /// The step picked, or `None` to follow the newest grid.
    step: Option<u64>,
}

impl GantryApp {
    /// The app as eframe starts it: settings from the last session, if any.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> GantryApp {
        let settings = cc
            .storage
            .and_then(|storage| eframe::get_value(storage, STORAGE_KEY))
            .unwrap_or_default();
        GantryApp::in_window(cc, settings, options)
    }

    /// The app in an eframe window with the given settings.
    pub fn in_window(cc: &eframe::CreationContext<'_>, settings: Settings, options: AppOptions) -> GantryApp {
        // Panels are the whole window; filling them is a full-window pass of the shader, which costs a
        // software renderer about 100 ms a frame. The renderer clears to their colour instead (`clear_color`).
        cc.egui_ctx
            .all_styles_mut(|style| style.visuals.panel_fill = egui::Color32::TRANSPARENT);
        GantryApp::with_settings(settings, options)
    }

    /// The app with the given settings, without eframe (tests, screenshots).
    pub fn with_settings(settings: Settings, options: AppOptions) -> GantryApp {
        let runs_dir = options
            .runs_dir
            .or_else(|| settings.runs_dir.clone())
            .unwrap_or_else(default_runs_dir);
        // Step times in the pre-flight estimate need this machine's speed, measured off the UI thread; a few
        // times over the first seconds, since the window's own start-up takes the cores at first (one
        // measurement read a third of the speed and estimated a step at 3x its time).
        let speed_thread = match options.machine_speed {
            Some(_) => None,
            None => std::thread::Builder::new()
                .name("gantry-speed".into())
                .spawn(|| crate::footprint::settle_machine_speed(SPEED_ROUNDS, SPEED_APART))
                .ok(),
        };
        GantryApp {
            machine_speed: options.machine_speed,
            speed_thread,
            system_dialogs: !options.no_system_dialogs,
            path_prompt: None,
            settings,
            catalog: Catalog::new(runs_dir.clone()),
            lifecycle: Lifecycle::new(runs_dir, options.crash_training_at_step),
            fleet: Fleet::default(),
            browser: RunBrowser::default(),
            selection: Vec::new(),
            filmstrip: Filmstrip::default(),
            shown_curves: Vec::new(),
            ab: AbView::default(),
            sheet: ContactSheetView::default(),
            health: HealthView::default(),
            launch_check: LaunchCheck::default(),
            preview: PreviewLoader::default(),
            sync: ConfigSync::NoRun,
            notice: None,
            applied_theme: None,
            toolbar: Toolbar,
            status_bar: StatusBar,
            experiment: ExperimentPanel,
            data: DataPanel::default(),
            optimisation: OptimisationPanel,
            curves: CurvesView::default(),
            pictures: PicturesPanel::default(),
            pacer: FramePacer::default(),
            latent: LatentView::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// The run in view (an empty one when none is).
    pub fn run(&self) -> &TrainingRun {
        self.fleet.focused()
    }

    /// The open run in `dir`, if it is open.
    pub fn open_run(&self, dir: &Path) -> Option<&TrainingRun> {
        self.fleet.get(dir)
    }

    /// The directory of the run in view.
    pub fn viewed_run(&self) -> Option<&Path> {
        self.fleet.focus_dir()
    }

    /// The curves of the run in view: live, or read from its folder.
    pub fn viewed_history(&mut self) -> Option<&super::history::RunHistory> {
        let dir = self.fleet.focus_dir()?.to_path_buf();
        match self.fleet.get(&dir) {
            Some(run) => Some(run.history()),
            None => self.catalog.history(&dir).ok().flatten().map(|h| &*h),
        }
    }

    /// The runs the loss plots showed in the last frame, by their labels.
    pub fn shown_curves(&self) -> &[String] {
        &self.shown_curves
    }

    /// The step of the grids the pictures showed in the last frame.
    pub fn shown_grid_step(&self) -> Option<u64> {
        self.pictures.shown_step()
    }

    /// The runs the run browser lists (as of the newest listing the catalog's reader sent).
    pub fn listed_runs(&self) -> Vec<runs::RunSummary> {
        self.catalog.runs().iter().map(|r| r.summary.clone()).collect()
    }

    /// Whether the run list and the curves read from disk are up to date (none is being read in the
    /// background or due to be).
    pub fn runs_settled(&self) -> bool {
        self.catalog.is_settled()
    }

    /// Handles what arrived from the workers and the data preview; eframe calls it before each frame.
    pub fn tick(&mut self, ctx: &Context) {
        self.preview.poll();
        self.catalog.poll();
        let (drained, new_grids) = self.fleet.drain(EVENT_BUDGET);
        for dir in new_grids {
            self.catalog.forget_grid_steps(&dir);
        }
        if drained.state_changed {
            self.catalog.mark_stale();
        }
        // A remedy the run applied itself shows in the panels, so the next edit starts from it.
        if let Some(config) = self.fleet.focused_mut().take_own_change() {
            self.settings.config = config;
        }
        if drained.more {
            ctx.request_repaint();
        }
        if let Some(thread) = &self.speed_thread {
            // Frames are drawn on input only when nothing trains: without these the first, low
            // measurement would stay on screen until the mouse moved.
            match thread.is_finished() {
                true => {
                    self.speed_thread = None;
                    ctx.request_repaint();
                }
                false => ctx.request_repaint_after(SPEED_APART),
            }
        }
        crate::threads::set(self.settings.browser.threads);
        self.pacer.update(self.settings.live_refresh);
        let pacer = &self.pacer;
        self.fleet.pump(self.settings.browser.parallel, || pacer.waker(ctx));
        if let Some(outcome) = self.lifecycle.finish_pending_fork(&mut self.fleet) {
            self.apply(outcome);
        }
    }

    /// Draws the window and carries out what the user asked for.
    pub fn show(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        if self.applied_theme != Some(self.settings.theme) {
            ctx.set_theme(egui::Theme::from(self.settings.theme));
            self.applied_theme = Some(self.settings.theme);
        }
        self.catalog.refresh_if_stale(|| repaint_waker(&ctx));
        if self.filmstrip.run.as_deref() != self.fleet.focus_dir() {
            self.filmstrip = Filmstrip {
                run: self.fleet.focus_dir().map(Path::to_path_buf),
                step: None,
            };
        }
        let config = &self.settings.config;
        // An out-of-range count (a billion items, say) would have the preview thread make them.
        if config.validate().err().is_none_or(|e| e.key != "data.count") {
            self.preview
                .request(&config.data, config.train.seed, repaint_waker(&ctx));
        }
        let budget = config.train.steps;
        let launch = self.launch();
        let mut controls = Controls::new(self.fleet.focused(), launch.clone(), budget);
        controls.fork = self.fork_point();
        let mut actions = controls.shortcuts(&ctx);
        // A run viewed from its folder exports the curves read from it.
        let metrics = self.viewed_history().is_some_and(|history| !history.is_empty());
        let snapshot = self.fleet.focused().snapshot();
        let exportable = Exportable {
            samples: snapshot.is_some_and(|s| s.samples.is_some()),
            reconstructions: snapshot.is_some_and(|s| s.reconstructions.is_some()),
            metrics,
        };
        Panel::top("toolbar").show(ui, |ui| {
            let settings = &mut self.settings;
            actions.extend(self.toolbar.show(
                ui,
                &controls,
                &exportable,
                &mut settings.theme,
                &mut settings.live_refresh,
            ));
        });
        Panel::bottom("status").show(ui, |ui| match self.disk_view() {
            Some(summary) => {
                ui.horizontal(|ui| {
                    ui.weak(format!(
                        "Viewing {} from disk: {}, {} steps. Continue (in the run list) trains it on; Fork branches \
                         it.",
                        summary.meta.name,
                        summary.meta.status.closed_label(),
                        summary.last.as_ref().map_or(0, |r| r.step)
                    ));
                    // The Latent space tab offers it itself, with why a run cannot open.
                    match summary.step_to_open() {
                        Ok(step) if self.settings.view != CentralView::Latent => {
                            actions.extend(latent_view::open_button(ui, summary, step));
                        }
                        _ => {}
                    }
                });
            }
            None => self.status_bar.show(ui, self.fleet.focused()),
        });
        // Tall enough for eight runs at 1440x900; drag its top edge to trade it against the plots.
        Panel::bottom("runs")
            .resizable(true)
            .default_size(250.0)
            .size_range(90.0..=600.0)
            .show(ui, |ui| {
                actions.extend(self.browser.show(
                    ui,
                    &self.catalog,
                    &self.fleet,
                    &mut self.settings.browser,
                    &mut self.selection,
                    &Draft {
                        config: &self.settings.config,
                        launch: &launch,
                    },
                ));
            });
        Panel::left("settings")
            .resizable(true)
            .default_size(350.0)
            .size_range(280.0..=600.0)
            .show(ui, |ui| {
                ScrollArea::vertical().show(ui, |ui| self.settings_sections(ui, &mut actions));
            });
        CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                let view = &mut self.settings.view;
                ui.selectable_value(view, CentralView::Training, "Training");
                ui.selectable_value(view, CentralView::Compare, "A/B compare");
                ui.selectable_value(view, CentralView::ContactSheet, "Contact sheet");
                let title = health_view::tab_title(ui, self.fleet.focused(), *view == CentralView::Health);
                ui.selectable_value(view, CentralView::Health, title);
                ui.selectable_value(view, CentralView::Latent, "Latent space");
            });
            ui.separator();
            if let Some(notice) = &self.notice {
                if notice_line(ui, notice) {
                    self.notice = None;
                }
            }
            self.fleet.show_latent_views(self.settings.view == CentralView::Latent);
            match self.settings.view {
                CentralView::Training => self.central(ui, &launch, &mut actions),
                CentralView::Compare => {
                    let mut runs = listed(&self.catalog, &self.selection);
                    if runs.is_empty() {
                        runs.extend(self.fleet.focus_dir());
                    }
                    self.ab.default_sides(&mut self.catalog, &runs);
                    self.ab.show(ui, &mut self.catalog, &mut self.settings.zoom);
                }
                CentralView::ContactSheet => {
                    let runs = listed(&self.catalog, &self.selection);
                    if let Some(sheet) = self.sheet.show(ui, &mut self.catalog, &runs, &mut self.settings.zoom) {
                        actions.push(Action::SaveContactSheet(sheet));
                    }
                }
                CentralView::Latent => match self.disk_view() {
                    Some(summary) => actions.extend(latent_view::closed_run(ui, summary)),
                    None => {
                        let run = self.fleet.focused();
                        let version = run.snapshot_version();
                        actions.extend(self.latent.show(ui, run.snapshot(), version, &mut self.settings.zoom));
                    }
                },
                CentralView::Health => {
                    let dir = self.fleet.focus_dir().map(Path::to_path_buf);
                    let live = dir.as_deref().and_then(|d| self.fleet.get(d));
                    let history = match (live, &dir) {
                        (Some(run), _) => Some(run.history()),
                        (None, Some(dir)) => self.catalog.cached_history(dir),
                        (None, None) => None,
                    };
                    let checkpoints = dir.as_deref().map_or(&[][..], |d| self.catalog.checkpoint_steps(d));
                    let draft = &mut self.settings.config;
                    actions.extend(self.health.show(ui, live, history, checkpoints, draft));
                }
            }
        });
        if let Some(prompt) = &mut self.path_prompt {
            match prompt.show(&ctx) {
                Answer::Open => {}
                Answer::Cancelled => self.path_prompt = None,
                Answer::Chosen(purpose, path) => {
                    self.path_prompt = None;
                    actions.push(Action::PathChosen(purpose, path));
                }
            }
        }
        for action in actions {
            self.perform(action, &ctx);
        }
        let draft = self.settings.config.clone();
        self.sync = self.fleet.focused_mut().sync_config(&draft);
    }

    /// The summary of the run in view when no worker has it open (it is read from disk).
    fn disk_view(&self) -> Option<&runs::RunSummary> {
        let dir = self.fleet.focus_dir()?;
        if self.fleet.get(dir).is_some() {
            return None;
        }
        self.catalog.find(dir).map(|r| &r.summary)
    }

    /// The step the Fork button would branch the run in view at, or why it cannot.
    fn fork_point(&self) -> Result<u64, String> {
        let dir = self
            .fleet
            .focus_dir()
            .ok_or("view a run (in the run list) to fork it")?;
        let live = self.fleet.get(dir);
        let config = self.run_config(dir).ok_or("the run is not listed")?;
        if let Some(key) = config.restart_needed_for(&self.settings.config) {
            return Err(format!("a fork keeps the run's shapes and data, but {key} differs"));
        }
        self.settings
            .config
            .validate()
            .map_err(|e| format!("the settings are invalid: {e}"))?;
        match live.filter(|r| r.takes_commands() || r.is_queued()) {
            Some(run) => match run.state() {
                Some(RunState::Paused | RunState::Ready | RunState::Finished) => Ok(run.step()),
                _ => Err("pause the run to fork it".into()),
            },
            // A stopped run forks from its checkpoint at (or before) the filmstrip's step.
            None => {
                let checkpoints = self.catalog.checkpoint_steps(dir);
                let until = self.filmstrip.step.unwrap_or(u64::MAX);
                checkpoints
                    .iter()
                    .rev()
                    .find(|s| **s <= until)
                    .or(checkpoints.first())
                    .copied()
                    .ok_or_else(|| "the run has no checkpoint to fork from".to_string())
            }
        }
    }

    /// Ok when the draft config can start a run, else why not.
    fn launch(&mut self) -> Result<(), String> {
        self.launch_check
            .check(&self.settings.config)
            .as_ref()
            .map(|_| ())
            .map_err(Clone::clone)?;
        // The preview loads the same data; waiting for it means a download happens once, not twice at once.
        match self.preview.state() {
            PreviewState::Failed(reason) => Err(format!("cannot load the data: {reason}")),
            PreviewState::Loading(_) => Err("the data is loading".to_string()),
            PreviewState::Ready(_) => Ok(()),
        }
    }

    fn settings_sections(&mut self, ui: &mut Ui, actions: &mut Vec<Action>) {
        let check = self.launch_check.check(&self.settings.config).clone();
        let sections = self.settings.sections.clone();
        let (mut experiment, mut data, mut optimisation) = (sections.experiment, sections.data, sections.optimisation);
        section(ui, "Experiment", &mut experiment, |ui| {
            let speed = self.machine_speed.or_else(crate::footprint::machine_speed_if_measured);
            self.experiment.show(ui, &mut self.settings, &check, speed)
        });
        section(ui, "Data", &mut data, |ui| {
            let version = self.preview.version();
            let data = &mut self.settings.config.data;
            if let Some(folder) = self.data.show(ui, data, self.preview.state(), version) {
                actions.push(Action::ChoosePath(folder));
            }
        });
        section(ui, "Optimisation", &mut optimisation, |ui| {
            self.optimisation.show(ui, &mut self.settings.config)
        });
        let sections = &mut self.settings.sections;
        (sections.experiment, sections.data, sections.optimisation) = (experiment, data, optimisation);
    }

    /// The training view; `launch` says whether a new run can start (Restart starts one as Start does, so it
    /// waits for what Start waits for: valid settings, loaded data).
    fn central(&mut self, ui: &mut Ui, launch: &Result<(), String>, actions: &mut Vec<Action>) {
        if let Some(problem) = self.fleet.focused().problem() {
            let color = problem_color(ui, problem);
            banner(ui, color, |ui| {
                ui.colored_label(color, format!("{}: {}", problem.label(), problem.message()));
                if ui.button("Dismiss").clicked() {
                    actions.push(Action::DismissError);
                }
            });
        }
        match self.sync {
            ConfigSync::NeedsRestart(key) => banner(ui, ui.visuals().warn_fg_color, |ui| {
                let running = self.fleet.focused().state() == Some(RunState::Running);
                ui.label(format!(
                    "Changing {} needs a new run: the {} run keeps its settings; Restart run starts a new one with yours.",
                    setting_name(key),
                    if running { "live" } else { "shown" }
                ));
                let restart = ui.add_enabled(launch.is_ok(), egui::Button::new("Restart run"));
                let restart = match launch {
                    Err(reason) => restart.on_disabled_hover_text(format!("Cannot start: {reason}")),
                    Ok(()) => restart,
                };
                if restart.clicked() {
                    actions.push(Action::Restart);
                }
                if ui.button("Revert changes").clicked() {
                    actions.push(Action::RevertDraft);
                }
            }),
            ConfigSync::Held => {
                ui.weak(match self.fleet.focused().state() {
                    Some(RunState::Finished) => "The run has finished: changed settings apply if you raise Step budget and resume, or press Fork to try them in a new run from here.",
                    Some(RunState::Ready) => "The run has not started: changed settings apply when it starts.",
                    _ => "The run is paused: changed settings apply when it resumes, or press Fork to try them in a new run from here.",
                });
            }
            _ => {}
        }
        actions.extend(self.pictures_panel(ui));
        let focus = self.fleet.focus_dir().map(Path::to_path_buf);
        let mut dirs: Vec<PathBuf> = focus.iter().cloned().collect();
        // Ticked runs overlay the run in view only when they train the same model on the same data.
        let mut not_comparable = 0;
        for dir in listed(&self.catalog, &self.selection) {
            let comparable = match (dirs.first(), self.run_config(dir)) {
                (Some(first), Some(config)) => self
                    .run_config(first)
                    .is_none_or(|c| c.experiment() == config.experiment()),
                _ => true,
            };
            match comparable {
                true if !dirs.iter().any(|d| d == dir) => dirs.push(dir.to_path_buf()),
                true => {}
                false => not_comparable += 1,
            }
        }
        if not_comparable > 0 {
            ui.weak(format!(
                "{not_comparable} ticked run(s) not overlaid: another model or data set than the run in view."
            ));
        }
        let clicked = self.curves(ui, &dirs);
        if let (Some(step), Some(dir)) = (clicked, &focus) {
            // A click on a curve shows the grid saved nearest that step.
            let kind = self.filmstrip_kind(dir);
            if let Some(saved) = nearest_step(self.catalog.grid_steps(dir, kind), step) {
                self.filmstrip.step = Some(saved);
            }
        }
        if !self.shown_curves.is_empty() {
            return;
        }
        let run = self.fleet.focused();
        if run.state() == Some(RunState::Loading) || run.is_queued() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(match (run.progress(), run.is_queued()) {
                    (_, true) => "Queued: the run starts when fewer runs are training.".to_string(),
                    (Some(progress), _) => describe_progress(progress),
                    (None, _) => "Loading the data and building the model...".to_string(),
                });
            });
        } else if run.state().is_none() && focus.is_none() {
            let config = &self.settings.config;
            ui.add_space(ui.available_height() / 3.0);
            ui.vertical_centered(|ui| {
                ui.heading(format!("{} on {}", config.model.kind.label(), config.data.source));
                ui.label("Press Start (or Space) to train. Loss curves appear here, samples on the right.");
                ui.weak("Right arrow trains a single step. Settings that keep the model's shapes apply to a live run.");
                ui.weak("Earlier runs are listed below: View one, or tick several to overlay their curves.");
            });
        }
    }

    /// The loss plots of the runs in `dirs` (the first is the one in view); returns a clicked step.
    fn curves(&mut self, ui: &mut Ui, dirs: &[PathBuf]) -> Option<u64> {
        self.curves.click_shows_grid = dirs.first().is_some_and(|first| {
            let kind = self.filmstrip_kind(first);
            !self.catalog.grid_steps(first, kind).is_empty()
        });
        let smoothing = self.settings.curves.smoothing;
        let mut problems = Vec::new();
        for dir in dirs {
            let history = match self.fleet.get_mut(dir) {
                Some(run) => Ok(Some(run.history_mut())),
                None => self.catalog.history(dir),
            };
            match history {
                Ok(Some(history)) => history.set_smoothing(smoothing),
                // Still being read: drawn once it arrives.
                Ok(None) => {}
                Err(message) => problems.push(message),
            }
        }
        for problem in problems {
            ui.colored_label(ui.visuals().error_fg_color, problem);
        }
        // The runs with curves to draw, each named by what sets it apart from the others drawn.
        let (fleet, catalog) = (&self.fleet, &self.catalog);
        let drawn: Vec<(&PathBuf, &RunConfig, &RunHistory)> = dirs
            .iter()
            .filter_map(|dir| {
                let history = match fleet.get(dir) {
                    Some(run) => run.history(),
                    None => catalog.cached_history(dir)?,
                };
                Some((dir, run_config(fleet, catalog, dir)?, history)).filter(|_| !history.is_empty())
            })
            .collect();
        let configs: Vec<&RunConfig> = drawn.iter().map(|(_, config, _)| *config).collect();
        let all_differences = runs::config_differences(&configs);
        let overlays: Vec<Overlay<'_>> = drawn
            .iter()
            .zip(runs::learning_differences(&configs))
            .zip(all_differences)
            .map(|(((dir, _, history), differences), all)| {
                let name = catalog
                    .find(dir)
                    .map_or_else(|| runs::dir_name(dir), |r| r.name().to_string());
                let label = match describe(&differences) {
                    described if described.is_empty() => name.clone(),
                    described => described,
                };
                let mut details = vec![name];
                details.extend(all.iter().map(|(key, value)| format!("{key} = {value}")));
                Overlay {
                    label,
                    details: details.join("\n"),
                    history,
                }
            })
            .collect();
        self.shown_curves = overlays.iter().map(|o| o.label.clone()).collect();
        if overlays.is_empty() {
            return None;
        }
        // Runs of another model than the first are not overlaid.
        let kind = configs.first()?.model.kind;
        self.curves.show(ui, &overlays, kind, &mut self.settings.curves)
    }

    fn run_config(&self, dir: &Path) -> Option<&RunConfig> {
        run_config(&self.fleet, &self.catalog, dir)
    }

    /// The grid kind the filmstrip of the run in `dir` steps through.
    fn filmstrip_kind(&self, dir: &Path) -> GridKind {
        match self.run_config(dir).map(|c| c.model.kind) {
            Some(kind) if kind.generates() => GridKind::Samples,
            Some(_) => GridKind::Reconstructions,
            None => GridKind::Samples,
        }
    }

    /// The right-hand pictures: the live grids, or the filmstrip's saved ones, with the filmstrip slider
    /// and its exports (returned as an action).
    fn pictures_panel(&mut self, ui: &mut Ui) -> Option<Action> {
        let Some(dir) = self.fleet.focus_dir().map(Path::to_path_buf) else {
            self.pictures.forget_step();
            return None;
        };
        let kind = self.filmstrip_kind(&dir);
        let (model, columns) = {
            let config = self.run_config(&dir)?;
            (config.model.kind, crate::train::session::sample_columns(&config.model))
        };
        let steps = self.catalog.grid_steps(&dir, kind).to_vec();
        let live = self.fleet.get(&dir);
        let snapshot = live.and_then(|r| r.snapshot().map(|s| (s, r.snapshot_version())));
        if snapshot.is_none() && steps.is_empty() {
            self.pictures.forget_step();
            return None;
        }
        let frame = self.filmstrip.step.filter(|_| !steps.is_empty());
        let disk = frame.or(snapshot.is_none().then(|| steps.last().copied()).flatten());
        if let Some(step) = disk {
            // Read into the cache here; the panel below borrows them from it.
            for grid_kind in [GridKind::Samples, GridKind::Reconstructions] {
                let _ = self.catalog.grid(&dir, grid_kind, step);
            }
        }
        let catalog = &self.catalog;
        let grids = disk.map(|step| {
            let cached = |kind| catalog.cached_grid(&dir, kind, step);
            (step, cached(GridKind::Samples), cached(GridKind::Reconstructions))
        });
        let filmstrip = &mut self.filmstrip;
        let mut export = None;
        Panel::right("pictures")
            .resizable(true)
            .default_size(ui.available_width() * 0.42)
            .show(ui, |ui| {
                if !steps.is_empty() {
                    ui.horizontal(|ui| {
                        // Following training, the slider's last position is the live grids' step (saved or
                        // not), so the slider and the grid heading always name the same step.
                        let saved = *steps.last().expect("not empty");
                        let live_step = snapshot.map(|(s, _)| s.step).filter(|s| *s > saved);
                        let slider_steps: Vec<u64> = steps.iter().copied().chain(live_step).collect();
                        let newest = *slider_steps.last().expect("not empty");
                        let mut step = disk.unwrap_or(newest);
                        if step_slider(ui, "Filmstrip step", &slider_steps, &mut step) {
                            filmstrip.step = (Some(step) != live_step).then_some(step);
                        }
                        let gif = ui
                            .button("GIF...")
                            .on_hover_text("Save every saved grid as an animated GIF");
                        if gif.clicked() {
                            export = Some(Action::ExportFilmstrip { kind, gif: true });
                        }
                        let pngs = ui
                            .button("PNGs...")
                            .on_hover_text("Save every saved grid as numbered PNG files");
                        if pngs.clicked() {
                            export = Some(Action::ExportFilmstrip { kind, gif: false });
                        }
                        if snapshot.is_some() {
                            let mut follow = filmstrip.step.is_none();
                            if ui
                                .checkbox(&mut follow, "Follow training")
                                .on_hover_text("Show the newest grids as they come")
                                .changed()
                            {
                                filmstrip.step = if follow { None } else { Some(step.min(saved)) };
                            }
                        }
                    });
                }
                let pictures = match (&grids, &snapshot) {
                    (Some((step, samples, reconstructions)), _) => Pictures {
                        step: *step,
                        samples: *samples,
                        reconstructions: *reconstructions,
                        points: None,
                        interpolation: None,
                        // Grids arriving from the reader make a new version.
                        version: version_of(&(&dir, step, samples.is_some(), reconstructions.is_some())),
                    },
                    // Keyed by the run too: two runs can be at the same snapshot count.
                    (None, Some((snapshot, version))) => Pictures::live(snapshot, version_of(&(&dir, version))),
                    (None, None) => return,
                };
                let settings = &mut self.settings;
                let ends = self
                    .pictures
                    .show(ui, model, columns, &pictures, &mut settings.zoom, &mut settings.toy);
                export = export.take().or(ends.map(|(from, to)| Action::Interpolate(from, to)));
            });
        export
    }

    fn perform(&mut self, action: Action, ctx: &Context) {
        let draft = self.settings.config.clone();
        match action {
            Action::Start => self.start_run(Command::Start),
            Action::Restart => {
                if let Some(dir) = self.fleet.focus_dir().map(Path::to_path_buf) {
                    self.fleet.close(&dir);
                }
                self.start_run(Command::Start);
            }
            Action::TogglePause => {
                let run = self.fleet.focused_mut();
                match run.state() == Some(RunState::Running) {
                    true => run.send(Command::Pause),
                    false => run.send_with_draft(&draft, Command::Resume),
                };
            }
            Action::Step if self.fleet.focused().takes_commands() => {
                self.fleet.focused_mut().send_with_draft(&draft, Command::Step(1));
            }
            Action::Step => self.start_run(Command::Step(1)),
            Action::Stop => {
                if let Some(dir) = self.fleet.focus_dir().map(Path::to_path_buf) {
                    self.stop_run(&dir);
                }
            }
            Action::Reset => self.close_focused(),
            Action::ApplyRemedy(config) => self.settings.config = *config,
            Action::RollBack(step) => {
                self.fleet.focused_mut().send(Command::RollBack(step));
            }
            Action::DecodeLatent(at) => {
                self.fleet.focused_mut().send(Command::DecodeLatent(at));
            }
            Action::WalkLatent(sample, values) => {
                self.fleet.focused_mut().send(Command::WalkLatent(sample, values));
            }
            Action::Interpolate(from, to) => {
                self.fleet.focused_mut().send(Command::Interpolate(from, to));
            }
            Action::ForkAt(step) => {
                if let Some(parent) = self.fleet.focus_dir().map(Path::to_path_buf) {
                    // Unedited settings fork with those in force at that step; edited ones are the user's choice.
                    let edited = self.run_config(&parent) != Some(&self.settings.config);
                    let config = match edited {
                        true => Ok(self.settings.config.clone()),
                        false => runs::config_at(&parent, step),
                    };
                    match config {
                        Ok(config) => {
                            let outcome = self.lifecycle.fork(&mut self.fleet, parent, step, config);
                            self.apply(outcome);
                        }
                        Err(message) => self.notice = Some(Notice::Failed(message)),
                    }
                }
            }
            Action::RevertDraft => {
                if let Some(config) = self.fleet.focused().applied_config() {
                    self.settings.config = config.clone();
                }
            }
            Action::SaveGrid(kind) => self.save_grid(kind, ctx),
            Action::ExportCsv => {
                let name = match self.fleet.focus_dir().and_then(Path::file_name) {
                    Some(run) => format!("{}-metrics.csv", run.to_string_lossy()),
                    None => format!("{}-metrics.csv", self.settings.run_name()),
                };
                if let Some(bytes) = self.viewed_history().map(|history| history.to_csv()) {
                    self.choose_path(PathFor::Csv { bytes, name }, ctx);
                }
            }
            Action::DismissError => self.fleet.focused_mut().dismiss_problem(),
            Action::Fork => self.fork(),
            Action::ViewRun(dir) => self.view_run(dir),
            Action::ContinueRun(dir) => {
                // The panels show the run in view: a step budget raised there is what it trains on to, as
                // Resume does (its row's Continue sent the run's own settings, which put the budget back).
                let in_view = self.fleet.focus_dir() == Some(dir.as_path());
                let budget = self.run_config(&dir).map_or(0, |c| c.train.steps).max(match in_view {
                    true => draft.train.steps,
                    false => 0,
                });
                let done = match self.fleet.get(&dir) {
                    Some(run) => Some(run.step()),
                    None => self
                        .catalog
                        .find(&dir)
                        .and_then(|r| r.summary.last.as_ref())
                        .map(|r| r.step),
                };
                // Trained to its budget, it would load and finish at once, without a word.
                let reached = done.is_some_and(|done| done >= budget).then(|| {
                    Notice::Done(format!(
                        "It has trained its {budget} steps: raise its Step budget (Optimisation) and Continue, or \
                         Resume, trains it on."
                    ))
                });
                match self.fleet.get_mut(&dir) {
                    Some(run) if in_view && run.takes_commands() => {
                        run.send_with_draft(&draft, Command::Resume);
                    }
                    _ => {
                        let outcome = self
                            .lifecycle
                            .continue_run(&mut self.fleet, dir, in_view.then_some(budget));
                        self.apply(outcome);
                    }
                }
                self.notice = self.notice.take().or(reached);
            }
            Action::OpenRun(dir) => {
                let outcome = self.lifecycle.open_run(&mut self.fleet, dir);
                self.apply(outcome);
            }
            Action::StopRun(dir) => self.stop_run(&dir),
            Action::RenameRun(dir, name) => {
                if name.is_empty() {
                    self.notice = Some(Notice::Failed("A run's name cannot be empty.".into()));
                } else {
                    let outcome = self.lifecycle.edit_meta(&dir, |meta| meta.name = name);
                    self.apply(outcome);
                }
            }
            Action::TagRun(dir, tags) => {
                let outcome = self.lifecycle.edit_meta(&dir, |meta| meta.tags = tags);
                self.apply(outcome);
            }
            Action::DeleteRun(dir) => {
                let outcome = self.lifecycle.delete(&mut self.fleet, &dir);
                self.selection.retain(|d| *d != dir);
                self.apply(outcome);
            }
            Action::RefreshRuns => self.catalog.mark_stale(),
            Action::QueueSweep(axes) => {
                let (config, name) = (&self.settings.config, &self.settings.run_name());
                let outcome = self.lifecycle.queue_sweep(&mut self.fleet, config, name, &axes);
                self.apply(outcome);
            }
            Action::SaveContactSheet(grid) => {
                let name = "contact-sheet.png".to_string();
                self.choose_path(PathFor::Image { grid, name }, ctx);
            }
            Action::ExportFilmstrip { kind, gif } => {
                if let Some(dir) = self.fleet.focus_dir().map(Path::to_path_buf) {
                    self.choose_path(PathFor::Filmstrip { dir, kind, gif }, ctx);
                }
            }
            Action::ChoosePath(purpose) => self.choose_path(purpose, ctx),
            Action::PathChosen(purpose, path) => self.use_path(purpose, path),
        }
        // New runs start at once when a slot is free.
        let pacer = &self.pacer;
        self.fleet.pump(self.settings.browser.parallel, || pacer.waker(ctx));
    }

    /// Stops the run in `dir`: one in the queue leaves it, one opened and not trained closes (in view, its
    /// folder's view comes back: its status and pictures as they were), others stop after a last checkpoint.
    fn stop_run(&mut self, dir: &Path) {
        match self.fleet.get_mut(dir) {
            Some(run) if run.is_queued() || run.state() == Some(RunState::Ready) => {
                let viewed = self.fleet.focus_dir() == Some(dir);
                self.fleet.close(dir);
                if viewed && dir.exists() {
                    self.fleet.set_focus(Some(dir.to_path_buf()));
                }
                self.catalog.mark_stale();
            }
            Some(run) => {
                run.send(Command::Stop);
            }
            None => {}
        }
    }

    fn close_focused(&mut self) {
        if let Some(dir) = self.fleet.focus_dir().map(Path::to_path_buf) {
            self.fleet.close(&dir);
        }
        self.fleet.set_focus(None);
        self.catalog.mark_stale();
    }

    /// Starts a run with the panels' settings, as the Start button does (for benchmarks that drive a real
    /// window, where no test harness can click).
    pub fn start(&mut self) {
        self.start_run(Command::Start);
    }

    /// Queues a run with the draft settings in a new directory and puts it in view.
    fn start_run(&mut self, first: Command) {
        let config = self.settings.config.clone();
        let outcome = self
            .lifecycle
            .start(&mut self.fleet, config, &self.settings.run_name(), first);
        self.apply(outcome);
    }

    /// Shows what a lifecycle operation reports: its notice, the run to view and the runs to tick.
    fn apply(&mut self, outcome: Outcome) {
        self.notice = outcome.notice.map(|notice| match notice {
            Notice::Failed(message) => Notice::Failed(crate::errors::without_backtrace(&message)),
            done => done,
        });
        if let Some((dir, config)) = outcome.view {
            // The panels show the settings of the run in view, so edits apply to it (live or by a fork).
            self.settings.config = config;
            self.fleet.set_focus(Some(dir));
        }
        if let Some(selection) = outcome.select {
            self.selection = selection;
        }
        if let Some(filter) = outcome.filter {
            self.settings.browser.filter = filter;
        }
        self.catalog.mark_stale();
    }

    /// Puts a run in view; its settings fill the panels, so what is edited next starts from them.
    fn view_run(&mut self, dir: PathBuf) {
        if let Some(config) = self.run_config(&dir) {
            self.settings.take_run_config(config.clone());
        }
        self.fleet.set_focus(Some(dir));
    }

    /// Starts a child of the run in view at the fork step with the draft settings.
    fn fork(&mut self) {
        let step = match self.fork_point() {
            Ok(step) => step,
            Err(message) => {
                self.notice = Some(Notice::Failed(message));
                return;
            }
        };
        let parent = self.fleet.focus_dir().expect("fork_point checked it").to_path_buf();
        let config = self.settings.config.clone();
        let outcome = self.lifecycle.fork(&mut self.fleet, parent, step, config);
        self.apply(outcome);
    }

    fn save_grid(&mut self, kind: GridKind, ctx: &Context) {
        let Some(snapshot) = self.fleet.focused().snapshot() else {
            return;
        };
        let grid = match kind {
            GridKind::Samples => &snapshot.samples,
            GridKind::Reconstructions => &snapshot.reconstructions,
        };
        let Some(grid) = grid.clone() else { return };
        let name = format!("{}-step-{}.png", kind.folder(), snapshot.step);
        self.choose_path(PathFor::Image { grid, name }, ctx);
    }

    /// Opens the prompt for a path: the system's dialog on its own thread, with a path field beside it.
    fn choose_path(&mut self, purpose: PathFor, ctx: &Context) {
        let home = directories::UserDirs::new().map_or_else(|| PathBuf::from("."), |u| u.home_dir().to_path_buf());
        let suggested = match (&purpose, purpose.file_name()) {
            (_, Some(name)) => home.join(name),
            (PathFor::RunsFolder, None) => self.catalog.root().to_path_buf(),
            (_, None) => home,
        };
        self.path_prompt = Some(PathPrompt::new(purpose, &suggested, self.system_dialogs, ctx));
    }

    /// Does what the path was asked for.
    fn use_path(&mut self, purpose: PathFor, path: PathBuf) {
        match purpose {
            PathFor::Csv { bytes, .. } => self.notice = Some(lifecycle::export_csv(&bytes, &path)),
            PathFor::Image { grid, .. } => self.notice = Some(lifecycle::save_image(&grid, &path)),
            PathFor::Filmstrip { dir, kind, gif } => {
                self.notice = Some(lifecycle::export_filmstrip(&dir, kind, gif, &path));
            }
            PathFor::RunsFolder => {
                self.settings.runs_dir = Some(path.clone());
                self.catalog.set_root(path.clone());
                self.lifecycle.set_runs_dir(path);
                self.selection.clear();
            }
            PathFor::DataFolder(prefix) => self.settings.config.data.source = format!("{prefix}:{}", path.display()),
        }
    }
}

impl eframe::App for GantryApp {
    fn logic(&mut self, ctx: &Context, frame: &mut eframe::Frame) {
        if let Some(cost) = frame.info().cpu_usage {
            self.pacer.record(cost);
        }
        self.tick(ctx);
    }

    /// The panels' background, cleared by the renderer: the panels themselves paint none (see `new`).
    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        let theme = if visuals.dark_mode {
            egui::Visuals::dark()
        } else {
            egui::Visuals::light()
        };
        theme.panel_fill.to_normalized_gamma_f32()
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORAGE_KEY, &self.settings);
    }
}

/// The settings of the run in `dir`: as its worker last confirmed them, else as written to disk.
fn run_config<'a>(fleet: &'a Fleet, catalog: &'a Catalog, dir: &Path) -> Option<&'a RunConfig> {
    match fleet.get(dir).and_then(TrainingRun::applied_config) {
        Some(config) => Some(config),
        None => catalog.find(dir).map(|r| &r.summary.config),
    }
}

/// Asks egui for a frame; the worker and the preview loader call it when they have news.
fn repaint_waker(ctx: &Context) -> Waker {
    let ctx = ctx.clone();
    Arc::new(move || ctx.request_repaint())
}

fn default_runs_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "gantry")
        .map_or_else(|| PathBuf::from("runs"), |dirs| dirs.data_dir().join("runs"))
}

/// A collapsible left-panel section whose open state lives in the settings.
fn section(ui: &mut Ui, title: &str, open: &mut bool, add: impl FnOnce(&mut Ui)) {
    let response = CollapsingHeader::new(title).open(Some(*open)).show(ui, add);
    if response.header_response.clicked() {
        *open = !*open;
    }
}

/// The last action's notice, above every tab: a failure framed in the error colour, what was done in a
/// plain line. True when the user dismissed it.
fn notice_line(ui: &mut Ui, notice: &Notice) -> bool {
    let mut dismissed = false;
    match notice {
        Notice::Failed(message) => {
            let color = ui.visuals().error_fg_color;
            banner(ui, color, |ui| {
                ui.colored_label(color, message);
                dismissed = ui.button("Dismiss").clicked();
            });
        }
        Notice::Done(message) => {
            ui.horizontal_wrapped(|ui| {
                ui.label(message);
                dismissed = ui.small_button("Dismiss").clicked();
            });
        }
    }
    dismissed
}

/// A framed message across the central area.
fn banner(ui: &mut Ui, color: egui::Color32, add: impl FnOnce(&mut Ui)) {
    Frame::group(ui.style()).stroke((1.0, color)).show(ui, |ui| {
        ui.horizontal_wrapped(add);
    });
    ui.add_space(4.0);
}

/// A setting that needs a new run, as the side panels label it, with the key config files and `--set` use.
fn setting_name(key: &str) -> String {
    let label = match key {
        "model.kind" => "the model",
        "model.latent" => "Latent size",
        "model.hidden" => "the hidden layers",
        "model.activation" => "Activation",
        "model.norm" => "Normalisation",
        "model.base_width" => "Base width",
        "model.recon" => "Reconstruction loss",
        "model.corruption" => "Corruption",
        "model.classes" => "Classes",
        "data" => "the data",
        "optimizer.kind" => "Optimiser",
        "train.batch_size" => "Batch size",
        "train.seed" => "Seed",
        "train.grid_size" => "the sample grid's size",
        other => return other.to_string(),
    };
    format!("{label} ({key})")
}
