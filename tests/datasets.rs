//! Real-data sources through the engine: IDX folders, image folders, and the shared MNIST test set.

mod common;

use common::{small, wait_for};
use gantry::data::{self, DataSpec, ItemShape};
use gantry::train::session::Session;
use gantry::train::worker::{Event, RunOptions, RunState, Trainer};
use std::path::Path;
use std::process::Command;

/// Writes `count` IDX images of `side`x`side` (and labels) as MNIST's training files.
fn write_idx(dir: &Path, count: usize, side: usize) {
    let mut images = vec![0, 0, 8, 3];
    for dim in [count, side, side] {
        images.extend_from_slice(&(dim as u32).to_be_bytes());
    }
    images.extend((0..count * side * side).map(|i| (i * 7 % 256) as u8));
    std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&(count as u32).to_be_bytes());
    labels.extend((0..count).map(|i| (i % 10) as u8));
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
}

#[test]
fn specs_for_real_data_parse() {
    assert_eq!(
        DataSpec::parse("idx:/data/mnist"),
        Ok(DataSpec::Idx("/data/mnist".into()))
    );
    assert_eq!(DataSpec::parse("folder:pics"), Ok(DataSpec::Folder("pics".into())));
    assert_eq!(DataSpec::parse("mnist"), Ok(DataSpec::Mnist));
    assert_eq!(DataSpec::parse("fashion-mnist"), Ok(DataSpec::FashionMnist));
    assert!(DataSpec::parse("idx:").unwrap_err().contains("no directory"));
}

#[test]
fn gantry_trains_on_an_idx_folder() {
    let data = tempfile::tempdir().unwrap();
    write_idx(data.path(), 300, 28);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let spec = format!("idx:{}", data.path().display());
    let result = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args([
            "train",
            "--preset",
            "vae-digits",
            "--data",
            &spec,
            "--steps",
            "5",
            "--out",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&result.stdout).to_string() + &String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{text}");
    assert!(text.contains("300 items, 28x28 grayscale, 10 labels"), "{text}");
    assert!(run.join("metrics.csv").exists());
}

#[test]
fn a_missing_data_directory_is_a_clear_error_not_a_crash() {
    let result = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args([
            "train",
            "--data",
            "idx:/no/such/dir",
            "--steps",
            "5",
            "--out",
            "/tmp/gantry-never-written",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&result.stdout).to_string() + &String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{text}");
    assert!(
        text.contains("/no/such/dir") && text.contains("does not exist"),
        "{text}"
    );
}

#[test]
fn a_model_that_cannot_make_the_datas_size_refuses_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(dir.path(), 50, 20);
    let mut config = small("dcgan-digits");
    config.data.source = format!("idx:{}", dir.path().display());
    let data = data::load(&config.data, 0, &|_, _, _| {}).unwrap();
    assert_eq!(
        data.shape,
        ItemShape::Image {
            channels: 1,
            height: 20,
            width: 20
        }
    );
    let err = Session::new(config, data)
        .err()
        .expect("DCGAN cannot make 20x20 images");
    assert!(err.contains("20x20"), "{err}");
}

#[test]
fn an_image_folder_loads_with_labels_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    for (class, colour) in [("cats", 40u8), ("dogs", 200u8)] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for i in 0..6u32 {
            let img = image::RgbImage::from_pixel(40 + i, 30, image::Rgb([colour, 0, 255 - colour]));
            img.save(dir.path().join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(dir.path().join("cats").join("notes.png"), "not an image").unwrap();
    let mut config = small("mlp-gan-digits");
    config.data.source = format!("folder:{}", dir.path().display());
    config.data.channels = 3;
    config.data.image_size = 28;
    let trainer = Trainer::spawn(config, RunOptions::default(), None);
    let mut progress = 0;
    let info = wait_for(&trainer, |e| match e {
        Event::Progress { .. } => {
            progress += 1;
            None
        }
        Event::Loaded(info) => Some(info.clone()),
        _ => None,
    });
    assert!(progress > 0, "decoding reports progress");
    assert_eq!(info.data.count, 12);
    assert_eq!(info.data.label_names, vec!["cats", "dogs"]);
    assert_eq!(
        info.data.shape,
        ItemShape::Image {
            channels: 3,
            height: 28,
            width: 28
        }
    );
    assert!(
        info.data.notes.iter().any(|n| n.contains("notes.png")),
        "{:?}",
        info.data.notes
    );
    assert!(info.data.preview.is_some());
    wait_for(&trainer, |e| matches!(e, Event::State(RunState::Ready)).then_some(()));
}

/// The real MNIST test set beside the project, when it is there.
#[test]
fn the_shared_mnist_test_set_loads_when_present() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if !dir.exists() {
        println!("skipping: {} is absent", dir.display());
        return;
    }
    let mut config = small("vae-digits");
    config.data.source = format!("idx:{}", dir.display());
    let data = data::load(&config.data, 0, &|_, _, _| {}).unwrap();
    assert_eq!(data.len(), 10_000);
    assert_eq!(
        data.shape,
        ItemShape::Image {
            channels: 1,
            height: 28,
            width: 28
        }
    );
    let labels = data.labels.as_ref().unwrap();
    assert!((0..10).all(|d| labels.contains(&d)));
    let mut session = Session::new(config, data).unwrap();
    assert!(session.step().unwrap().first_non_finite().is_none());
}
