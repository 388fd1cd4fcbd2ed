//! Run directories on disk: `config.toml`, `run.toml` (name, status, lineage, tags), `metrics.csv`,
//! `samples/` and `recon/` PNGs, and atomically written checkpoints in `checkpoints/`.

use crate::config::RunConfig;
use crate::grid::ImageGrid;
use crate::train::MetricRow;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.toml";
pub const META_FILE: &str = "run.toml";
pub const METRICS_FILE: &str = "metrics.csv";
pub const CHECKPOINT_DIR: &str = "checkpoints";

/// Which grid a PNG holds; also its subfolder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GridKind {
    Samples,
    Reconstructions,
}

impl GridKind {
    pub fn folder(self) -> &'static str {
        match self {
            GridKind::Samples => "samples",
            GridKind::Reconstructions => "recon",
        }
    }
}

/// What a run is doing, as recorded in `run.toml` (a run that was killed keeps its last status).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    #[default]
    Created,
    /// Waiting for a free training slot in the workbench.
    Queued,
    Running,
    Paused,
    Finished,
    Failed,
    Stopped,
}

impl RunStatus {
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Created => "created",
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
        }
    }
}

/// A run's name, status and lineage (`run.toml`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunMeta {
    pub name: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    pub status: RunStatus,
    pub steps_done: u64,
    pub tags: Vec<String>,
    /// The run this one was forked from, and at which of its steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fork_step: Option<u64>,
}

impl RunMeta {
    pub fn new(name: &str) -> RunMeta {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        RunMeta {
            name: name.to_string(),
            created,
            ..RunMeta::default()
        }
    }

    pub fn read(dir: &Path) -> Result<RunMeta, String> {
        let path = dir.join(META_FILE);
        let text = fs::read_to_string(&path).map_err(|e| io_error(&path, "read", e))?;
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
    }

    /// Writes `run.toml` through a temporary file, so a reader never sees half of it.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let text = toml::to_string_pretty(self).expect("run metadata always serializes");
        write_atomically(&dir.join(META_FILE), text.as_bytes())
    }
}

/// An open run directory that metrics, grids and checkpoints are written to as training goes.
pub struct RunDir {
    path: PathBuf,
    metrics: File,
    columns: Vec<String>,
    meta: RunMeta,
}

/// The CSV header of a run with these metric columns.
fn metrics_header(columns: &[&str]) -> String {
    ["step", "epoch", "wall_s"]
        .iter()
        .chain(columns)
        .copied()
        .collect::<Vec<_>>()
        .join(",")
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> String {
    format!("{}: cannot {what}: {e}", path.display())
}

/// Writes a run's `config.toml`.
fn write_config(dir: &Path, config: &RunConfig) -> Result<(), String> {
    let path = dir.join(CONFIG_FILE);
    fs::write(&path, config.to_toml()).map_err(|e| io_error(&path, "write", e))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let temp = path.with_extension("tmp");
    fs::write(&temp, bytes).map_err(|e| io_error(&temp, "write", e))?;
    fs::rename(&temp, path).map_err(|e| io_error(path, "replace", e))
}

/// A run directory's own name (the last part of its path), which is also a new run's name.
pub fn dir_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into())
}

