//! Datasets: where training items come from and how they are split, shuffled and batched.
//!
//! Every source ends up as a [`Dataset`]: items flattened into one `Vec<f32>` (images NCHW in [-1, 1], toy
//! data as 2D points), with optional labels. Batching order is a pure function of (seed, batch index), so a
//! run resumed from a checkpoint sees exactly the batches it would have seen.

pub mod digits;
pub mod download;
pub mod folder;
pub mod idx;
pub mod raw;
pub mod shapes;
pub mod toy;

use crate::config::DataConfig;
use crate::grid::{make_grid, ImageGrid};
use crate::rng::{derive_seed, seeded};
use rand::seq::SliceRandom;
use raw::{Progress, RawImages};
use std::path::PathBuf;

/// A parsed `--data` / `data.source` value.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSpec {
    Digits,
    Shapes,
    Toy(String),
    /// Points the user drew (`data.points`).
    Drawn,
    /// A folder of MNIST-format IDX files.
    Idx(PathBuf),
    /// MNIST, downloaded on first use into the cache directory.
    Mnist,
    FashionMnist,
    /// A folder of image files, labelled by subfolder.
    Folder(PathBuf),
}

impl DataSpec {
    pub fn parse(spec: &str) -> Result<DataSpec, String> {
        let spec = spec.trim();
        match spec.split_once(':') {
            None if spec == "digits" => Ok(DataSpec::Digits),
            None if spec == "shapes" => Ok(DataSpec::Shapes),
            None if spec == "mnist" => Ok(DataSpec::Mnist),
            None if spec == "fashion-mnist" => Ok(DataSpec::FashionMnist),
            None if spec == "drawn" => Ok(DataSpec::Drawn),
            Some(("toy", name)) if toy::TOY_NAMES.contains(&name) => Ok(DataSpec::Toy(name.to_string())),
            Some(("toy", name)) => Err(format!(
                "unknown toy dataset '{name}': expected one of {}",
                toy::TOY_NAMES.join(", ")
            )),
            Some(("idx" | "folder", "")) => Err(format!("'{spec}' names no directory, e.g. {spec}path/to/dir")),
            Some(("idx", dir)) => Ok(DataSpec::Idx(PathBuf::from(dir))),
            Some(("folder", dir)) => Ok(DataSpec::Folder(PathBuf::from(dir))),
            _ => Err(format!(
                "'{spec}' is not a dataset: expected digits, shapes, toy:NAME, drawn, idx:DIR, mnist, fashion-mnist or \
                 folder:DIR"
            )),
        }
    }
}

/// What one item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemShape {
    Image {
        channels: usize,
        height: usize,
        width: usize,
    },
    /// A point in the plane (toy distributions).
    Point,
}

impl ItemShape {
    /// Values in one item (an item is never empty, so there is no `is_empty`).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            ItemShape::Image {
                channels,
                height,
                width,
            } => channels * height * width,
            ItemShape::Point => 2,
        }
    }

    pub fn is_image(self) -> bool {
        matches!(self, ItemShape::Image { .. })
    }

    /// The dims of a batch of `n` items, as the models take them.
    pub fn batch_dims(self, n: usize) -> Vec<usize> {
        match self {
            ItemShape::Image {
                channels,
                height,
                width,
            } => vec![n, channels, height, width],
            ItemShape::Point => vec![n, 2],
        }
    }

    pub fn describe(self) -> String {
        match self {
            ItemShape::Image {
                channels,
                height,
                width,
            } => {
                let kind = if channels == 1 { "grayscale" } else { "RGB" };
                format!("{width}x{height} {kind}")
            }
            ItemShape::Point => "2D points".into(),
        }
    }
}

