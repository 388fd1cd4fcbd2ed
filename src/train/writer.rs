//! A run's grids and checkpoints written on a thread of their own, in the order they were given, so that a
//! training step never waits for the disk: a checkpoint's write and flush took 20 ms and a grid's PNG 1 ms,
//! ten steps of a VAE on a fast CPU (`gantry train` against `gantry bench` in BENCHMARKS.md).

use crate::grid::ImageGrid;
use crate::runs::{GridKind, RunFiles};
use candle_core::Tensor;
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::HashMap;
use std::path::PathBuf;

pub(super) enum Job {
    Grid {
        kind: GridKind,
        step: u64,
        grid: ImageGrid,
    },
    Checkpoint {
        step: u64,
        tensors: HashMap<String, Tensor>,
    },
}

/// What a job left on disk.
pub(super) enum Written {
    Grid,
    Checkpoint { step: u64, path: PathBuf },
}

/// The writing thread and the jobs given to it that have not yet been reported back.
pub(super) struct Writer {
    files: RunFiles,
    /// `None` where the thread could not be started: the jobs are then written on the caller's thread.
    jobs: Option<Sender<Job>>,
    done: Receiver<Result<Written, String>>,
    /// Reports of jobs written on the caller's thread.
    inline: Vec<Result<Written, String>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pending: usize,
}

impl Writer {
    pub(super) fn spawn(files: RunFiles) -> Writer {
        let (jobs, job_rx) = unbounded::<Job>();
        let (done_tx, done) = unbounded();
        let thread_files = files.clone();
        let thread = std::thread::Builder::new()
            .name("gantry-run-files".into())
            .spawn(move || {
                for job in job_rx {
                    if done_tx.send(write(&thread_files, job)).is_err() {
                        break;
                    }
                }
            })
            .ok();
        Writer {
            files,
            jobs: thread.is_some().then_some(jobs),
            done,
            inline: Vec::new(),
            thread,
            pending: 0,
        }
    }

    pub(super) fn submit(&mut self, job: Job) {
        match &self.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => self.pending += 1,
                Err(unsent) => self.inline.push(write(&self.files, unsent.0)),
            },
            None => self.inline.push(write(&self.files, job)),
        }
    }

    /// The reports of the jobs written since the last call, in order; with `wait`, of all jobs given.
    pub(super) fn reports(&mut self, wait: bool) -> Vec<Result<Written, String>> {
        let mut reports = std::mem::take(&mut self.inline);
        while self.pending > 0 {
            let report = match wait {
                true => self.done.recv().ok(),
                false => self.done.try_recv().ok(),
            };
            let Some(report) = report else {
                // With `wait`, only a thread that ended (it panicked) leaves jobs unreported.
                if wait {
                    reports.push(Err(format!(
                        "{} jobs were not written: the writing thread ended",
                        self.pending
                    )));
                    self.pending = 0;
                }
                break;
            };
            self.pending -= 1;
            reports.push(report);
        }
        reports
    }
}

impl Drop for Writer {
    /// Writes what is left before the run's thread ends.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write(files: &RunFiles, job: Job) -> Result<Written, String> {
    match job {
        Job::Grid { kind, step, grid } => files.save_grid(kind, step, &grid).map(|_| Written::Grid),
        Job::Checkpoint { step, tensors } => files
            .save_checkpoint(step, &tensors)
            .map(|path| Written::Checkpoint { step, path }),
    }
}