impl RunDir {
    /// Starts a new run directory (or a queued one's). Refuses one that already holds metrics, so nothing is
    /// overwritten.
    pub fn create(path: &Path, config: &RunConfig, columns: &[&str]) -> Result<RunDir, String> {
        if path.join(METRICS_FILE).exists() {
            return Err(format!(
                "{} already holds a run; continue it with --resume or choose another --out",
                path.display()
            ));
        }
        fs::create_dir_all(path).map_err(|e| io_error(path, "create the run directory", e))?;
        write_config(path, config)?;
        let metrics_path = path.join(METRICS_FILE);
        let mut metrics = File::create(&metrics_path).map_err(|e| io_error(&metrics_path, "create", e))?;
        writeln!(metrics, "{}", metrics_header(columns)).map_err(|e| io_error(&metrics_path, "write", e))?;
        // A run queued in the workbench already has its name and tags.
        let meta = RunMeta::read(path).unwrap_or_else(|_| RunMeta::new(&dir_name(path)));
        meta.write(path)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            metrics,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            meta,
        })
    }

    /// Reads the config of an existing run.
    pub fn read_config(path: &Path) -> Result<RunConfig, String> {
        let config_path = path.join(CONFIG_FILE);
        let text = fs::read_to_string(&config_path).map_err(|e| io_error(&config_path, "read the run's config", e))?;
        RunConfig::from_toml(&text).map_err(|e| format!("{}: {e}", config_path.display()))
    }

    /// Reopens a run to continue from its checkpoint at `step`: metric rows written after that step (since
    /// the last checkpoint) are dropped so the file has each step once.
    pub fn reopen(path: &Path, columns: &[&str], step: u64) -> Result<RunDir, String> {
        let metrics_path = path.join(METRICS_FILE);
        let text = fs::read_to_string(&metrics_path).map_err(|e| io_error(&metrics_path, "read", e))?;
        let expected = metrics_header(columns);
        if text.lines().next() != Some(expected.as_str()) {
            return Err(format!(
                "{}: header differs from this run's metrics ({expected})",
                metrics_path.display()
            ));
        }
        fs::write(&metrics_path, rows_up_to(&text, step)).map_err(|e| io_error(&metrics_path, "rewrite", e))?;
        let metrics = OpenOptions::new()
            .append(true)
            .open(&metrics_path)
            .map_err(|e| io_error(&metrics_path, "open", e))?;
        // Runs written before run.toml existed get one now.
        let meta = RunMeta::read(path).unwrap_or_else(|_| RunMeta::new(&dir_name(path)));
        Ok(RunDir {
            path: path.to_path_buf(),
            metrics,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            meta,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the run's status and progress in `run.toml`.
    pub fn set_status(&mut self, status: RunStatus, steps_done: u64) -> Result<(), String> {
        // The name and tags may have been changed (in the run browser) since this run was opened.
        if let Ok(on_disk) = RunMeta::read(&self.path) {
            self.meta = on_disk;
        }
        self.meta.status = status;
        self.meta.steps_done = steps_done;
        self.meta.write(&self.path)
    }

    /// Appends one row and flushes it, so the file is readable while training runs.
    pub fn append(&mut self, row: &MetricRow) -> Result<(), String> {
        let mut line = format!("{},{},{}", row.step, row.epoch, row.wall_s);
        for column in &self.columns {
            line.push(',');
            if let Some(v) = row.get(column) {
                line.push_str(&v.to_string());
            }
        }
        let path = self.path.join(METRICS_FILE);
        writeln!(self.metrics, "{line}")
            .and_then(|_| self.metrics.flush())
            .map_err(|e| io_error(&path, "append to", e))
    }

    pub fn save_grid(&self, kind: GridKind, step: u64, grid: &ImageGrid) -> Result<PathBuf, String> {
        let path = grid_path(&self.path, kind, step);
        let folder = path.parent().expect("grid paths have a folder");
        fs::create_dir_all(folder).map_err(|e| io_error(folder, "create", e))?;
        grid.write_png(&path)?;
        Ok(path)
    }

    /// Writes the checkpoint of `step` to a temporary file and renames it into place, so a crash mid-write
    /// never leaves a broken checkpoint.
    pub fn save_checkpoint(&self, step: u64, tensors: &HashMap<String, Tensor>) -> Result<PathBuf, String> {
        let path = checkpoint_path(&self.path, step);
        let folder = path.parent().expect("checkpoint paths have a folder");
        fs::create_dir_all(folder).map_err(|e| io_error(folder, "create", e))?;
        let temp = path.with_extension("tmp");
        candle_core::safetensors::save(tensors, &temp)
            .map_err(|e| format!("{}: cannot write checkpoint: {e}", temp.display()))?;
        fs::rename(&temp, &path).map_err(|e| io_error(&path, "place the checkpoint", e))?;
        Ok(path)
    }
}

/// The lines of a metrics CSV (header included) whose step is at most `step`.
fn rows_up_to(text: &str, step: u64) -> String {
    text.lines()
        .enumerate()
        .filter(|(i, line)| {
            *i == 0
                || line
                    .split(',')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|s| s <= step)
        })
        .map(|(_, line)| format!("{line}\n"))
        .collect()
}

pub fn grid_path(dir: &Path, kind: GridKind, step: u64) -> PathBuf {
    dir.join(kind.folder()).join(format!("step-{step:06}.png"))
}

pub fn checkpoint_path(dir: &Path, step: u64) -> PathBuf {
    dir.join(CHECKPOINT_DIR).join(format!("step-{step:06}.safetensors"))
}

/// Steps of the files named `step-NNNNNN.<ext>` in `dir/folder`, ascending.
fn steps_in(dir: &Path, folder: &str, ext: &str) -> Vec<u64> {
    let mut steps: Vec<u64> = fs::read_dir(dir.join(folder))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("step-")?
                .strip_suffix(ext)?
                .strip_suffix('.')?
                .parse()
                .ok()
        })
        .collect();
    steps.sort_unstable();
    steps
}

