//! Run directories on disk: `config.toml` (the settings in force now), `changes.csv` (every setting changed
//! while the run trained, so the settings of any step can be recovered), `run.toml` (name, status, lineage,
//! tags), `metrics.csv`, `events.csv` (what the health checks did), `samples/` and `recon/` PNGs, and
//! atomically written checkpoints in `checkpoints/`.

use crate::config::RunConfig;
use crate::fsio::{self, io_error};
use crate::grid::ImageGrid;
use crate::train::health::HealthEvent;
use crate::train::MetricRow;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const CONFIG_FILE: &str = "config.toml";
pub const META_FILE: &str = "run.toml";
pub const METRICS_FILE: &str = "metrics.csv";
/// What the health checks found and did (warned, paused, rolled back), one row per event.
pub const EVENTS_FILE: &str = "events.csv";
pub const CHECKPOINT_DIR: &str = "checkpoints";
/// Settings changed while the run trained (live edits, health remedies), one row per setting.
pub const CHANGES_FILE: &str = "changes.csv";

/// One setting changed at `step`: it governs the steps after it. Values are TOML literals (strings quoted),
/// so a change can be undone exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingChange {
    pub step: u64,
    pub key: String,
    pub old: String,
    pub new: String,
}

impl SettingChange {
    pub const COLUMNS: [&'static str; 4] = ["step", "key", "old", "new"];

    fn cells(&self) -> Vec<String> {
        vec![
            self.step.to_string(),
            self.key.clone(),
            self.old.clone(),
            self.new.clone(),
        ]
    }

    /// `optimizer.lr 0.0002 to 0.0005`, for tooltips and stderr.
    pub fn describe(&self) -> String {
        let plain = |v: &str| v.trim_matches('"').to_string();
        format!("{} {} to {}", self.key, plain(&self.old), plain(&self.new))
    }
}

/// The settings that differ between `old` and `new`, as changes made at `step`.
pub fn setting_changes(step: u64, old: &RunConfig, new: &RunConfig) -> Vec<SettingChange> {
    let before: HashMap<String, String> = config_literals(old).into_iter().collect();
    config_literals(new)
        .into_iter()
        .filter_map(|(key, value)| {
            let old = before.get(&key).cloned().unwrap_or_default();
            (old != value).then_some(SettingChange {
                step,
                key,
                old,
                new: value,
            })
        })
        .collect()
}

/// `config` with `changes` (in the order they were made) undone: the settings in force before them.
pub fn undo_changes(config: &RunConfig, changes: &[SettingChange]) -> Result<RunConfig, String> {
    let olds: Vec<(&str, &str)> = changes.iter().rev().map(|c| (c.key.as_str(), c.old.as_str())).collect();
    let mut before = config.clone();
    before
        .set_all(&olds)
        .map_err(|e| format!("cannot undo the recorded setting changes: {e}"))?;
    Ok(before)
}

/// The setting changes recorded in `dir`, oldest first; a line that cannot be read (torn by a power cut) is
/// passed over.
pub fn read_changes(dir: &Path) -> Vec<SettingChange> {
    let Ok(mut reader) = csv::Reader::from_path(dir.join(CHANGES_FILE)) else {
        return Vec::new();
    };
    reader
        .records()
        .filter_map(|record| {
            let record = record.ok()?;
            Some(SettingChange {
                step: record.get(0)?.parse().ok()?,
                key: record.get(1)?.to_string(),
                old: record.get(2)?.to_string(),
                new: record.get(3)?.to_string(),
            })
        })
        .collect()
}

/// The settings the run in `dir` had in force at `step` (its `config.toml` with later changes undone):
/// what Continue from a checkpoint of that step, or a fork there, trains with.
pub fn config_at(dir: &Path, step: u64) -> Result<RunConfig, String> {
    let later: Vec<SettingChange> = read_changes(dir).into_iter().filter(|c| c.step > step).collect();
    undo_changes(&RunDir::read_config(dir)?, &later).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The settings a run continues with: those in force at its newest checkpoint (its current ones when it has
/// none and starts over).
pub fn config_to_continue(dir: &Path) -> Result<RunConfig, String> {
    match checkpoint_steps(dir).last() {
        Some(step) => config_at(dir, *step),
        None => RunDir::read_config(dir),
    }
}

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

    /// Its label for a run no worker has open: one left running or paused by an app that was closed or
    /// killed is not running now.
    pub fn closed_label(self) -> &'static str {
        match self {
            RunStatus::Running | RunStatus::Paused => "interrupted",
            other => other.label(),
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

    /// Writes `run.toml` crash-safely, so a reader never sees half of it.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let text = toml::to_string_pretty(self).expect("run metadata always serializes");
        fsio::write(&dir.join(META_FILE), text.as_bytes())
    }

    /// Reads `run.toml` (a fresh one when it is missing or unreadable), changes it and writes it back, as one
    /// step: the training thread (status, progress) and the run list (name, tags) both edit the file, and
    /// neither may lose the other's change.
    pub fn update<T>(dir: &Path, edit: impl FnOnce(&mut RunMeta) -> T) -> Result<T, String> {
        static RUN_META: Mutex<()> = Mutex::new(());
        let _held = RUN_META.lock().unwrap_or_else(|e| e.into_inner());
        let mut meta = RunMeta::read(dir).unwrap_or_else(|_| RunMeta::new(&dir_name(dir)));
        let result = edit(&mut meta);
        meta.write(dir)?;
        Ok(result)
    }
}

/// An open run directory that metrics, grids and checkpoints are written to as training goes.
pub struct RunDir {
    path: PathBuf,
    metrics: File,
    /// Length of `metrics.csv` up to its last whole row.
    metrics_len: u64,
    /// Rows not yet written: the newest, until `ROWS_WRITTEN_EVERY` has passed since the last write, and any
    /// that met a full disk or a file that could not be written; they go out first next time.
    unwritten: Vec<u8>,
    /// When rows last went to disk; `None` before the first.
    written_at: Option<Instant>,
    columns: Vec<String>,
}

/// How often a training run's metric rows go to disk: a write per row took a fast model's run (a VAE step is
/// under 2 ms) 1 % of its time, and the file is read by people and the run list, not by the run itself. The
/// worker writes them at once before each checkpoint and whenever the run stops training.
const ROWS_WRITTEN_EVERY: Duration = Duration::from_millis(200);

/// The CSV header of a run with these metric columns.
fn metrics_header(columns: &[&str]) -> Vec<String> {
    ["step", "epoch", "wall_s"]
        .iter()
        .chain(columns)
        .map(|c| c.to_string())
        .collect()
}

/// Writes a run's `config.toml`.
pub fn write_config(dir: &Path, config: &RunConfig) -> Result<(), String> {
    fsio::write(&dir.join(CONFIG_FILE), config.to_toml().as_bytes())
}

/// A CSV document (header and rows; or one row and no more) as bytes, for a crash-safe write.
pub fn csv_bytes<R: AsRef<[u8]>>(
    header: impl IntoIterator<Item = R>,
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let written = writer
        .write_record(header)
        .and_then(|()| rows.into_iter().try_for_each(|row| writer.write_record(&row)));
    written.expect("CSV into memory cannot fail");
    writer.into_inner().expect("CSV into memory cannot fail")
}

/// Appends rows to a CSV file, made with its header when it does not exist yet.
fn append_rows(path: &Path, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Result<(), String> {
    use std::io::Write;
    let fresh = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, "open", e))?;
    let mut bytes = match fresh {
        true => csv_bytes(header, std::iter::empty::<Vec<String>>()),
        false => Vec::new(),
    };
    for row in rows {
        bytes.extend(csv_bytes(row, std::iter::empty::<Vec<String>>()));
    }
    file.write_all(&bytes).map_err(|e| io_error(path, "append to", e))
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
        let no_rows: [Vec<String>; 0] = [];
        fsio::write(&metrics_path, &csv_bytes(metrics_header(columns), no_rows))?;
        // A run queued in the workbench already has its name and tags.
        RunDir::open_for_rows(path, columns)
    }

