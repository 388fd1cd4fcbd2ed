//! The pre-flight estimate: what a config will cost before anything is allocated. Memory of the data set,
//! the parameters with their gradients and optimiser state, and one training step's activations (forward
//! and backward); the time of a step from its multiply-adds and this machine's measured speed. The CLI and
//! the workbench refuse a config whose estimate does not fit the memory available, naming the setting to
//! lower, so a typo in a width or a batch size is a message instead of an aborted process.
//!
//! The layer walk mirrors the model builders (it reuses their DCGAN and conv-AE plans); a test checks its
//! parameter counts against the built models', and `examples/footprint_bench` its memory against the peak
//! of real runs.

use crate::config::{ModelKind, Norm, OptimizerKind, RunConfig};
use crate::data::{self, DataSpec, ItemShape};
use crate::models::gan::dcgan_plan;
use crate::models::layers::ConvSpec;
use crate::quality::evaluator::reference_items_drawn;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

const MIB: f64 = (1u64 << 20) as f64;

/// Memory of the process before any run: code, runtime, thread stacks and the kernels' scratch buffers.
const BASELINE_BYTES: u64 = 24 << 20;

/// Share of the measured matrix-product speed a whole training step reaches (convolution patches, batch
/// norm, optimiser updates and element-wise passes run slower than one large product); measured with
/// `examples/footprint_bench` on the benchmark presets (0.5 until the steps got faster: the estimate read up to
/// 2.4x the measured step).
const STEP_EFFICIENCY: f64 = 0.85;

/// MNIST-family downloads hold 70,000 images of 28x28 (training and test files).
const MNIST_ITEMS: u64 = 70_000;

/// What one layer costs per item.
#[derive(Clone, Copy, Debug, Default)]
struct Layer {
    params: u64,
    /// Values of its output (kept for the backward pass).
    outputs: u64,
    multiply_adds: u64,
}

/// A network as the sum of its layers, per item.
#[derive(Clone, Copy, Debug, Default)]
struct NetCost {
    params: u64,
    activations: u64,
    multiply_adds: u64,
}

impl NetCost {
    fn add(&mut self, layer: Layer) {
        self.params += layer.params;
        self.activations += layer.outputs;
        self.multiply_adds += layer.multiply_adds;
    }

    fn of(layers: impl IntoIterator<Item = Layer>) -> NetCost {
        let mut net = NetCost::default();
        layers.into_iter().for_each(|l| net.add(l));
        net
    }
}

/// A linear layer with its bias, then its norm (if any).
fn dense(inputs: usize, outputs: usize, norm: Norm) -> Vec<Layer> {
    let (i, o) = (inputs as u64, outputs as u64);
    let mut layers = vec![Layer {
        params: i * o + o,
        outputs: o,
        multiply_adds: i * o,
    }];
    if norm != Norm::None {
        layers.push(Layer {
            params: 2 * o,
            outputs: o,
            multiply_adds: 0,
        });
    }
    layers
}

/// A stack of dense blocks from `inputs` through `widths`; returns the layers and the last width.
fn dense_stack(inputs: usize, widths: &[usize], norm: Norm) -> (Vec<Layer>, usize) {
    let mut width = inputs;
    let mut layers = Vec::new();
    for &w in widths {
        layers.extend(dense(width, w, norm));
        width = w;
    }
    (layers, width)
}

/// A (transposed) convolution over a `side`x`side` input, then its batch norm (if any); returns the layers
/// and the output side.
fn conv(spec: ConvSpec, side: usize, transposed: bool, bias: bool, norm: bool) -> Result<(Vec<Layer>, usize), String> {
    let out = match transposed {
        true => spec.transpose_out(side),
        false => spec.conv_out(side),
    }
    .ok_or_else(|| format!("a {0}x{0} kernel does not fit a {side}x{side} input", spec.kernel))?;
    let (cin, cout, k) = (spec.inputs as u64, spec.outputs as u64, spec.kernel as u64);
    // Every input pixel of a transposed convolution, every output pixel of a plain one, meets the kernel.
    let pixels = if transposed { side * side } else { out * out } as u64;
    let outputs = cout * (out * out) as u64;
    let mut layers = vec![Layer {
        params: cin * cout * k * k + if bias { cout } else { 0 },
        outputs,
        multiply_adds: cin * cout * k * k * pixels,
    }];
    if norm {
        layers.push(Layer {
            params: 2 * cout,
            outputs,
            multiply_adds: 0,
        });
    }
    Ok((layers, out))
}

