//! The training thread. It owns the session; the UI or CLI talks to it through [`Trainer`]: commands in over
//! a bounded channel, events out. Metric rows are never dropped; of the image grids only the newest is kept.
//! The thread cannot end silently: a panic in it becomes a `Fatal` event and the `Failed` state, and a
//! handle whose thread is gone reads as failed too.

use super::health::{HealthEvent, HealthReport, Monitor, Rule};
use super::latent_views::LatentMap;
use super::session::{Interpolation, LatentWalk, Session};
use super::writer::{Job, Writer, Written};
use super::{MetricRow, PointCloud};
use crate::config::{OnTrouble, RunConfig};
use crate::data::{self, DatasetSummary};
use crate::grid::ImageGrid;
use crate::models::NetSummary;
use crate::quality::evaluator::{Evaluator, Reply};
use crate::quality::features::FeatureInfo;
use crate::runs::{self, GridKind, RunDir, RunMeta, RunStatus, SettingChange};
use candle_core::Tensor;
use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender, TryRecvError};
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// Go back to the in-memory snapshot or checkpoint of this step: later metric rows, grids and
    /// checkpoints are dropped and training continues from there.
    RollBack(u64),
    /// Interpolate between these two samples (indices into the sample grid) from now on.
    Interpolate(usize, usize),
    /// Decode this point of the latent plane (autoencoders), now and with every later snapshot.
    DecodeLatent([f32; 2]),
    /// Walk from this sample (index into the sample grid) to these values of its first latent dimensions
    /// (image GANs), now and with every later snapshot.
    WalkLatent(usize, Vec<f32>),
    /// Make the latent views (autoencoders' latent map, GANs' latent walk) with each snapshot, or stop
    /// making them: they cost an encode of hundreds of items, so only while a view shows them.
    LatentViews(bool),
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
    /// Something failed; the message came as a `Problem::Fatal`.
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
    /// The run took new settings (a live edit, a health remedy): all of them, and the ones that changed (also
    /// recorded in the run's `changes.csv` and `config.toml`).
    ConfigApplied {
        config: Box<RunConfig>,
        changes: Vec<SettingChange>,
    },
    CheckpointSaved {
        step: u64,
        path: PathBuf,
    },
    /// Something went wrong; the kind says how it affects the run.
    Problem(Problem),
    /// The health rules' lights, every `health.every` steps and whenever one turns to trouble.
    Health(Box<HealthReport>),
    /// What the health checks (or a rollback by hand) did; recorded in the run's `events.csv`. After a
    /// rollback (`to_step`) the rows after that step are gone and training goes on from it.
    HealthAction(HealthEvent),
    /// The quality metric's feature network is ready (trained now or taken from the cache).
    QualityReady(FeatureInfo),
}

impl Event {
    /// The problem this event reports, if it reports one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Event::Problem(problem) => Some(problem),
            _ => None,
        }
    }
}

/// What went wrong, by how it affects the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A live change or command the run did not take; it goes on as it was.
    Refused(String),
    /// Something the run survives (a file it could not write or had to pass over); it goes on.
    Warning(String),
    /// The run paused itself and waits for the user (a NaN loss, a folder it cannot write): its state is
    /// kept in memory and Resume continues it. `State(Paused)` follows.
    Halted(String),
    /// The run cannot go on (bad data, a model that cannot be built, a panic). `State(Failed)` follows.
    Fatal(String),
}

impl Problem {
    pub fn message(&self) -> &str {
        match self {
            Problem::Refused(m) | Problem::Warning(m) | Problem::Halted(m) | Problem::Fatal(m) => m,
        }
    }

    /// How a problem of this kind is introduced to the user.
    pub fn label(&self) -> &'static str {
        match self {
            Problem::Refused(_) => "Not applied",
            Problem::Warning(_) => "Warning",
            Problem::Halted(_) => "Paused",
            Problem::Fatal(_) => "Failed",
        }
    }

    pub fn is_fatal(&self) -> bool {
        matches!(self, Problem::Fatal(_))
    }

    /// The same problem, its message without backtrace frames.
    fn plain(self) -> Problem {
        let plain = |m: String| crate::errors::without_backtrace(&m);
        match self {
            Problem::Refused(m) => Problem::Refused(plain(m)),
            Problem::Warning(m) => Problem::Warning(plain(m)),
            Problem::Halted(m) => Problem::Halted(plain(m)),
            Problem::Fatal(m) => Problem::Fatal(plain(m)),
        }
    }
}

/// The newest pictures of a run.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub step: u64,
    pub samples: Option<ImageGrid>,
    /// The model's images between two of the samples' latent vectors (image models that generate).
    pub interpolation: Option<Interpolation>,
    pub reconstructions: Option<ImageGrid>,
    pub points: Option<PointCloud>,
    /// Held-out items on the latent plane (autoencoders on images).
    pub latent: Option<LatentMap>,
    /// One sample's latent vector as the user set its first dimensions (image GANs).
    pub walk: Option<LatentWalk>,
}