    /// Reads the config of an existing run.
    pub fn read_config(path: &Path) -> Result<RunConfig, String> {
        let config_path = path.join(CONFIG_FILE);
        let text = fs::read_to_string(&config_path).map_err(|e| io_error(&config_path, "read the run's config", e))?;
        RunConfig::from_toml(&text).map_err(|e| format!("{}: {e}", config_path.display()))
    }

    /// Reopens a run to continue from its checkpoint at `step`: metric rows written after that step (since
    /// the last checkpoint) are dropped so the file has each step once.
    /// A torn last row (the power went while it was written) is dropped too. The file keeps its columns:
    /// a run written by an earlier version goes on without the metrics added since.
    pub fn reopen(path: &Path, step: u64) -> Result<RunDir, String> {
        let metrics_path = path.join(METRICS_FILE);
        let table = MetricsTable::read(&metrics_path)?;
        if table.header.get(..3) != Some(&metrics_header(&[])[..]) {
            return Err(format!(
                "{}: the header does not start with step,epoch,wall_s",
                metrics_path.display()
            ));
        }
        fsio::write(&metrics_path, &table.bytes_up_to(step))?;
        // Settings changed after `step` are undone with the rows: the run goes on with those of its step.
        let changes = read_changes(path);
        let (kept, later): (Vec<SettingChange>, Vec<SettingChange>) = changes.into_iter().partition(|c| c.step <= step);
        if !later.is_empty() {
            let config =
                undo_changes(&RunDir::read_config(path)?, &later).map_err(|e| format!("{}: {e}", path.display()))?;
            let rows = kept.iter().map(SettingChange::cells);
            fsio::write(&path.join(CHANGES_FILE), &csv_bytes(SettingChange::COLUMNS, rows))?;
            write_config(path, &config)?;
        }
        let columns: Vec<&str> = table.header[3..].iter().map(String::as_str).collect();
        // Runs written before run.toml existed get one now.
        RunDir::open_for_rows(path, &columns)
    }

    /// The run went back to `step`: drops the metric rows, checkpoints and grids after it (so a resume or
    /// the filmstrip never meets the abandoned steps) and goes on appending after it.
    pub fn rewind(&mut self, step: u64) -> Result<(), String> {
        // Rows still in memory are written first, so that the reopening below cuts those after `step` too.
        self.write_rows()?;
        let dir = self.path.clone();
        let mut files: Vec<PathBuf> = checkpoint_steps(&dir)
            .into_iter()
            .filter(|s| *s > step)
            .map(|s| checkpoint_path(&dir, s))
            .collect();
        for kind in [GridKind::Samples, GridKind::Reconstructions] {
            files.extend(
                grid_steps(&dir, kind)
                    .into_iter()
                    .filter(|s| *s > step)
                    .map(|s| grid_path(&dir, kind, s)),
            );
        }
        for file in files {
            fs::remove_file(&file).map_err(|e| io_error(&file, "remove", e))?;
        }
        *self = RunDir::reopen(&self.path, step)?;
        Ok(())
    }

