//! Every run the workbench has open: some training at once (at most the parallel-runs setting), the rest
//! waiting in a queue in the order they were started. One of them is in focus: the toolbar, the status bar
//! and the live views act on it.

use super::run::{Drained, TrainingRun};
use crate::config::RunConfig;
use crate::runs;
use crate::train::worker::{Command, RunOptions, RunState, Trainer, Waker};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Fleet {
    /// Open runs, oldest first (the queue is served in this order).
    runs: Vec<TrainingRun>,
    /// The focused run's directory.
    focus: Option<PathBuf>,
    /// Stopped workers finishing their last checkpoint; joined once done, so the UI never waits.
    retiring: Vec<Trainer>,
    /// What `focused` shows when no run is in focus.
    nothing: TrainingRun,
}

impl Fleet {
    /// Queues a new run in `options.out_dir` and focuses it; `pump` starts it when a slot is free. The
    /// directory is written at once (config and `run.toml` with status queued), so the run list shows it.
    pub fn launch(
        &mut self,
        config: RunConfig,
        options: RunOptions,
        first: Option<Command>,
        tags: &[String],
    ) -> Result<(), String> {
        let dir = options.out_dir.clone().expect("workbench runs have a directory");
        if !options.resume {
            runs::write_queued(&dir, &config, tags)?;
        }
        self.runs.push(TrainingRun::queued(config, options, first));
        self.set_focus(Some(dir));
        Ok(())
    }

    /// Starts queued runs, oldest first, while fewer than `parallel` runs are training.
    /// Each started run gets a waker from `waker` (made only then: this runs every frame).
    pub fn pump(&mut self, parallel: usize, waker: impl Fn() -> Waker) {
        let training = self.runs.iter().filter(|r| r.is_training()).count();
        let free = parallel.max(1).saturating_sub(training);
        for run in self.runs.iter_mut().filter(|r| r.is_queued()).take(free) {
            run.begin(waker());
        }
    }

    /// Handles events of every run within `budget`, then lets go of runs that ended and are out of focus.
    /// Returns what was found, and the folders of the runs that saved new grids.
    pub fn drain(&mut self, budget: Duration) -> (Drained, Vec<PathBuf>) {
        self.retiring.retain(|t| !t.is_finished());
        let deadline = Instant::now() + budget;
        let mut all = Drained::default();
        let mut new_grids = Vec::new();
        for run in &mut self.runs {
            let drained = run.drain(deadline);
            all.more |= drained.more;
            all.state_changed |= drained.state_changed;
            if let (true, Some(dir)) = (drained.new_grids, run.dir()) {
                new_grids.push(dir.to_path_buf());
            }
        }
        let focus = self.focus.clone();
        self.runs.retain(|run| {
            let ended = matches!(run.state(), Some(RunState::Stopped | RunState::Failed));
            !ended || run.dir() == focus.as_deref()
        });
        (all, new_grids)
    }

    /// The run in focus, or an empty run when none is.
    pub fn focused(&self) -> &TrainingRun {
        self.focus
            .as_deref()
            .and_then(|dir| self.get(dir))
            .unwrap_or(&self.nothing)
    }

    pub fn focused_mut(&mut self) -> &mut TrainingRun {
        let index = self.focus.as_deref().and_then(|dir| self.index(dir));
        match index {
            Some(i) => &mut self.runs[i],
            None => &mut self.nothing,
        }
    }

    pub fn focus_dir(&self) -> Option<&Path> {
        self.focus.as_deref()
    }

    pub fn set_focus(&mut self, dir: Option<PathBuf>) {
        self.focus = dir;
        // A finished run out of focus holds its data and model for nothing; its checkpoint can continue it.
        let focus = self.focus.clone();
        for run in &mut self.runs {
            if run.state() == Some(RunState::Finished) && run.dir() != focus.as_deref() {
                run.send(Command::Stop);
            }
        }
    }

    /// Has the focused run make the latent views when `on` (its tab is open), and no other run.
    pub fn show_latent_views(&mut self, on: bool) {
        let focus = self.focus.clone();
        for run in &mut self.runs {
            run.show_latent_views(on && run.dir() == focus.as_deref());
        }
    }

    /// The open run in `dir`.
    pub fn get(&self, dir: &Path) -> Option<&TrainingRun> {
        self.index(dir).map(|i| &self.runs[i])
    }

    pub fn get_mut(&mut self, dir: &Path) -> Option<&mut TrainingRun> {
        self.index(dir).map(|i| &mut self.runs[i])
    }

    fn index(&self, dir: &Path) -> Option<usize> {
        self.runs.iter().position(|r| r.dir() == Some(dir))
    }

    /// Stops the run in `dir` (if open) and forgets it; a new run still in the queue leaves it and its
    /// directory, which holds nothing trained, is removed (a run continued or opened keeps its own).
    pub fn close(&mut self, dir: &Path) {
        let Some(index) = self.index(dir) else { return };
        let mut run = self.runs.remove(index);
        if run.is_queued_new() {
            // Only the config and run.toml written at launch are there.
            let _ = std::fs::remove_dir_all(dir);
        }
        self.retiring.extend(run.detach());
        if self.focus.as_deref() == Some(dir) {
            self.focus = None;
        }
    }
}
