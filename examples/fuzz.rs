//! A mutation fuzzer for the parsers that read what users (or a crash) leave on disk: no input may panic, and
//! memory stays bounded. It needs no nightly toolchain: inputs grow from the seed corpus in
//! `fuzz/corpus/<target>/` by byte flips, interesting integers in headers, insertions, deletions, repeats,
//! truncation and splices; an input whose outcome (the error message with its numbers dropped) is new joins
//! the corpus, which steers it to new paths through the parser. A panicking input is saved to
//! `fuzz/crashes/` and counted.
//!
//!     cargo run --release --example fuzz -- idx 1000000
//!     cargo run --release --example fuzz -- all 1000000     # every target in turn
//!
//! Targets: idx, config, image, checkpoint, metrics. Results are in RELIABILITY.md.

use candle_core::Device;
use gantry::config::RunConfig;
use gantry::data::folder::{decode_image_bytes, FolderOptions};
use gantry::data::idx::parse_idx_bytes;
use gantry::train::session::Session;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

const TARGETS: [&str; 5] = ["idx", "config", "image", "checkpoint", "metrics"];
/// Inputs longer than this are cut (the parsers' limits are tested at their own size elsewhere).
const MAX_INPUT: usize = 1 << 18;
const CORPUS_LIMIT: usize = 2000;

/// What a target did with an input, as a class: a hash of its error with the numbers dropped (of "ok").
/// Only hashes are kept, so the harness's own memory stays small and the peak it reports is the parsers'.
fn outcome(result: Result<(), String>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match result {
        Ok(()) => "ok".hash(&mut hasher),
        Err(message) => message
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(160)
            .for_each(|c| c.hash(&mut hasher)),
    }
    hasher.finish()
}

/// Parses one input.
type Parse = Box<dyn FnMut(&[u8]) -> Result<(), String>>;

/// A target: its name (which names its corpus) and its parser.
struct Target {
    name: &'static str,
    run: Parse,
}

fn target(name: &'static str) -> Target {
    let run: Parse = match name {
        "idx" => Box::new(|bytes: &[u8]| {
            // The first byte picks images or labels.
            let (images, rest) = bytes.split_first().map_or((true, bytes), |(b, r)| (b % 2 == 0, r));
            parse_idx_bytes(rest, images).map(drop).map_err(|e| e.to_string())
        }),
        "config" => Box::new(|bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            // A config file, or `--set` assignments (one a line) on the default config.
            let mut config = RunConfig::from_toml(&text).map_err(|e| e.to_string()).or_else(|_| {
                let mut config = RunConfig::default();
                text.lines()
                    .try_for_each(|line| config.set(line))
                    .map(|()| config)
                    .map_err(|e| e.to_string())
            })?;
            config.validate().map_err(|e| e.to_string())?;
            config.set("train.steps=7").map_err(|e| e.to_string())
        }),
        "image" => Box::new(|bytes: &[u8]| {
            let options = FolderOptions {
                size: 28,
                channels: 3,
                max_pixels: 4_000_000,
                ..FolderOptions::default()
            };
            let mut out = vec![0u8; 3 * 28 * 28];
            decode_image_bytes(bytes, &options, &mut out)
        }),
        "checkpoint" => {
            let mut session = checkpoint_session();
            Box::new(move |bytes: &[u8]| {
                let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| e.to_string())?;
                session.restore(&tensors).map_err(|e| e.to_string())
            })
        }
        // Lines passed over are a result of their own (a warning), so count as an outcome.
        "metrics" => Box::new(|bytes: &[u8]| {
            let metrics = gantry::runs::parse_metrics(bytes)?;
            metrics.warning.map_or(Ok(()), Err)
        }),
        other => panic!("no target {other}; targets: {}", TARGETS.join(", ")),
    };
    Target { name, run }
}

/// The small VAE on 2D points whose checkpoints the checkpoint target restores.
fn checkpoint_session() -> Session {
    let mut config = gantry::presets::preset("vae-digits").expect("a preset");
    (config.data.source, config.data.count, config.model.hidden) = ("toy:ring".into(), 64, vec![8]);
    config.model.latent = 2;
    let data = gantry::data::load(&config.data, 0, &|_, _, _| {}).expect("toy data");
    Session::new(config, data).expect("a session")
}

