//! One training run as the workbench sees it: the worker handle, what the worker last reported and the
//! metric history. Views read it; toolbar actions and config edits become commands through it.

use super::data_preview::Progress;
use super::history::RunHistory;
use crate::config::RunConfig;
use crate::quality::features::FeatureInfo;
use crate::runs;
use crate::train::health::HealthReport;
use crate::train::worker::{Command, Event, Problem, RunInfo, RunOptions, RunState, Snapshot, Trainer, Waker};
use std::path::PathBuf;
use std::time::Instant;

/// How the draft config in the panels relates to the running one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSync {
    /// No run takes commands; the draft applies at the next start.
    NoRun,
    InSync,
    /// A live change was sent and the worker has not answered yet.
    Applying,
    /// The draft changes this setting, which changes shapes or data: it needs a new run.
    NeedsRestart(&'static str),
    /// The draft does not validate; the panels show why.
    Invalid,
    /// The run is paused: changes wait until it resumes (or go into a fork).
    Held,
}

/// What handling a run's events found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drained {
    /// Events are left for the next frame.
    pub more: bool,
    /// The run changed state (so did its `run.toml`).
    pub state_changed: bool,
    /// New grids arrived (and were saved to the run's folder, if it saves them).
    pub new_grids: bool,
}

#[derive(Default)]
pub struct TrainingRun {
    trainer: Option<Trainer>,
    /// How to start the worker, while the run waits in the queue.
    pending: Option<(RunOptions, Option<Command>)>,
    dir: Option<PathBuf>,
    state: Option<RunState>,
    info: Option<RunInfo>,
    history: RunHistory,
    /// The config the worker runs, as it last confirmed it.
    applied_config: Option<RunConfig>,
    /// The config last sent to the worker (equal to `applied_config` once answered).
    sent_config: Option<RunConfig>,
    config_in_flight: bool,
    snapshot: Option<Snapshot>,
    /// Counts snapshots, so views know when to upload new textures.
    snapshot_version: u64,
    problem: Option<Problem>,
    last_checkpoint: Option<(u64, PathBuf)>,
    /// The data loader's last report, while loading.
    progress: Option<Progress>,
    /// The health rules' lights as last reported.
    health: Option<HealthReport>,
    /// A change of settings the run made itself (a health remedy), for the panels to take over.
    own_change: Option<RunConfig>,
    /// The network behind the quality metric, once it is ready.
    quality: Option<FeatureInfo>,
    /// Whether the worker was last told to make the latent views.
    latent_views: bool,
}

impl TrainingRun {
    /// A run waiting for a training slot: [`TrainingRun::begin`] starts it with `options` and sends `first`
    /// (without one, the worker loads the run and waits: a run opened to look inside it).
    pub fn queued(config: RunConfig, options: RunOptions, first: Option<Command>) -> TrainingRun {
        TrainingRun {
            dir: options.out_dir.clone(),
            applied_config: Some(config.clone()),
            sent_config: Some(config),
            pending: Some((options, first)),
            ..TrainingRun::default()
        }
    }

    /// Starts the worker of a queued run (queued until the data is loaded, its first command waits too).
    pub fn begin(&mut self, waker: Waker) {
        let (Some((options, first)), Some(config)) = (self.pending.take(), self.applied_config.clone()) else {
            return;
        };
        let trainer = Trainer::spawn(config, options, Some(waker));
        if let Some(first) = first {
            trainer.send(first);
        }
        self.trainer = Some(trainer);
        self.state = Some(RunState::Loading);
    }

    /// Waiting for a training slot.
    pub fn is_queued(&self) -> bool {
        self.pending.is_some()
    }

    /// Waiting for a slot as a new run (not one continued or opened from its folder).
    pub fn is_queued_new(&self) -> bool {
        self.pending.as_ref().is_some_and(|(options, _)| !options.resume)
    }

    /// Whether the worker is busy with data or training (what the parallel-runs limit counts).
    pub fn is_training(&self) -> bool {
        matches!(self.state, Some(RunState::Loading | RunState::Running))
    }