/// The networks a config builds, as (generator or encoder, discriminator or decoder).
fn networks(config: &RunConfig, shape: ItemShape) -> Result<(NetCost, NetCost), String> {
    let m = &config.model;
    let item = shape.len();
    let side = match shape {
        ItemShape::Image { height, .. } => height,
        ItemShape::Point => 1,
    };
    let reversed: Vec<usize> = m.hidden.iter().rev().copied().collect();
    Ok(match m.kind {
        ModelKind::MlpGan => {
            let (mut g, width) = dense_stack(m.generator_input(), &m.hidden, m.norm);
            g.extend(dense(width, item, Norm::None));
            let (mut d, width) = dense_stack(item, &reversed, m.norm);
            d.extend(dense(width, m.critic_outputs(), Norm::None));
            (NetCost::of(g), NetCost::of(d))
        }
        ModelKind::Dcgan => {
            let plan = dcgan_plan(shape, m)?;
            let (mut g, mut d) = (NetCost::default(), NetCost::default());
            let last = plan.generator.len() - 1;
            let mut s = 1;
            for (i, spec) in plan.generator.iter().enumerate() {
                let (layers, out) = conv(*spec, s, true, false, i < last && m.norm == Norm::Batch)?;
                layers.into_iter().for_each(|l| g.add(l));
                s = out;
            }
            let last = plan.discriminator.len() - 1;
            let mut s = side;
            for (i, spec) in plan.discriminator.iter().enumerate() {
                let (layers, out) = conv(*spec, s, false, false, i > 0 && i < last && m.norm == Norm::Batch)?;
                layers.into_iter().for_each(|l| d.add(l));
                s = out;
            }
            (g, d)
        }
        ModelKind::Ae | ModelKind::Vae => {
            let code = if m.kind.is_vae() { 2 * m.latent } else { m.latent };
            let (mut encoder, width) = dense_stack(item, &reversed, m.norm);
            encoder.extend(dense(width, code, Norm::None));
            let (mut decoder, width) = dense_stack(m.latent, &m.hidden, m.norm);
            decoder.extend(dense(width, item, Norm::None));
            (NetCost::of(encoder), NetCost::of(decoder))
        }
        ModelKind::ConvAe | ModelKind::DenoisingAe | ModelKind::ConvVae => {
            let code = if m.kind.is_vae() { 2 * m.latent } else { m.latent };
            let (features, feature_side, specs) = crate::models::ae::conv_geometry(shape, m.base_width)?;
            let flat = features * feature_side * feature_side;
            let norm = m.norm == Norm::Batch;
            let (mut encoder, mut decoder) = (NetCost::default(), NetCost::default());
            let mut s = side;
            for spec in &specs {
                let (layers, out) = conv(*spec, s, false, true, norm)?;
                layers.into_iter().for_each(|l| encoder.add(l));
                s = out;
            }
            dense(flat, code, Norm::None).into_iter().for_each(|l| encoder.add(l));
            dense(m.latent, flat, Norm::None)
                .into_iter()
                .for_each(|l| decoder.add(l));
            let mut s = feature_side;
            let last = specs.len() - 1;
            for (i, spec) in specs.iter().rev().enumerate() {
                let mirrored = ConvSpec::new(spec.outputs, spec.inputs, spec.kernel, spec.stride, spec.padding);
                let (layers, out) = conv(mirrored, s, true, true, norm && i < last)?;
                layers.into_iter().for_each(|l| decoder.add(l));
                s = out;
            }
            (encoder, decoder)
        }
    })
}

