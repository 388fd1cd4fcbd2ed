//! The training thread. It owns the session; the UI or CLI talks to it through [`Trainer`]: commands in over
//! a bounded channel, events out. Metric rows are never dropped; of the image grids only the newest is kept.

use super::session::Session;
use super::{MetricRow, PointCloud};
use crate::config::RunConfig;
use crate::data::{self, DatasetSummary};
use crate::grid::ImageGrid;
use crate::models::NetSummary;
use crate::runs::{self, GridKind, RunDir, RunStatus};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TryRecvError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Train until the step budget, a pause or a stop (also resumes a paused run).
    Start,
    Pause,
    Resume,
    /// Do this many steps, then pause.
    Step(u64),
    /// Finish: write a last checkpoint and end the thread.
    Stop,
    /// Take the hyperparameters that do not change shapes (others are refused with an error event).
    SetConfig(Box<RunConfig>),
    /// Make fresh sample/reconstruction grids now.
    RequestSamples,
    SaveCheckpoint,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Loading,
    /// Loaded and waiting for Start.
    Ready,
    Running,
    Paused,
    /// The step budget is reached (raising `train.steps` and starting again continues).
    Finished,
    /// Something failed; the message came as an `Event::Error`.
    Failed,
    Stopped,
}

impl RunState {
    pub fn label(self) -> &'static str {
        match self {
            RunState::Loading => "loading",
            RunState::Ready => "ready",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Stopped => "stopped",
        }
    }
}

/// What the run knows once its data is loaded and its models are built.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub data: DatasetSummary,
    pub networks: Vec<NetSummary>,
    pub metric_names: Vec<String>,
    /// The step the run starts from (non-zero when resumed).
    pub step: u64,
    pub run_dir: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub enum Event {
    State(RunState),
    Loaded(Box<RunInfo>),
    /// Data loading: (what, done, total), e.g. bytes downloaded or images decoded; total 0 when unknown.
    Progress {
        what: String,
        done: u64,
        total: u64,
    },
    Metrics(MetricRow),
    /// New grids are waiting in [`Trainer::take_snapshot`].
    Snapshot {
        step: u64,
    },
    ConfigApplied(Box<RunConfig>),
    CheckpointSaved {
        step: u64,
        path: PathBuf,
    },
    Error(String),
}

/// The newest pictures of a run.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub step: u64,
    pub samples: Option<ImageGrid>,
    pub reconstructions: Option<ImageGrid>,
    pub points: Option<PointCloud>,
}

/// Where the run is written and whether it continues an earlier one.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub out_dir: Option<PathBuf>,
    /// Continue the run in `out_dir` from its newest checkpoint.
    pub resume: bool,
}

pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Handle to a training thread. Dropping it stops the thread and joins it.
pub struct Trainer {
    commands: Sender<Command>,
    events: Receiver<Event>,
    latest: Arc<Mutex<Option<Snapshot>>>,
    thread: Option<JoinHandle<()>>,
}

const COMMAND_CAPACITY: usize = 64;

impl Trainer {
    /// Starts the thread; it loads data and builds models, then waits for `Start`. `waker` is called after
    /// every event so a UI can repaint without polling.
    pub fn spawn(config: RunConfig, options: RunOptions, waker: Option<Waker>) -> Trainer {
        let (commands, command_rx) = bounded(COMMAND_CAPACITY);
        let (event_tx, events) = unbounded();
        let latest = Arc::new(Mutex::new(None));
        let worker = Worker {
            commands: command_rx,
            events: event_tx,
            latest: latest.clone(),
            waker: waker.unwrap_or_else(|| Arc::new(|| {})),
            run_dir: None,
            last_checkpoint: None,
            state: RunState::Loading,
            steps_done: 0,
        };
        let thread = std::thread::Builder::new()
            .name("gantry-trainer".into())
            .spawn(move || worker.run(config, options))
            .expect("the OS can start a thread");
        Trainer {
            commands,
            events,
            latest,
            thread: Some(thread),
        }
    }

