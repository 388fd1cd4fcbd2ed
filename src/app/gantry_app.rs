//! The workbench window: settings on the left, curves and pictures in the middle, controls on top, status
//! below. Views read the run and the settings; user actions become commands to the worker.

use super::controls::{Action, Controls};
use super::curves::CurvesView;
use super::data_panel::{describe_progress, DataPanel};
use super::data_preview::{PreviewLoader, PreviewState};
use super::experiment_panel::ExperimentPanel;
use super::launch_check::LaunchCheck;
use super::optimisation_panel::OptimisationPanel;
use super::pictures::PicturesPanel;
use super::run::{ConfigSync, TrainingRun};
use super::settings::{Settings, Theme, STORAGE_KEY};
use super::status_bar::StatusBar;
use super::toolbar::{Exportable, Toolbar};
use crate::runs::GridKind;
use crate::train::worker::{Command, RunOptions, RunState, Waker};
use eframe::egui;
use egui::{CentralPanel, CollapsingHeader, Context, Frame, Panel, ScrollArea, Ui};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a frame spends handling worker events; the rest wait for the next frame.
const EVENT_BUDGET: Duration = Duration::from_millis(4);

/// How the app is set up, apart from the remembered settings.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// Where runs are written; `None` is the platform's data directory (`.../gantry/runs`).
    pub runs_dir: Option<PathBuf>,
}

pub struct GantryApp {
    settings: Settings,
    runs_dir: PathBuf,
    /// Dropping it stops and joins the training threads.
    run: TrainingRun,
    launch_check: LaunchCheck,
    preview: PreviewLoader,
    /// How the draft config relates to the live run, as of the last frame.
    sync: ConfigSync,
    /// The outcome of the last export, shown until the next run starts.
    notice: Option<String>,
    applied_theme: Option<Theme>,
    toolbar: Toolbar,
    status_bar: StatusBar,
    experiment: ExperimentPanel,
    data: DataPanel,
    optimisation: OptimisationPanel,
    curves: CurvesView,
    pictures: PicturesPanel,
}

