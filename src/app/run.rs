//! One training run as the workbench sees it: the worker handle, what the worker last reported and the
//! metric history. Views read it; toolbar actions and config edits become commands through it.

use super::data_preview::Progress;
use super::history::RunHistory;
use crate::config::RunConfig;
use crate::train::worker::{Command, Event, RunInfo, RunOptions, RunState, Snapshot, Trainer, Waker};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
}

#[derive(Default)]
pub struct TrainingRun {
    trainer: Option<Trainer>,
    /// Replaced trainers finishing their last step and checkpoint; joined once done so the UI never waits.
    retiring: Vec<Trainer>,
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
    last_error: Option<String>,
    last_checkpoint: Option<(u64, PathBuf)>,
    /// The data loader's last report, while loading.
    progress: Option<Progress>,
}

impl TrainingRun {
    /// Starts a new run, replacing any current one, and sends `first` (queued until the data is loaded).
    pub fn start(&mut self, config: RunConfig, options: RunOptions, waker: Waker, first: Command) {
        self.retire_trainer();
        let smoothing = self.history.smoothing();
        *self = TrainingRun {
            retiring: std::mem::take(&mut self.retiring),
            ..TrainingRun::default()
        };
        self.history.set_smoothing(smoothing);
        self.applied_config = Some(config.clone());
        self.sent_config = Some(config.clone());
        let trainer = Trainer::spawn(config, options, Some(waker));
        trainer.send(first);
        self.trainer = Some(trainer);
        self.state = Some(RunState::Loading);
    }

    /// Stops the run (if any) and forgets it: back to an empty workbench.
    pub fn reset(&mut self) {
        self.retire_trainer();
        let smoothing = self.history.smoothing();
        *self = TrainingRun {
            retiring: std::mem::take(&mut self.retiring),
            ..TrainingRun::default()
        };
        self.history.set_smoothing(smoothing);
    }

    /// Sends a command to the worker; false when there is no run to take it.
    pub fn send(&mut self, command: Command) -> bool {
        self.trainer.as_ref().is_some_and(|t| t.send(command))
    }

    /// Handles the worker's events until none are left or `budget` is spent; true when some are left.
    pub fn drain(&mut self, budget: Duration) -> bool {
        self.retiring.retain(|t| !t.is_finished());
        let deadline = Instant::now() + budget;
        while let Some(event) = self.trainer.as_ref().and_then(Trainer::try_recv) {
            self.handle(event);
            if Instant::now() >= deadline {
                return self.trainer.as_ref().is_some_and(|t| !t.events().is_empty());
            }
        }
        false
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::State(state) => self.state = Some(state),
            Event::Loaded(info) => {
                self.history = RunHistory::new(&info.metric_names, self.history.smoothing());
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
            Event::ConfigApplied(config) => {
                self.applied_config = Some(*config);
                self.config_in_flight = false;
            }
            Event::CheckpointSaved { step, path } => self.last_checkpoint = Some((step, path)),
            Event::Error(message) => {
                // A refused live change answers with an error too; either way the worker is free again.
                self.config_in_flight = false;
                self.last_error = Some(message);
            }
        }
    }

    /// Sends the draft's live-applicable changes to the worker, one change in flight at a time (so fast
    /// edits never fill the command channel), and says what the draft needs.
    pub fn sync_config(&mut self, draft: &RunConfig) -> ConfigSync {
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
        if !self.config_in_flight && self.send(Command::SetConfig(Box::new(draft.clone()))) {
            self.sent_config = Some(draft.clone());
            self.config_in_flight = true;
        }
        ConfigSync::Applying
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

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn dismiss_error(&mut self) {
        self.last_error = None;
    }

    pub fn last_checkpoint(&self) -> Option<&(u64, PathBuf)> {
        self.last_checkpoint.as_ref()
    }

    fn retire_trainer(&mut self) {
        if let Some(trainer) = self.trainer.take() {
            trainer.send(Command::Stop);
            self.retiring.push(trainer);
        }
    }
}