    /// Sends a command; returns false when the thread has already ended.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// The newest grids, if new ones arrived since the last call.
    pub fn take_snapshot(&self) -> Option<Snapshot> {
        self.latest.lock().ok()?.take()
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Trainer {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker {
    commands: Receiver<Command>,
    events: Sender<Event>,
    latest: Arc<Mutex<Option<Snapshot>>>,
    waker: Waker,
    run_dir: Option<RunDir>,
    last_checkpoint: Option<u64>,
    state: RunState,
    /// The session's step count, kept here for `run.toml`.
    steps_done: u64,
}

/// What the loop does between commands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    Running,
    Stepping(u64),
}

impl Worker {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
        (self.waker)();
    }

    /// Announces a state and records it in the run directory's `run.toml`.
    fn set_state(&mut self, state: RunState) {
        let status = match state {
            RunState::Loading | RunState::Ready => None,
            RunState::Running => Some(RunStatus::Running),
            RunState::Paused => Some(RunStatus::Paused),
            RunState::Finished => Some(RunStatus::Finished),
            RunState::Failed => Some(RunStatus::Failed),
            // A finished run that is closed stays finished.
            RunState::Stopped if self.state == RunState::Finished => None,
            RunState::Stopped => Some(RunStatus::Stopped),
        };
        self.state = state;
        if let (Some(status), Some(dir)) = (status, &mut self.run_dir) {
            if let Err(message) = dir.set_status(status, self.steps_done) {
                self.emit(Event::Error(message));
            }
        }
        self.emit(Event::State(state));
    }

    fn fail(&mut self, message: String) {
        self.emit(Event::Error(message));
        self.set_state(RunState::Failed);
    }

    fn run(mut self, config: RunConfig, options: RunOptions) {
        self.emit(Event::State(RunState::Loading));
        let mut session = match self.open(config, &options) {
            Ok(session) => session,
            Err(message) => {
                self.fail(message);
                // Stay until told to stop, so the handle's owner sees the failure rather than a dead channel.
                while !matches!(self.commands.recv(), Ok(Command::Stop) | Err(_)) {}
                return;
            }
        };
        self.steps_done = session.step_count();
        self.publish(&session, false);
        self.emit(Event::State(RunState::Ready));
        let mut mode = Mode::Idle;
        loop {
            let command = if mode == Mode::Idle {
                match self.commands.recv() {
                    Ok(c) => Some(c),
                    Err(_) => break,
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            if let Some(command) = command {
                match command {
                    Command::Start | Command::Resume => {
                        if session.step_count() >= session.config().train.steps {
                            self.set_state(RunState::Finished);
                        } else {
                            mode = Mode::Running;
                            self.set_state(RunState::Running);
                        }
                    }
                    Command::Pause => {
                        mode = Mode::Idle;
                        self.set_state(RunState::Paused);
                    }
                    Command::Step(n) if n > 0 => {
                        mode = Mode::Stepping(n);
                        self.set_state(RunState::Running);
                    }
                    Command::Step(_) => {}
                    Command::Stop => break,
                    Command::SetConfig(config) => match session.apply(*config) {
                        Ok(()) => self.emit(Event::ConfigApplied(Box::new(session.config().clone()))),
                        Err(message) => self.emit(Event::Error(message)),
                    },
                    Command::RequestSamples => self.publish(&session, false),
                    Command::SaveCheckpoint => self.checkpoint(&session),
                }
                continue;
            }
            mode = self.train_one(&mut session, mode);
        }
        if self.last_checkpoint != Some(session.step_count()) {
            self.checkpoint(&session);
        }
        self.set_state(RunState::Stopped);
    }

    /// Loads data, builds the session and opens (or resumes) the run directory.
    fn open(&mut self, config: RunConfig, options: &RunOptions) -> Result<Session, String> {
        // Report each whole percent once (the callback runs on every decoded file and downloaded chunk).
        let last_percent = AtomicU64::new(u64::MAX);
        let progress = |what: &str, done: u64, total: u64| {
            let percent = (done * 100).checked_div(total).unwrap_or(done >> 20);
            if last_percent.swap(percent, Ordering::Relaxed) != percent {
                self.emit(Event::Progress {
                    what: what.to_string(),
                    done,
                    total,
                });
            }
        };
        let data = data::load(&config.data, config.train.seed, &progress)?;
        let summary = data.summary();
        let mut session = Session::new(config, data)?;
        let columns = session.metric_names();
        if let Some(dir) = &options.out_dir {
            self.run_dir = Some(if options.resume {
                let tensors = runs::load_checkpoint(dir, None)?;
                session
                    .restore(&tensors)
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                self.last_checkpoint = Some(session.step_count());
                RunDir::reopen(dir, &columns, session.step_count())?
            } else {
                RunDir::create(dir, session.config(), &columns)?
            });
        }
        self.emit(Event::Loaded(Box::new(RunInfo {
            data: summary,
            networks: session.summaries(),
            metric_names: columns.iter().map(|c| c.to_string()).collect(),
            step: session.step_count(),
            run_dir: options.out_dir.clone(),
        })));
        Ok(session)
    }

    /// Trains one step in `mode` and returns the mode to continue in.
    fn train_one(&mut self, session: &mut Session, mode: Mode) -> Mode {
        let row = match session.step() {
            Ok(row) => row,
            Err(e) => {
                self.fail(format!("training failed at step {}: {e}", session.step_count() + 1));
                return Mode::Idle;
            }
        };
        let step = row.step;
        self.steps_done = step;
        let bad = row
            .first_non_finite()
            .map(|(name, value)| format!("{name} became {value} at step {step}; the run is paused"));
        if let Some(dir) = &mut self.run_dir {
            if let Err(message) = dir.append(&row) {
                self.emit(Event::Error(message));
            }
        }
        self.emit(Event::Metrics(row));
        let train = &session.config().train;
        if let Some(message) = bad {
            self.publish(session, true);
            self.emit(Event::Error(message));
            self.set_state(RunState::Paused);
            return Mode::Idle;
        }
        if step % train.sample_every == 0 {
            self.publish(session, true);
        }
        if step % train.checkpoint_every == 0 {
            self.checkpoint(session);
        }
        if step >= train.steps && mode == Mode::Running {
            if step % train.sample_every != 0 {
                self.publish(session, true);
            }
            if self.last_checkpoint != Some(step) {
                self.checkpoint(session);
            }
            self.set_state(RunState::Finished);
            return Mode::Idle;
        }
        match mode {
            Mode::Stepping(1) => {
                self.publish(session, false);
                self.set_state(RunState::Paused);
                Mode::Idle
            }
            Mode::Stepping(n) => Mode::Stepping(n - 1),
            other => other,
        }
    }

    /// Makes the grids, keeps them as the newest snapshot and (when `save`) writes them to the run directory.
    fn publish(&self, session: &Session, save: bool) {
        let snapshot = (|| -> candle_core::Result<Snapshot> {
            Ok(Snapshot {
                step: session.step_count(),
                samples: session.samples()?,
                reconstructions: session.reconstructions()?,
                points: session.points()?,
            })
        })();
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => return self.emit(Event::Error(format!("cannot draw samples: {e}"))),
        };
        if let (true, Some(dir)) = (save, &self.run_dir) {
            let grids = [
                (GridKind::Samples, &snapshot.samples),
                (GridKind::Reconstructions, &snapshot.reconstructions),
            ];
            for (kind, grid) in grids {
                if let Some(grid) = grid {
                    if let Err(message) = dir.save_grid(kind, snapshot.step, grid) {
                        self.emit(Event::Error(message));
                    }
                }
            }
        }
        let step = snapshot.step;
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(snapshot);
        }
        self.emit(Event::Snapshot { step });
    }

    fn checkpoint(&mut self, session: &Session) {
        let Some(dir) = &self.run_dir else { return };
        let result = session
            .checkpoint_tensors()
            .map_err(|e| e.to_string())
            .and_then(|t| dir.save_checkpoint(session.step_count(), &t));
        match result {
            Ok(path) => {
                self.last_checkpoint = Some(session.step_count());
                self.emit(Event::CheckpointSaved {
                    step: session.step_count(),
                    path,
                });
            }
            Err(message) => self.emit(Event::Error(message)),
        }
    }
}