/// A config's estimated cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Footprint {
    /// The data set in memory (`None` for an image folder, whose size is known once it is read).
    pub data_bytes: Option<u64>,
    /// The items a generated data set's quality reference is drawn from, held while its feature network
    /// trains: by the first run on these data settings only (later ones read it from the cache), but the
    /// estimate cannot know which run that is, and errs on the side of the machine.
    pub reference_bytes: u64,
    /// Trainable parameters of all networks.
    pub params: u64,
    /// Weights, gradients, optimiser state, a checkpoint's and the health checks' copies of them, and the
    /// quality metric's.
    pub param_bytes: u64,
    /// One training step's activations and their gradients.
    pub activation_bytes: u64,
    /// Multiply-adds of one training step.
    pub multiply_adds: f64,
    /// Training steps in one pass over the training items (`None` when the item count is not known).
    pub steps_per_epoch: Option<u64>,
}

impl Footprint {
    /// Estimates what training `config` costs. Errors are configs that make no model (as the builders
    /// would say).
    pub fn of(config: &RunConfig) -> Result<Footprint, String> {
        let shape = data::expected_shape(&config.data)?;
        let (first, second) = networks(config, shape)?;
        let (t, o) = (&config.train, &config.optimizer);
        let batch = t.batch_size as u64;
        let params = first.params + second.params;
        let states = match o.kind {
            OptimizerKind::Adam | OptimizerKind::AdamW => 2,
            OptimizerKind::Rmsprop => 1 + (o.momentum > 0.0) as u64,
            OptimizerKind::Sgd => (o.momentum > 0.0) as u64,
        };
        // Weights and gradients, the optimiser's state, and copies of weights and state: a checkpoint's
        // and the health checks' in-memory snapshots.
        let copies = 1 + config.health.snapshots as u64;
        let gan = config.model.kind.is_gan();
        // A GAN's moving average of G (`train.ema`) is kept beside G and copied with it.
        let average = match gan && t.ema > 0.0 {
            true => first.params,
            false => 0,
        };
        // The quality metric's thread is handed a copy of the weights (and the average) to score, and loads
        // them into a shadow session of its own (which never trains, so it has no optimiser state).
        let scored = match config.quality.every > 0 && shape.is_image() {
            true => 2 * (params + average),
            false => 0,
        };
        let param_bytes = 4 * (params * (2 + states + (1 + states) * copies) + average * (1 + copies) + scored);
        // Each stored activation meets a gradient of its size on the way back. A GAN's discriminator step
        // judges a real and a generated batch; an autoencoder's step runs both halves.
        let per_item = match gan {
            true => first.activations + 2 * second.activations,
            false => first.activations + second.activations,
        };
        let activation_bytes = 4 * 2 * batch * per_item + 4 * batch * shape.len() as u64 * 3;
        // Forward, then backward at about twice the forward's products.
        let multiply_adds = match gan {
            true => {
                let d_step = first.multiply_adds + 3 * 2 * second.multiply_adds;
                let g_step = 3 * first.multiply_adds + 2 * second.multiply_adds;
                (t.d_steps as u64 * d_step + g_step) as f64 * batch as f64
            }
            false => 3.0 * (first.multiply_adds + second.multiply_adds) as f64 * batch as f64,
        };
        let items = data_items(config);
        let data_bytes = items.map(|n| n * shape.len() as u64 * 4);
        let drawn = DataSpec::parse(&config.data.source).map_or(0, |source| reference_items_drawn(&source));
        let reference_bytes = match config.quality.every > 0 {
            true => drawn as u64 * shape.len() as u64 * 4,
            false => 0,
        };
        let steps_per_epoch = items.map(|n| {
            let train = n - (n as f64 * config.data.holdout).round() as u64;
            train.div_ceil(batch).max(1)
        });
        Ok(Footprint {
            data_bytes,
            reference_bytes,
            params,
            param_bytes,
            activation_bytes,
            multiply_adds,
            steps_per_epoch,
        })
    }

    /// The estimate of `config`, refused when it does not fit the memory the system has available now: the
    /// first part of the pre-flight check, before anything is allocated.
    pub fn checked(config: &RunConfig) -> Result<Footprint, String> {
        let footprint = Footprint::of(config)?;
        if let Some(available) = available_memory() {
            footprint.check_fits(config, available)?;
        }
        Ok(footprint)
    }