/// Items in memory, ready to batch.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub shape: ItemShape,
    /// `len() * shape.len()` values: images in [-1, 1] (CHW per item), points as (x, y).
    pub items: Vec<f32>,
    pub labels: Option<Vec<u32>>,
    pub label_names: Vec<String>,
    /// Things the user should know about the load (skipped files, resizing).
    pub notes: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.items.len() / self.shape.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn item(&self, index: usize) -> &[f32] {
        let n = self.shape.len();
        &self.items[index * n..(index + 1) * n]
    }

    /// Copies the given items into one contiguous buffer (a batch), over Gantry's threads when it is large:
    /// the items lie anywhere in the dataset, so the copy mostly waits on memory (a few per cent of a fast
    /// model's step, on the training thread alone while the helpers wait), and two threads wait half as long.
    pub fn gather(&self, indices: &[usize]) -> Vec<f32> {
        let item_len = self.shape.len();
        let mut out = vec![0.0; indices.len() * item_len];
        let span = crate::threads::span_len(out.len(), item_len, GATHER_PARALLEL_MIN);
        let rows = out.chunks_mut(span).zip(indices.chunks((span / item_len).max(1)));
        crate::threads::for_each_part(rows.collect(), |_, (part, items)| {
            for (row, &i) in part.chunks_exact_mut(item_len).zip(items) {
                row.copy_from_slice(self.item(i));
            }
        });
        out
    }

    /// The labels of the given items, where the data has labels.
    pub fn labels_of(&self, indices: &[usize]) -> Option<Vec<u32>> {
        self.labels
            .as_ref()
            .map(|labels| indices.iter().map(|&i| labels[i]).collect())
    }

    /// How many classes the labels use (one more than the largest), where the data has labels.
    pub fn labels_used(&self) -> Option<usize> {
        let labels = self.labels.as_ref()?;
        Some(labels.iter().max().map_or(0, |&max| max as usize + 1))
    }

    pub fn summary(&self) -> DatasetSummary {
        let preview = match self.shape {
            ItemShape::Image { .. } => {
                let shown: Vec<usize> = (0..self.len().min(64)).collect();
                Some(make_grid(&self.gather(&shown), self.shape, shown.len(), 8))
            }
            ItemShape::Point => None,
        };
        DatasetSummary {
            name: self.name.clone(),
            count: self.len(),
            shape: self.shape,
            label_names: self.label_names.clone(),
            preview,
            notes: self.notes.clone(),
        }
    }
}

/// What the UI and CLI show about loaded data.
#[derive(Clone, Debug)]
pub struct DatasetSummary {
    pub name: String,
    pub count: usize,
    pub shape: ItemShape,
    pub label_names: Vec<String>,
    /// The first 64 images as a grid (images only).
    pub preview: Option<ImageGrid>,
    pub notes: Vec<String>,
}

impl DatasetSummary {
    pub fn describe(&self) -> String {
        let labels = if self.label_names.is_empty() {
            "unlabelled".to_string()
        } else {
            format!("{} labels", self.label_names.len())
        };
        format!(
            "{}: {} items, {}, {labels}",
            self.name,
            self.count,
            self.shape.describe()
        )
    }
}

/// The item shape a config's data will have, known before loading it (so models can be checked first).
pub fn expected_shape(config: &DataConfig) -> Result<ItemShape, String> {
    Ok(match DataSpec::parse(&config.source)? {
        DataSpec::Digits => ItemShape::Image {
            channels: 1,
            height: digits::DIGIT_SIZE,
            width: digits::DIGIT_SIZE,
        },
        DataSpec::Shapes => ItemShape::Image {
            channels: config.channels,
            height: config.image_size,
            width: config.image_size,
        },
        DataSpec::Toy(_) | DataSpec::Drawn => ItemShape::Point,
        // MNIST-family files are 28x28; other IDX sizes are checked against the model once loaded.
        DataSpec::Idx(_) | DataSpec::Mnist | DataSpec::FashionMnist => ItemShape::Image {
            channels: 1,
            height: 28,
            width: 28,
        },
        DataSpec::Folder(_) => ItemShape::Image {
            channels: config.channels,
            height: config.image_size,
            width: config.image_size,
        },
    })
}

