//! What the user can do to the run right now, and the actions the toolbar, shortcuts and notices request.
//! One place decides enablement, so buttons and keyboard shortcuts always agree.

use super::path_prompt::PathFor;
use super::run::TrainingRun;
use crate::config::RunConfig;
use crate::grid::ImageGrid;
use crate::runs::GridKind;
use crate::sweep::Axis;
use crate::train::worker::RunState;
use eframe::egui;
use egui::{Context, Key, Modifiers};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a new run with the draft config.
    Start,
    TogglePause,
    /// Train one iteration, then pause (starting a run first if none is live).
    Step,
    Stop,
    /// Forget the run: back to an empty workbench.
    Reset,
    /// Replace the live run with a new one that takes the draft's shape changes.
    Restart,
    /// Put the draft back to the live run's config.
    RevertDraft,
    SaveGrid(GridKind),
    ExportCsv,
    DismissError,
    /// Start a child of the viewed run from its current (or filmstrip) checkpoint with the draft settings.
    Fork,
    /// Start a child of the viewed run from its checkpoint of this step with the draft settings.
    ForkAt(u64),
    /// Take these settings into the panels (a health remedy); a live run takes them as any edit.
    ApplyRemedy(Box<RunConfig>),
    /// Take the viewed run back to its snapshot or checkpoint of this step.
    RollBack(u64),
    /// Interpolate the viewed run's samples between these two (indices into its sample grid).
    Interpolate(usize, usize),
    /// Decode this point of the viewed run's latent plane.
    DecodeLatent([f32; 2]),
    /// Set the first latent dimensions of one sample's vector in the viewed run's latent walk.
    WalkLatent(usize, Vec<f32>),
    /// Show this run's curves and pictures (and make the toolbar act on it).
    ViewRun(PathBuf),
    /// Train a listed run on from its newest checkpoint (from the start if it has none).
    ContinueRun(PathBuf),
    /// Load a listed run from its newest checkpoint without training it (the views that need its model).
    OpenRun(PathBuf),
    StopRun(PathBuf),
    RenameRun(PathBuf, String),
    TagRun(PathBuf, Vec<String>),
    DeleteRun(PathBuf),
    RefreshRuns,
    /// Queue one run per point of these axes, with the draft settings as the base.
    QueueSweep(Vec<Axis>),
    SaveContactSheet(ImageGrid),
    /// Save the viewed run's saved grids of this kind as an animated GIF (or, when false, PNG files).
    ExportFilmstrip {
        kind: GridKind,
        gif: bool,
    },
    /// Ask for a path (the system's dialog, or a path field where none opens).
    ChoosePath(PathFor),
    /// The path asked for came.
    PathChosen(PathFor, PathBuf),
}

/// The Pause/Resume button: its label and whether it works now.
#[derive(Clone, Debug, PartialEq)]
pub enum PauseResume {
    Pause,
    Resume,
    Disabled { label: &'static str, reason: String },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Controls {
    /// Ok when Start may begin a new run, else why not.
    pub start: Result<(), String>,
    pub pause_resume: PauseResume,
    pub step: Result<(), String>,
    pub stop: bool,
    pub reset: bool,
    /// Whether a worker is live (Space then never starts a new run over it).
    pub live: bool,
    /// The step Fork would branch the viewed run at, or why it cannot.
    pub fork: Result<u64, String>,
}

impl Controls {
    /// `launch` says whether the draft config can start; `budget` is the draft's step budget.
    pub fn new(run: &TrainingRun, launch: Result<(), String>, budget: u64) -> Controls {
        let fork = Err("fork a paused run, or a stopped one with a checkpoint".to_string());
        if run.is_queued() {
            return Controls {
                start: launch,
                pause_resume: PauseResume::Disabled {
                    label: "Pause",
                    reason: "queued: it starts when fewer runs are training".into(),
                },
                step: Err("the run is queued".into()),
                stop: true,
                reset: true,
                live: true,
                fork,
            };
        }
        let idle_pause = || PauseResume::Disabled {
            label: "Pause",
            reason: "nothing is training".into(),
        };
        // Step would train past the budget (a run opened at its last step, or paused there).
        let trains_on = || match budget > run.step() {
            true => Ok(()),
            false => Err("the run reached its step budget: raise Step budget to train on".to_string()),
        };
        match run.state() {
            None | Some(RunState::Stopped | RunState::Failed) => Controls {
                start: launch.clone(),
                pause_resume: idle_pause(),
                step: launch,
                stop: false,
                reset: run.state().is_some(),
                live: false,
                fork,
            },
            Some(RunState::Loading) => Controls {
                start: launch.clone(),
                pause_resume: PauseResume::Disabled {
                    label: "Pause",
                    reason: "the data is loading".into(),
                },
                step: Err("the data is loading".into()),
                stop: true,
                reset: true,
                live: true,
                fork: fork.clone(),
            },
            Some(RunState::Running) => Controls {
                start: launch.clone(),
                pause_resume: PauseResume::Pause,
                step: Err("pause first".into()),
                stop: true,
                reset: true,
                live: true,
                fork: fork.clone(),
            },
            // A run opened at its budget has nothing to resume; one paused there finishes on Resume (its last
            // checkpoint is written then).
            Some(state @ (RunState::Ready | RunState::Paused)) => Controls {
                start: launch.clone(),
                pause_resume: match (state, trains_on()) {
                    (RunState::Ready, Err(reason)) => PauseResume::Disabled {
                        label: "Resume",
                        reason,
                    },
                    _ => PauseResume::Resume,
                },
                step: trains_on(),
                stop: true,
                reset: true,
                live: true,
                fork: fork.clone(),
            },
            // A finished run trains on only once its step budget is raised; there is nothing to stop.
            Some(RunState::Finished) => Controls {
                start: launch,
                pause_resume: match trains_on() {
                    Ok(()) => PauseResume::Resume,
                    Err(reason) => PauseResume::Disabled {
                        label: "Resume",
                        reason,
                    },
                },
                step: trains_on(),
                stop: false,
                reset: true,
                live: true,
                fork: fork.clone(),
            },
        }
    }

    /// Space pauses or resumes (or starts when nothing runs), Right arrow steps. Keys are taken before any
    /// widget sees them, so a focused button or number field does not act on them too; a focused text
    /// field keeps them.
    pub fn shortcuts(&self, ctx: &Context) -> Vec<Action> {
        if ctx.text_edit_focused() {
            return Vec::new();
        }
        let (space, right) = ctx.input_mut(|i| {
            (
                i.consume_key(Modifiers::NONE, Key::Space),
                i.consume_key(Modifiers::NONE, Key::ArrowRight),
            )
        });
        let mut actions = Vec::new();
        if space {
            match (&self.pause_resume, &self.start) {
                (PauseResume::Pause | PauseResume::Resume, _) => actions.push(Action::TogglePause),
                (PauseResume::Disabled { .. }, Ok(())) if !self.live => actions.push(Action::Start),
                _ => {}
            }
        }
        if right && self.step.is_ok() {
            actions.push(Action::Step);
        }
        actions
    }
}
