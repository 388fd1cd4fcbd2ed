//! The runs on disk, as the run browser and the comparison views read them: each run's summary and what sets
//! it apart from its siblings, curves read back from `metrics.csv`, and a small cache of saved grids (so
//! scrubbing a filmstrip reads each PNG once while memory stays bounded). No egui types.

use super::history::RunHistory;
use crate::grid::ImageGrid;
use crate::runs::{self, GridKind, RunSummary};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// Decoded grids kept in memory; older ones are read from disk again when needed.
const GRID_CACHE: usize = 24;

pub struct Catalog {
    root: PathBuf,
    runs: Vec<CatalogRun>,
    problems: Vec<String>,
    stale: bool,
    histories: HashMap<PathBuf, DiskHistory>,
    /// Saved steps per run and kind, read once until the run saves more (or the list is refreshed).
    grid_lists: HashMap<(PathBuf, GridKind), Vec<u64>>,
    grids: VecDeque<((PathBuf, GridKind, u64), ImageGrid)>,
}

/// One listed run.
#[derive(Clone, Debug)]
pub struct CatalogRun {
    pub summary: RunSummary,
    /// The settings in which it differs from the runs of the same model and dataset (`key`, `value`).
    pub differences: Vec<(String, String)>,
}

impl CatalogRun {
    pub fn path(&self) -> &Path {
        &self.summary.path
    }

    pub fn name(&self) -> &str {
        &self.summary.meta.name
    }

    /// The run's value of `key` among the settings that set it apart from its siblings.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.differences.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Orders two setting values as numbers where both are numbers (`1e-4` before `0.001`), else as text; a
/// missing value first.
pub fn compare_setting_values(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    match (a.map(str::parse::<f64>), b.map(str::parse::<f64>)) {
        (Some(Ok(x)), Some(Ok(y))) => x.total_cmp(&y),
        _ => a.cmp(&b),
    }
}

struct DiskHistory {
    /// Size of `metrics.csv` when it was read; a different size means new rows.
    length: u64,
    history: RunHistory,
}

impl Catalog {
    pub fn new(root: PathBuf) -> Catalog {
        Catalog {
            root,
            runs: Vec::new(),
            problems: Vec::new(),
            stale: true,
            histories: HashMap::new(),
            grid_lists: HashMap::new(),
            grids: VecDeque::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn set_root(&mut self, root: PathBuf) {
        *self = Catalog::new(root);
    }

    /// The list is read again before it is next shown.
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Reads the runs directory again if something changed since the last read.
    pub fn refresh_if_stale(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        self.grid_lists.clear();
        let (summaries, problems) = runs::list_runs(&self.root);
        self.problems = problems;
        let mut runs: Vec<CatalogRun> = summaries
            .into_iter()
            .map(|summary| CatalogRun {
                summary,
                differences: Vec::new(),
            })
            .collect();
        // Siblings are runs of the same model on the same data; what tells them apart is worth a column.
        let sibling_key = |run: &CatalogRun| (run.summary.config.model.kind, run.summary.config.data.source.clone());
        let mut keys: Vec<_> = runs.iter().map(sibling_key).collect();
        keys.dedup();
        for key in keys {
            let members: Vec<usize> = (0..runs.len()).filter(|i| sibling_key(&runs[*i]) == key).collect();
            let configs: Vec<_> = members.iter().map(|i| &runs[*i].summary.config).collect();
            let differences = runs::config_differences(&configs);
            for (i, difference) in members.into_iter().zip(differences) {
                runs[i].differences = difference;
            }
        }
        self.runs = runs;
    }

    /// Listed runs, newest first.
    pub fn runs(&self) -> &[CatalogRun] {
        &self.runs
    }

    pub fn find(&self, dir: &Path) -> Option<&CatalogRun> {
        self.runs.iter().find(|r| r.path() == dir)
    }

    /// Run folders that could not be read, with the reason.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The curves of the run in `dir` as written to disk (read again when the file grew).
    pub fn history(&mut self, dir: &Path) -> Result<&mut RunHistory, String> {
        let length = std::fs::metadata(dir.join(runs::METRICS_FILE)).map_or(0, |m| m.len());
        let fresh = self.histories.get(dir).is_some_and(|h| h.length == length);
        if !fresh {
            let mut history = RunHistory::default();
            if length > 0 {
                for row in runs::read_metrics(dir)?.rows {
                    history.push(&row);
                }
            }
            self.histories
                .insert(dir.to_path_buf(), DiskHistory { length, history });
        }
        Ok(&mut self.histories.get_mut(dir).expect("inserted above").history)
    }

    /// The curves of the run in `dir` as last read by [`Catalog::history`].
    pub fn cached_history(&self, dir: &Path) -> Option<&RunHistory> {
        self.histories.get(dir).map(|h| &h.history)
    }

    /// The steps the run in `dir` saved grids of, ascending.
    pub fn grid_steps(&mut self, dir: &Path, kind: GridKind) -> &[u64] {
        self.grid_lists
            .entry((dir.to_path_buf(), kind))
            .or_insert_with(|| runs::grid_steps(dir, kind))
    }

    /// The run in `dir` saved new grids: its lists are read again when next asked for.
    pub fn forget_grid_steps(&mut self, dir: &Path) {
        self.grid_lists.retain(|(d, _), _| d != dir);
    }

    /// The grid the run in `dir` saved at `step`.
    pub fn grid(&mut self, dir: &Path, kind: GridKind, step: u64) -> Result<&ImageGrid, String> {
        if self.cached_grid(dir, kind, step).is_none() {
            let grid = runs::read_grid(dir, kind, step)?;
            if self.grids.len() == GRID_CACHE {
                self.grids.pop_front();
            }
            self.grids.push_back(((dir.to_path_buf(), kind, step), grid));
        }
        Ok(self.cached_grid(dir, kind, step).expect("read into the cache above"))
    }

    /// The grid the run in `dir` saved at `step`, if [`Catalog::grid`] has it in the cache.
    pub fn cached_grid(&self, dir: &Path, kind: GridKind, step: u64) -> Option<&ImageGrid> {
        self.grids
            .iter()
            .find(|((d, k, s), _)| d == dir && *k == kind && *s == step)
            .map(|(_, grid)| grid)
    }
}

/// `optimizer.lr` → `lr`: the part of a setting's key that names it in labels.
pub fn short_key(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// `lr=0.0002, batch_size=64`; empty when nothing differs.
pub fn describe(differences: &[(String, String)]) -> String {
    differences
        .iter()
        .map(|(key, value)| format!("{}={value}", short_key(key)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_settings_by_their_last_key_part() {
        let differences = vec![
            ("optimizer.lr".to_string(), "0.001".to_string()),
            ("data.batch_size".to_string(), "32".to_string()),
        ];
        assert_eq!(describe(&differences), "lr=0.001, batch_size=32");
        assert_eq!(describe(&[]), "");
    }
}