impl GantryApp {
    /// The app as eframe starts it: settings from the last session, if any.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> GantryApp {
        let settings = cc
            .storage
            .and_then(|storage| eframe::get_value(storage, STORAGE_KEY))
            .unwrap_or_default();
        GantryApp::with_settings(settings, options)
    }

    /// The app with the given settings, without eframe (tests, screenshots).
    pub fn with_settings(settings: Settings, options: AppOptions) -> GantryApp {
        GantryApp {
            settings,
            runs_dir: options.runs_dir.unwrap_or_else(default_runs_dir),
            run: TrainingRun::default(),
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
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    pub fn run(&self) -> &TrainingRun {
        &self.run
    }

    /// Handles what arrived from the worker and the data preview; eframe calls it before each frame.
    pub fn tick(&mut self, ctx: &Context) {
        self.preview.poll();
        if self.run.drain(EVENT_BUDGET) {
            ctx.request_repaint();
        }
    }

    /// Draws the window and carries out what the user asked for.
    pub fn show(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        if self.applied_theme != Some(self.settings.theme) {
            ctx.set_theme(egui::Theme::from(self.settings.theme));
            self.applied_theme = Some(self.settings.theme);
        }
        let config = &self.settings.config;
        self.preview
            .request(&config.data, config.train.seed, repaint_waker(&ctx));
        let budget = config.train.steps;
        let launch = self.launch();
        let controls = Controls::new(&self.run, launch, budget);
        let mut actions = controls.shortcuts(&ctx);
        let snapshot = self.run.snapshot();
        let exportable = Exportable {
            samples: snapshot.is_some_and(|s| s.samples.is_some()),
            reconstructions: snapshot.is_some_and(|s| s.reconstructions.is_some()),
            metrics: !self.run.history().is_empty(),
        };
        Panel::top("toolbar").show(ui, |ui| {
            actions.extend(self.toolbar.show(ui, &controls, &exportable, &mut self.settings.theme));
        });
        Panel::bottom("status").show(ui, |ui| self.status_bar.show(ui, &self.run));
        Panel::left("settings")
            .resizable(true)
            .default_size(350.0)
            .size_range(280.0..=600.0)
            .show(ui, |ui| {
                ScrollArea::vertical().show(ui, |ui| self.settings_sections(ui));
            });
        CentralPanel::default().show(ui, |ui| self.central(ui, &mut actions));
        for action in actions {
            self.perform(action, &ctx);
        }
        self.sync = self.run.sync_config(&self.settings.config);
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

    fn settings_sections(&mut self, ui: &mut Ui) {
        let check = self.launch_check.check(&self.settings.config).clone();
        let sections = self.settings.sections.clone();
        let (mut experiment, mut data, mut optimisation) = (sections.experiment, sections.data, sections.optimisation);
        section(ui, "Experiment", &mut experiment, |ui| {
            self.experiment.show(ui, &mut self.settings, &check)
        });
        section(ui, "Data", &mut data, |ui| {
            let version = self.preview.version();
            self.data
                .show(ui, &mut self.settings.config.data, self.preview.state(), version);
        });
        section(ui, "Optimisation", &mut optimisation, |ui| {
            self.optimisation.show(ui, &mut self.settings.config)
        });
        let sections = &mut self.settings.sections;
        (sections.experiment, sections.data, sections.optimisation) = (experiment, data, optimisation);
    }

    fn central(&mut self, ui: &mut Ui, actions: &mut Vec<Action>) {
        if let Some(error) = self.run.last_error() {
            banner(ui, ui.visuals().error_fg_color, |ui| {
                ui.colored_label(ui.visuals().error_fg_color, format!("Error: {error}"));
                if ui.button("Dismiss").clicked() {
                    actions.push(Action::DismissError);
                }
            });
        }
        if let ConfigSync::NeedsRestart(key) = self.sync {
            banner(ui, ui.visuals().warn_fg_color, |ui| {
                ui.label(format!(
                    "Changing {key} needs a new run: the live run keeps its settings until you restart."
                ));
                let launch = self.launch_check.check(&self.settings.config).is_ok();
                if ui.add_enabled(launch, egui::Button::new("Restart run")).clicked() {
                    actions.push(Action::Restart);
                }
                if ui.button("Revert changes").clicked() {
                    actions.push(Action::RevertDraft);
                }
            });
        }
        if let Some(notice) = &self.notice {
            ui.weak(notice);
        }
        if let (Some(snapshot), Some(config)) = (self.run.snapshot(), self.run.applied_config()) {
            let (kind, version) = (config.model.kind, self.run.snapshot_version());
            Panel::right("pictures")
                .resizable(true)
                .default_size(ui.available_width() * 0.42)
                .show(ui, |ui| {
                    self.pictures.show(ui, kind, snapshot, version, &mut self.settings.zoom);
                });
        }
        if !self.run.history().is_empty() {
            self.curves.show(ui, self.run.history_mut(), &mut self.settings.curves);
        } else if self.run.state() == Some(RunState::Loading) {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(match self.run.progress() {
                    Some(progress) => describe_progress(progress),
                    None => "Loading the data and building the model...".to_string(),
                });
            });
        } else if self.run.state().is_none() {
            let config = &self.settings.config;
            ui.add_space(ui.available_height() / 3.0);
            ui.vertical_centered(|ui| {
                ui.heading(format!("{} on {}", config.model.kind.label(), config.data.source));
                ui.label("Press Start (or Space) to train. Loss curves appear here, samples on the right.");
                ui.weak("Right arrow trains a single step. Settings that keep the model's shapes apply to a live run.");
            });
        }
    }

    fn perform(&mut self, action: Action, ctx: &Context) {
        match action {
            Action::Start | Action::Restart => self.start_run(ctx, Command::Start),
            Action::TogglePause => {
                let command = if self.run.state() == Some(RunState::Running) {
                    Command::Pause
                } else {
                    Command::Resume
                };
                self.run.send(command);
            }
            Action::Step if self.run.takes_commands() => {
                self.run.send(Command::Step(1));
            }
            Action::Step => self.start_run(ctx, Command::Step(1)),
            Action::Stop => {
                self.run.send(Command::Stop);
            }
            Action::Reset => self.run.reset(),
            Action::RevertDraft => {
                if let Some(config) = self.run.applied_config() {
                    self.settings.config = config.clone();
                }
            }
            Action::SaveGrid(kind) => self.save_grid(kind),
            Action::ExportCsv => self.export_csv(),
            Action::DismissError => self.run.dismiss_error(),
        }
    }

    fn start_run(&mut self, ctx: &Context, first: Command) {
        let options = RunOptions {
            out_dir: Some(self.new_run_dir()),
            resume: false,
        };
        self.run
            .start(self.settings.config.clone(), options, training_waker(ctx), first);
        self.notice = None;
    }

    /// `<runs dir>/<preset>-<unix seconds>`, with a suffix if that is taken.
    fn new_run_dir(&self) -> PathBuf {
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = format!("{}-{seconds}", self.settings.preset);
        (1..)
            .map(|n| {
                self.runs_dir
                    .join(if n == 1 { name.clone() } else { format!("{name}-{n}") })
            })
            .find(|dir| !dir.exists())
            .expect("some suffix is free")
    }

    fn save_grid(&mut self, kind: GridKind) {
        let Some(snapshot) = self.run.snapshot() else { return };
        let grid = match kind {
            GridKind::Samples => &snapshot.samples,
            GridKind::Reconstructions => &snapshot.reconstructions,
        };
        let Some(grid) = grid else { return };
        let name = format!("{}-step-{}.png", kind.folder(), snapshot.step);
        if let Some(path) = rfd::FileDialog::new()
            .add_filter("PNG image", &["png"])
            .set_file_name(name)
            .save_file()
        {
            self.notice = Some(match grid.write_png(&path) {
                Ok(()) => format!("Saved {}", path.display()),
                Err(message) => message,
            });
        }
    }

    fn export_csv(&mut self) {
        let name = format!("{}-metrics.csv", self.settings.preset);
        if let Some(path) = rfd::FileDialog::new()
            .add_filter("CSV", &["csv"])
            .set_file_name(name)
            .save_file()
        {
            self.notice = Some(match std::fs::write(&path, self.run.history().to_csv()) {
                Ok(()) => format!("Saved {}", path.display()),
                Err(e) => format!("{}: cannot write: {e}", path.display()),
            });
        }
    }
}

