//! Loads the draft config's dataset in the background, so the Data panel shows what the model will see
//! before any run starts. One load at a time: while one runs, only the newest request waits.

use crate::config::DataConfig;
use crate::data::{self, Dataset, DatasetSummary, ItemShape};
use crate::train::worker::{panic_message, Waker};
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// Points of toy data the preview scatter shows.
const PREVIEW_POINTS: usize = 512;

pub struct DataPreview {
    pub summary: DatasetSummary,
    /// The first points of 2D toy data.
    pub points: Option<Vec<[f32; 2]>>,
}

impl DataPreview {
    fn of(dataset: &Dataset) -> DataPreview {
        let points = (dataset.shape == ItemShape::Point).then(|| {
            (0..dataset.len().min(PREVIEW_POINTS))
                .map(|i| [dataset.item(i)[0], dataset.item(i)[1]])
                .collect()
        });
        DataPreview {
            summary: dataset.summary(),
            points,
        }
    }
}

pub enum PreviewState<'a> {
    /// With the loader's last progress report, if any.
    Loading(Option<Progress>),
    Ready(&'a DataPreview),
    Failed(&'a str),
}

/// A load's progress: (what, done, total), total 0 when unknown.
pub type Progress = (String, u64, u64);
type Key = (DataConfig, u64);
type Loaded = (Key, Result<DataPreview, String>);

pub struct PreviewLoader {
    wanted: Option<Key>,
    loading: bool,
    latest: Option<Loaded>,
    /// Counts finished previews, so views know when to upload a new texture.
    version: u64,
    results: (Sender<Loaded>, Receiver<Loaded>),
    progress: Arc<Mutex<Option<Progress>>>,
    waker: Option<Waker>,
}

impl Default for PreviewLoader {
    fn default() -> Self {
        PreviewLoader {
            wanted: None,
            loading: false,
            latest: None,
            version: 0,
            results: unbounded(),
            progress: Arc::default(),
            waker: None,
        }
    }
}

impl PreviewLoader {
    /// Asks for a preview of `config`'s data with `seed`; `waker` is called when it is ready.
    pub fn request(&mut self, config: &DataConfig, seed: u64, waker: Waker) {
        if self
            .wanted
            .as_ref()
            .is_some_and(|(wanted, s)| wanted == config && *s == seed)
        {
            return self.poll();
        }
        self.wanted = Some((config.clone(), seed));
        self.waker = Some(waker);
        self.poll();
    }

    /// Takes a finished load and starts the wanted one if it differs.
    pub fn poll(&mut self) {
        while let Ok(loaded) = self.results.1.try_recv() {
            self.loading = false;
            self.latest = Some(loaded);
            self.version += 1;
        }
        let current = self.latest.as_ref().map(|(key, _)| key);
        let (Some(wanted), Some(waker)) = (&self.wanted, &self.waker) else {
            return;
        };
        if self.loading || current == Some(wanted) {
            return;
        }
        let (key, sender, waker) = (wanted.clone(), self.results.0.clone(), waker.clone());
        let progress = self.progress.clone();
        self.loading = true;
        // Not joined: a load cannot be interrupted, and a stale result is simply ignored.
        std::thread::Builder::new()
            .name("gantry-preview".into())
            .spawn(move || {
                let report = |what: &str, done: u64, total: u64| {
                    let mut last = progress.lock().unwrap_or_else(|e| e.into_inner());
                    // Wake the UI once per percent (or MiB when the total is unknown), not per chunk.
                    let step = |done: u64| (done * 100).checked_div(total).unwrap_or(done >> 20);
                    let news = last
                        .as_ref()
                        .is_none_or(|(w, d, _)| w != what || step(*d) != step(done));
                    *last = Some((what.to_string(), done, total));
                    if news {
                        waker();
                    }
                };
                let loaded = catch_unwind(AssertUnwindSafe(|| data::load(&key.0, key.1, &report)));
                let result = match loaded {
                    Ok(loaded) => loaded.map(|dataset| DataPreview::of(&dataset)),
                    Err(panic) => Err(format!("loading the data crashed: {}", panic_message(panic.as_ref()))),
                };
                *progress.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let _ = sender.send((key, result));
                waker();
            })
            .expect("the OS can start a thread");
    }

    pub fn state(&self) -> PreviewState<'_> {
        match &self.latest {
            Some((key, result)) if Some(key) == self.wanted.as_ref() => match result {
                Ok(preview) => PreviewState::Ready(preview),
                Err(message) => PreviewState::Failed(message),
            },
            _ => PreviewState::Loading(self.progress.lock().unwrap_or_else(|e| e.into_inner()).clone()),
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }
}