/// Where the run is written and whether it continues an earlier one.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub out_dir: Option<PathBuf>,
    /// Continue the run in `out_dir` from its newest checkpoint.
    pub resume: bool,
    /// With `resume`: the newest checkpoint or none. A run opened to look inside keeps every row it has, and
    /// going back to an older checkpoint (the newest unreadable) would drop the rows after it.
    pub newest_checkpoint_only: bool,
    /// Make the training thread panic on reaching this step: how the tests (and `gantry train
    /// --panic-at-step`) check that a crash in training is reported, never silent.
    pub panic_at_step: Option<u64>,
    /// Where the quality metric's feature networks are cached; the user's cache folder when `None`.
    pub cache_dir: Option<PathBuf>,
    /// No window shows the run (`gantry train`, sweeps): its snapshots carry only the pictures it saves,
    /// none of the views only a window shows (the interpolation strip, 2D points), which cost model passes.
    pub headless: bool,
}

/// How often [`Trainer::run_to_end`] takes the events that have arrived.
const EVENTS_POLL: Duration = Duration::from_millis(20);

/// How a run driven headless by [`Trainer::run_to_end`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// The step budget was reached.
    Finished,
    /// Stopped on request (a signal): the last checkpoint and `status = "stopped"` are written.
    Stopped,
    /// Paused itself with this reason; the run directory can be resumed.
    Halted(String),
    /// Failed with this reason.
    Failed(String),
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
            writer: None,
            last_checkpoint: None,
            state: RunState::Loading,
            steps_done: 0,
            panic_at_step: options.panic_at_step,
            headless: options.headless,
            monitor: Monitor::new(),
            changes: Vec::new(),
            published_at: None,
            interpolation_ends: (0, 1),
            decode_at: None,
            walk: (0, None),
            latent_views: false,
            snapshots: VecDeque::new(),
            rollbacks: (0, 0),
            cache_dir: options
                .cache_dir
                .clone()
                .unwrap_or_else(crate::quality::default_cache_dir),
            quality: Quality::Off,
            held: VecDeque::new(),
            held_checkpoint: None,
        };
        let thread = std::thread::Builder::new()
            .name("gantry-trainer".into())
            .spawn(move || worker.run_caught(config, options))
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

    /// Whether the thread is gone with every event read (it ended, or it died without a word).
    pub fn is_gone(&self) -> bool {
        matches!(self.events.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// Starts the run once loaded and hands every event to `each` until the run finishes, fails, pauses
    /// itself or (once `stop` is closed or sent to) has stopped. This is how the CLI and sweeps drive a run.
    pub fn run_to_end(&self, stop: &Receiver<()>, mut each: impl FnMut(&Event)) -> Ending {
        let mut problem = None;
        let mut stopping = false;
        let mut stop = stop.clone();
        loop {
            // The events are taken a batch at a time, every `EVENTS_POLL`, not waited for one by one: each
            // wait made the training thread wake this one for every metric row, a system call and a
            // context switch on cores the training shares, thousands of times a second for a small model.
            let event = match self.events.try_recv() {
                Ok(event) => event,
                Err(TryRecvError::Disconnected) => {
                    return Ending::Failed(problem.unwrap_or_else(|| "the training thread ended".into()))
                }
                Err(TryRecvError::Empty) => {
                    select! {
                        recv(stop) -> _ => {
                            stopping = true;
                            self.send(Command::Stop);
                            stop = crossbeam_channel::never();
                        }
                        default(EVENTS_POLL) => {}
                    }
                    continue;
                }
            };
            each(&event);
            match event {
                Event::Loaded(_) if !stopping => {
                    self.send(Command::Start);
                }
                Event::Problem(Problem::Halted(m) | Problem::Fatal(m)) => problem = Some(m),
                Event::State(RunState::Finished) if !stopping => return Ending::Finished,
                Event::State(RunState::Failed) => {
                    return Ending::Failed(problem.unwrap_or_else(|| "the run failed".into()))
                }
                Event::State(RunState::Paused) if !stopping => {
                    return Ending::Halted(problem.unwrap_or_else(|| "the run paused".into()))
                }
                Event::State(RunState::Stopped) => return Ending::Stopped,
                _ => {}
            }
        }
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
    /// Writes the run directory's grids and checkpoints while training goes on.
    writer: Option<Writer>,
    /// The step of the newest checkpoint on disk.
    last_checkpoint: Option<u64>,
    state: RunState,
    /// The session's step count, kept here for `run.toml`.
    steps_done: u64,
    panic_at_step: Option<u64>,
    /// `RunOptions::headless`.
    headless: bool,
    monitor: Monitor,
    /// The settings changed so far (as in the run's `changes.csv`), so a rollback can tell those in force
    /// at its step.
    changes: Vec<SettingChange>,
    /// In-memory snapshots (step, everything a checkpoint holds), oldest first.
    snapshots: VecDeque<(u64, HashMap<String, Tensor>)>,
    /// The step the last automatic rollback went back to, and how many in a row went there.
    rollbacks: (u64, u32),
    cache_dir: PathBuf,
    quality: Quality,
    /// The samples the interpolation strip runs between.
    interpolation_ends: (usize, usize),
    /// The latent point the user asked to see decoded.
    decode_at: Option<[f32; 2]>,
    /// The sample the latent walk starts from, and the values the user set (none yet: the sample's own).
    walk: (usize, Option<Vec<f32>>),
    /// Whether snapshots carry the latent views.
    latent_views: bool,
    /// When the training loop last published a snapshot.
    published_at: Option<Instant>,
    /// Metric rows held back while the quality score of the first of them is computed, so that each score
    /// lands in the row of the step whose weights it measured.
    held: VecDeque<MetricRow>,
    /// A checkpoint (step, tensors) taken while rows were held: the writer gets it once they are written, so
    /// that a resumed run has every row up to it without training waiting for the score.
    held_checkpoint: Option<(u64, HashMap<String, Tensor>)>,
}

/// The shortest time between two snapshots of a run that saves no pictures.
const LIVE_VIEW_INTERVAL: Duration = Duration::from_millis(50);

/// Automatic rollbacks to one snapshot before the run pauses instead: its remedy is not enough.
const MAX_ROLLBACKS_TO_ONE_STEP: u32 = 5;

/// The message a panic was raised with.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// How a run reports health every so many steps when its costlier signals are off.
const DEFAULT_REPORT_EVERY: u64 = 50;

/// What handling a rule's trouble left the run to do.
enum Trouble {
    /// Warned: train on.
    Handled,
    /// Went back to a snapshot: train on from there.
    RolledBack,
    /// Pause with this message.
    Paused(String),
}

/// The quality metric's thread, started with the first metric row of a run that is to be scored.
enum Quality {
    Off,
    /// Getting its feature network (from the cache or by training it).
    Starting(Evaluator),
    Ready(Evaluator),
    /// It could not work for this run (said once as a warning); not started again.
    Failed,
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
        let event = match event {
            Event::Problem(problem) => Event::Problem(problem.plain()),
            other => other,
        };
        let _ = self.events.send(event);
        (self.waker)();
    }

    /// Records a state (`record_state`) and announces it; a file that could not be written is a warning.
    fn set_state(&mut self, state: RunState) {
        if let Err(message) = self.record_state(state) {
            self.emit(Event::Problem(Problem::Warning(message)));
        }
        self.emit(Event::State(state));
    }

    /// Takes up a state and records it in the run directory's `run.toml`; a run that stops training first
    /// puts on disk what it holds (`flush`). The error is the first file that could not be written.
    fn record_state(&mut self, state: RunState) -> Result<(), String> {
        let mut written = Ok(());
        if state != RunState::Running {
            written = self.flush();
        }
        let status = match state {
            // A run loaded (new, continued or opened to look inside) keeps its status on disk until it trains.
            RunState::Loading | RunState::Ready => None,
            RunState::Running => Some(RunStatus::Running),
            RunState::Paused => Some(RunStatus::Paused),
            RunState::Finished => Some(RunStatus::Finished),
            RunState::Failed => Some(RunStatus::Failed),
            // A finished run that is closed stays finished, and one opened without training keeps its status.
            RunState::Stopped if matches!(self.state, RunState::Finished | RunState::Ready) => None,
            RunState::Stopped => Some(RunStatus::Stopped),
        };
        self.state = state;
        if let (Some(status), Some(dir)) = (status, &mut self.run_dir) {
            written = written.and(dir.set_status(status, self.steps_done));
        }
        written
    }

    /// Writes `row` to the run directory and sends it, or holds it back while a quality score of an earlier
    /// step (or of this one, when one is due) is computed. The error is a row that could not be written.
    fn deliver(&mut self, session: &Session, row: MetricRow) -> Result<(), String> {
        let every = session.config().quality.every;
        let wanted = every > 0 && session.data().shape.is_image();
        let due = wanted && row.step.is_multiple_of(every);
        // Started with the first row, so that its network is ready by the first scored step.
        if wanted && matches!(self.quality, Quality::Off) {
            let (config, data) = (session.config().clone(), session.shared_data());
            self.quality = Quality::Starting(Evaluator::spawn(config, data, self.cache_dir.clone()));
        }
        let mut written = self.collect_scores(false);
        if let (true, true, Quality::Ready(quality)) = (due, self.held.is_empty(), &self.quality) {
            match session.sampling_weights() {
                Ok(weights) => {
                    quality.submit(row.step, weights, session.config().quality.samples);
                    self.held.push_back(row);
                    return written;
                }
                Err(e) => {
                    let message = format!("cannot score the samples of step {}: {e}", row.step);
                    self.emit(Event::Problem(Problem::Warning(message)));
                }
            }
        }
        if self.held.is_empty() {
            written = written.and(self.write_row(row));
        } else {
            self.held.push_back(row);
        }
        written
    }

    fn write_row(&mut self, row: MetricRow) -> Result<(), String> {
        // A row that cannot be written stays queued in the run directory and goes out with the next one.
        let appended = self.run_dir.as_mut().map_or(Ok(()), |dir| dir.append(&row));
        self.emit(Event::Metrics(row));
        appended
    }

    /// Takes the quality thread's replies; with `wait`, until the score the held rows wait for is in.
    fn collect_scores(&mut self, wait: bool) -> Result<(), String> {
        let mut written = Ok(());
        while let Quality::Starting(quality) | Quality::Ready(quality) = &self.quality {
            let reply = if wait && !self.held.is_empty() {
                quality.wait_reply()
            } else {
                match quality.try_reply() {
                    Some(reply) => Some(reply),
                    None => break,
                }
            };
            match reply {
                Some(Reply::Ready(info)) => {
                    if let Quality::Starting(quality) = std::mem::replace(&mut self.quality, Quality::Failed) {
                        self.quality = Quality::Ready(quality);
                    }
                    self.emit(Event::QualityReady(info));
                }
                Some(Reply::Scored { step, values }) => {
                    if let Some(row) = self.held.front_mut().filter(|row| row.step == step) {
                        row.values.extend(values);
                    }
                    written = written.and(self.release_held());
                }
                failed => {
                    let why = match failed {
                        Some(Reply::Failed(message)) => message,
                        _ => "its thread ended".into(),
                    };
                    self.quality = Quality::Failed;
                    let message = format!("the quality metric is off for this run: {why}");
                    self.emit(Event::Problem(Problem::Warning(message)));
                    written = written.and(self.release_held());
                }
            }
        }
        written
    }

    /// Puts the metric rows appended so far on disk (`RunDir::append` otherwise writes them on a timer).
    fn write_rows(&mut self) -> Result<(), String> {
        self.run_dir.as_mut().map_or(Ok(()), RunDir::write_rows)
    }

    /// Writes and sends the rows held for a quality score, then gives the writer the checkpoint held behind
    /// them.
    fn release_held(&mut self) -> Result<(), String> {
        let mut written = Ok(());
        while let Some(row) = self.held.pop_front() {
            written = written.and(self.write_row(row));
        }
        match self.held_checkpoint.take() {
            Some((step, tensors)) => written.and_then(|()| self.submit_checkpoint(step, tensors)),
            None => written,
        }
    }

    /// Puts on disk everything the run holds: rows held for a quality score (and the checkpoint behind them),
    /// rows in memory, the writer's queue. The error is the first file that could not be written.
    fn flush(&mut self) -> Result<(), String> {
        let scores = self.collect_scores(true);
        let rows = self.write_rows();
        scores.and(rows).and(self.written(true))
    }

    /// Waits for a pending quality score and writes the rows held for it; a row that cannot be written is
    /// reported (it stays queued in the run directory).
    fn settle(&mut self) {
        if let Err(message) = self.collect_scores(true) {
            self.emit(Event::Problem(Problem::Warning(message)));
        }
    }

    fn fail(&mut self, message: String) {
        self.emit(Event::Problem(Problem::Fatal(message)));
        self.set_state(RunState::Failed);
    }

    /// Pauses the run with the reason; it keeps everything in memory and continues on Resume.
    fn halt(&mut self, message: String) -> Mode {
        self.emit(Event::Problem(Problem::Halted(message)));
        self.set_state(RunState::Paused);
        Mode::Idle
    }

    /// Pauses the run because a file of its folder could not be written (`message` names it). What is
    /// still to be written most likely fails for the same reason, so that is not reported again: Resume
    /// writes it all once the folder takes writes.
    fn halt_unwritten(&mut self, message: String) -> Mode {
        let _ = self.record_state(RunState::Paused);
        self.emit(Event::Problem(Problem::Halted(format!(
            "{message}. The run is paused and keeps its state; free space or fix the folder, then Resume"
        ))));
        self.emit(Event::State(RunState::Paused));
        Mode::Idle
    }

    /// Runs the thread; a panic anywhere in it fails the run with the panic's message.
    fn run_caught(mut self, config: RunConfig, options: RunOptions) {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.run(config, options)));
        if let Err(payload) = outcome {
            let step = self.steps_done;
            self.fail(format!(
                "the training thread crashed after step {step}: {}",
                panic_message(payload.as_ref())
            ));
            self.wait_for_stop();
        }
    }

    /// Stays until told to stop, so the handle's owner sees the failure rather than a dead channel.
    fn wait_for_stop(&self) {
        while !matches!(self.commands.recv(), Ok(Command::Stop) | Err(_)) {}
    }

    fn run(&mut self, config: RunConfig, options: RunOptions) {
        self.emit(Event::State(RunState::Loading));
        let mut session = match self.open(config, &options) {
            Ok(session) => session,
            Err(message) => {
                // A run the workbench queued has a `run.toml` saying so, which must not outlive the run (one
                // that trained before and failed to continue keeps its own status).
                let listed = options
                    .out_dir
                    .as_deref()
                    .filter(|dir| dir.join(runs::META_FILE).exists());
                if let (None, Some(dir)) = (&self.run_dir, listed) {
                    let failed = RunMeta::update(dir, |meta| {
                        if meta.status == RunStatus::Queued {
                            meta.status = RunStatus::Failed;
                        }
                    });
                    if let Err(warning) = failed {
                        self.emit(Event::Problem(Problem::Warning(warning)));
                    }
                }
                self.fail(message);
                self.wait_for_stop();
                return;
            }
        };
        self.steps_done = session.step_count();
        self.take_snapshot(&session);
        // Unsaved grids cannot fail to write.
        self.publish(&session, false);
        self.set_state(RunState::Ready);
        let mut mode = Mode::Idle;
        let mut stepped_at = Instant::now();
        loop {
            let command = if mode == Mode::Idle {
                match self.commands.recv() {
                    Ok(c) => Some(c),
                    Err(_) => break,
                }
            } else {
                // Under a speed cap the time left until the next step is spent waiting for commands.
                let cap = session.config().train.max_steps_per_s;
                let wait = match cap > 0.0 {
                    true => Duration::from_secs_f64(1.0 / cap).saturating_sub(stepped_at.elapsed()),
                    false => Duration::ZERO,
                };
                let received = match wait.is_zero() {
                    true => self.commands.try_recv().map_err(|e| e.is_disconnected()),
                    false => self.commands.recv_timeout(wait).map_err(|e| e.is_disconnected()),
                };
                match received {
                    Ok(c) => Some(c),
                    Err(false) => None,
                    Err(true) => break,
                }
            };
            if let Some(command) = command {
                match command {
                    Command::Start | Command::Resume => {
                        if session.step_count() >= session.config().train.steps {
                            // A run paused at its last step because its checkpoint could not be written
                            // finishes once it is, and pauses again while it cannot be.
                            let checkpointed = match self.last_checkpoint == Some(session.step_count()) {
                                true => Ok(()),
                                false => self.checkpoint_now(&session),
                            };
                            match checkpointed {
                                Ok(()) => self.set_state(RunState::Finished),
                                Err(message) => mode = self.halt_unwritten(message),
                            }
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
                    Command::SetConfig(config) => {
                        let before = session.config().clone();
                        match session.apply(*config) {
                            Ok(()) => self.settings_changed(&session, &before),
                            Err(message) => self.emit(Event::Problem(Problem::Refused(message))),
                        }
                    }
                    // Unsaved grids cannot fail to write.
                    Command::RequestSamples => {
                        self.publish(&session, false);
                    }
                    Command::Interpolate(from, to) => {
                        self.interpolation_ends = (from, to);
                        self.publish(&session, false);
                    }
                    Command::DecodeLatent(at) => {
                        self.decode_at = Some(at);
                        self.publish(&session, false);
                    }
                    Command::WalkLatent(sample, values) => {
                        self.walk = (sample, Some(values));
                        self.publish(&session, false);
                    }
                    Command::LatentViews(on) => {
                        self.latent_views = on;
                        if on {
                            self.publish(&session, false);
                        }
                    }
                    Command::SaveCheckpoint => {
                        if let Err(message) = self.checkpoint_now(&session) {
                            self.emit(Event::Problem(Problem::Warning(message)));
                        }
                    }
                    Command::RollBack(step) => {
                        let event = HealthEvent {
                            step: session.step_count(),
                            rule: "manual".into(),
                            value: step as f64,
                            action: OnTrouble::Rollback,
                            to_step: Some(step),
                            detail: String::new(),
                        };
                        if let Err(message) = self.roll_back(&mut session, event) {
                            self.emit(Event::Problem(Problem::Refused(message)));
                        }
                    }
                }
                continue;
            }
            stepped_at = Instant::now();
            mode = self.train_one(&mut session, mode);
        }
        if let Err(message) = self.flush() {
            self.emit(Event::Problem(Problem::Warning(message)));
        }
        if self.last_checkpoint != Some(session.step_count()) {
            if let Err(message) = self.checkpoint_now(&session) {
                self.emit(Event::Problem(Problem::Warning(message)));
            }
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
                let (step, passed_over) = runs::restore_newest(dir, |tensors| {
                    session.restore(tensors).map_err(|e| format!("{}: {e}", dir.display()))
                })?;
                if options.newest_checkpoint_only && !passed_over.is_empty() {
                    return Err(format!(
                        "{}: not opened: {} (step {step}) would drop the metric rows after it; Fork from it keeps \
                         them",
                        dir.display(),
                        passed_over.join("; ")
                    ));
                }
                for note in passed_over {
                    self.emit(Event::Problem(Problem::Warning(note)));
                }
                self.last_checkpoint = Some(step);
                let reopened = RunDir::reopen(dir, step)?;
                // Settings given for the continuation (e.g. `--set` with `--resume`) go on the record.
                let stored = RunDir::read_config(dir)?;
                reopened.record_changes(
                    &runs::setting_changes(step, &stored, session.config()),
                    session.config(),
                )?;
                self.changes = runs::read_changes(dir);
                reopened
            } else {
                let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                RunDir::create(dir, session.config(), &columns)?
            });
            self.writer = self.run_dir.as_ref().map(|dir| Writer::spawn(dir.files()));
        }
        self.emit(Event::Loaded(Box::new(RunInfo {
            data: summary,
            networks: session.summaries(),
            metric_names: columns,
            step: session.step_count(),
            run_dir: options.out_dir.clone(),
        })));
        Ok(session)
    }

    /// Trains one step in `mode` and returns the mode to continue in.
    fn train_one(&mut self, session: &mut Session, mode: Mode) -> Mode {
        if self.panic_at_step == Some(session.step_count() + 1) {
            panic!("asked to crash at step {}", session.step_count() + 1);
        }
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
            .map(|(name, value)| format!("{name} became {value} at step {step}"));
        let troubles = self.monitor.observe(&row, session.config());
        let appended = self.deliver(session, row);
        // The lights that found trouble are shown before what is done about it (a rollback, a pause).
        if !troubles.is_empty() {
            self.report_health(session);
        }
        for rule in troubles {
            match self.on_trouble(session, rule, step) {
                Trouble::Handled => {}
                Trouble::RolledBack => return mode,
                Trouble::Paused(message) => {
                    self.publish(session, true);
                    let cause = bad.as_ref().map(|b| format!("{b}. ")).unwrap_or_default();
                    return self.halt(format!("{cause}{message}"));
                }
            }
        }
        let train = &session.config().train;
        if let Some(message) = bad {
            // The pictures of the broken step are worth seeing; whether they could be saved matters less.
            self.publish(session, true);
            return self.halt(format!("{message}; the run is paused"));
        }
        let (sample_due, checkpoint_due) = (step % train.sample_every == 0, step % train.checkpoint_every == 0);
        // 2D runs save no pictures: their snapshots (points and the views of D and G) only feed a window,
        // which draws a few a second, while a small model can take thousands of steps a second.
        let sample_due = sample_due
            && (session.data().shape.is_image()
                || !self.headless && self.published_at.is_none_or(|t| t.elapsed() >= LIVE_VIEW_INTERVAL));
        let finished = step >= train.steps && mode == Mode::Running;
        if appended.is_ok() && (sample_due || finished) {
            self.published_at = Some(Instant::now());
            self.publish(session, true);
        }
        // Before the checkpoint, which then writes the snapshot's copy of the state instead of making another.
        let snapshot = match step.is_multiple_of(session.config().health.snapshot_every) {
            true => self.take_snapshot(session),
            false => None,
        };
        // After the snapshot, so that the roll-back list has it (reported before, a run's last snapshot
        // never reached it).
        let interval = match session.config().health.every {
            0 => DEFAULT_REPORT_EVERY,
            every => every,
        };
        if step.is_multiple_of(interval) || snapshot.is_some() {
            self.report_health(session);
        }
        let written = appended
            .and_then(
                |()| match checkpoint_due || (finished && self.last_checkpoint != Some(step)) {
                    true => self.checkpoint(session, snapshot),
                    false => Ok(()),
                },
            )
            // The last step's files are on disk before the run counts as finished.
            .and_then(|()| match finished {
                true => self.flush(),
                false => self.written(false),
            });
        if let Err(message) = written {
            return self.halt_unwritten(message);
        }
        if finished {
            self.set_state(RunState::Finished);
            return Mode::Idle;
        }
        match mode {
            Mode::Stepping(1) => {
                // Unsaved grids cannot fail to write.
                self.publish(session, false);
                self.set_state(RunState::Paused);
                Mode::Idle
            }
            Mode::Stepping(n) => Mode::Stepping(n - 1),
            other => other,
        }
    }

    /// Makes the grids, keeps them as the newest snapshot and (when `save`) gives them to the writer for the
    /// run directory (`written` reports a grid that could not be written).
    fn publish(&mut self, session: &Session, save: bool) {
        let snapshot = (|| -> candle_core::Result<Snapshot> {
            Ok(Snapshot {
                step: session.step_count(),
                samples: session.samples()?,
                interpolation: match self.headless {
                    true => None,
                    false => session.interpolation(self.interpolation_ends)?,
                },
                reconstructions: session.reconstructions()?,
                points: match self.headless {
                    true => None,
                    false => session.points()?,
                },
                latent: match self.latent_views {
                    true => session.latent_map(self.decode_at)?,
                    false => None,
                },
                walk: match self.latent_views {
                    true => session.latent_walk(self.walk.0, self.walk.1.as_deref())?,
                    false => None,
                },
            })
        })();
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                self.emit(Event::Problem(Problem::Warning(format!("cannot draw samples: {e}"))));
                return;
            }
        };
        if let (true, Some(writer)) = (save, &mut self.writer) {
            let grids = [
                (GridKind::Samples, &snapshot.samples),
                (GridKind::Reconstructions, &snapshot.reconstructions),
            ];
            for (kind, grid) in grids {
                if let Some(grid) = grid {
                    let (step, grid) = (snapshot.step, grid.clone());
                    writer.submit(Job::Grid { kind, step, grid });
                }
            }
        }
        let step = snapshot.step;
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(snapshot);
        }
        self.emit(Event::Snapshot { step });
    }

    /// Keeps the session's state in the ring of in-memory snapshots, and gives it back (its tensors are shared
    /// and never changed in place) for a checkpoint of the same step.
    fn take_snapshot(&mut self, session: &Session) -> Option<HashMap<String, Tensor>> {
        let keep = session.config().health.snapshots;
        if keep == 0 {
            self.snapshots.clear();
            return None;
        }
        // Room first, so that the ring holds at most `keep` copies of the weights and optimiser state even while
        // the new one is gathered.
        while self.snapshots.len() >= keep {
            self.snapshots.pop_front();
        }
        match session.checkpoint_tensors() {
            Ok(tensors) => {
                self.snapshots.push_back((session.step_count(), tensors.clone()));
                Some(tensors)
            }
            Err(e) => {
                self.emit(Event::Problem(Problem::Warning(format!("cannot keep a snapshot: {e}"))));
                None
            }
        }
    }

    fn report_health(&self, session: &Session) {
        let snapshot_bytes = self
            .snapshots
            .iter()
            .flat_map(|(_, tensors)| tensors.values())
            .map(|t| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
            .sum();
        self.emit(Event::Health(Box::new(HealthReport {
            step: session.step_count(),
            findings: self.monitor.findings(session.config()),
            snapshot_steps: self.snapshots.iter().map(|(step, _)| *step).collect(),
            snapshot_bytes,
        })));
    }

    /// Does what `health.on_<rule>` says for a rule that just found trouble at `step`.
    fn on_trouble(&mut self, session: &mut Session, rule: Rule, step: u64) -> Trouble {
        let config = session.config().clone();
        let finding = self.monitor.finding(rule, &config);
        let (value, since) = finding.as_ref().map_or((f64::NAN, step), |f| {
            (f.value.unwrap_or(f64::NAN), f.since.unwrap_or(step))
        });
        // Which metric a divergence is of: "Divergence (24554)" alone did not say.
        let moved = match finding.as_ref().and_then(|f| f.metric.as_deref()) {
            Some(metric) if value.is_finite() => format!(
                "{metric} {}x off its recent median; ",
                crate::numbers::significant(value)
            ),
            Some(metric) => format!("{metric} not a number; "),
            None => String::new(),
        };
        let remedy = finding.map_or_else(|| rule.remedy(&config), |f| f.remedy);
        let mut event = HealthEvent {
            step,
            rule: rule.key().into(),
            value,
            action: OnTrouble::Warn,
            to_step: None,
            detail: format!("{moved}remedy: {}", remedy.summary),
        };
        let mut action = rule.action(&config.health);
        let target = self.snapshots.iter().rev().map(|(s, _)| *s).find(|s| *s < since);
        let pause_instead = match (action, target) {
            (OnTrouble::Rollback, None) => Some(format!("no snapshot from before step {since} to roll back to")),
            (OnTrouble::Rollback, Some(to)) if self.rollbacks == (to, MAX_ROLLBACKS_TO_ONE_STEP) => Some(format!(
                "rolled back {MAX_ROLLBACKS_TO_ONE_STEP} times to step {to} and the trouble came back"
            )),
            _ => None,
        };
        if pause_instead.is_some() {
            action = OnTrouble::Pause;
        }
        match (action, target) {
            (OnTrouble::Rollback, Some(to)) => {
                self.rollbacks = match self.rollbacks {
                    (step, times) if step == to => (to, times + 1),
                    _ => (to, 1),
                };
                event.action = OnTrouble::Rollback;
                event.to_step = Some(to);
                event.detail = format!("{moved}applied: {}", remedy.summary);
                match self.roll_back(session, event).and_then(|()| {
                    let before = session.config().clone();
                    session.apply(remedy.config)?;
                    self.settings_changed(session, &before);
                    Ok(())
                }) {
                    Ok(()) => Trouble::RolledBack,
                    Err(message) => Trouble::Paused(format!("{}: rolling back failed: {message}", rule.label())),
                }
            }
            (OnTrouble::Pause, _) => {
                event.action = OnTrouble::Pause;
                let why = pause_instead.map(|w| format!(" ({w})")).unwrap_or_default();
                let message = format!(
                    "{} at step {step}{why}: {}. The run is paused; a remedy: {}",
                    rule.label(),
                    rule.diagnosis(),
                    remedy.summary
                );
                self.record(event);
                Trouble::Paused(message)
            }
            _ => {
                self.record(event);
                Trouble::Handled
            }
        }
    }

    /// Records the settings that differ from `before` as changed at this step (in the run directory too) and
    /// tells the UI.
    fn settings_changed(&mut self, session: &Session, before: &RunConfig) {
        let changes = runs::setting_changes(session.step_count(), before, session.config());
        if let Some(dir) = &self.run_dir {
            if let Err(message) = dir.record_changes(&changes, session.config()) {
                self.emit(Event::Problem(Problem::Warning(message)));
            }
        }
        self.changes.extend(changes.iter().cloned());
        self.emit(Event::ConfigApplied {
            config: Box::new(session.config().clone()),
            changes,
        });
    }

    /// Writes a health event to the run directory and reports it.
    fn record(&self, event: HealthEvent) {
        if let Some(dir) = &self.run_dir {
            if let Err(message) = dir.record_event(&event) {
                self.emit(Event::Problem(Problem::Warning(message)));
            }
        }
        self.emit(Event::HealthAction(event));
    }

    /// Restores the snapshot or checkpoint of `event.to_step`, drops what the run wrote after it, and
    /// records the event.
    fn roll_back(&mut self, session: &mut Session, event: HealthEvent) -> Result<(), String> {
        let to = event.to_step.expect("a rollback has a target step");
        // Held rows are written first, so that the rewind below drops the ones after `to` like any other.
        self.settle();
        let restored = match self.snapshots.iter().find(|(s, _)| *s == to) {
            Some((_, tensors)) => session.restore(tensors).map_err(|e| e.to_string()),
            None => {
                let dir = self
                    .run_dir
                    .as_ref()
                    .ok_or_else(|| format!("step {to} has no snapshot in memory (and the run has no checkpoints)"))?;
                let tensors = runs::load_checkpoint(dir.path(), to)
                    .map_err(|_| format!("step {to} has no snapshot in memory and no checkpoint"))?;
                session.restore(&tensors).map_err(|e| e.to_string())
            }
        };
        restored.map_err(|e| format!("cannot go back to step {to}: {e}"))?;
        self.snapshots.retain(|(s, _)| *s <= to);
        // Files of the steps given up are removed only once none is still being written.
        if let Err(message) = self.written(true) {
            self.emit(Event::Problem(Problem::Warning(message)));
        }
        if let Some(dir) = &mut self.run_dir {
            dir.rewind(to)?;
        }
        // The run keeps the settings it has now: changes made after `to` are recorded again, at `to`.
        let split = self.changes.partition_point(|c| c.step <= to);
        let at_to = runs::undo_changes(session.config(), &self.changes[split..])?;
        self.changes.truncate(split);
        self.settings_changed(session, &at_to);
        self.last_checkpoint = self.last_checkpoint.filter(|s| *s <= to);
        self.steps_done = to;
        self.monitor.rewind();
        self.record(event);
        self.publish(session, false);
        self.report_health(session);
        Ok(())
    }

    /// Gives the writer a checkpoint of this step (`written` reports it once it is on disk): `state` when the
    /// caller has just gathered it, else gathered now. While rows wait for a quality score it is held behind
    /// them (`release_held`).
    fn checkpoint(&mut self, session: &Session, state: Option<HashMap<String, Tensor>>) -> Result<(), String> {
        if self.writer.is_none() {
            return Ok(());
        }
        let tensors = match state {
            Some(tensors) => tensors,
            None => session
                .checkpoint_tensors()
                .map_err(|e| format!("cannot gather the checkpoint: {e}"))?,
        };
        // One checkpoint held at a time: a second one waits for the score.
        if self.held_checkpoint.is_some() {
            self.collect_scores(true)?;
        }
        match self.held.is_empty() {
            true => self.submit_checkpoint(session.step_count(), tensors),
            false => {
                self.held_checkpoint = Some((session.step_count(), tensors));
                Ok(())
            }
        }
    }

    /// Puts the rows appended so far on disk, then gives the writer the checkpoint of `step`: a resumed run
    /// has every row up to it.
    fn submit_checkpoint(&mut self, step: u64, tensors: HashMap<String, Tensor>) -> Result<(), String> {
        self.write_rows()?;
        if let Some(writer) = &mut self.writer {
            writer.submit(Job::Checkpoint { step, tensors });
        }
        Ok(())
    }

    /// `checkpoint`, and waits until it is on disk.
    fn checkpoint_now(&mut self, session: &Session) -> Result<(), String> {
        self.checkpoint(session, None).and_then(|()| self.flush())
    }

    /// Announces the grids and checkpoints the writer has put on disk since the last call (with `wait`, all
    /// given to it); the error is the first that could not be written.
    fn written(&mut self, wait: bool) -> Result<(), String> {
        let Some(writer) = &mut self.writer else { return Ok(()) };
        let mut first_error = Ok(());
        for report in writer.reports(wait) {
            match report {
                Ok(Written::Grid) => {}
                Ok(Written::Checkpoint { step, path }) => {
                    self.last_checkpoint = Some(step);
                    self.emit(Event::CheckpointSaved { step, path });
                }
                Err(message) => first_error = first_error.and(Err(message)),
            }
        }
        first_error
    }
}
