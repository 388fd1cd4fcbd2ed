//! Sweeps: one run per point of a grid over one or more settings, and a summary table of their results.

use crate::config::RunConfig;
use crate::train::worker::{Ending, Event, RunOptions, Trainer};
use crate::train::MetricRow;
use crossbeam_channel::{Receiver, TryRecvError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One swept setting and the values it takes.
#[derive(Clone, Debug, PartialEq)]
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
    Ok(points)
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
/// lowest value of every loss-like metric.
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
        .filter(|m| m.contains("loss") || m.contains("recon"))
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

#[cfg(test)]
mod tests {
    use super::*;

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
