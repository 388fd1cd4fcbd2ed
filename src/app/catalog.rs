//! The runs on disk, as the run browser and the comparison views read them: each run's summary and what sets
//! it apart from its siblings, curves read back from `metrics.csv`, the steps each run saved grids at, and a
//! small cache of decoded grids (so scrubbing a filmstrip reads each PNG once while memory stays bounded).
//! No egui types.
//!
//! All of it is read on a reader thread of the catalog's own, so the UI thread never waits on the disk:
//! asking for something not yet read sends a request (the view shows it once it is there) and the answer
//! is taken in by [`Catalog::poll`]. The reader keeps each run's summary until the run's files change, so a
//! refresh reads only the runs that did.

use super::history::RunHistory;
use crate::grid::ImageGrid;
use crate::runs::{self, GridKind, RunStamp, RunSummary};
use crate::train::worker::{panic_message, Waker};
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Decoded grids kept in memory; older ones are read from disk again when needed.
const GRID_CACHE: usize = 24;

pub struct Catalog {
    root: PathBuf,
    runs: Vec<CatalogRun>,
    problems: Vec<String>,
    stale: bool,
    reader: Reader,
    /// A listing was asked for and has not arrived.
    listing: bool,
    histories: HashMap<PathBuf, DiskHistory>,
    /// Curves asked for and not arrived.
    loading: HashSet<PathBuf>,
    /// Saved steps per run and kind, read once until the run saves more (or the list is refreshed), and
    /// whether they are due to be read again (the old list is shown until then).
    grid_lists: HashMap<(PathBuf, GridKind), (Vec<u64>, bool)>,
    grids: VecDeque<(GridKey, Result<ImageGrid, String>)>,
    /// Grid lists and grids asked for and not arrived.
    loading_grids: HashSet<GridKey>,
}

/// A saved grid: run, kind and step. With no step, the list of a run's saved steps of that kind.
type GridKey = (PathBuf, GridKind, Option<u64>);

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
    history: Result<RunHistory, String>,
}

enum Request {
    List(PathBuf),
    Curves(PathBuf),
    Grid(GridKey),
}

enum Reply {
    Listed {
        root: PathBuf,
        runs: Vec<RunSummary>,
        problems: Vec<String>,
    },
    Curves {
        dir: PathBuf,
        length: u64,
        history: Result<RunHistory, String>,
    },
    GridSteps {
        key: GridKey,
        steps: Vec<u64>,
    },
    Grid {
        key: GridKey,
        grid: Result<ImageGrid, String>,
    },
}

/// A run's summary as last read (with a warning about metric lines passed over), or why it could not be.
type ReadSummary = Result<(RunSummary, Option<String>), String>;

/// The catalog's reader thread; it ends when the catalog is dropped.
struct Reader {
    requests: Sender<Request>,
    replies: Receiver<Reply>,
    /// Wakes the UI when a reply arrives (none until the first frame sets it).
    waker: std::sync::Arc<std::sync::Mutex<Option<Waker>>>,
}

impl Reader {
    fn start() -> Reader {
        let (requests, inbox) = unbounded::<Request>();
        let (outbox, replies) = unbounded();
        let waker: std::sync::Arc<std::sync::Mutex<Option<Waker>>> = Default::default();
        let wake = waker.clone();
        // Not joined: it ends when the request channel closes, and a read in progress is harmless.
        let _ = std::thread::Builder::new()
            .name("gantry-catalog".into())
            .spawn(move || {
                let mut known: HashMap<PathBuf, (RunStamp, ReadSummary)> = HashMap::new();
                for request in inbox {
                    // A bug met while reading one request is reported as that request's answer.
                    let crashed = |payload: Box<dyn std::any::Any + Send>| {
                        format!("reading the runs crashed: {}", panic_message(payload.as_ref()))
                    };
                    let reply = match request {
                        Request::List(root) => catch_unwind(AssertUnwindSafe(|| list(&root, &mut known)))
                            .unwrap_or_else(|payload| {
                                known.clear();
                                Reply::Listed {
                                    root,
                                    runs: Vec::new(),
                                    problems: vec![crashed(payload)],
                                }
                            }),
                        Request::Curves(dir) => {
                            let length = std::fs::metadata(dir.join(runs::METRICS_FILE)).map_or(0, |m| m.len());
                            let history = catch_unwind(|| {
                                runs::read_metrics(&dir).map(|metrics| {
                                    let mut history = RunHistory::default();
                                    metrics.rows.iter().for_each(|row| history.push(row));
                                    runs::read_events(&dir).into_iter().for_each(|e| history.push_event(e));
                                    history.push_changes(runs::read_changes(&dir));
                                    history
                                })
                            });
                            let history = history.unwrap_or_else(|payload| Err(crashed(payload)));
                            Reply::Curves { dir, length, history }
                        }
                        Request::Grid(key) => match key.2 {
                            None => Reply::GridSteps {
                                steps: catch_unwind(|| runs::grid_steps(&key.0, key.1)).unwrap_or_default(),
                                key,
                            },
                            Some(step) => Reply::Grid {
                                grid: catch_unwind(|| runs::read_grid(&key.0, key.1, step))
                                    .unwrap_or_else(|payload| Err(crashed(payload))),
                                key,
                            },
                        },
                    };
                    if outbox.send(reply).is_err() {
                        break;
                    }
                    if let Some(wake) = wake.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                        wake();
                    }
                }
            });
        Reader {
            requests,
            replies,
            waker,
        }
    }
}