/// Loads (or generates) the dataset a config names. `progress` hears about downloads and decoding.
pub fn load(config: &DataConfig, seed: u64, progress: Progress) -> Result<Dataset, String> {
    let to_signed = |pixels: Vec<f32>| pixels.into_iter().map(|p| p * 2.0 - 1.0).collect::<Vec<f32>>();
    let names = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let seed = derive_seed(seed, SEED_DATA, 0);
    match DataSpec::parse(&config.source)? {
        DataSpec::Digits => {
            let (pixels, labels) = digits::generate_digits(config.count, seed);
            let size = digits::DIGIT_SIZE;
            Ok(Dataset {
                name: "digits".into(),
                shape: ItemShape::Image {
                    channels: 1,
                    height: size,
                    width: size,
                },
                items: to_signed(pixels),
                labels: Some(labels),
                label_names: (0..10).map(|d| d.to_string()).collect(),
                notes: Vec::new(),
            })
        }
        DataSpec::Shapes => {
            let (size, channels) = (config.image_size, config.channels);
            let (pixels, labels) = shapes::generate_shapes(config.count, size, channels, seed);
            Ok(Dataset {
                name: "shapes".into(),
                shape: ItemShape::Image {
                    channels,
                    height: size,
                    width: size,
                },
                items: to_signed(pixels),
                labels: Some(labels),
                label_names: names(&shapes::SHAPE_NAMES),
                notes: Vec::new(),
            })
        }
        DataSpec::Toy(name) => {
            let (points, labels) = toy::generate_toy(&name, config.count, seed)?;
            Ok(Dataset {
                name: format!("toy:{name}"),
                shape: ItemShape::Point,
                items: points,
                labels: Some(labels),
                label_names: Vec::new(),
                notes: Vec::new(),
            })
        }
        DataSpec::Drawn => Ok(Dataset {
            name: "drawn".into(),
            shape: ItemShape::Point,
            items: toy::sample_drawn(&config.points, config.count, seed)?,
            labels: None,
            label_names: Vec::new(),
            notes: vec![format!(
                "{} items around the {} points drawn (data.points)",
                config.count,
                config.points.len()
            )],
        }),
        DataSpec::Idx(dir) => from_raw(format!("idx:{}", dir.display()), idx::load_idx_dir(&dir, progress)),
        DataSpec::Mnist => from_raw("mnist".into(), load_remote(&download::MNIST, progress)),
        DataSpec::FashionMnist => from_raw("fashion-mnist".into(), load_remote(&download::FASHION_MNIST, progress)),
        DataSpec::Folder(dir) => {
            let options = folder::FolderOptions {
                size: config.image_size,
                channels: config.channels,
                fit: config.fit,
                ..folder::FolderOptions::default()
            };
            let mut data = from_raw(
                format!("folder:{}", dir.display()),
                folder::load_image_folder(&dir, &options, progress),
            )?;
            let fit = match config.fit {
                folder::Fit::CenterCrop => "centre-cropped",
                folder::Fit::Letterbox => "letterboxed",
            };
            let size = config.image_size;
            data.notes.push(format!(
                "images are {fit} and resized to {size}x{size} (data.image_size, data.fit)"
            ));
            Ok(data)
        }
    }
}

/// Downloads (once, into the cache directory) and loads an MNIST-family dataset.
fn load_remote(remote: &download::RemoteDataset, progress: Progress) -> Result<RawImages, raw::DataError> {
    let dir = download::default_cache_dir(remote.id)
        .ok_or_else(|| raw::DataError(format!("{}: no cache directory on this system; use idx:DIR", remote.id)))?;
    download::ensure_downloaded(remote, &dir, progress)?;
    idx::load_idx_dir(&dir, progress)
}

/// Converts decoded bytes to the engine's [-1, 1] floats.
fn from_raw(name: String, raw: Result<RawImages, raw::DataError>) -> Result<Dataset, String> {
    let raw = raw.map_err(|e| e.to_string())?;
    Ok(Dataset {
        name,
        shape: ItemShape::Image {
            channels: raw.channels,
            height: raw.height,
            width: raw.width,
        },
        items: raw.pixels.iter().map(|&p| p as f32 / 127.5 - 1.0).collect(),
        labels: raw.labels,
        label_names: raw.label_names,
        notes: raw.notes,
    })
}

/// Below this many values a batch is gathered on the calling thread (2D points, small images): handing a
/// copy of a few tens of kilobytes to the helpers costs about what it saves.
const GATHER_PARALLEL_MIN: usize = 1 << 14;

/// Streams of the run's random numbers; each gets its own derived seed so they never overlap.
pub const SEED_DATA: u64 = 1;
pub const SEED_SPLIT: u64 = 2;
pub const SEED_EPOCH: u64 = 3;

/// Which items train and which are held out, fixed by the seed.
#[derive(Clone, Debug)]
pub struct Split {
    pub train: Vec<usize>,
    pub holdout: Vec<usize>,
}

impl Split {
    pub fn new(len: usize, holdout_fraction: f64, seed: u64) -> Result<Split, String> {
        let mut order: Vec<usize> = (0..len).collect();
        order.shuffle(&mut seeded(derive_seed(seed, SEED_SPLIT, 0)));
        if len == 0 {
            return Err("the dataset has no items".into());
        }
        // Training needs at least one item, whatever the fraction.
        let holdout = ((len as f64 * holdout_fraction).round() as usize).min(len - 1);
        let (held, train) = order.split_at(holdout);
        Ok(Split {
            train: train.to_vec(),
            holdout: held.to_vec(),
        })
    }
}