/// The steps a run has checkpoints of, ascending.
pub fn checkpoint_steps(dir: &Path) -> Vec<u64> {
    steps_in(dir, CHECKPOINT_DIR, "safetensors")
}

/// The steps a run has saved grids of, ascending (its filmstrip).
pub fn grid_steps(dir: &Path, kind: GridKind) -> Vec<u64> {
    steps_in(dir, kind.folder(), "png")
}

/// Loads the checkpoint of `step`, or the newest one.
pub fn load_checkpoint(dir: &Path, step: Option<u64>) -> Result<HashMap<String, Tensor>, String> {
    let step = match step {
        Some(s) => s,
        None => *checkpoint_steps(dir)
            .last()
            .ok_or_else(|| format!("{}: the run has no checkpoint to continue from", dir.display()))?,
    };
    let file = checkpoint_path(dir, step);
    candle_core::safetensors::load(&file, &Device::Cpu)
        .map_err(|e| format!("{}: cannot read checkpoint: {e}", file.display()))
}

/// Makes `child` a new run that continues `parent` from its checkpoint at `step` with `config` (which may
/// differ from the parent's only in settings that keep shapes). The child starts with the parent's metric
/// rows up to `step`, so its curve continues the parent's; the parent is left as it was.
pub fn fork(parent: &Path, step: u64, child: &Path, config: &RunConfig) -> Result<(), String> {
    let parent_config = RunDir::read_config(parent)?;
    if let Some(key) = parent_config.restart_needed_for(config) {
        return Err(format!("a fork keeps the parent's shapes and data, but {key} differs"));
    }
    let source = checkpoint_path(parent, step);
    if !source.exists() {
        return Err(format!("{}: no checkpoint at step {step}", parent.display()));
    }
    if child.exists() {
        return Err(format!("{} already exists", child.display()));
    }
    fs::create_dir_all(child.join(CHECKPOINT_DIR)).map_err(|e| io_error(child, "create", e))?;
    fs::copy(&source, checkpoint_path(child, step)).map_err(|e| io_error(&source, "copy", e))?;
    write_config(child, config)?;
    let metrics = parent.join(METRICS_FILE);
    let text = fs::read_to_string(&metrics).map_err(|e| io_error(&metrics, "read", e))?;
    let child_metrics = child.join(METRICS_FILE);
    fs::write(&child_metrics, rows_up_to(&text, step)).map_err(|e| io_error(&child_metrics, "write", e))?;
    let meta = RunMeta {
        parent: Some(parent.to_path_buf()),
        fork_step: Some(step),
        steps_done: step,
        status: RunStatus::Paused,
        ..RunMeta::new(&dir_name(child))
    };
    meta.write(child)
}

/// Reads a saved grid back as RGBA8.
pub fn read_grid(dir: &Path, kind: GridKind, step: u64) -> Result<ImageGrid, String> {
    let path = grid_path(dir, kind, step);
    let image = image::open(&path)
        .map_err(|e| format!("{}: cannot read image: {e}", path.display()))?
        .to_rgba8();
    let (width, height) = (image.width() as usize, image.height() as usize);
    Ok(ImageGrid {
        width,
        height,
        rgba: image.into_raw(),
    })
}

/// Writes a run's saved grids as an animated GIF, one frame per saved step, `frame_ms` apart.
pub fn export_gif(dir: &Path, kind: GridKind, out: &Path, frame_ms: u32) -> Result<usize, String> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let steps = grid_steps(dir, kind);
    if steps.is_empty() {
        return Err(format!(
            "{}: the run has no saved {} grids",
            dir.display(),
            kind.folder()
        ));
    }
    let file = File::create(out).map_err(|e| io_error(out, "create", e))?;
    let mut encoder = GifEncoder::new_with_speed(std::io::BufWriter::new(file), 10);
    let fail = |e: image::ImageError| format!("{}: cannot write GIF: {e}", out.display());
    encoder.set_repeat(Repeat::Infinite).map_err(fail)?;
    for &step in &steps {
        let grid = read_grid(dir, kind, step)?;
        let buffer = image::RgbaImage::from_raw(grid.width as u32, grid.height as u32, grid.rgba)
            .expect("a grid's buffer matches its size");
        let delay = image::Delay::from_numer_denom_ms(frame_ms, 1);
        encoder
            .encode_frame(image::Frame::from_parts(buffer, 0, 0, delay))
            .map_err(fail)?;
    }
    Ok(steps.len())
}