    /// The run's directory.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// Tells the worker to stop and hands its thread over, for the caller to join once it has finished.
    pub fn detach(&mut self) -> Option<Trainer> {
        self.pending = None;
        let trainer = self.trainer.take()?;
        trainer.send(Command::Stop);
        Some(trainer)
    }

    /// Sends a command to the worker; false when there is no run to take it.
    pub fn send(&mut self, command: Command) -> bool {
        self.trainer.as_ref().is_some_and(|t| t.send(command))
    }

    /// Tells the worker whether a view shows the latent views (once per change; retried while the run waits
    /// in the queue).
    pub fn show_latent_views(&mut self, on: bool) {
        if self.latent_views != on && self.send(Command::LatentViews(on)) {
            self.latent_views = on;
        }
    }

    /// Handles the worker's events until none are left or `deadline` passes.
    pub fn drain(&mut self, deadline: Instant) -> Drained {
        let mut drained = Drained::default();
        while let Some(event) = self.trainer.as_ref().and_then(Trainer::try_recv) {
            drained.state_changed |= matches!(event, Event::State(_));
            drained.new_grids |= matches!(event, Event::Snapshot { .. });
            self.handle(event);
            if Instant::now() >= deadline {
                drained.more = self.trainer.as_ref().is_some_and(|t| !t.events().is_empty());
                return drained;
            }
        }
        // A thread that is gone without saying it stopped died: the run failed, and frees its slot.
        let ended = matches!(self.state, Some(RunState::Stopped | RunState::Failed));
        if !ended && self.trainer.as_ref().is_some_and(Trainer::is_gone) {
            self.problem = Some(Problem::Fatal("the training thread ended without a word".into()));
            self.state = Some(RunState::Failed);
            drained.state_changed = true;
        }
        drained
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::State(state) => {
                // Why the run paused is news only while it stays paused (the Health view keeps the record).
                if matches!(self.problem, Some(Problem::Halted(_))) && state != RunState::Paused {
                    self.problem = None;
                }
                self.state = Some(state);
            }
            Event::Loaded(info) => {
                self.history = RunHistory::new(&info.metric_names, self.history.smoothing());
                // A resumed or forked run continues its curves from the rows already on disk.
                if let (true, Some(dir)) = (info.step > 0, &info.run_dir) {
                    // Rows after the start step may be on disk already; they also come as events.
                    match runs::read_metrics(dir) {
                        Ok(metrics) => {
                            metrics
                                .rows
                                .iter()
                                .filter(|row| row.step <= info.step)
                                .for_each(|row| self.history.push(row));
                            self.problem = metrics.warning.map(Problem::Warning).or(self.problem.take());
                        }
                        Err(message) => self.problem = Some(Problem::Warning(message)),
                    }
                }
                if let Some(dir) = &info.run_dir {
                    runs::read_events(dir)
                        .into_iter()
                        .filter(|e| e.step <= info.step)
                        .for_each(|e| self.history.push_event(e));
                    self.history.push_changes(runs::read_changes(dir));
                }
                self.info = Some(*info);
                self.progress = None;
            }
            Event::Progress { what, done, total } => self.progress = Some((what, done, total)),
            Event::Metrics(row) => self.history.push(&row),
            Event::Snapshot { .. } => {
                if let Some(snapshot) = self.trainer.as_ref().and_then(Trainer::take_snapshot) {
                    self.snapshot = Some(snapshot);
                    self.snapshot_version += 1;
                }
            }
            Event::ConfigApplied { config, changes } => {
                self.history.push_changes(changes);
                if !self.config_in_flight {
                    self.own_change = Some((*config).clone());
                    self.sent_config = Some((*config).clone());
                }
                self.applied_config = Some(*config);
                self.config_in_flight = false;
            }
            Event::Health(report) => self.health = Some(*report),
            Event::QualityReady(info) => self.quality = Some(info),
            Event::HealthAction(event) => {
                if let Some(step) = event.to_step {
                    self.history.truncate_after(step);
                }
                self.problem = Some(Problem::Warning(event.describe()));
                self.history.push_event(event);
            }
            Event::CheckpointSaved { step, path } => self.last_checkpoint = Some((step, path)),
            Event::Problem(problem) => {
                // A refused change is no longer in flight; the worker is free for the next.
                if matches!(problem, Problem::Refused(_)) {
                    self.config_in_flight = false;
                }
                self.problem = Some(problem);
            }
        }
    }

    /// Sends the draft's live-applicable changes to a running worker, one change in flight at a time (so
    /// fast edits never fill the command channel), and says what the draft needs. A paused run keeps its
    /// settings until it resumes, so a fork can try the changes while the run stays as it was.
    pub fn sync_config(&mut self, draft: &RunConfig) -> ConfigSync {
        let sync = self.compare_config(draft);
        if sync == ConfigSync::Applying && self.state == Some(RunState::Running) {
            self.send_config(draft);
        }
        match sync {
            ConfigSync::Applying if self.state != Some(RunState::Running) && !self.config_in_flight => ConfigSync::Held,
            other => other,
        }
    }

    /// Sends the draft's live-applicable changes, then `command` (as `send`): a resume or a step trains
    /// with the settings shown, not those of the run's last sync.
    pub fn send_with_draft(&mut self, draft: &RunConfig, command: Command) -> bool {
        if self.compare_config(draft) == ConfigSync::Applying {
            self.send_config(draft);
        }
        self.send(command)
    }

    fn compare_config(&self, draft: &RunConfig) -> ConfigSync {
        let Some(applied) = self.applied_config.as_ref().filter(|_| self.takes_commands()) else {
            return ConfigSync::NoRun;
        };
        if let Some(key) = applied.restart_needed_for(draft) {
            return ConfigSync::NeedsRestart(key);
        }
        if self.sent_config.as_ref() == Some(draft) {
            return if self.config_in_flight {
                ConfigSync::Applying
            } else {
                ConfigSync::InSync
            };
        }
        if draft.validate().is_err() {
            return ConfigSync::Invalid;
        }
        ConfigSync::Applying
    }

    fn send_config(&mut self, draft: &RunConfig) {
        if self.sent_config.as_ref() != Some(draft)
            && !self.config_in_flight
            && self.send(Command::SetConfig(Box::new(draft.clone())))
        {
            self.sent_config = Some(draft.clone());
            self.config_in_flight = true;
        }
    }

    /// Whether a worker is alive and listening (loading, ready, running, paused or finished).
    pub fn takes_commands(&self) -> bool {
        self.trainer.is_some() && !matches!(self.state, Some(RunState::Stopped | RunState::Failed) | None)
    }

    pub fn state(&self) -> Option<RunState> {
        self.state
    }

    pub fn info(&self) -> Option<&RunInfo> {
        self.info.as_ref()
    }

    pub fn health(&self) -> Option<&HealthReport> {
        self.health.as_ref()
    }

    /// The network behind the quality metric, once it is ready.
    pub fn quality(&self) -> Option<&FeatureInfo> {
        self.quality.as_ref()
    }

    /// The settings the run changed itself since the last call (a remedy it applied), if it did.
    pub fn take_own_change(&mut self) -> Option<RunConfig> {
        self.own_change.take()
    }

    pub fn history(&self) -> &RunHistory {
        &self.history
    }

    pub fn history_mut(&mut self) -> &mut RunHistory {
        &mut self.history
    }

    /// The config the worker reported it runs (its start config until a live change is applied).
    pub fn applied_config(&self) -> Option<&RunConfig> {
        self.applied_config.as_ref()
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub fn snapshot_version(&self) -> u64 {
        self.snapshot_version
    }

    /// The newest step: from the metrics, or the step the run started at.
    pub fn step(&self) -> u64 {
        self.history
            .last_step()
            .or(self.info.as_ref().map(|i| i.step))
            .unwrap_or(0)
    }

    /// How far loading the data got, while it loads.
    pub fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    /// What went wrong last, until dismissed.
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    pub fn dismiss_problem(&mut self) {
        self.problem = None;
    }

    pub fn last_checkpoint(&self) -> Option<&(u64, PathBuf)> {
        self.last_checkpoint.as_ref()
    }
}