/// Draws batches in a shuffled order that is a pure function of (seed, batch index).
#[derive(Clone, Debug)]
pub struct Batcher {
    seed: u64,
    batch_size: usize,
    train: Vec<usize>,
    /// The permutation of the epoch last used, cached because consecutive batches share it.
    epoch_order: Option<(u64, Vec<usize>)>,
}

impl Batcher {
    pub fn new(train: Vec<usize>, batch_size: usize, seed: u64) -> Batcher {
        Batcher {
            seed,
            batch_size,
            train,
            epoch_order: None,
        }
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The items of batch number `index` (counted from the start of the run).
    pub fn indices(&mut self, index: u64) -> Vec<usize> {
        let n = self.train.len() as u64;
        let start = index * self.batch_size as u64;
        (start..start + self.batch_size as u64)
            .map(|position| {
                let epoch = position / n;
                let order = self.epoch(epoch);
                order[(position % n) as usize]
            })
            .collect()
    }

    /// Fractional epochs done after `batches` batches.
    pub fn epochs(&self, batches: u64) -> f64 {
        (batches * self.batch_size as u64) as f64 / self.train.len() as f64
    }

    fn epoch(&mut self, epoch: u64) -> &[usize] {
        if self.epoch_order.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut order = self.train.clone();
            order.shuffle(&mut seeded(derive_seed(self.seed, SEED_EPOCH, epoch)));
            self.epoch_order = Some((epoch, order));
        }
        &self.epoch_order.as_ref().expect("just set").1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing_names_what_is_allowed() {
        assert_eq!(DataSpec::parse("digits"), Ok(DataSpec::Digits));
        assert_eq!(DataSpec::parse("toy:ring"), Ok(DataSpec::Toy("ring".into())));
        assert!(DataSpec::parse("toy:blob").unwrap_err().contains("ring"));
        assert!(DataSpec::parse("cifar").unwrap_err().contains("digits"));
        assert_eq!(DataSpec::parse("drawn"), Ok(DataSpec::Drawn));
    }

    #[test]
    fn batches_cover_each_epoch_once_and_repeat_exactly() {
        let train: Vec<usize> = (100..110).collect();
        let mut a = Batcher::new(train.clone(), 5, 7);
        let mut first_epoch: Vec<usize> = [a.indices(0), a.indices(1)].concat();
        first_epoch.sort();
        assert_eq!(first_epoch, train);
        let mut b = Batcher::new(train, 5, 7);
        assert_eq!(a.indices(3), b.indices(3), "batch k depends only on (seed, k)");
        assert_ne!(a.indices(0), a.indices(2), "each epoch reshuffles");
    }

    #[test]
    fn a_gathered_batch_holds_each_asked_item_in_order() {
        // Items of 28x28 values, each filled with its own index: a batch this large is shared over the threads.
        let shape = ItemShape::Image {
            channels: 1,
            height: 28,
            width: 28,
        };
        let dataset = Dataset {
            name: "indexed".into(),
            shape,
            items: (0..300)
                .flat_map(|i| std::iter::repeat_n(i as f32, shape.len()))
                .collect(),
            labels: None,
            label_names: Vec::new(),
            notes: Vec::new(),
        };
        for indices in [
            (0..128).rev().map(|i| i * 2 + 1).collect::<Vec<_>>(),
            vec![299, 0, 299],
            Vec::new(),
        ] {
            let batch = dataset.gather(&indices);
            assert_eq!(batch.len(), indices.len() * shape.len());
            for (row, &i) in batch.chunks(shape.len()).zip(&indices) {
                assert!(
                    row.iter().all(|&v| v == i as f32),
                    "item {i} came back as {:?}...",
                    &row[..3]
                );
            }
        }
    }

    #[test]
    fn split_keeps_the_holdout_fraction() {
        let split = Split::new(100, 0.1, 3).unwrap();
        assert_eq!(split.holdout.len(), 10);
        assert_eq!(split.train.len(), 90);
        assert_eq!(Split::new(1, 0.5, 0).unwrap().train.len(), 1);
        assert!(Split::new(0, 0.1, 0).is_err());
    }
}