/// Copies a run's saved grids into `out` as a numbered PNG sequence (`frame-0000.png`, ...).
pub fn export_png_sequence(dir: &Path, kind: GridKind, out: &Path) -> Result<usize, String> {
    fs::create_dir_all(out).map_err(|e| io_error(out, "create", e))?;
    let steps = grid_steps(dir, kind);
    for (i, &step) in steps.iter().enumerate() {
        let (from, to) = (grid_path(dir, kind, step), out.join(format!("frame-{i:04}.png")));
        fs::copy(&from, &to).map_err(|e| io_error(&from, "copy", e))?;
    }
    Ok(steps.len())
}

/// Reads a run's `metrics.csv` back into rows (empty cells are metrics not measured at that step).
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRow>, String> {
    let metrics_path = path.join(METRICS_FILE);
    let text = fs::read_to_string(&metrics_path).map_err(|e| io_error(&metrics_path, "read", e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let bad = |line: usize| format!("{}: line {} is not a metrics row", metrics_path.display(), line + 2);
    lines
        .enumerate()
        .map(|(i, line)| {
            let cells: Vec<&str> = line.split(',').collect();
            if cells.len() != header.len() || header.len() < 3 {
                return Err(bad(i));
            }
            let values = header[3..]
                .iter()
                .zip(&cells[3..])
                .filter(|(_, cell)| !cell.is_empty())
                .map(|(name, cell)| cell.parse::<f64>().map(|v| (name.to_string(), v)).map_err(|_| bad(i)))
                .collect::<Result<_, _>>()?;
            Ok(MetricRow {
                step: cells[0].parse().map_err(|_| bad(i))?,
                epoch: cells[1].parse().map_err(|_| bad(i))?,
                wall_s: cells[2].parse().map_err(|_| bad(i))?,
                values,
            })
        })
        .collect()
}

/// One run as the run browser lists it.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub path: PathBuf,
    pub meta: RunMeta,
    pub config: RunConfig,
    /// The last metric row, if any step was trained.
    pub last: Option<MetricRow>,
    /// The lowest value each metric reached.
    pub lowest: Vec<(String, f64)>,
}

impl RunSummary {
    pub fn last_value(&self, metric: &str) -> Option<f64> {
        self.last.as_ref()?.get(metric)
    }

    pub fn lowest_value(&self, metric: &str) -> Option<f64> {
        self.lowest.iter().find(|(name, _)| name == metric).map(|(_, v)| *v)
    }
}

/// The lowest value of each metric over `rows`, in the order metrics first appear.
fn lowest_values(rows: &[MetricRow]) -> Vec<(String, f64)> {
    let mut lowest: Vec<(String, f64)> = Vec::new();
    for (name, value) in rows.iter().flat_map(|r| &r.values) {
        match lowest.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = v.min(*value),
            None => lowest.push((name.clone(), *value)),
        }
    }
    lowest
}

/// Every run directly under `root`, newest first. Folders that are not runs are skipped; a run whose files
/// cannot be read is reported in the second list with the reason.
pub fn list_runs(root: &Path) -> (Vec<RunSummary>, Vec<String>) {
    let (mut runs, mut problems) = (Vec::new(), Vec::new());
    let Ok(entries) = fs::read_dir(root) else {
        return (runs, problems);
    };
    for dir in entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(CONFIG_FILE).exists())
    {
        let summary = RunDir::read_config(&dir).and_then(|config| {
            let meta = RunMeta::read(&dir).unwrap_or_else(|_| RunMeta::new(&dir_name(&dir)));
            // A queued run has no metrics file yet.
            let rows = match dir.join(METRICS_FILE).exists() {
                true => read_metrics(&dir)?,
                false => Vec::new(),
            };
            Ok(RunSummary {
                path: dir.clone(),
                meta,
                config,
                lowest: lowest_values(&rows),
                last: rows.last().cloned(),
            })
        });
        match summary {
            Ok(s) => runs.push(s),
            Err(message) => problems.push(message),
        }
    }
    runs.sort_by(|a, b| b.meta.created.cmp(&a.meta.created).then_with(|| a.path.cmp(&b.path)));
    (runs, problems)
}