/// Writes the seed corpus of `name` (valid inputs of each kind the parser takes), once.
fn write_seeds(name: &str, dir: &Path) {
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    match name {
        "idx" => {
            let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28];
            images.extend((0..3 * 784).map(|i| (i % 251) as u8));
            let labels = vec![0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 9];
            let gz = |bytes: &[u8]| {
                use std::io::Write;
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(bytes).expect("into memory");
                encoder.finish().expect("into memory")
            };
            seeds.push(("images".into(), [&[0u8][..], &images].concat()));
            seeds.push(("images.gz".into(), [&[0u8][..], &gz(&images)].concat()));
            seeds.push(("labels".into(), [&[1u8][..], &labels].concat()));
            seeds.push(("labels.gz".into(), [&[1u8][..], &gz(&labels)].concat()));
        }
        "config" => {
            for (preset, text) in gantry::presets::PRESETS {
                seeds.push((format!("{preset}.toml"), text.as_bytes().to_vec()));
            }
            let sets = "optimizer.lr=1e-3\ntrain.batch_size=32\nmodel.hidden=[64, 128]\ndata.source=toy:ring";
            seeds.push(("sets".into(), sets.as_bytes().to_vec()));
        }
        "image" => {
            let image = image::RgbaImage::from_fn(9, 6, |x, y| image::Rgba([x as u8 * 28, y as u8 * 40, 90, 200]));
            let formats = [
                ("png", image::ImageFormat::Png),
                ("bmp", image::ImageFormat::Bmp),
                ("gif", image::ImageFormat::Gif),
                ("webp", image::ImageFormat::WebP),
            ];
            for (ext, format) in formats {
                let mut bytes = std::io::Cursor::new(Vec::new());
                image.write_to(&mut bytes, format).expect("encodes");
                seeds.push((format!("seed.{ext}"), bytes.into_inner()));
            }
            let mut jpeg = std::io::Cursor::new(Vec::new());
            image::DynamicImage::ImageRgba8(image)
                .into_rgb8()
                .write_to(&mut jpeg, image::ImageFormat::Jpeg)
                .expect("encodes");
            seeds.push(("seed.jpg".into(), jpeg.into_inner()));
        }
        "checkpoint" => {
            let session = checkpoint_session();
            let file = dir.join("step.safetensors");
            std::fs::create_dir_all(dir).expect("the corpus folder");
            let tensors = session.checkpoint_tensors().expect("tensors");
            candle_core::safetensors::save(&tensors, &file).expect("a checkpoint");
            return;
        }
        "metrics" => {
            let csv = "step,epoch,wall_s,loss_d,loss_g,holdout_recon\n1,0.01,0.5,1.3,0.7,\n2,0.02,1.0,1.2,0.8,3.5\n";
            seeds.push(("metrics.csv".into(), csv.as_bytes().to_vec()));
        }
        _ => unreachable!("every target has seeds"),
    }
    std::fs::create_dir_all(dir).expect("the corpus folder");
    for (file, bytes) in seeds {
        std::fs::write(dir.join(file), bytes).expect("a seed");
    }
}

/// Big-endian 32-bit values that break size arithmetic.
const INTERESTING: [u32; 10] = [
    0,
    1,
    2,
    0x7f,
    0xff,
    0x100,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

fn mutate(rng: &mut StdRng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = out.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = rng.random();
            }
            2 if len >= 4 => {
                let i = rng.random_range(0..len / 4) * 4;
                let value = INTERESTING[rng.random_range(0..INTERESTING.len())];
                out[i..i + 4].copy_from_slice(&value.to_be_bytes());
            }
            3 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                out.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let i = rng.random_range(0..len);
                let end = (i + rng.random_range(1..=32)).min(len);
                out.drain(i..end);
            }
            5 if len > 0 => {
                let i = rng.random_range(0..len);
                let end = (i + rng.random_range(1..=64)).min(len);
                let copy = out[i..end].to_vec();
                let at = rng.random_range(0..=len);
                out.splice(at..at, copy);
            }
            6 if len > 0 => out.truncate(rng.random_range(0..len)),
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
    out.truncate(MAX_INPUT);
    out
}

/// Peak resident memory of this process so far, in MiB.
fn peak_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

fn fuzz(mut target: Target, inputs: u64, seed: u64) {
    let corpus_dir = Path::new("fuzz/corpus").join(target.name);
    if !corpus_dir.exists() {
        write_seeds(target.name, &corpus_dir);
    }
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&corpus_dir)
        .map(|entries| entries.flatten().filter_map(|e| std::fs::read(e.path()).ok()).collect())
        .unwrap_or_default();
    assert!(!corpus.is_empty(), "no seeds in {}", corpus_dir.display());
    let seeds = corpus.len();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut outcomes = HashSet::new();
    let (mut panics, started, peak_before) = (0u64, Instant::now(), peak_mib());
    for n in 0..inputs {
        let parent = &corpus[rng.random_range(0..corpus.len())];
        let input = if n < seeds as u64 {
            corpus[n as usize].clone()
        } else {
            mutate(&mut rng, parent, &corpus)
        };
        match catch_unwind(AssertUnwindSafe(|| (target.run)(&input))) {
            Ok(result) => {
                if outcomes.insert(outcome(result)) && corpus.len() < CORPUS_LIMIT {
                    corpus.push(input);
                }
            }
            Err(_) => {
                panics += 1;
                let _ = std::fs::create_dir_all("fuzz/crashes");
                let name = format!("fuzz/crashes/{}-{n}", target.name);
                let _ = std::fs::write(&name, &input);
                eprintln!("{}: input {n} panicked; saved as {name}", target.name);
            }
        }
    }
    println!(
        "{:10} {inputs} inputs in {:.0} s: {panics} panics, {} distinct outcomes, corpus {seeds} -> {}, \
         peak memory {} MiB (before {} MiB)",
        target.name,
        started.elapsed().as_secs_f64(),
        outcomes.len(),
        corpus.len(),
        peak_mib(),
        peak_before
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "all".into());
    let inputs: u64 = args.next().map_or(100_000, |n| n.parse().expect("a number of inputs"));
    // Panics are expected findings here, counted and saved; their default report would flood the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    let names: Vec<&'static str> = match which.as_str() {
        "all" => TARGETS.to_vec(),
        one => vec![*TARGETS
            .iter()
            .find(|t| **t == one)
            .unwrap_or_else(|| panic!("no target {one}"))],
    };
    for name in names {
        fuzz(target(name), inputs, 1);
    }
}
