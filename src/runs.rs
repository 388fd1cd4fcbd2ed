//! Run directories on disk: `config.toml`, `metrics.csv`, `samples/` and `recon/` PNGs, and an atomically
//! written checkpoint.

use crate::config::RunConfig;
use crate::grid::ImageGrid;
use crate::train::MetricRow;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_FILE: &str = "metrics.csv";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Which grid a PNG holds; also its subfolder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// An open run directory that metrics, grids and checkpoints are written to as training goes.
pub struct RunDir {
    path: PathBuf,
    metrics: File,
    columns: Vec<String>,
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

impl RunDir {
    /// Starts a new run directory. Refuses one that already holds a run, so nothing is overwritten.
    pub fn create(path: &Path, config: &RunConfig, columns: &[&str]) -> Result<RunDir, String> {
        if path.join(METRICS_FILE).exists() {
            return Err(format!(
                "{} already holds a run; continue it with --resume or choose another --out",
                path.display()
            ));
        }
        fs::create_dir_all(path).map_err(|e| io_error(path, "create the run directory", e))?;
        let config_path = path.join(CONFIG_FILE);
        fs::write(&config_path, config.to_toml()).map_err(|e| io_error(&config_path, "write", e))?;
        let metrics_path = path.join(METRICS_FILE);
        let mut metrics = File::create(&metrics_path).map_err(|e| io_error(&metrics_path, "create", e))?;
        let header = ["step", "epoch", "wall_s"]
            .iter()
            .chain(columns)
            .copied()
            .collect::<Vec<_>>()
            .join(",");
        writeln!(metrics, "{header}").map_err(|e| io_error(&metrics_path, "write", e))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            metrics,
            columns: columns.iter().map(|c| c.to_string()).collect(),
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
        let file = File::open(&metrics_path).map_err(|e| io_error(&metrics_path, "read", e))?;
        let mut kept = Vec::new();
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| io_error(&metrics_path, "read", e))?;
            let row_step = line.split(',').next().and_then(|s| s.parse::<u64>().ok());
            if i == 0 || row_step.is_some_and(|s| s <= step) {
                kept.push(line);
            }
        }
        let expected = ["step", "epoch", "wall_s"]
            .iter()
            .chain(columns)
            .copied()
            .collect::<Vec<_>>()
            .join(",");
        if kept.first() != Some(&expected) {
            return Err(format!(
                "{}: header differs from this run's metrics ({expected})",
                metrics_path.display()
            ));
        }
        fs::write(&metrics_path, kept.join("\n") + "\n").map_err(|e| io_error(&metrics_path, "rewrite", e))?;
        let metrics = OpenOptions::new()
            .append(true)
            .open(&metrics_path)
            .map_err(|e| io_error(&metrics_path, "open", e))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            metrics,
            columns: columns.iter().map(|c| c.to_string()).collect(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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

    pub fn grid_path(&self, kind: GridKind, step: u64) -> PathBuf {
        self.path.join(kind.folder()).join(format!("step-{step:06}.png"))
    }

    pub fn save_grid(&self, kind: GridKind, step: u64, grid: &ImageGrid) -> Result<PathBuf, String> {
        let path = self.grid_path(kind, step);
        let folder = path.parent().expect("grid paths have a folder");
        fs::create_dir_all(folder).map_err(|e| io_error(folder, "create", e))?;
        grid.write_png(&path)?;
        Ok(path)
    }

    /// Writes the checkpoint to a temporary file and renames it over the old one, so a crash mid-write
    /// never leaves a broken checkpoint.
    pub fn save_checkpoint(&self, tensors: &HashMap<String, Tensor>) -> Result<PathBuf, String> {
        let path = self.path.join(CHECKPOINT_FILE);
        let temp = self.path.join(format!("{CHECKPOINT_FILE}.tmp"));
        candle_core::safetensors::save(tensors, &temp)
            .map_err(|e| format!("{}: cannot write checkpoint: {e}", temp.display()))?;
        fs::rename(&temp, &path).map_err(|e| io_error(&path, "replace the checkpoint", e))?;
        Ok(path)
    }

    pub fn load_checkpoint(path: &Path) -> Result<HashMap<String, Tensor>, String> {
        let file = path.join(CHECKPOINT_FILE);
        candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| format!("{}: cannot read checkpoint: {e}", file.display()))
    }
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
