//! Sweeps: one run per point of a grid over one or more settings, and a summary table of their results.

use crate::config::{OnTrouble, RunConfig};
use crate::train::health::Rule;
use crate::train::worker::{Ending, Event, RunOptions, Trainer};
use crate::train::MetricRow;
use crossbeam_channel::{Receiver, TryRecvError};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One swept setting and the values it takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

impl Axis {
    /// Parses `key=v1,v2,...` or a log-spaced range `key=lo..hi:n` (n values from lo to hi, e.g.
    /// `optimizer.lr=1e-4..1e-2:5`).
    pub fn parse(text: &str) -> Result<Axis, String> {
        let (key, values) = text
            .split_once('=')
            .ok_or_else(|| format!("'{text}': expected key=v1,v2 or key=lo..hi:n"))?;
        let key = key.trim().to_string();
        let values: Vec<String> = match values.split_once("..") {
            Some((lo, rest)) => {
                let (hi, n) = rest.split_once(':').unwrap_or((rest, "5"));
                let bad = || format!("'{text}': a range is lo..hi:n with 0 < lo < hi and n ≥ 2, e.g. 1e-4..1e-2:5");
                let (lo, hi): (f64, f64) = (
                    lo.trim().parse().map_err(|_| bad())?,
                    hi.trim().parse().map_err(|_| bad())?,
                );
                let n: usize = n.trim().parse().map_err(|_| bad())?;
                if !(lo > 0.0 && hi > lo && n >= 2) {
                    return Err(bad());
                }
                (0..n)
                    .map(|i| format!("{:.3e}", lo * (hi / lo).powf(i as f64 / (n - 1) as f64)))
                    .collect()
            }
            None => values
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect(),
        };
        if values.is_empty() {
            return Err(format!("'{text}' lists no values"));
        }
        Ok(Axis { key, values })
    }
}

/// A point of the grid: its config and its `key=value` assignments.
#[derive(Clone, Debug)]
pub struct Point {
    pub assignments: Vec<(String, String)>,
    pub config: RunConfig,
}

impl Point {
    /// A directory name for the point's run, e.g. `optimizer.lr=1e-4_train.batch_size=32`.
    pub fn name(&self) -> String {
        let name: Vec<String> = self.assignments.iter().map(|(k, v)| format!("{k}={v}")).collect();
        name.join("_").replace(['/', '\\', ' '], "-")
    }
}

/// Every combination of the axes' values applied to `base`; an invalid value is an error naming it.
pub fn expand(base: &RunConfig, axes: &[Axis]) -> Result<Vec<Point>, String> {
    let mut points = vec![Point {
        assignments: Vec::new(),
        config: base.clone(),
    }];
    for axis in axes {
        let mut next = Vec::with_capacity(points.len() * axis.values.len());
        for point in &points {
            for value in &axis.values {
                let mut config = point.config.clone();
                config
                    .set(&format!("{}={value}", axis.key))
                    .map_err(|e| e.to_string())?;
                let mut assignments = point.assignments.clone();
                assignments.push((axis.key.clone(), value.clone()));
                next.push(Point { assignments, config });
            }
        }
        points = next;
    }
    for point in &mut points {
        keep_swept_settings(&mut point.config, axes);
    }
    Ok(points)
}

/// A sweep compares its settings: a health check whose remedy would change one of them (a rollback that halves
/// a swept learning rate) pauses the run instead, so that each run trains on the value it is named after.
fn keep_swept_settings(config: &mut RunConfig, axes: &[Axis]) {
    for rule in Rule::ALL {
        if rule.action(&config.health) != OnTrouble::Rollback {
            continue;
        }
        let remedied = rule.remedy(config).config;
        let changes = crate::runs::setting_changes(0, config, &remedied);
        if changes.iter().any(|c| axes.iter().any(|a| a.key == c.key)) {
            *rule.action_mut(&mut config.health) = OnTrouble::Pause;
        }
    }
}

/// How one point's run ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub point: Point,
    pub dir: PathBuf,
    pub rows: Vec<MetricRow>,
    pub error: Option<String>,
}