    /// Everything the run holds at its peak, the process's own baseline included.
    pub fn total_bytes(&self) -> u64 {
        BASELINE_BYTES + self.data_bytes.unwrap_or(0) + self.reference_bytes + self.param_bytes + self.activation_bytes
    }

    /// Seconds per training step on a machine doing `multiply_adds_per_s` in large matrix products.
    pub fn seconds_per_step(&self, multiply_adds_per_s: f64) -> f64 {
        self.multiply_adds / (multiply_adds_per_s * STEP_EFFICIENCY)
    }

    /// `≈ 310 MiB, ≈ 12 ms/step, 1 epoch ≈ 2 min` at the given speed (the memory alone while the speed is
    /// not measured yet).
    pub fn describe(&self, multiply_adds_per_s: Option<f64>) -> String {
        let mut text = format!("≈ {}", bytes(self.total_bytes()));
        if self.data_bytes.is_none() {
            text += " + the folder's images";
        }
        if let Some(speed) = multiply_adds_per_s {
            let step = self.seconds_per_step(speed);
            text += &format!(", ≈ {}/step", duration(step));
            if let Some(steps) = self.steps_per_epoch {
                text += &format!(", 1 epoch ≈ {}", duration(step * steps as f64));
            }
        }
        text
    }

    /// Refuses a config that needs more than `available` bytes, naming what to lower.
    pub fn check_fits(&self, config: &RunConfig, available: u64) -> Result<(), String> {
        let needed = self.total_bytes();
        if needed <= available {
            return Ok(());
        }
        let data_setting = match DataSpec::parse(&config.data.source) {
            Ok(DataSpec::Digits | DataSpec::Shapes | DataSpec::Toy(_) | DataSpec::Drawn) => "data.count",
            _ => "data.image_size or the data set's size",
        };
        let width_setting = match config.model.kind.is_conv() {
            true => "model.base_width",
            false => "model.hidden",
        };
        let (largest, what, lower) = [
            (self.data_bytes.unwrap_or(0), "the data set", data_setting),
            (
                self.reference_bytes,
                "the quality metric's reference items",
                "data.image_size or set quality.every = 0",
            ),
            (
                self.param_bytes,
                "parameters with gradients and optimiser state",
                width_setting,
            ),
            (self.activation_bytes, "one step's activations", "train.batch_size"),
        ]
        .into_iter()
        .max_by_key(|(b, _, _)| *b)
        .expect("four parts");
        Err(format!(
            "this run needs ≈ {} of memory but {} is available: lower {lower} ({what}: ≈ {})",
            bytes(needed),
            bytes(available),
            bytes(largest)
        ))
    }
}

/// Items in memory once the data is loaded, where known before loading.
fn data_items(config: &RunConfig) -> Option<u64> {
    match DataSpec::parse(&config.data.source).ok()? {
        DataSpec::Digits | DataSpec::Shapes | DataSpec::Toy(_) | DataSpec::Drawn => Some(config.data.count as u64),
        DataSpec::Mnist | DataSpec::FashionMnist => Some(MNIST_ITEMS),
        DataSpec::Idx(dir) => Some(idx_items(&dir)),
        DataSpec::Folder(_) => None,
    }
}

/// Images in an IDX folder, from its image files' sizes (a gzip file records its unpacked size in its last
/// four bytes), taken as 28x28.
fn idx_items(dir: &Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    let unpacked = |path: &Path| -> Option<u64> {
        let mut file = std::fs::File::open(path).ok()?;
        if path.extension().is_some_and(|e| e == "gz") {
            let mut tail = [0u8; 4];
            file.seek(SeekFrom::End(-4)).ok()?;
            file.read_exact(&mut tail).ok()?;
            Some(u32::from_le_bytes(tail) as u64)
        } else {
            Some(file.metadata().ok()?.len())
        }
    };
    let bytes: u64 = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("images")))
        .filter_map(|p| unpacked(&p))
        .sum();
    bytes / (28 * 28)
}