/// Writes the directory of a run that waits for a training slot: its config and `run.toml` (status queued).
pub fn write_queued(dir: &Path, config: &RunConfig, tags: &[String]) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| io_error(dir, "create the run directory", e))?;
    write_config(dir, config)?;
    // A run queued again (started from the browser) keeps its name and tags.
    let mut meta = RunMeta::read(dir).unwrap_or_else(|_| RunMeta::new(&dir_name(dir)));
    meta.status = RunStatus::Queued;
    meta.tags.extend(
        tags.iter()
            .filter(|t| !meta.tags.contains(t))
            .cloned()
            .collect::<Vec<_>>(),
    );
    meta.write(dir)
}

/// Deletes a run directory with everything in it. Refuses a folder that is not a run.
pub fn delete_run(dir: &Path) -> Result<(), String> {
    if !dir.join(CONFIG_FILE).exists() {
        return Err(format!("{} is not a run directory (no {CONFIG_FILE})", dir.display()));
    }
    fs::remove_dir_all(dir).map_err(|e| io_error(dir, "delete", e))
}

/// The step in `steps` (ascending) nearest to `step`; the earlier one on a tie.
pub fn nearest_step(steps: &[u64], step: u64) -> Option<u64> {
    let after = steps.partition_point(|s| *s < step);
    let candidates = [after.checked_sub(1), Some(after)];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|i| steps.get(i).copied())
        .min_by_key(|s| s.abs_diff(step))
}

/// Flattens a config into `section.key = value` pairs.
pub fn flatten_config(config: &RunConfig) -> Vec<(String, String)> {
    let tree = toml::Table::try_from(config).expect("a RunConfig always serializes");
    let mut out = Vec::new();
    for (section, table) in &tree {
        if let Some(table) = table.as_table() {
            for (key, value) in table {
                out.push((
                    format!("{section}.{key}"),
                    value.to_string().trim_matches('"').to_string(),
                ));
            }
        }
    }
    out
}

/// For each config, the settings on which the configs do not all agree (what tells sibling runs apart).
pub fn config_differences(configs: &[&RunConfig]) -> Vec<Vec<(String, String)>> {
    let flat: Vec<HashMap<String, String>> = configs
        .iter()
        .map(|c| flatten_config(c).into_iter().collect())
        .collect();
    let mut keys: Vec<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    keys.sort();
    keys.dedup();
    let differing: Vec<&String> = keys
        .into_iter()
        .filter(|k| flat.iter().any(|f| f.get(*k) != flat[0].get(*k)))
        .collect();
    flat.iter()
        .map(|f| {
            differing
                .iter()
                .map(|k| ((*k).clone(), f.get(*k).cloned().unwrap_or_else(|| "-".into())))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_only_what_differs() {
        let a = RunConfig::default();
        let mut b = a.clone();
        b.optimizer.lr = 1e-3;
        let diffs = config_differences(&[&a, &b]);
        assert_eq!(diffs[0], vec![("optimizer.lr".to_string(), "0.0002".to_string())]);
        assert_eq!(diffs[1], vec![("optimizer.lr".to_string(), "0.001".to_string())]);
    }

    #[test]
    fn nearest_step_picks_the_closest_saved_step() {
        let steps = [100, 200, 400];
        assert_eq!(nearest_step(&steps, 0), Some(100));
        assert_eq!(nearest_step(&steps, 149), Some(100));
        assert_eq!(nearest_step(&steps, 150), Some(100));
        assert_eq!(nearest_step(&steps, 151), Some(200));
        assert_eq!(nearest_step(&steps, 390), Some(400));
        assert_eq!(nearest_step(&steps, 9000), Some(400));
        assert_eq!(nearest_step(&[], 5), None);
    }

    #[test]
    fn lowest_values_follow_each_metric() {
        let row = |step, a: f64, b: Option<f64>| MetricRow {
            step,
            epoch: 0.0,
            wall_s: 0.0,
            values: [Some(("a".to_string(), a)), b.map(|b| ("b".to_string(), b))]
                .into_iter()
                .flatten()
                .collect(),
        };
        let rows = [row(1, 3.0, None), row(2, 1.0, Some(5.0)), row(3, 2.0, Some(4.0))];
        assert_eq!(lowest_values(&rows), vec![("a".into(), 1.0), ("b".into(), 4.0)]);
    }

    #[test]
    fn rows_up_to_keeps_the_header_and_earlier_steps() {
        let csv = "step,epoch\n1,0\n2,0\n3,0\n";
        assert_eq!(rows_up_to(csv, 2), "step,epoch\n1,0\n2,0\n");
    }
}
