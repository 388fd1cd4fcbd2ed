//! The thread that scores a run's samples off the training thread: it gets (or trains) the data set's
//! feature network, then scores each weight snapshot the worker hands it with a shadow session of the same
//! config that only ever loads weights and draws samples.

use super::features::{reference_items, FeatureInfo, FeatureNet};
use super::Reference;
use crate::config::{DataConfig, RunConfig};
use crate::data::{self, DataSpec, Dataset};
use crate::models::layers::tensor;
use crate::train::session::Session;
use crate::train::worker::panic_message;
use candle_core::Tensor;
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Real items the samples are compared with (ones the feature network did not train on).
const REAL_ITEMS: usize = 2048;

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

/// Items of generated data sets the reference instance has, and its seed.
const REFERENCE_COUNT: usize = 10_000;
const REFERENCE_SEED: u64 = 0x7265_6665;

/// The data set the feature network learns and the real statistics come from: the run's own, except that
/// generated data sets (which the run's seed and item count change) use one fixed instance, so every run on
/// `digits` is scored against the same reference and their scores compare.
fn reference_data(config: &RunConfig, data: Arc<Dataset>) -> Result<Arc<Dataset>, String> {
    match DataSpec::parse(&config.data.source)? {
        DataSpec::Digits | DataSpec::Shapes => {
            let reference = DataConfig {
                count: REFERENCE_COUNT,
                ..config.data.clone()
            };
            Ok(Arc::new(data::load(&reference, REFERENCE_SEED, &|_, _, _| {})?))
        }
        _ => Ok(data),
    }
}

/// What runs of `config` on `data` are scored against: the feature network of the reference data set
/// (from `cache_dir`, or trained now) and the statistics of real items it did not train on.
pub fn reference(
    config: &RunConfig,
    data: Arc<Dataset>,
    cache_dir: &std::path::Path,
    stop: &AtomicBool,
) -> Result<Reference, String> {
    let reference_set = reference_data(config, data)?;
    let net = FeatureNet::for_dataset(&reference_set, cache_dir, stop)?;
    let items = reference_items(&reference_set, REAL_ITEMS)?;
    let fail = |e: candle_core::Error| format!("quality metric: {e}");
    let real = tensor(
        reference_set.gather(&items),
        &reference_set.shape.batch_dims(items.len()),
    )
    .map_err(fail)?;
    Reference::new(net, &real).map_err(fail)
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
