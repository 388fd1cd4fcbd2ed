//! What happens to runs as wholes: starting one in a new folder, continuing one, forking, queueing a sweep,
//! renaming, tagging and deleting, and exporting what a run saved. The app calls these for the user's
//! actions and applies the [`Outcome`] they report (what to show, what to tick, a notice); views never call
//! them.

use super::fleet::Fleet;
use crate::config::RunConfig;
use crate::grid::ImageGrid;
use crate::runs::{self, GridKind, RunMeta};
use crate::sweep;
use crate::train::worker::{Command, RunOptions};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds between the frames of an exported filmstrip GIF.
const FILMSTRIP_FRAME_MS: u32 = 150;

/// A message for the user after an action.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// What the action did ("Saved …").
    Done(String),
    /// Why it could not be done.
    Failed(String),
}

impl Notice {
    /// `done`'s message for what `result` did, or its error.
    fn of<T>(result: Result<T, String>, done: impl FnOnce(T) -> String) -> Notice {
        match result {
            Ok(value) => Notice::Done(done(value)),
            Err(message) => Notice::Failed(message),
        }
    }
}

/// What an operation asks the app to show afterwards.
#[derive(Default)]
pub struct Outcome {
    /// A message for the user: an error, or what was done.
    pub notice: Option<Notice>,
    /// Put this run in view, with these settings in the panels.
    pub view: Option<(PathBuf, RunConfig)>,
    /// Tick these runs (their curves overlay).
    pub select: Option<Vec<PathBuf>>,
    /// Filter the run list by this.
    pub filter: Option<String>,
}

impl Outcome {
    fn failed(message: String) -> Outcome {
        Outcome {
            notice: Some(Notice::Failed(message)),
            ..Outcome::default()
        }
    }
}

pub struct Lifecycle {
    runs_dir: PathBuf,
    /// A fork waiting for its parent's checkpoint to be written.
    pending_fork: Option<(PathBuf, u64, RunConfig)>,
    crash_training_at_step: Option<u64>,
}

impl Lifecycle {
    /// Runs go to `runs_dir`; `crash_training_at_step` makes their training threads crash there (tests).
    pub fn new(runs_dir: PathBuf, crash_training_at_step: Option<u64>) -> Lifecycle {
        Lifecycle {
            runs_dir,
            pending_fork: None,
            crash_training_at_step,
        }
    }

    pub fn set_runs_dir(&mut self, dir: PathBuf) {
        self.runs_dir = dir;
    }

    /// Queues a run of `config` in a new folder named after `name` and puts it in view.
    pub fn start(&self, fleet: &mut Fleet, config: RunConfig, name: &str, first: Command) -> Outcome {
        let dir = self.new_run_dir(name);
        self.launch(fleet, config, dir, false, Some(first), &[])
    }

    fn launch(
        &self,
        fleet: &mut Fleet,
        config: RunConfig,
        dir: PathBuf,
        resume: bool,
        first: Option<Command>,
        tags: &[String],
    ) -> Outcome {
        let options = RunOptions {
            out_dir: Some(dir.clone()),
            resume,
            // Opened without a command, a run is looked at, not trained: it keeps every row it has.
            newest_checkpoint_only: first.is_none(),
            panic_at_step: self.crash_training_at_step,
            ..RunOptions::default()
        };
        // The panels show the settings of the run in view, so edits apply to it (live or by a fork).
        let notice = fleet
            .launch(config.clone(), options, first, tags)
            .err()
            .map(Notice::Failed);
        Outcome {
            notice,
            view: Some((dir, config)),
            ..Outcome::default()
        }
    }