    /// Appends one health event to `events.csv` (made with its header on the first).
    pub fn record_event(&self, event: &HealthEvent) -> Result<(), String> {
        append_rows(&self.path.join(EVENTS_FILE), &HealthEvent::COLUMNS, [event.cells()])
    }

    /// Records settings changed while the run trains: appends them to `changes.csv` and writes `config`
    /// (the settings now in force) as the run's `config.toml`.
    pub fn record_changes(&self, changes: &[SettingChange], config: &RunConfig) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        append_rows(
            &self.path.join(CHANGES_FILE),
            &SettingChange::COLUMNS,
            changes.iter().map(SettingChange::cells),
        )?;
        write_config(&self.path, config)
    }

    /// The run in `path`, its `run.toml` made if missing and `metrics.csv` (already written) open for rows.
    fn open_for_rows(path: &Path, columns: &[&str]) -> Result<RunDir, String> {
        RunMeta::update(path, |_| ())?;
        let metrics_path = path.join(METRICS_FILE);
        let metrics = OpenOptions::new()
            .append(true)
            .open(&metrics_path)
            .map_err(|e| io_error(&metrics_path, "open", e))?;
        let metrics_len = metrics
            .metadata()
            .map_err(|e| io_error(&metrics_path, "open", e))?
            .len();
        Ok(RunDir {
            path: path.to_path_buf(),
            metrics,
            metrics_len,
            unwritten: Vec::new(),
            written_at: None,
            columns: columns.iter().map(|c| c.to_string()).collect(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the run's status and progress in `run.toml`.
    pub fn set_status(&mut self, status: RunStatus, steps_done: u64) -> Result<(), String> {
        RunMeta::update(&self.path, |meta| {
            meta.status = status;
            meta.steps_done = steps_done;
        })
    }

    /// Appends one row (after any rows not yet written), so the file is readable while training runs: rows
    /// go to disk at most every `ROWS_WRITTEN_EVERY` (the first at once), and all of them on `write_rows`.
    pub fn append(&mut self, row: &MetricRow) -> Result<(), String> {
        use std::io::Write;
        // Numbers (and empty cells) need no CSV quoting: the line is written as is, without a CSV writer's
        // buffer and a string per cell on every step.
        let line = &mut self.unwritten;
        let _ = write!(line, "{},{},{}", row.step, row.epoch, row.wall_s);
        for column in &self.columns {
            line.push(b',');
            if let Some(value) = row.get(column) {
                let _ = write!(line, "{value}");
            }
        }
        line.push(b'\n');
        match self.written_at.is_some_and(|at| at.elapsed() < ROWS_WRITTEN_EVERY) {
            true => Ok(()),
            false => self.write_rows(),
        }
    }

    /// Writes the rows appended since the last write. On an error nothing is lost: the file is cut back to
    /// its last whole row and the rows wait for the next call.
    pub fn write_rows(&mut self) -> Result<(), String> {
        use std::io::Write;
        if self.unwritten.is_empty() {
            return Ok(());
        }
        match self.metrics.write_all(&self.unwritten) {
            Ok(()) => {
                self.metrics_len += self.unwritten.len() as u64;
                self.unwritten.clear();
                self.written_at = Some(Instant::now());
                Ok(())
            }
            Err(e) => {
                // A part-written row would join the next one.
                let _ = self.metrics.set_len(self.metrics_len);
                Err(io_error(&self.path.join(METRICS_FILE), "append to", e))
            }
        }
    }

    /// Where this run's grids and checkpoints go, for a thread that writes them.
    pub fn files(&self) -> RunFiles {
        RunFiles {
            path: self.path.clone(),
        }
    }
}

impl Drop for RunDir {
    /// The rows still in memory go to disk (the worker writes them itself where a failure matters).
    fn drop(&mut self) {
        let _ = self.write_rows();
    }
}

/// A run directory's grids and checkpoints, apart from its metrics file: what the thread that writes them
/// while the run trains holds.
#[derive(Clone, Debug)]
pub struct RunFiles {
    path: PathBuf,
}

impl RunFiles {
    pub fn save_grid(&self, kind: GridKind, step: u64, grid: &ImageGrid) -> Result<PathBuf, String> {
        let path = grid_path(&self.path, kind, step);
        let folder = path.parent().expect("grid paths have a folder");
        fs::create_dir_all(folder).map_err(|e| io_error(folder, "create", e))?;
        grid.write_png(&path)?;
        Ok(path)
    }

    /// Writes the checkpoint of `step` crash-safely: a crash mid-write never leaves a broken checkpoint.
    pub fn save_checkpoint(&self, step: u64, tensors: &HashMap<String, Tensor>) -> Result<PathBuf, String> {
        let path = checkpoint_path(&self.path, step);
        let folder = path.parent().expect("checkpoint paths have a folder");
        fs::create_dir_all(folder).map_err(|e| io_error(folder, "create", e))?;
        fsio::write_tensors(&path, tensors)?;
        Ok(path)
    }
}

/// A `metrics.csv` as read: its header and the rows that parsed, as text cells with their line numbers.
struct MetricsTable {
    header: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
    /// Line numbers of rows that did not parse (a torn last line after a power cut, say).
    skipped: Vec<u64>,
}

impl MetricsTable {
    fn read(path: &Path) -> Result<MetricsTable, String> {
        let file = File::open(path).map_err(|e| io_error(path, "read", e))?;
        MetricsTable::parse(std::io::BufReader::new(file), path)
    }

    /// Parses a metrics CSV from `input`; `path` names it in messages. Rows are written whole with their line
    /// ending, so a last line without one was cut off mid-write and is passed over.
    fn parse(mut input: impl std::io::Read, path: &Path) -> Result<MetricsTable, String> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(|e| io_error(path, "read", e))?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let torn = whole < bytes.len() && whole > 0;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(&bytes[..if torn { whole } else { bytes.len() }]);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| io_error(path, "read", e))?
            .iter()
            .map(str::to_string)
            .collect();
        if header.len() < 3 || header[..3] != ["step", "epoch", "wall_s"] {
            return Err(format!(
                "{}: not a metrics file (its header is not step,epoch,wall_s,…)",
                path.display()
            ));
        }
        let (mut rows, mut skipped) = (Vec::new(), Vec::new());
        for (index, record) in reader.records().enumerate() {
            let line = index as u64 + 2;
            match record {
                Ok(r) if r.len() == header.len() && r[0].parse::<u64>().is_ok() => {
                    rows.push((line, r.iter().map(str::to_string).collect()))
                }
                Ok(_) => skipped.push(line),
                Err(e) if e.is_io_error() => return Err(io_error(path, "read", e)),
                Err(_) => skipped.push(line),
            }
        }
        if torn {
            skipped.push(bytes[..whole].iter().filter(|b| **b == b'\n').count() as u64 + 1);
        }
        Ok(MetricsTable { header, rows, skipped })
    }

    /// The file again with only the rows up to `step`.
    fn bytes_up_to(&self, step: u64) -> Vec<u8> {
        let kept = self
            .rows
            .iter()
            .filter(|(_, row)| row[0].parse::<u64>().is_ok_and(|s| s <= step))
            .map(|(_, row)| row.clone());
        csv_bytes(&self.header, kept)
    }
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

/// The health events of the run in `dir`, oldest first; none when it has had none. A line that cannot be
/// read (torn by a power cut) is passed over.
pub fn read_events(dir: &Path) -> Vec<HealthEvent> {
    let Ok(mut reader) = csv::Reader::from_path(dir.join(EVENTS_FILE)) else {
        return Vec::new();
    };
    reader
        .records()
        .filter_map(|record| HealthEvent::from_cells(&record.ok()?))
        .collect()
}

/// Loads the checkpoint of `step`.
pub fn load_checkpoint(dir: &Path, step: u64) -> Result<HashMap<String, Tensor>, String> {
    let file = checkpoint_path(dir, step);
    candle_core::safetensors::load(&file, &Device::Cpu)
        .map_err(|e| format!("{}: cannot read checkpoint: {e}", file.display()))
}

/// Continues from the newest checkpoint that `restore` accepts: a newest one that is corrupt (or does not
/// fit the model) is passed over for the one before it. Returns the step restored and a note on every
/// checkpoint passed over.
pub fn restore_newest(
    dir: &Path,
    mut restore: impl FnMut(&HashMap<String, Tensor>) -> Result<(), String>,
) -> Result<(u64, Vec<String>), String> {
    let mut passed_over = Vec::new();
    for step in checkpoint_steps(dir).into_iter().rev() {
        match load_checkpoint(dir, step).and_then(|tensors| restore(&tensors)) {
            Ok(()) => return Ok((step, passed_over)),
            Err(message) => passed_over.push(format!("{message}; trying the checkpoint before it")),
        }
    }
    let reason = match passed_over.is_empty() {
        true => "the run has no checkpoint to continue from".to_string(),
        false => format!("no checkpoint could be read ({})", passed_over.join("; ")),
    };
    Err(format!("{}: {reason}", dir.display()))
}

/// Makes `child` a new run that continues `parent` from its checkpoint at `step` with `config` (which may
/// differ from the parent's only in settings that keep shapes). The child starts with the parent's metric
/// rows up to `step`, so its curve continues the parent's; the parent is left as it was.
pub fn fork(parent: &Path, step: u64, child: &Path, config: &RunConfig) -> Result<(), String> {
    let parent_config = config_at(parent, step)?;
    if let Some(key) = parent_config.restart_needed_for(config) {
        return Err(format!("a fork keeps the parent's shapes and data, but {key} differs"));
    }
    let source = checkpoint_path(parent, step);
    if !source.exists() {
        return Err(format!("{}: no checkpoint at step {step}", parent.display()));
    }
    let metrics = MetricsTable::read(&parent.join(METRICS_FILE))?;
    // The child appears whole or not at all.
    fsio::create_dir_with(child, |made| {
        fs::create_dir_all(made.join(CHECKPOINT_DIR)).map_err(|e| io_error(child, "create", e))?;
        fs::copy(&source, checkpoint_path(made, step)).map_err(|e| io_error(&source, "copy", e))?;
        write_config(made, config)?;
        fsio::write(&made.join(METRICS_FILE), &metrics.bytes_up_to(step))?;
        // The child's record of settings: the parent's up to the fork, then the fork's own edits.
        let mut changes: Vec<SettingChange> = read_changes(parent).into_iter().filter(|c| c.step <= step).collect();
        changes.extend(setting_changes(step, &parent_config, config));
        if !changes.is_empty() {
            let rows = changes.iter().map(SettingChange::cells);
            fsio::write(&made.join(CHANGES_FILE), &csv_bytes(SettingChange::COLUMNS, rows))?;
        }
        let meta = RunMeta {
            parent: Some(parent.to_path_buf()),
            fork_step: Some(step),
            steps_done: step,
            status: RunStatus::Paused,
            ..RunMeta::new(&dir_name(child))
        };
        meta.write(made)
    })
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
    fsio::replace_with(out, |temp| {
        let file = File::create(temp).map_err(|e| io_error(out, "create", e))?;
        let mut writer = std::io::BufWriter::new(file);
        let mut encoder = GifEncoder::new_with_speed(&mut writer, 10);
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
        // The encoder writes the GIF's trailer when dropped.
        drop(encoder);
        std::io::Write::flush(&mut writer).map_err(|e| io_error(out, "write", e))
    })?;
    Ok(steps.len())
}

/// Copies a run's saved grids into `out` as a numbered PNG sequence (`frame-0000.png`, ...).
pub fn export_png_sequence(dir: &Path, kind: GridKind, out: &Path) -> Result<usize, String> {
    fs::create_dir_all(out).map_err(|e| io_error(out, "create", e))?;
    let steps = grid_steps(dir, kind);
    for (i, &step) in steps.iter().enumerate() {
        let from = grid_path(dir, kind, step);
        let bytes = fs::read(&from).map_err(|e| io_error(&from, "read", e))?;
        fsio::write(&out.join(format!("frame-{i:04}.png")), &bytes)?;
    }
    Ok(steps.len())
}

/// A run's metric rows as read back, and the lines that were not rows.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub rows: Vec<MetricRow>,
    /// A note naming the file and the lines passed over, when some were.
    pub warning: Option<String>,
}

/// Reads a run's `metrics.csv` back into rows (empty cells are metrics not measured at that step). Lines that
/// are not rows (a torn last line after a power cut) are passed over and named in the warning; only a file
/// that cannot be read at all, or is not a metrics file, is an error.
pub fn read_metrics(dir: &Path) -> Result<Metrics, String> {
    let path = dir.join(METRICS_FILE);
    metrics_from(MetricsTable::read(&path)?, &path)
}

/// Reads metrics CSV bytes as [`read_metrics`] reads a run's file: the entry point of the fuzzing harness.
pub fn parse_metrics(bytes: &[u8]) -> Result<Metrics, String> {
    let path = Path::new(METRICS_FILE);
    metrics_from(MetricsTable::parse(bytes, path)?, path)
}

fn metrics_from(table: MetricsTable, path: &Path) -> Result<Metrics, String> {
    let mut skipped = table.skipped;
    let mut rows = Vec::with_capacity(table.rows.len());
    for (line, cells) in &table.rows {
        let number = |cell: &str| cell.parse::<f64>().ok();
        let values: Option<Vec<(String, f64)>> = table.header[3..]
            .iter()
            .zip(&cells[3..])
            .filter(|(_, cell)| !cell.is_empty())
            .map(|(name, cell)| number(cell).map(|v| (name.clone(), v)))
            .collect();
        match (cells[0].parse(), number(&cells[1]), number(&cells[2]), values) {
            (Ok(step), Some(epoch), Some(wall_s), Some(values)) => rows.push(MetricRow {
                step,
                epoch,
                wall_s,
                values,
            }),
            _ => skipped.push(*line),
        }
    }
    skipped.sort_unstable();
    let warning = (!skipped.is_empty()).then(|| {
        let lines: Vec<String> = skipped.iter().map(u64::to_string).collect();
        format!(
            "{}: passed over line {} (not a complete metrics row)",
            path.display(),
            lines.join(", ")
        )
    });
    Ok(Metrics { rows, warning })
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
    /// The last row the quality metric scored.
    pub scored: Option<MetricRow>,
    /// Size of `metrics.csv` when it was read (a different size means new rows).
    pub metrics_len: u64,
    /// The steps it has checkpoints of, ascending.
    pub checkpoints: Vec<u64>,
}

/// What the files of a run directory looked like when it was read: their sizes and change times. A run whose
/// stamp is unchanged need not be read again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunStamp(Vec<Option<(u64, std::time::SystemTime)>>);

impl RunStamp {
    pub fn of(dir: &Path) -> RunStamp {
        let files = [CONFIG_FILE, META_FILE, METRICS_FILE, CHECKPOINT_DIR];
        RunStamp(
            files
                .iter()
                .map(|f| {
                    fs::metadata(dir.join(f))
                        .ok()
                        .and_then(|m| Some((m.len(), m.modified().ok()?)))
                })
                .collect(),
        )
    }
}

impl RunSummary {
    /// The step of the checkpoint the run opens at, or why it cannot open without losing anything: its
    /// metric rows after its newest checkpoint would go (a run killed between checkpoints).
    pub fn step_to_open(&self) -> Result<u64, String> {
        let Some(&newest) = self.checkpoints.last() else {
            return Err("it has no checkpoint to load its model from".into());
        };
        match self.rows_past_checkpoints() {
            Some((newest, last)) => Err(format!(
                "its newest checkpoint is of step {newest}, its last metric row of step {last}: opening it would drop \
                 the rows after step {newest}, as Continue does. Fork from that checkpoint (Health tab) to keep them"
            )),
            None => Ok(newest),
        }
    }

    /// Its newest checkpoint's step and its last row's, where rows go past its newest checkpoint (a run
    /// killed between checkpoints): a run continued from there drops those rows.
    pub fn rows_past_checkpoints(&self) -> Option<(u64, u64)> {
        let newest = *self.checkpoints.last()?;
        let last = self.last.as_ref()?.step;
        (last > newest).then_some((newest, last))
    }

    pub fn last_value(&self, metric: &str) -> Option<f64> {
        self.last.as_ref()?.get(metric)
    }

    pub fn lowest_value(&self, metric: &str) -> Option<f64> {
        self.lowest.iter().find(|(name, _)| name == metric).map(|(_, v)| *v)
    }

    /// The last quality score in words (`fd 41.2, 72 % confident, 10 classes`).
    pub fn quality(&self) -> Option<String> {
        let row = self.scored.as_ref()?;
        crate::quality::describe(|name| row.get(name))
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

/// The run directories directly under `root` (folders with a `config.toml`).
pub fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(CONFIG_FILE).exists())
        .collect()
}

/// Reads one run's summary; the second value is a warning about lines of its metrics passed over.
pub fn read_summary(dir: &Path) -> Result<(RunSummary, Option<String>), String> {
    let config = RunDir::read_config(dir)?;
    let meta = RunMeta::read(dir).unwrap_or_else(|_| RunMeta::new(&dir_name(dir)));
    // A queued run has no metrics file yet.
    let metrics_len = fs::metadata(dir.join(METRICS_FILE)).ok().map(|m| m.len());
    let metrics = match metrics_len {
        Some(_) => read_metrics(dir)?,
        None => Metrics::default(),
    };
    let summary = RunSummary {
        path: dir.to_path_buf(),
        meta,
        config,
        lowest: lowest_values(&metrics.rows),
        last: metrics.rows.last().cloned(),
        scored: metrics
            .rows
            .iter()
            .rev()
            .find(|r| r.get(crate::quality::FD).is_some())
            .cloned(),
        metrics_len: metrics_len.unwrap_or(0),
        checkpoints: checkpoint_steps(dir),
    };
    Ok((summary, metrics.warning))
}

/// Orders runs newest first.
pub fn sort_newest_first(runs: &mut [RunSummary]) {
    runs.sort_by(|a, b| b.meta.created.cmp(&a.meta.created).then_with(|| a.path.cmp(&b.path)));
}

/// Every run directly under `root`, newest first. Folders that are not runs are skipped; a run whose files
/// cannot be read is reported in the second list with the reason.
pub fn list_runs(root: &Path) -> (Vec<RunSummary>, Vec<String>) {
    let (mut runs, mut problems) = (Vec::new(), Vec::new());
    for dir in run_dirs(root) {
        match read_summary(&dir) {
            Ok((summary, warning)) => {
                runs.push(summary);
                problems.extend(warning);
            }
            Err(message) => problems.push(message),
        }
    }
    sort_newest_first(&mut runs);
    (runs, problems)
}

/// Writes the directory of a run that waits for a training slot: its config and `run.toml` (status queued).
pub fn write_queued(dir: &Path, config: &RunConfig, tags: &[String]) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| io_error(dir, "create the run directory", e))?;
    write_config(dir, config)?;
    // A run queued again (started from the browser) keeps its name and tags.
    RunMeta::update(dir, |meta| {
        meta.status = RunStatus::Queued;
        for tag in tags {
            if !meta.tags.contains(tag) {
                meta.tags.push(tag.clone());
            }
        }
    })
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

