//! The thread that scores a run's samples off the training thread: it gets (or trains) the data set's
//! feature network, then scores each weight snapshot the worker hands it with a shadow session of the same
//! config that only ever loads weights and draws samples.

use super::features::{self, FeatureInfo};
use super::Reference;
use crate::config::{DataConfig, RunConfig};
use crate::data::{self, DataSpec, Dataset};
use crate::train::session::Session;
use crate::train::worker::panic_message;
use candle_core::Tensor;
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What the evaluator tells the worker.
#[derive(Debug)]
pub enum Reply {
    /// The feature network is ready; scores can be asked for.
    Ready(FeatureInfo),
    /// The metric values of the weights of `step`.
    Scored { step: u64, values: Vec<(String, f64)> },
    /// The metric cannot be computed for this run (the evaluator has stopped).
    Failed(String),
}

struct Job {
    step: u64,
    weights: HashMap<String, Tensor>,
    samples: usize,
}

pub struct Evaluator {
    jobs: Option<Sender<Job>>,
    replies: Receiver<Reply>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Evaluator {
    /// Starts scoring runs of `config` on `data`, with feature networks cached in `cache_dir`.
    pub fn spawn(config: RunConfig, data: Arc<Dataset>, cache_dir: PathBuf) -> Evaluator {
        let (jobs, job_rx) = unbounded::<Job>();
        let (reply_tx, replies) = unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gantry-quality".into())
            .spawn(move || {
                crate::threads::work_alone();
                let work =
                    std::panic::AssertUnwindSafe(|| serve(config, data, &cache_dir, &stopping, &job_rx, &reply_tx));
                let outcome = std::panic::catch_unwind(work).unwrap_or_else(|p| Err(panic_message(p.as_ref())));
                if let Err(message) = outcome {
                    if !stopping.load(Ordering::Relaxed) {
                        let _ = reply_tx.send(Reply::Failed(message));
                    }
                }
            })
            .ok();
        let replies = match thread {
            Some(_) => replies,
            None => {
                let (tx, rx) = unbounded();
                let _ = tx.send(Reply::Failed("cannot start the quality thread".into()));
                rx
            }
        };
        Evaluator {
            jobs: Some(jobs),
            replies,
            stop,
            thread,
        }
    }

    /// Asks for the scores of `samples` samples of `weights` (a session's `model_weights` at `step`).
    pub fn submit(&self, step: u64, weights: HashMap<String, Tensor>, samples: usize) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job { step, weights, samples });
        }
    }

    pub fn try_reply(&self) -> Option<Reply> {
        self.replies.try_recv().ok()
    }

    /// Waits for the next reply; `None` when the thread has ended without one.
    pub fn wait_reply(&self) -> Option<Reply> {
        self.replies.recv().ok()
    }
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Items of generated data sets' reference instance, and its seed.
const REFERENCE_COUNT: usize = 10_000;
const REFERENCE_SEED: u64 = 0x7265_6665;

/// Items a run on `source` draws for its quality reference besides its own (see [`reference`]): a generated
/// data set's fixed instance; none for data read from disk, scored against the run's own items.
pub fn reference_items_drawn(source: &DataSpec) -> usize {
    match source {
        DataSpec::Digits | DataSpec::Shapes => REFERENCE_COUNT,
        _ => 0,
    }
}

/// What runs of `config` on `data` are scored against: the feature network and real statistics of the data
/// set, from `cache_dir` or built now. Generated data sets (which the run's seed and item count change) use
/// one fixed instance, found in the cache by the settings that draw it, so every run on `digits` is scored
/// against the same reference and their scores compare.
pub fn reference(
    config: &RunConfig,
    data: Arc<Dataset>,
    cache_dir: &std::path::Path,
    stop: &AtomicBool,
) -> Result<Reference, String> {
    match reference_items_drawn(&DataSpec::parse(&config.data.source)?) {
        0 => Reference::for_data(data, cache_dir, stop),
        count => {
            let reference = DataConfig {
                count,
                holdout: 0.0,
                ..config.data.clone()
            };
            let settings = serde_json::to_string(&reference).map_err(|e| e.to_string())?;
            let drawn_by = format!("{settings}, seed {REFERENCE_SEED}");
            let path = features::cache_file(cache_dir, &features::generated_key(&drawn_by));
            let draw = || data::load(&reference, REFERENCE_SEED, &|_, _, _| {}).map(Arc::new);
            Reference::cached_or_built(&path, draw, stop)
        }
    }
}

fn serve(
    config: RunConfig,
    data: Arc<Dataset>,
    cache_dir: &std::path::Path,
    stop: &AtomicBool,
    jobs: &Receiver<Job>,
    replies: &Sender<Reply>,
) -> Result<(), String> {
    let reference = reference(&config, data.clone(), cache_dir, stop)?;
    let fail = |e: candle_core::Error| format!("quality metric: {e}");
    let shadow = Session::new(config, data)?;
    let _ = replies.send(Reply::Ready(reference.net.info.clone()));
    for job in jobs {
        shadow.load_model_weights(&job.weights).map_err(fail)?;
        let Some(outputs) = shadow.quality_outputs(job.samples).map_err(fail)? else {
            return Err("this run has no images to score".into());
        };
        let values = reference.score(&outputs).map_err(fail)?;
        if replies.send(Reply::Scored { step: job.step, values }).is_err() {
            break;
        }
    }
    Ok(())
}