    /// Trains a listed run on: its open worker resumes, else a new worker continues its newest checkpoint
    /// (or starts it from scratch when it never wrote one, e.g. a run queued in an earlier session), to
    /// `budget` steps where that is more than its own (the step budget the panels show for it).
    pub fn continue_run(&self, fleet: &mut Fleet, dir: PathBuf, budget: Option<u64>) -> Outcome {
        // An open run has the config it runs; only a closed one is read from its folder.
        if let Some(run) = fleet.get_mut(&dir) {
            run.send(Command::Start);
            let view = run.applied_config().cloned().map(|config| (dir, config));
            return Outcome {
                view,
                ..Outcome::default()
            };
        }
        let mut config = match runs::config_to_continue(&dir) {
            Ok(config) => config,
            Err(message) => return Outcome::failed(message),
        };
        config.train.steps = config.train.steps.max(budget.unwrap_or(0));
        let resume = !runs::checkpoint_steps(&dir).is_empty();
        self.launch(fleet, config, dir, resume, Some(Command::Start), &[])
    }

    /// Opens a listed run from its newest checkpoint without training it, so that the views that need its
    /// model (the latent space) can draw it; Start trains it on, Stop closes it as it was.
    pub fn open_run(&self, fleet: &mut Fleet, dir: PathBuf) -> Outcome {
        if fleet.get(&dir).is_some() {
            return Outcome::default();
        }
        match runs::config_to_continue(&dir) {
            Ok(config) => self.launch(fleet, config, dir, true, None, &[]),
            Err(message) => Outcome::failed(message),
        }
    }

    /// Starts a child of `parent` at `step` with `config`, once the parent's checkpoint of that step is on
    /// disk (a live parent is asked to write it first; [`Lifecycle::finish_pending_fork`] goes on then).
    pub fn fork(&mut self, fleet: &mut Fleet, parent: PathBuf, step: u64, config: RunConfig) -> Outcome {
        // A checkpoint on disk forks at once (an older one too: asking for one would write the live step's).
        let on_disk = runs::checkpoint_steps(&parent).contains(&step);
        if let Some(run) = fleet.get_mut(&parent).filter(|r| r.takes_commands() && !on_disk) {
            if run.last_checkpoint().map(|c| c.0) != Some(step) {
                run.send(Command::SaveCheckpoint);
                self.pending_fork = Some((parent, step, config));
                return Outcome::default();
            }
        }
        self.fork_from(fleet, parent, step, config)
    }

    /// Forks once the parent's checkpoint arrived (called every frame; nothing to do mostly).
    pub fn finish_pending_fork(&mut self, fleet: &mut Fleet) -> Option<Outcome> {
        let (parent, step, _) = self.pending_fork.as_ref()?;
        match fleet.get(parent) {
            Some(run) if run.last_checkpoint().map(|c| c.0) == Some(*step) => {
                let (parent, step, config) = self.pending_fork.take().expect("checked above");
                Some(self.fork_from(fleet, parent, step, config))
            }
            Some(run) if run.takes_commands() => None,
            _ => {
                self.pending_fork = None;
                Some(Outcome::failed(
                    "The fork was dropped: its parent run closed before its checkpoint was written.".into(),
                ))
            }
        }
    }

    fn fork_from(&self, fleet: &mut Fleet, parent: PathBuf, step: u64, config: RunConfig) -> Outcome {
        let name = runs::dir_name(&parent);
        let child = self.new_run_dir(&format!("{}-fork{step}", fork_base(&name)));
        if let Err(message) = runs::fork(&parent, step, &child, &config) {
            return Outcome::failed(message);
        }
        Outcome {
            // The child's curve continues the parent's in the same plots.
            select: Some(vec![parent, child.clone()]),
            ..self.launch(fleet, config, child, true, Some(Command::Start), &[])
        }
    }