/// Flattens a config into `section.key = value` pairs, values as shown to people (strings unquoted).
pub fn flatten_config(config: &RunConfig) -> Vec<(String, String)> {
    let mut out = config_literals(config);
    for (_, value) in &mut out {
        *value = value.trim_matches('"').to_string();
    }
    out
}

/// Flattens a config into `section.key` and its value as a TOML literal.
fn config_literals(config: &RunConfig) -> Vec<(String, String)> {
    let tree = toml::Table::try_from(config).expect("a RunConfig always serializes");
    let mut out = Vec::new();
    for (section, table) in &tree {
        if let Some(table) = table.as_table() {
            out.extend(
                table
                    .iter()
                    .map(|(key, value)| (format!("{section}.{key}"), value.to_string())),
            );
        }
    }
    out
}

/// Settings that say how long a run goes and how it is watched (budgets, intervals, its pace, the quality
/// metric, the health checks' thresholds and snapshots), not how it learns: they do not tell runs apart for a
/// comparison. What a health check does on trouble (`health.on_*`: roll back, pause) does.
pub fn is_bookkeeping(key: &str) -> bool {
    key.starts_with("quality.")
        || (key.starts_with("health.") && !key.starts_with("health.on_"))
        || matches!(
            key,
            "train.steps"
                | "train.sample_every"
                | "train.eval_every"
                | "train.checkpoint_every"
                | "train.grid_size"
                | "train.max_steps_per_s"
        )
}