/// Trains every point to its step budget, at most `parallel` at once, writing `out/<point name>/`.
/// `report` hears about each run as it ends. Closing `stop` stops the runs in training (each writes its
/// checkpoint) and leaves the rest untrained.
pub fn run(
    points: Vec<Point>,
    out: &Path,
    parallel: usize,
    stop: &Receiver<()>,
    report: &(dyn Fn(&Outcome) + Sync),
) -> Vec<Outcome> {
    let queue = Mutex::new(points.into_iter().enumerate().collect::<Vec<_>>());
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            scope.spawn(|| loop {
                let Some((index, point)) = queue.lock().expect("queue lock").pop() else {
                    break;
                };
                let outcome = train_point(point, out, stop);
                report(&outcome);
                outcomes.lock().expect("outcomes lock").push((index, outcome));
                if matches!(stop.try_recv(), Err(TryRecvError::Disconnected) | Ok(())) {
                    break;
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().expect("outcomes lock");
    outcomes.sort_by_key(|(index, _)| *index);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

fn train_point(point: Point, out: &Path, stop: &Receiver<()>) -> Outcome {
    let dir = out.join(point.name());
    let options = RunOptions {
        out_dir: Some(dir.clone()),
        headless: true,
        ..RunOptions::default()
    };
    let trainer = Trainer::spawn(point.config.clone(), options, None);
    let mut rows = Vec::new();
    let ending = trainer.run_to_end(stop, |event| {
        if let Event::Metrics(row) = event {
            rows.push(row.clone());
        }
    });
    let error = match ending {
        Ending::Finished => None,
        Ending::Stopped => Some("stopped before its budget".to_string()),
        Ending::Halted(message) | Ending::Failed(message) => Some(message),
    };
    Outcome {
        point,
        dir,
        rows,
        error,
    }
}

/// The summary CSV: one row per point with its settings, steps done, last value of every metric and the
/// lowest value of every loss-like metric and of the quality metric's `fd`.
pub fn summary_csv(axes: &[Axis], outcomes: &[Outcome]) -> Vec<u8> {
    let mut metrics: Vec<String> = Vec::new();
    for o in outcomes {
        for (name, _) in o.rows.iter().flat_map(|r| &r.values) {
            if !metrics.contains(name) {
                metrics.push(name.clone());
            }
        }
    }
    let lossy: Vec<&String> = metrics
        .iter()
        .filter(|m| m.contains("loss") || m.contains("recon") || *m == crate::quality::FD)
        .collect();
    let mut header = vec!["run".to_string()];
    header.extend(axes.iter().map(|a| a.key.clone()));
    header.push("steps".into());
    header.extend(metrics.iter().map(|m| format!("final_{m}")));
    header.extend(lossy.iter().map(|m| format!("best_{m}")));
    header.push("error".into());
    let rows = outcomes.iter().map(|o| {
        let mut cells = vec![o.point.name()];
        cells.extend(o.point.assignments.iter().map(|(_, v)| v.clone()));
        cells.push(o.rows.last().map(|r| r.step).unwrap_or(0).to_string());
        let last = |m: &str| o.rows.iter().rev().find_map(|r| r.get(m));
        cells.extend(
            metrics
                .iter()
                .map(|m| last(m).map(|v| v.to_string()).unwrap_or_default()),
        );
        let best = |m: &str| o.rows.iter().filter_map(|r| r.get(m)).reduce(f64::min);
        cells.extend(lossy.iter().map(|m| best(m).map(|v| v.to_string()).unwrap_or_default()));
        cells.push(o.error.clone().unwrap_or_default());
        cells
    });
    crate::runs::csv_bytes(header, rows)
}

/// What `gantry sweep --plan` writes besides the configs: the runs folder the tasks train into, the axes, and
/// the points in task order (task `i` trains `points[i]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub runs: PathBuf,
    pub axes: Vec<Axis>,
    pub points: Vec<PlannedPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedPoint {
    pub name: String,
    pub assignments: Vec<(String, String)>,
}

pub const PLAN_FILE: &str = "plan.toml";
pub const POINTS_FILE: &str = "points.txt";
pub const SLURM_FILE: &str = "sweep.sbatch";
pub const KUBERNETES_FILE: &str = "sweep-job.yaml";
const CONFIG_DIR: &str = "configs";

/// The config file of a planned point.
pub fn planned_config(plan_dir: &Path, name: &str) -> PathBuf {
    plan_dir.join(CONFIG_DIR).join(format!("{name}.toml"))
}

/// Writes a plan for training `points` on a cluster with no cluster code of ours: one config per point,
/// `points.txt` (a name per line, in task order), `plan.toml`, a Slurm job-array script and a Kubernetes
/// Indexed Job manifest. Task `i` runs `gantry train --config` on point `i` into `runs/<name>` (or resumes
/// it, when a requeued task finds the run started). Paths are made absolute: tasks run elsewhere.
pub fn write_plan(points: &[Point], axes: &[Axis], plan_dir: &Path, runs: &Path) -> Result<Plan, String> {
    let absolute = |p: &Path| std::path::absolute(p).map_err(|e| crate::fsio::io_error(p, "resolve", e));
    let (plan_dir, runs) = (absolute(plan_dir)?, absolute(runs)?);
    let configs = plan_dir.join(CONFIG_DIR);
    fs::create_dir_all(&configs).map_err(|e| crate::fsio::io_error(&configs, "create", e))?;
    let plan = Plan {
        runs: runs.clone(),
        axes: axes.to_vec(),
        points: points
            .iter()
            .map(|p| PlannedPoint {
                name: p.name(),
                assignments: p.assignments.clone(),
            })
            .collect(),
    };
    for point in points {
        crate::fsio::write(
            &planned_config(&plan_dir, &point.name()),
            point.config.to_toml().as_bytes(),
        )?;
    }
    let names: String = plan.points.iter().map(|p| format!("{}\n", p.name)).collect();
    crate::fsio::write(&plan_dir.join(POINTS_FILE), names.as_bytes())?;
    let text = toml::to_string_pretty(&plan).map_err(|e| format!("cannot write the plan: {e}"))?;
    crate::fsio::write(&plan_dir.join(PLAN_FILE), text.as_bytes())?;
    crate::fsio::write(
        &plan_dir.join(SLURM_FILE),
        slurm_script(&plan_dir, &runs, points.len()).as_bytes(),
    )?;
    let manifest = kubernetes_manifest(&plan_dir, &runs, points.len());
    crate::fsio::write(&plan_dir.join(KUBERNETES_FILE), manifest.as_bytes())?;
    Ok(plan)
}

/// The shell lines every task runs: pick the point of task `$INDEX`, then train it (or resume it).
fn task_lines(plan_dir: &Path, runs: &Path, index: &str) -> String {
    format!(
        r#"GANTRY="${{GANTRY:-gantry}}"
PLAN={plan}
RUNS={runs}
NAME="$(sed -n "$(({index} + 1))p" "$PLAN/{POINTS_FILE}")"
if [ -z "$NAME" ]; then echo "no point for task ${{{index}}}" >&2; exit 2; fi
if [ -f "$RUNS/$NAME/config.toml" ]; then
  exec "$GANTRY" train --resume "$RUNS/$NAME"
fi
exec "$GANTRY" train --config "$PLAN/{CONFIG_DIR}/$NAME.toml" --out "$RUNS/$NAME"
"#,
        plan = shell_quote(plan_dir),
        runs = shell_quote(runs),
    )
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

fn slurm_script(plan_dir: &Path, runs: &Path, tasks: usize) -> String {
    format!(
        "#!/bin/bash\n\
         # A Slurm job array training one sweep point per task: sbatch {file}\n\
         # Set GANTRY to the gantry binary where it is not on the PATH of the nodes.\n\
         #SBATCH --job-name=gantry-sweep\n\
         #SBATCH --array=0-{last}\n\
         #SBATCH --cpus-per-task=2\n\
         #SBATCH --output={log}\n\
         set -euo pipefail\n{lines}",
        file = plan_dir.join(SLURM_FILE).display(),
        last = tasks.saturating_sub(1),
        log = runs.join("slurm-%A_%a.log").display(),
        lines = task_lines(plan_dir, runs, "SLURM_ARRAY_TASK_ID"),
    )
}

/// An Indexed Job whose pods see the plan and the runs folder at the same paths as here, through one
/// volume mounted at the folder holding both (edit the claim name and image to yours).
fn kubernetes_manifest(plan_dir: &Path, runs: &Path, tasks: usize) -> String {
    let shared: PathBuf = plan_dir
        .components()
        .zip(runs.components())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    // JSON strings are YAML strings, quoted so no path or script can break the document.
    let quoted = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let script = task_lines(plan_dir, runs, "JOB_COMPLETION_INDEX");
    format!(
        "# A Kubernetes Indexed Job training one sweep point per pod: kubectl apply -f {file}\n\
         # The image needs the gantry binary and sh; the claim must hold {shared}.\n\
         apiVersion: batch/v1\n\
         kind: Job\n\
         metadata:\n  name: gantry-sweep\n\
         spec:\n  completionMode: Indexed\n  completions: {tasks}\n  parallelism: {tasks}\n  backoffLimit: 3\n\
         \x20 template:\n    spec:\n      restartPolicy: Never\n      containers:\n\
         \x20       - name: gantry\n          image: gantry:latest\n\
         \x20         command: [\"/bin/sh\", \"-c\", {script}]\n\
         \x20         resources:\n            requests:\n              cpu: \"2\"\n\
         \x20         volumeMounts:\n            - name: shared\n              mountPath: {mount}\n\
         \x20     volumes:\n        - name: shared\n          persistentVolumeClaim:\n            claimName: gantry-shared\n",
        file = plan_dir.join(KUBERNETES_FILE).display(),
        shared = shared.display(),
        script = quoted(&script),
        mount = quoted(&shared.display().to_string()),
    )
}

/// Reads a plan and what its tasks have trained so far into outcomes for [`summary_csv`]: a point whose
/// run is missing or did not finish says so in its error.
pub fn summarize(plan_dir: &Path) -> Result<(Plan, Vec<Outcome>), String> {
    let path = plan_dir.join(PLAN_FILE);
    let text = fs::read_to_string(&path).map_err(|e| crate::fsio::io_error(&path, "read", e))?;
    let plan: Plan = toml::from_str(&text).map_err(|e| format!("{}: not a sweep plan: {e}", path.display()))?;
    let mut outcomes = Vec::new();
    for planned in &plan.points {
        let config_path = planned_config(plan_dir, &planned.name);
        let text = fs::read_to_string(&config_path).map_err(|e| crate::fsio::io_error(&config_path, "read", e))?;
        let config = RunConfig::from_toml(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
        let dir = plan.runs.join(&planned.name);
        let (rows, error) = match (crate::runs::read_metrics(&dir), crate::runs::RunMeta::read(&dir)) {
            (Ok(metrics), Ok(meta)) => {
                let error = (meta.status != crate::runs::RunStatus::Finished)
                    .then(|| format!("{} at step {}", meta.status.label(), meta.steps_done));
                (metrics.rows, error)
            }
            _ => (Vec::new(), Some("not trained yet".to_string())),
        };
        let point = Point {
            assignments: planned.assignments.clone(),
            config,
        };
        outcomes.push(Outcome {
            point,
            dir,
            rows,
            error,
        });
    }
    Ok((plan, outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swept_setting_is_not_changed_by_a_remedy_the_run_pauses_instead() {
        let base = crate::presets::preset("mlp-gan-digits").unwrap();
        assert_eq!(base.health.on_divergence, OnTrouble::Rollback);
        let lr = expand(&base, &[Axis::parse("optimizer.lr=1e-3,3e-3").unwrap()]).unwrap();
        assert!(lr.iter().all(|p| p.config.health.on_divergence == OnTrouble::Pause));
        let batch = expand(&base, &[Axis::parse("train.batch_size=32,64").unwrap()]).unwrap();
        assert!(batch
            .iter()
            .all(|p| p.config.health.on_divergence == OnTrouble::Rollback));
    }

    #[test]
    fn axes_parse_lists_and_log_ranges() {
        let list = Axis::parse("data.batch_size=32, 64").unwrap();
        assert_eq!(list.values, vec!["32", "64"]);
        let range = Axis::parse("optimizer.lr=1e-4..1e-2:3").unwrap();
        let values: Vec<f64> = range.values.iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(values, vec![1e-4, 1e-3, 1e-2]);
        assert!(Axis::parse("optimizer.lr=1e-2..1e-4:3").is_err());
        assert!(Axis::parse("optimizer.lr").is_err());
    }

    #[test]
    fn expansion_is_the_cartesian_product_and_checks_values() {
        let axes = [
            Axis::parse("optimizer.lr=1e-4,1e-3").unwrap(),
            Axis::parse("train.batch_size=8,16,32").unwrap(),
        ];
        let points = expand(&RunConfig::default(), &axes).unwrap();
        assert_eq!(points.len(), 6);
        assert_eq!(points[5].config.train.batch_size, 32);
        assert_eq!(points[5].name(), "optimizer.lr=1e-3_train.batch_size=32");
        let bad = [Axis::parse("optimizer.lr=-1").unwrap()];
        assert!(expand(&RunConfig::default(), &bad)
            .unwrap_err()
            .contains("optimizer.lr"));
    }
}