    /// Queues one run per sweep point over `base` and lists them (filtered by the sweep's tag, ticked for
    /// comparing), the first in view.
    pub fn queue_sweep(&self, fleet: &mut Fleet, base: &RunConfig, name: &str, axes: &[sweep::Axis]) -> Outcome {
        let points = match sweep::expand(base, axes) {
            Ok(points) => points,
            Err(message) => return Outcome::failed(message),
        };
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let tag = format!("sweep-{seconds}");
        let (mut dirs, mut notice, mut first) = (Vec::new(), None, None);
        for point in points {
            let dir = self.new_run_dir(&format!("{name}-{}", point.name()));
            let launched = self.launch(
                fleet,
                point.config,
                dir.clone(),
                false,
                Some(Command::Start),
                std::slice::from_ref(&tag),
            );
            notice = notice.or(launched.notice);
            first = first.or(launched.view);
            dirs.push(dir);
        }
        Outcome {
            notice,
            view: first,
            select: Some(dirs),
            filter: Some(tag),
        }
    }

    /// Changes a run's `run.toml` (name, tags); its worker keeps them when it next writes its status.
    pub fn edit_meta(&self, dir: &Path, edit: impl FnOnce(&mut RunMeta)) -> Outcome {
        Outcome {
            notice: RunMeta::update(dir, edit).err().map(Notice::Failed),
            ..Outcome::default()
        }
    }

    /// Stops the run in `dir` if open and deletes its folder.
    pub fn delete(&self, fleet: &mut Fleet, dir: &Path) -> Outcome {
        fleet.close(dir);
        Outcome {
            notice: Some(Notice::of(runs::delete_run(dir), |()| {
                format!("Deleted {}", dir.display())
            })),
            ..Outcome::default()
        }
    }

    /// `<runs dir>/<name>-<unix seconds>`, with a suffix if that is taken.
    fn new_run_dir(&self, name: &str) -> PathBuf {
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = format!("{name}-{seconds}");
        (1..)
            .map(|n| {
                self.runs_dir
                    .join(if n == 1 { name.clone() } else { format!("{name}-{n}") })
            })
            .find(|dir| !dir.exists())
            .expect("some suffix is free")
    }
}

/// The name a fork of the run named `parent` builds on: the parent's own, or for a fork of a fork the name
/// that one was forked from, so that names do not grow with each generation (`run.toml` keeps the lineage):
/// `dcgan-17-fork300-18` forked at step 900 makes `dcgan-17-fork900-…`.
fn fork_base(parent: &str) -> &str {
    let mut base = parent;
    while let Some((head, tail)) = base.rsplit_once('-') {
        if tail
            .strip_prefix("fork")
            .is_some_and(|step| step.parse::<u64>().is_ok())
        {
            return head;
        }
        if tail.parse::<u64>().is_err() {
            break;
        }
        base = head;
    }
    parent
}

/// Writes `image` as PNG to `path`; says what happened.
pub fn save_image(image: &ImageGrid, path: &Path) -> Notice {
    Notice::of(image.write_png(path), |()| format!("Saved {}", path.display()))
}

/// Writes the grids the run in `dir` saved to `out`, as a GIF file or numbered PNGs in a folder; says what
/// happened.
pub fn export_filmstrip(dir: &Path, kind: GridKind, gif: bool, out: &Path) -> Notice {
    let result = match gif {
        true => runs::export_gif(dir, kind, out, FILMSTRIP_FRAME_MS),
        false => runs::export_png_sequence(dir, kind, out),
    };
    Notice::of(result, |frames| format!("Saved {frames} frames to {}", out.display()))
}

/// Writes `csv` (a run's metrics) to `path`; says what happened.
pub fn export_csv(csv: &[u8], path: &Path) -> Notice {
    Notice::of(crate::fsio::write(path, csv), |()| format!("Saved {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_of_a_fork_is_named_after_the_first_parent_and_its_own_step() {
        assert_eq!(fork_base("dcgan-digits-1796308314"), "dcgan-digits-1796308314");
        assert_eq!(
            fork_base("dcgan-digits-1796308314-fork356-1796308403"),
            "dcgan-digits-1796308314"
        );
        assert_eq!(
            fork_base("dcgan-digits-17-fork356-18-2"),
            "dcgan-digits-17",
            "a suffix against a clash"
        );
        assert_eq!(fork_base("my-fork-run-17"), "my-fork-run-17");
    }
}