/// For each config, the settings that affect learning on which the configs do not all agree (what tells
/// sibling runs apart).
pub fn learning_differences(configs: &[&RunConfig]) -> Vec<Vec<(String, String)>> {
    let mut differences = config_differences(configs);
    for run in &mut differences {
        run.retain(|(key, _)| !is_bookkeeping(key));
    }
    differences
}

/// For each config, the settings on which the configs do not all agree.
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
    fn a_run_opens_at_its_newest_checkpoint_only_when_no_row_comes_after_it() {
        let summary = |checkpoints: Vec<u64>, last: u64| RunSummary {
            path: PathBuf::from("runs/a"),
            meta: RunMeta::new("a"),
            config: RunConfig::default(),
            last: Some(MetricRow {
                step: last,
                epoch: 0.0,
                wall_s: 0.0,
                values: Vec::new(),
            }),
            lowest: Vec::new(),
            scored: None,
            metrics_len: 0,
            checkpoints,
        };
        assert_eq!(summary(vec![10, 20], 20).step_to_open(), Ok(20));
        // Killed between checkpoints: its rows after step 20 would go.
        let killed = summary(vec![10, 20], 27).step_to_open().unwrap_err();
        assert!(killed.contains("step 20") && killed.contains("step 27"), "{killed}");
        assert!(summary(Vec::new(), 5)
            .step_to_open()
            .unwrap_err()
            .contains("no checkpoint"));
    }

    #[test]
    fn differences_name_only_what_differs() {
        let a = RunConfig::default();
        let mut b = a.clone();
        b.optimizer.lr = 1e-3;
        let diffs = config_differences(&[&a, &b]);
        assert_eq!(diffs[0], vec![("optimizer.lr".to_string(), "0.0002".to_string())]);
        assert_eq!(diffs[1], vec![("optimizer.lr".to_string(), "0.001".to_string())]);
        // Budgets and intervals differ too, but only the learning rate tells the runs apart for learning.
        // So do the health checks' thresholds; what a check does on trouble (rolling back) changes learning.
        b.train.steps += 100;
        b.train.checkpoint_every += 5;
        b.health.diversity_below = 0.99;
        b.health.on_mode_collapse = crate::config::OnTrouble::Rollback;
        assert_eq!(config_differences(&[&a, &b])[1].len(), 5);
        assert_eq!(
            learning_differences(&[&a, &b])[1],
            vec![
                ("health.on_mode_collapse".to_string(), "rollback".to_string()),
                ("optimizer.lr".to_string(), "0.001".to_string())
            ]
        );
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
    fn a_torn_last_line_is_passed_over_with_a_warning_and_dropped_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "step,epoch,wall_s,loss\n1,0,0.1,0.5\n2,0\n3,0,0.3,0.4\n4,0,0.4,0.";
        fs::write(dir.path().join(METRICS_FILE), csv).unwrap();
        let metrics = read_metrics(dir.path()).unwrap();
        assert_eq!(metrics.rows.iter().map(|r| r.step).collect::<Vec<_>>(), [1, 3]);
        assert!(metrics.warning.unwrap().contains("line 3, 5"));
        let torn = "step,epoch,wall_s,loss\n1,0,0.1,0.5\n2,0,0.";
        fs::write(dir.path().join(METRICS_FILE), torn).unwrap();
        let mut run = RunDir::reopen(dir.path(), 5).unwrap();
        let row = MetricRow {
            step: 2,
            epoch: 0.0,
            wall_s: 0.2,
            values: vec![("loss".into(), 0.25)],
        };
        run.append(&row).unwrap();
        let again = read_metrics(dir.path()).unwrap();
        assert_eq!(again.warning, None);
        assert_eq!(
            again.rows.iter().map(|r| r.get("loss")).collect::<Vec<_>>(),
            [Some(0.5), Some(0.25)]
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn rows_that_meet_a_full_disk_are_written_once_it_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunDir::create(dir.path(), &RunConfig::default(), &["loss"]).unwrap();
        let row = |step| MetricRow {
            step,
            epoch: 0.0,
            wall_s: 0.0,
            values: vec![("loss".into(), step as f64)],
        };
        run.append(&row(1)).unwrap();
        let real = std::mem::replace(
            &mut run.metrics,
            OpenOptions::new().append(true).open("/dev/full").unwrap(),
        );
        run.append(&row(2)).unwrap();
        assert!(run.write_rows().unwrap_err().contains("metrics.csv"));
        run.metrics = real;
        run.append(&row(3)).unwrap();
        run.write_rows().unwrap();
        let steps: Vec<u64> = read_metrics(dir.path()).unwrap().rows.iter().map(|r| r.step).collect();
        assert_eq!(steps, [1, 2, 3]);
    }

    #[test]
    fn rows_go_to_disk_at_most_every_interval_and_all_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunDir::create(dir.path(), &RunConfig::default(), &["loss"]).unwrap();
        let on_disk = || -> Vec<u64> { read_metrics(dir.path()).unwrap().rows.iter().map(|r| r.step).collect() };
        let row = |step| MetricRow {
            step,
            epoch: 0.0,
            wall_s: 0.0,
            values: vec![("loss".into(), step as f64)],
        };
        for step in 1..=3 {
            run.append(&row(step)).unwrap();
        }
        assert_eq!(
            on_disk(),
            [1],
            "the first row at once, the next ones within the interval wait"
        );
        std::thread::sleep(ROWS_WRITTEN_EVERY);
        run.append(&row(4)).unwrap();
        assert_eq!(
            on_disk(),
            [1, 2, 3, 4],
            "once the interval has passed, the next row takes them all"
        );
        run.append(&row(5)).unwrap();
        run.append(&row(6)).unwrap();
        assert_eq!(on_disk(), [1, 2, 3, 4]);
        run.rewind(5).unwrap();
        assert_eq!(
            on_disk(),
            [1, 2, 3, 4, 5],
            "a rewind keeps the rows up to its step, written or not"
        );
        run.append(&row(6)).unwrap();
        run.append(&row(7)).unwrap();
        run.write_rows().unwrap();
        assert_eq!(on_disk(), [1, 2, 3, 4, 5, 6, 7], "all of them when asked");
        run.append(&row(8)).unwrap();
        drop(run);
        assert_eq!(
            on_disk(),
            [1, 2, 3, 4, 5, 6, 7, 8],
            "the rows left go to disk when the folder is closed"
        );
    }

    #[test]
    fn concurrent_edits_of_run_toml_keep_each_others_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for step in 1..=100 {
                    RunMeta::update(dir.path(), |m| m.steps_done = step).unwrap();
                }
            });
            scope.spawn(|| {
                for i in 0..100 {
                    RunMeta::update(dir.path(), |m| m.tags.push(format!("t{i}"))).unwrap();
                }
            });
        });
        let meta = RunMeta::read(dir.path()).unwrap();
        assert_eq!((meta.steps_done, meta.tags.len()), (100, 100));
    }

    #[test]
    fn the_newest_readable_checkpoint_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let tensor = |v: f32| Tensor::new(&[v], &Device::Cpu).unwrap();
        let run = RunDir {
            path: dir.path().to_path_buf(),
            metrics: File::create(dir.path().join("m")).unwrap(),
            metrics_len: 0,
            unwritten: Vec::new(),
            written_at: None,
            columns: Vec::new(),
        };
        run.files()
            .save_checkpoint(10, &HashMap::from([("w".to_string(), tensor(1.0))]))
            .unwrap();
        run.files()
            .save_checkpoint(20, &HashMap::from([("w".to_string(), tensor(2.0))]))
            .unwrap();
        fs::write(checkpoint_path(dir.path(), 30), b"\x08\0\0\0\0\0\0\0{garbage").unwrap();
        let mut restored = None;
        let (step, notes) = restore_newest(dir.path(), |t| {
            restored = Some(t["w"].to_vec1::<f32>().unwrap()[0]);
            Ok(())
        })
        .unwrap();
        assert_eq!((step, restored), (20, Some(2.0)));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("step-000030"), "{notes:?}");
    }

    #[test]
    fn the_settings_of_any_step_are_recovered_from_the_recorded_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let start = RunConfig::default();
        let run = RunDir::create(path, &start, &["loss"]).unwrap();
        let with = |config: &RunConfig, setting: &str| {
            let mut changed = config.clone();
            changed.set(setting).unwrap();
            changed
        };
        let at_10 = with(&start, "optimizer.lr=1e-3");
        let at_20 = with(&with(&at_10, "optimizer.lr=5e-4"), "model.kind=\"dcgan\"");
        for (step, before, after) in [(10, &start, &at_10), (20, &at_10, &at_20)] {
            run.record_changes(&setting_changes(step, before, after), after)
                .unwrap();
        }
        assert_eq!(
            RunDir::read_config(path).unwrap(),
            at_20,
            "config.toml holds the settings now"
        );
        assert_eq!(read_changes(path).len(), 3, "{:?}", read_changes(path));
        assert_eq!(read_changes(path)[0].describe(), "optimizer.lr 0.0002 to 0.001");
        for (step, expected) in [(0, &start), (9, &start), (10, &at_10), (19, &at_10), (25, &at_20)] {
            assert_eq!(&config_at(path, step).unwrap(), expected, "at step {step}");
        }

        // A fork at 15 starts from the settings of 15 plus its own edit, and keeps the record up to there.
        let child = path.with_extension("child");
        fs::create_dir_all(path.join(CHECKPOINT_DIR)).unwrap();
        fs::write(checkpoint_path(path, 15), b"weights").unwrap();
        let forked = with(&at_10, "train.sample_every=7");
        fork(path, 15, &child, &forked).unwrap();
        let steps_keys: Vec<(u64, String)> = read_changes(&child).into_iter().map(|c| (c.step, c.key)).collect();
        assert_eq!(
            steps_keys,
            [(10, "optimizer.lr".into()), (15, "train.sample_every".into())]
        );
        assert_eq!(config_at(&child, 12).unwrap(), at_10);
        fs::remove_dir_all(&child).unwrap();

        // Continuing from step 15 undoes the later changes on disk as well.
        RunDir::reopen(path, 15).unwrap();
        assert_eq!(RunDir::read_config(path).unwrap(), at_10);
        assert_eq!(read_changes(path).len(), 1);
    }
}