/// Lists the runs under `root`, reading again only those whose files changed since `known` was filled.
fn list(root: &Path, known: &mut HashMap<PathBuf, (RunStamp, ReadSummary)>) -> Reply {
    let dirs = runs::run_dirs(root);
    known.retain(|dir, _| dirs.contains(dir));
    let (mut summaries, mut problems) = (Vec::new(), Vec::new());
    for dir in dirs {
        let stamp = RunStamp::of(&dir);
        let fresh = known.get(&dir).is_some_and(|(known_stamp, _)| *known_stamp == stamp);
        if !fresh {
            known.insert(dir.clone(), (stamp, runs::read_summary(&dir)));
        }
        match &known[&dir].1 {
            Ok((summary, warning)) => {
                summaries.push(summary.clone());
                problems.extend(warning.clone());
            }
            Err(message) => problems.push(message.clone()),
        }
    }
    runs::sort_newest_first(&mut summaries);
    Reply::Listed {
        root: root.to_path_buf(),
        runs: summaries,
        problems,
    }
}

impl Catalog {
    pub fn new(root: PathBuf) -> Catalog {
        Catalog {
            root,
            runs: Vec::new(),
            problems: Vec::new(),
            stale: true,
            reader: Reader::start(),
            listing: false,
            histories: HashMap::new(),
            loading: HashSet::new(),
            grid_lists: HashMap::new(),
            grids: VecDeque::new(),
            loading_grids: HashSet::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn set_root(&mut self, root: PathBuf) {
        let waker = self.reader.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
        *self = Catalog::new(root);
        *self.reader.waker.lock().unwrap_or_else(|e| e.into_inner()) = waker;
    }

    /// The list is read again (in the background) before it is next shown.
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Asks for the runs folder to be read again if something changed since the last read, one read at a
    /// time. `waker` is called when an answer arrives.
    pub fn refresh_if_stale(&mut self, waker: impl FnOnce() -> Waker) {
        let mut slot = self.reader.waker.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(waker());
        }
        drop(slot);
        if self.stale && !self.listing {
            self.stale = false;
            self.listing = self.reader.requests.send(Request::List(self.root.clone())).is_ok();
        }
    }

    /// Whether everything asked of the reader has arrived (and no new listing is due).
    pub fn is_settled(&self) -> bool {
        !self.stale && !self.listing && self.loading.is_empty() && self.loading_grids.is_empty()
    }

    /// Takes in what the reader thread answered.
    pub fn poll(&mut self) {
        while let Ok(reply) = self.reader.replies.try_recv() {
            match reply {
                Reply::Listed { root, runs, problems } if root == self.root => {
                    self.listing = false;
                    self.install(runs, problems);
                }
                Reply::Listed { .. } => {}
                Reply::Curves { dir, length, history } => {
                    self.loading.remove(&dir);
                    self.histories.insert(dir, DiskHistory { length, history });
                }
                Reply::GridSteps { key, steps } => {
                    self.loading_grids.remove(&key);
                    self.grid_lists.insert((key.0, key.1), (steps, false));
                }
                Reply::Grid { key, grid } => {
                    self.loading_grids.remove(&key);
                    if self.grids.len() == GRID_CACHE {
                        self.grids.pop_front();
                    }
                    self.grids.push_back((key, grid));
                }
            }
        }
    }

    fn install(&mut self, summaries: Vec<RunSummary>, problems: Vec<String>) {
        self.grid_lists.values_mut().for_each(|(_, stale)| *stale = true);
        self.problems = problems;
        let mut runs: Vec<CatalogRun> = summaries
            .into_iter()
            .map(|summary| CatalogRun {
                summary,
                differences: Vec::new(),
            })
            .collect();
        // Siblings are runs of the same model on the same data; what tells them apart is worth a column.
        let sibling_key = |run: &CatalogRun| {
            let (kind, data) = run.summary.config.experiment();
            (kind, data.to_string())
        };
        let mut keys: Vec<_> = runs.iter().map(sibling_key).collect();
        keys.dedup();
        for key in keys {
            let members: Vec<usize> = (0..runs.len()).filter(|i| sibling_key(&runs[*i]) == key).collect();
            let configs: Vec<_> = members.iter().map(|i| &runs[*i].summary.config).collect();
            let differences = runs::learning_differences(&configs);
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

    /// The curves of the run in `dir` as written to disk: `Ok(None)` while they are read (in the background),
    /// read again when the listing finds its metrics grew.
    pub fn history(&mut self, dir: &Path) -> Result<Option<&mut RunHistory>, String> {
        let listed_length = self.find(dir).map(|r| r.summary.metrics_len);
        let fresh = self
            .histories
            .get(dir)
            .is_some_and(|h| listed_length.is_none_or(|length| h.length == length));
        if !fresh
            && !self.loading.contains(dir)
            && self.reader.requests.send(Request::Curves(dir.to_path_buf())).is_ok()
        {
            self.loading.insert(dir.to_path_buf());
        }
        match self.histories.get_mut(dir).map(|h| &mut h.history) {
            Some(Ok(history)) => Ok(Some(history)),
            Some(Err(message)) => Err(message.clone()),
            None => Ok(None),
        }
    }

    /// The curves of the run in `dir` as last read by [`Catalog::history`].
    pub fn cached_history(&self, dir: &Path) -> Option<&RunHistory> {
        self.histories.get(dir).and_then(|h| h.history.as_ref().ok())
    }

    /// The steps the listed run in `dir` has checkpoints of, as of the last listing.
    pub fn checkpoint_steps(&self, dir: &Path) -> &[u64] {
        self.find(dir).map_or(&[], |r| &r.summary.checkpoints)
    }

    /// The steps the run in `dir` saved grids of, ascending; none while they are read (in the background).
    pub fn grid_steps(&mut self, dir: &Path, kind: GridKind) -> &[u64] {
        let key = (dir.to_path_buf(), kind);
        if self.grid_lists.get(&key).is_none_or(|(_, stale)| *stale) {
            self.ask_for((key.0.clone(), kind, None));
        }
        self.grid_lists.get(&key).map_or(&[], |(steps, _)| steps.as_slice())
    }

    /// Whether the steps the run in `dir` saved grids of have been read (`grid_steps` is empty until then).
    pub fn grid_steps_read(&self, dir: &Path, kind: GridKind) -> bool {
        self.grid_lists.contains_key(&(dir.to_path_buf(), kind))
    }

    /// The run in `dir` saved new grids: its lists are read again when next asked for.
    pub fn forget_grid_steps(&mut self, dir: &Path) {
        for ((d, kind), (_, stale)) in &mut self.grid_lists {
            if d == dir {
                *stale = true;
                // A list being read may have missed the new grid: it is asked for again.
                self.loading_grids.remove(&(d.clone(), *kind, None));
            }
        }
    }

    /// The grid the run in `dir` saved at `step`: `Ok(None)` while it is read (in the background).
    pub fn grid(&mut self, dir: &Path, kind: GridKind, step: u64) -> Result<Option<&ImageGrid>, String> {
        let key = (dir.to_path_buf(), kind, Some(step));
        match self.grids.iter().position(|(k, _)| *k == key) {
            Some(index) => self.grids[index].1.as_ref().map(Some).map_err(Clone::clone),
            None => {
                self.ask_for(key);
                Ok(None)
            }
        }
    }

    /// The grid the run in `dir` saved at `step`, if [`Catalog::grid`] has read it into the cache.
    pub fn cached_grid(&self, dir: &Path, kind: GridKind, step: u64) -> Option<&ImageGrid> {
        self.grids
            .iter()
            .find(|((d, k, s), _)| d == dir && *k == kind && *s == Some(step))
            .and_then(|(_, grid)| grid.as_ref().ok())
    }

    fn ask_for(&mut self, key: GridKey) {
        if !self.loading_grids.contains(&key) && self.reader.requests.send(Request::Grid(key.clone())).is_ok() {
            self.loading_grids.insert(key);
        }
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
    use crate::config::RunConfig;

    /// A run directory with `rows` metric rows.
    fn run_with_rows(root: &Path, name: &str, rows: usize) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        runs::write_config(&dir, &RunConfig::default()).unwrap();
        let mut csv = "step,epoch,wall_s,loss\n".to_string();
        (1..=rows).for_each(|step| csv += &format!("{step},0,0,{step}\n"));
        std::fs::write(dir.join(runs::METRICS_FILE), csv).unwrap();
        dir
    }

    #[test]
    fn the_list_arrives_from_the_reader_and_only_changed_runs_are_read_again() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (run_with_rows(root.path(), "a", 2), run_with_rows(root.path(), "b", 3));
        let mut catalog = Catalog::new(root.path().to_path_buf());
        let (wakes, counter) = (
            std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            |c: &std::sync::Arc<std::sync::atomic::AtomicUsize>| c.load(std::sync::atomic::Ordering::SeqCst),
        );
        let woken = wakes.clone();
        catalog.refresh_if_stale(move || {
            std::sync::Arc::new(move || {
                woken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        });
        assert!(
            catalog.runs().is_empty() && !catalog.is_settled(),
            "asked, not read on this thread"
        );
        let settle = |catalog: &mut Catalog| {
            while !catalog.is_settled() {
                std::thread::sleep(std::time::Duration::from_millis(1));
                catalog.poll();
            }
        };
        settle(&mut catalog);
        assert!(counter(&wakes) >= 1, "the UI is woken when the list arrives");
        let last_loss = |c: &Catalog, dir: &Path| c.find(dir).unwrap().summary.last_value("loss");
        assert_eq!(
            (last_loss(&catalog, &a), last_loss(&catalog, &b)),
            (Some(2.0), Some(3.0))
        );

        // Run b's metrics change without their size or time changing: its summary is kept as read. Run a
        // grows: it is read again.
        let metrics = b.join(runs::METRICS_FILE);
        let modified = std::fs::metadata(&metrics).unwrap().modified().unwrap();
        std::fs::write(&metrics, "step,epoch,wall_s,loss\n1,0,0,1\n2,0,0,2\n3,0,0,9\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&metrics)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        run_with_rows(root.path(), "a", 5);
        catalog.mark_stale();
        catalog.refresh_if_stale(|| unreachable!("the waker is kept"));
        settle(&mut catalog);
        assert_eq!(
            (last_loss(&catalog, &a), last_loss(&catalog, &b)),
            (Some(5.0), Some(3.0))
        );

        // Curves are read in the background too.
        assert_eq!(catalog.history(&a).unwrap().map(|h| h.count("loss")), None);
        settle(&mut catalog);
        assert_eq!(catalog.history(&a).unwrap().map(|h| h.count("loss")), Some(5));

        // So are saved grids: the list of their steps, then each decoded image; a new save is listed again.
        let save = |step: u64, shade: u8| {
            let path = runs::grid_path(&a, GridKind::Samples, step);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let grid = ImageGrid {
                width: 2,
                height: 1,
                rgba: vec![shade; 8],
            };
            grid.write_png(&path).unwrap();
        };
        save(10, 40);
        assert!(
            catalog.grid_steps(&a, GridKind::Samples).is_empty(),
            "asked, not listed here"
        );
        settle(&mut catalog);
        assert_eq!(catalog.grid_steps(&a, GridKind::Samples), [10]);
        assert_eq!(
            catalog.grid(&a, GridKind::Samples, 10),
            Ok(None),
            "asked, not decoded here"
        );
        settle(&mut catalog);
        assert_eq!(
            catalog.grid(&a, GridKind::Samples, 10).unwrap().map(|g| g.rgba[0]),
            Some(40)
        );
        assert!(catalog.grid(&a, GridKind::Samples, 99).is_ok_and(|g| g.is_none()));
        settle(&mut catalog);
        assert!(
            catalog.grid(&a, GridKind::Samples, 99).is_err(),
            "a missing grid says why"
        );
        save(20, 80);
        catalog.forget_grid_steps(&a);
        assert_eq!(
            catalog.grid_steps(&a, GridKind::Samples),
            [10],
            "the old list shows while it is read"
        );
        settle(&mut catalog);
        assert_eq!(catalog.grid_steps(&a, GridKind::Samples), [10, 20]);
    }

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