impl eframe::App for GantryApp {
    fn logic(&mut self, ctx: &Context, _frame: &mut eframe::Frame) {
        self.tick(ctx);
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORAGE_KEY, &self.settings);
    }
}

/// Asks egui for a frame; the worker and the preview loader call it when they have news.
fn repaint_waker(ctx: &Context) -> Waker {
    let ctx = ctx.clone();
    Arc::new(move || ctx.request_repaint())
}

/// The longest a training event waits for a frame. A running trainer reports every step; drawing a frame for
/// each would take CPU from training, so its events are gathered into one frame every 33 ms (30 per second).
const TRAINING_FRAME: std::time::Duration = std::time::Duration::from_millis(33);

/// Wakes the UI for the trainer's events, at most one frame per `TRAINING_FRAME`.
fn training_waker(ctx: &Context) -> Waker {
    let ctx = ctx.clone();
    Arc::new(move || ctx.request_repaint_after(TRAINING_FRAME))
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

/// A framed message across the central area.
fn banner(ui: &mut Ui, color: egui::Color32, add: impl FnOnce(&mut Ui)) {
    Frame::group(ui.style()).stroke((1.0, color)).show(ui, |ui| {
        ui.horizontal_wrapped(add);
    });
    ui.add_space(4.0);
}