/// Memory the system can give this process now: what the kernel counts as available, within the
/// control group's limit. `None` where neither can be read (then nothing is refused).
pub fn available_memory() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let meminfo = read("/proc/meminfo").and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let number = |path: &str| read(path).and_then(|t| t.trim().parse::<u64>().ok());
    let cgroup = number("/sys/fs/cgroup/memory.max")
        .map(|max| max.saturating_sub(number("/sys/fs/cgroup/memory.current").unwrap_or(0)));
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The fastest of the speeds measured so far: a measurement taken while other work shares the cores reads low
/// (the workbench starting up: its first frames and the software renderer's threads), and a few taken apart
/// find a quiet moment.
#[derive(Debug, Default)]
pub struct BestSpeed(AtomicU64);

impl BestSpeed {
    pub const fn new() -> BestSpeed {
        BestSpeed(AtomicU64::new(0))
    }

    /// Keeps `multiply_adds_per_s` if it is faster than every one before.
    pub fn record(&self, multiply_adds_per_s: f64) {
        // Positive floats order as their bit patterns do.
        if multiply_adds_per_s.is_finite() && multiply_adds_per_s > 0.0 {
            self.0.fetch_max(multiply_adds_per_s.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> Option<f64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            bits => Some(f64::from_bits(bits)),
        }
    }
}

static SPEED: BestSpeed = BestSpeed::new();

/// This machine's multiply-adds per second in a large matrix product on Gantry's threads, measured on the
/// first call (about 20 ms).
pub fn machine_speed() -> f64 {
    SPEED.get().unwrap_or_else(|| {
        let measured = crate::models::measure_product_speed();
        SPEED.record(measured);
        SPEED.get().unwrap_or(measured)
    })
}

/// Measures the speed `rounds` times, `apart` between them, keeping the fastest: for a thread of the
/// workbench, which starts it while its own start-up shares the cores.
pub fn settle_machine_speed(rounds: usize, apart: std::time::Duration) {
    for round in 0..rounds {
        if round > 0 {
            std::thread::sleep(apart);
        }
        SPEED.record(crate::models::measure_product_speed());
    }
}

/// The speed if it has been measured, without waiting (for the UI thread).
pub fn machine_speed_if_measured() -> Option<f64> {
    SPEED.get()
}

/// `310 MiB`, `2.1 GiB`.
pub fn bytes(n: u64) -> String {
    let mib = n as f64 / MIB;
    if mib < 1024.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{:.1} GiB", mib / 1024.0)
    }
}

/// `12 ms`, `3.4 s`, `2 min`, `1.5 h`.
fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 1.0 => format!("{:.0} ms", (s * 1e3).max(1.0)),
        s if s < 60.0 => format!("{s:.1} s"),
        s if s < 3600.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::{preset, PRESETS};

    fn built_params(config: &RunConfig) -> u64 {
        let shape = data::expected_shape(&config.data).unwrap();
        let nets = crate::models::preflight(&config.model, shape).unwrap();
        nets.iter().map(|n| n.params as u64).sum()
    }

    #[test]
    fn the_speed_kept_is_the_fastest_measured_and_none_before_any() {
        let speed = BestSpeed::new();
        assert_eq!(speed.get(), None);
        // A measurement under load reads low; the quiet one after it is the machine's.
        for measured in [31e9, 105e9, 62e9, f64::NAN, 0.0] {
            speed.record(measured);
        }
        assert_eq!(speed.get(), Some(105e9));
    }

    #[test]
    fn parameter_counts_match_the_built_models() {
        let mut configs: Vec<RunConfig> = PRESETS.iter().map(|(name, _)| preset(name).unwrap()).collect();
        for (kind, norm, source, size) in [
            (ModelKind::Dcgan, Norm::Batch, "shapes", 64),
            (ModelKind::Dcgan, Norm::None, "shapes", 32),
            (ModelKind::ConvVae, Norm::Batch, "shapes", 32),
            (ModelKind::DenoisingAe, Norm::None, "digits", 28),
            (ModelKind::MlpGan, Norm::Layer, "toy:ring", 28),
            (ModelKind::Vae, Norm::Batch, "digits", 28),
            (ModelKind::Ae, Norm::None, "shapes", 64),
        ] {
            let mut c = RunConfig::default();
            (c.model.kind, c.model.norm, c.data.source, c.data.image_size) = (kind, norm, source.into(), size);
            (c.data.channels, c.model.base_width, c.model.hidden) = (3, 16, vec![40, 72, 24]);
            configs.push(c);
        }
        // Conditional GANs: G's input and D's last layer grow by the classes.
        for kind in [ModelKind::Dcgan, ModelKind::MlpGan] {
            let mut c = preset("quick-dcgan-digits").unwrap();
            (c.model.kind, c.model.classes) = (kind, 10);
            configs.push(c);
        }
        for config in &configs {
            let footprint = Footprint::of(config).unwrap();
            assert_eq!(footprint.params, built_params(config), "{:?}", config.model);
        }
    }

    #[test]
    fn an_oversized_config_is_refused_naming_the_setting_to_lower() {
        let gib = 1u64 << 30;
        let mut config = preset("dcgan-digits").unwrap();
        let fits = Footprint::of(&config).unwrap();
        assert!(fits.check_fits(&config, gib).is_ok(), "{}", bytes(fits.total_bytes()));
        config.train.batch_size = 8192;
        let message = Footprint::of(&config).unwrap().check_fits(&config, gib).unwrap_err();
        assert!(message.contains("lower train.batch_size"), "{message}");
        let mut wide = preset("mlp-gan-digits").unwrap();
        wide.model.hidden = vec![16384; 6];
        let message = Footprint::of(&wide).unwrap().check_fits(&wide, 8 * gib).unwrap_err();
        assert!(message.contains("lower model.hidden"), "{message}");
        let mut many = preset("mlp-gan-digits").unwrap();
        many.data.count = 1_000_000;
        let message = Footprint::of(&many).unwrap().check_fits(&many, gib).unwrap_err();
        assert!(message.contains("lower data.count"), "{message}");
    }

    #[test]
    fn the_estimate_grows_with_what_it_counts() {
        let base = preset("dcgan-digits").unwrap();
        let mut bigger_batch = base.clone();
        bigger_batch.train.batch_size *= 2;
        let (a, b) = (Footprint::of(&base).unwrap(), Footprint::of(&bigger_batch).unwrap());
        assert_eq!(b.activation_bytes, 2 * a.activation_bytes);
        assert_eq!(b.multiply_adds, 2.0 * a.multiply_adds);
        assert_eq!((a.param_bytes, a.data_bytes), (b.param_bytes, b.data_bytes));
        assert_eq!(a.describe(None), format!("≈ {}", bytes(a.total_bytes())));
        let text = a.describe(Some(1e10));
        assert!(
            text.starts_with("≈ ") && text.contains("/step") && text.contains("1 epoch ≈"),
            "{text}"
        );
        // The quality metric's thread holds the weights twice: the copy it is handed and its shadow's.
        let mut unscored = base.clone();
        unscored.quality.every = 0;
        let c = Footprint::of(&unscored).unwrap();
        assert_eq!((base.train.ema, a.param_bytes - c.param_bytes), (0.0, 4 * 2 * a.params));
        // On generated data it also draws its reference's 10,000 items (a first run on these settings does).
        assert_eq!((a.reference_bytes, c.reference_bytes), (10_000 * 28 * 28 * 4, 0));
        let mut colour = base.clone();
        colour.data.source = "shapes".into();
        (colour.data.image_size, colour.data.channels, colour.model.base_width) = (64, 3, 16);
        let message = Footprint::of(&colour)
            .unwrap()
            .check_fits(&colour, 1 << 30)
            .unwrap_err();
        assert!(
            message.contains("quality.every = 0 (the quality metric's reference items: ≈ 469 MiB)"),
            "{message}"
        );
        let mut mnist = base.clone();
        mnist.data.source = "mnist".into();
        assert_eq!(
            Footprint::of(&mnist).unwrap().reference_bytes,
            0,
            "scored against the run's own data"
        );
    }

    #[test]
    fn durations_and_sizes_read_naturally() {
        assert_eq!(duration(0.0123), "12 ms");
        assert_eq!(duration(3.44), "3.4 s");
        assert_eq!(duration(125.0), "2 min");
        assert_eq!(bytes(310 << 20), "310 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
