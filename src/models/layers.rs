//! The layers the model builders use, written over candle tensor ops so that every weight is a named,
//! seeded `Var` we own (for checkpoints, gradient norms and our own optimisers).

use super::norm::Stats;
use super::rectifier::{self, FusedActivation, FusedProduct, Rectifier};
use crate::config::{Activation, Norm};
use crate::rng::normal_vec;
use candle_core::{Device, Module, Result, Tensor, Var, D};
use rand::rngs::StdRng;
use rand::Rng;

/// Named tensors of one network: the ones the optimiser trains and the ones it does not (batch-norm
/// running statistics), both saved in checkpoints.
#[derive(Default)]
pub struct Params {
    pub trainable: Vec<(String, Var)>,
    pub buffers: Vec<(String, Var)>,
}

impl Params {
    pub fn count(&self) -> usize {
        self.trainable.iter().map(|(_, v)| v.elem_count()).sum()
    }

    pub fn vars(&self) -> Vec<Var> {
        self.trainable.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Every tensor (trainable and buffer), for saving.
    pub fn all(&self) -> impl Iterator<Item = &(String, Var)> {
        self.trainable.iter().chain(&self.buffers)
    }
}

/// How a weight starts out.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for linear and conv layers.
    FanIn(usize),
    /// N(mean, std²), the DCGAN recipe (weights N(0, 0.02), batch-norm scale N(1, 0.02)).
    Normal {
        mean: f32,
        std: f32,
    },
    Const(f32),
}

/// Which implementation the layers run on: Gantry's kernels (convolutions in `conv.rs`, batch norm in
/// `norm.rs`, linear products in `product.rs`, bias and rectifiers in `rectifier.rs`) or candle's own ops,
/// kept to check ours against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    #[default]
    Fast,
    Candle,
}

/// Creates the weights of one network from one seeded generator, so a seed fixes the initial model.
pub struct Builder {
    pub params: Params,
    rng: StdRng,
    /// DCGAN networks use N(0, 0.02) for every conv weight instead of the fan-in default.
    pub dcgan_init: bool,
    pub kernels: Kernels,
}

impl Builder {
    pub fn new(rng: StdRng, kernels: Kernels) -> Builder {
        Builder {
            params: Params::default(),
            rng,
            dcgan_init: false,
            kernels,
        }
    }

    fn values(&mut self, n: usize, init: Init) -> Vec<f32> {
        match init {
            Init::FanIn(fan_in) => {
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                (0..n).map(|_| self.rng.random_range(-bound..=bound)).collect()
            }
            Init::Normal { mean, std } => normal_vec(&mut self.rng, n)
                .into_iter()
                .map(|v| mean + std * v)
                .collect(),
            Init::Const(c) => vec![c; n],
        }
    }

    pub fn trainable(&mut self, name: &str, dims: &[usize], init: Init) -> Result<Var> {
        let n = dims.iter().product();
        let var = Var::from_vec(self.values(n, init), dims, &Device::Cpu)?;
        self.params.trainable.push((name.to_string(), var.clone()));
        Ok(var)
    }

    pub fn buffer(&mut self, name: &str, dims: &[usize], value: f32) -> Result<Var> {
        let var = Var::from_vec(vec![value; dims.iter().product()], dims, &Device::Cpu)?;
        self.params.buffers.push((name.to_string(), var.clone()));
        Ok(var)
    }

    fn conv_init(&self, fan_in: usize) -> Init {
        if self.dcgan_init {
            Init::Normal { mean: 0.0, std: 0.02 }
        } else {
            Init::FanIn(fan_in)
        }
    }
}

/// Whether a forward pass trains (batch statistics, running averages updated), samples (batch statistics,
/// nothing updated) or evaluates (running statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    /// Judges for the other network of a GAN while that one trains: batch statistics as in `Train`
    /// (running averages updated, as PyTorch's discriminator in train mode does), but the weights are
    /// constants, so backward computes no gradients for them that the step would throw away.
    Judge,
    Sample,
    Eval,
}

impl Mode {
    /// A weight as a forward pass in this mode uses it.
    fn weight(self, var: &Var) -> Tensor {
        match self {
            Mode::Judge => var.as_detached_tensor(),
            Mode::Train | Mode::Sample | Mode::Eval => var.as_tensor().clone(),
        }
    }

    /// Whether the pass normalises with the batch's own statistics.
    fn batch_statistics(self) -> bool {
        self != Mode::Eval
    }

    /// Whether the pass updates the running statistics.
    fn updates_running(self) -> bool {
        matches!(self, Mode::Train | Mode::Judge)
    }
}

pub struct Linear {
    weight: Var,
    bias: Option<Var>,
    kernels: Kernels,
}

impl Linear {
    pub fn new(b: &mut Builder, name: &str, inputs: usize, outputs: usize) -> Result<Linear> {
        let weight = b.trainable(&format!("{name}.weight"), &[outputs, inputs], Init::FanIn(inputs))?;
        let bias = Some(b.trainable(&format!("{name}.bias"), &[outputs], Init::FanIn(inputs))?);
        Ok(Linear {
            weight,
            bias,
            kernels: b.kernels,
        })
    }

    /// `activation(x · wᵀ + b)`, `x` (batch, ...) flattened to (batch, inputs): one op with a rectifier and
    /// the fast kernels.
    pub fn forward_activated(&self, x: &Tensor, activation: Activation, mode: Mode) -> Result<Tensor> {
        match Rectifier::of(activation) {
            Some(rectifier) => self.forward_fused(x, Some(FusedActivation::Rectifier(rectifier)), mode),
            None => activate(&self.forward(x, mode)?, activation, self.kernels),
        }
    }

    /// `tanh(x · wᵀ + b)` (a generator's last layer): one op with the fast kernels.
    pub fn forward_tanh(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_fused(x, Some(FusedActivation::Tanh), mode)
    }

    /// `x · wᵀ + b`, `x` (batch, ...) flattened to (batch, inputs).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_fused(x, None, mode)
    }

    /// `activation(x · wᵀ + b)`: one op with the fast kernels, candle's ops with its own.
    fn forward_fused(&self, x: &Tensor, activation: Option<FusedActivation>, mode: Mode) -> Result<Tensor> {
        let (weight, bias) = (mode.weight(&self.weight), self.bias.as_ref().map(|b| mode.weight(b)));
        match self.kernels {
            Kernels::Fast => {
                let then = rectifier::Epilogue {
                    bias: bias.as_ref(),
                    activation,
                };
                super::product::linear(x, &weight, then)
            }
            Kernels::Candle => {
                let y = candle_nn::Linear::new(weight, bias).forward(&x.flatten_from(1)?)?;
                match activation {
                    Some(activation) => activation.with_tensor_ops(&y),
                    None => Ok(y),
                }
            }
        }
    }
}

/// Geometry of a square convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub inputs: usize,
    pub outputs: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvSpec {
    pub const fn new(inputs: usize, outputs: usize, kernel: usize, stride: usize, padding: usize) -> ConvSpec {
        ConvSpec {
            inputs,
            outputs,
            kernel,
            stride,
            padding,
        }
    }

    /// Output side of a convolution over `size` pixels, if it is at least one pixel.
    pub fn conv_out(&self, size: usize) -> Option<usize> {
        (size + 2 * self.padding)
            .checked_sub(self.kernel)
            .map(|s| s / self.stride + 1)
    }

    /// Output side of a transposed convolution over `size` pixels.
    pub fn transpose_out(&self, size: usize) -> Option<usize> {
        ((size - 1) * self.stride + self.kernel)
            .checked_sub(2 * self.padding)
            .filter(|s| *s > 0)
    }
}

/// A convolution or a transposed convolution (`transposed`), with an optional bias.
pub struct Conv {
    spec: ConvSpec,
    weight: Var,
    bias: Option<Var>,
    kernels: Kernels,
    transposed: bool,
}

impl Conv {
    pub fn new(b: &mut Builder, name: &str, spec: ConvSpec, bias: bool) -> Result<Conv> {
        Conv::build(b, name, spec, bias, false)
    }

    pub fn transposed(b: &mut Builder, name: &str, spec: ConvSpec, bias: bool) -> Result<Conv> {
        Conv::build(b, name, spec, bias, true)
    }

    /// Weight and optional bias (a transposed convolution's weight is laid out (inputs, outputs, k, k), and
    /// PyTorch counts its fan-in from the outputs).
    fn build(b: &mut Builder, name: &str, spec: ConvSpec, bias: bool, transposed: bool) -> Result<Conv> {
        let k = spec.kernel;
        let (dims, fan_in) = if transposed {
            ([spec.inputs, spec.outputs, k, k], spec.outputs * k * k)
        } else {
            ([spec.outputs, spec.inputs, k, k], spec.inputs * k * k)
        };
        let init = b.conv_init(fan_in);
        let weight = b.trainable(&format!("{name}.weight"), &dims, init)?;
        let bias = bias
            .then(|| b.trainable(&format!("{name}.bias"), &[spec.outputs], Init::FanIn(fan_in)))
            .transpose()?;
        Ok(Conv {
            spec,
            weight,
            bias,
            kernels: b.kernels,
            transposed,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_fused(x, None, mode)
    }

    /// `tanh(conv(x) + bias)` (a generator's last layer): one op with the fast kernels.
    pub fn forward_tanh(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_fused(x, Some(FusedActivation::Tanh), mode)
    }

    /// `activation(norm(conv(x) + bias))`: one op with no norm, a rectifier and the fast kernels.
    pub fn forward_activated(
        &self,
        x: &Tensor,
        norm: &NormLayer,
        activation: Activation,
        mode: Mode,
    ) -> Result<Tensor> {
        match (norm, Rectifier::of(activation)) {
            (NormLayer::None, Some(rectifier)) => {
                self.forward_fused(x, Some(FusedActivation::Rectifier(rectifier)), mode)
            }
            (NormLayer::Batch(bn), _) => self.forward_normalised(x, bn, activation, mode),
            _ => norm.forward_activated(&self.forward(x, mode)?, mode, activation, self.kernels),
        }
    }

    /// `activation(batch_norm(conv(x) + bias))`: one op with a rectifier, no bias and the fast kernels.
    pub fn forward_normalised(&self, x: &Tensor, bn: &BatchNorm, activation: Activation, mode: Mode) -> Result<Tensor> {
        match (self.kernels, &self.bias, Rectifier::of(activation)) {
            (Kernels::Fast, None, Some(rectifier)) => {
                let weight = mode.weight(&self.weight);
                let at = (self.spec.stride, self.spec.padding);
                let product = super::conv::convolution(x, &weight, at, self.transposed, None)?;
                bn.forward_after(x, &weight, product, mode, rectifier)
            }
            _ => bn.forward_activated(&self.forward(x, mode)?, mode, activation),
        }
    }

    /// `activation(conv(x) + bias)`: one op with the fast kernels, candle's ops with its own.
    fn forward_fused(&self, x: &Tensor, activation: Option<FusedActivation>, mode: Mode) -> Result<Tensor> {
        let (stride, padding, weight) = (self.spec.stride, self.spec.padding, mode.weight(&self.weight));
        let bias = self.bias.as_ref().map(|b| mode.weight(b));
        match self.kernels {
            Kernels::Fast => {
                let then = rectifier::Epilogue {
                    bias: bias.as_ref(),
                    activation,
                };
                match self.transposed {
                    true => super::conv::conv_transpose2d(x, &weight, stride, padding, then),
                    false => super::conv::conv2d(x, &weight, stride, padding, then),
                }
            }
            Kernels::Candle => {
                let y = match self.transposed {
                    true => x.conv_transpose2d(&weight, padding, 0, stride, 1)?,
                    false => x.conv2d(&weight, padding, stride, 1, 1)?,
                };
                let y = match bias {
                    Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?,
                    None => y,
                };
                match activation {
                    Some(activation) => activation.with_tensor_ops(&y),
                    None => Ok(y),
                }
            }
        }
    }
}

const NORM_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// Batch norm over the batch (and spatial dims for NCHW input), with PyTorch's running statistics.
pub struct BatchNorm {
    weight: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
    kernels: Kernels,
}

impl BatchNorm {
    pub fn new(b: &mut Builder, name: &str, features: usize) -> Result<BatchNorm> {
        let init = if b.dcgan_init {
            Init::Normal { mean: 1.0, std: 0.02 }
        } else {
            Init::Const(1.0)
        };
        Ok(BatchNorm {
            weight: b.trainable(&format!("{name}.weight"), &[features], init)?,
            bias: b.trainable(&format!("{name}.bias"), &[features], Init::Const(0.0))?,
            running_mean: b.buffer(&format!("{name}.running_mean"), &[features], 0.0)?,
            running_var: b.buffer(&format!("{name}.running_var"), &[features], 1.0)?,
            kernels: b.kernels,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match self.kernels {
            Kernels::Fast => self.forward_fused(x, mode, None),
            Kernels::Candle => self.forward_tensor_ops(x, mode),
        }
    }

    /// `activation(batch_norm(x))`, one fused op where the kernels and the activation allow.
    pub fn forward_activated(&self, x: &Tensor, mode: Mode, activation: Activation) -> Result<Tensor> {
        match (self.kernels, Rectifier::of(activation)) {
            (Kernels::Fast, Some(rectifier)) => self.forward_fused(x, mode, Some(rectifier)),
            _ => activate(&self.forward(x, mode)?, activation, self.kernels),
        }
    }

    /// Blends a batch's statistics into the running ones (PyTorch's momentum and unbiased variance).
    fn update_running(&self, mean: Tensor, biased_var: Tensor, per_feature: usize) -> Result<()> {
        let unbiased = (biased_var * (per_feature as f64 / (per_feature.max(2) - 1) as f64))?;
        let blend = |running: &Var, batch: Tensor| -> Result<()> {
            running.set(&((running.as_tensor() * (1.0 - BN_MOMENTUM))? + (batch * BN_MOMENTUM)?)?)
        };
        blend(&self.running_mean, mean)?;
        blend(&self.running_var, unbiased)
    }

    fn forward_fused(&self, x: &Tensor, mode: Mode, rectifier: Option<Rectifier>) -> Result<Tensor> {
        self.normalise(mode, |running, gamma, beta| {
            super::norm::batch_norm(x, gamma, beta, running, NORM_EPS, rectifier)
        })
    }

    /// `rectifier(batch_norm(product(x, w)))` as one op (`norm::normalised_product`).
    fn forward_after(
        &self,
        x: &Tensor,
        w: &Tensor,
        product: impl FusedProduct,
        mode: Mode,
        rectifier: Rectifier,
    ) -> Result<Tensor> {
        self.normalise(mode, |running, gamma, beta| {
            super::norm::normalised_product(x, w, product, (gamma, beta), running, NORM_EPS, rectifier)
        })
    }

    /// The fused norm `op` given the running statistics where `mode` uses them (and gamma and beta), its
    /// batch statistics blended into the running ones where `mode` updates them.
    fn normalise(
        &self,
        mode: Mode,
        op: impl FnOnce(Option<Stats>, &Tensor, &Tensor) -> Result<(Tensor, Option<Stats>)>,
    ) -> Result<Tensor> {
        let running = if mode.batch_statistics() {
            None
        } else {
            Some((self.running_mean.to_vec1::<f32>()?, self.running_var.to_vec1::<f32>()?))
        };
        let (y, batch) = op(running, &mode.weight(&self.weight), &mode.weight(&self.bias))?;
        if let (true, Some((mean, var))) = (mode.updates_running(), batch) {
            let features = mean.len();
            let per_feature = y.elem_count() / features;
            self.update_running(tensor(mean, &[features])?, tensor(var, &[features])?, per_feature)?;
        }
        Ok(y)
    }

    fn forward_tensor_ops(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let features = self.weight.dim(0)?;
        // Per-feature vectors broadcast as (1, C) for MLPs and (1, C, 1, 1) for images.
        let (reduce, view): (Vec<usize>, Vec<usize>) = match x.rank() {
            2 => (vec![0], vec![1, features]),
            _ => (vec![0, 2, 3], vec![1, features, 1, 1]),
        };
        let (mean, var) = if mode.batch_statistics() {
            let mean = x.mean_keepdim(reduce.as_slice())?;
            let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(reduce.as_slice())?;
            if mode.updates_running() {
                let per_feature = x.elem_count() / features;
                self.update_running(mean.detach().flatten_all()?, var.detach().flatten_all()?, per_feature)?;
            }
            (mean, var)
        } else {
            (
                self.running_mean.reshape(view.as_slice())?,
                self.running_var.reshape(view.as_slice())?,
            )
        };
        let normed = x.broadcast_sub(&mean)?.broadcast_div(&(var + NORM_EPS)?.sqrt()?)?;
        normed
            .broadcast_mul(&mode.weight(&self.weight).reshape(view.as_slice())?)?
            .broadcast_add(&mode.weight(&self.bias).reshape(view.as_slice())?)
    }
}

pub struct LayerNorm {
    weight: Var,
    bias: Var,
}

impl LayerNorm {
    pub fn new(b: &mut Builder, name: &str, features: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: b.trainable(&format!("{name}.weight"), &[features], Init::Const(1.0))?,
            bias: b.trainable(&format!("{name}.bias"), &[features], Init::Const(0.0))?,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(var + NORM_EPS)?.sqrt()?)?
            .broadcast_mul(&mode.weight(&self.weight))?
            .broadcast_add(&mode.weight(&self.bias))
    }
}

/// An optional normalisation layer, chosen by config.
pub enum NormLayer {
    None,
    Batch(BatchNorm),
    Layer(LayerNorm),
}

impl NormLayer {
    /// Whether an item's output depends on the other items of its batch.
    pub fn mixes_batch(&self) -> bool {
        matches!(self, NormLayer::Batch(_))
    }

    pub fn new(b: &mut Builder, name: &str, norm: Norm, features: usize) -> Result<NormLayer> {
        Ok(match norm {
            Norm::None => NormLayer::None,
            Norm::Batch => NormLayer::Batch(BatchNorm::new(b, name, features)?),
            Norm::Layer => NormLayer::Layer(LayerNorm::new(b, name, features)?),
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match self {
            NormLayer::None => Ok(x.clone()),
            NormLayer::Batch(bn) => bn.forward(x, mode),
            NormLayer::Layer(ln) => ln.forward(x, mode),
        }
    }

    /// `activation(norm(x))`, fused where the kernels, the norm and the activation allow.
    pub fn forward_activated(
        &self,
        x: &Tensor,
        mode: Mode,
        activation: Activation,
        kernels: Kernels,
    ) -> Result<Tensor> {
        match self {
            NormLayer::Batch(bn) => bn.forward_activated(x, mode, activation),
            _ => activate(&self.forward(x, mode)?, activation, kernels),
        }
    }
}

/// `activation(x)`; ReLU and leaky ReLU are one fused op with the fast kernels, candle's ops otherwise.
pub fn activate(x: &Tensor, activation: Activation, kernels: Kernels) -> Result<Tensor> {
    if let (Kernels::Fast, Some(rectifier)) = (kernels, Rectifier::of(activation)) {
        return rectifier::rectify(x, rectifier);
    }
    match activation {
        Activation::Relu => x.relu(),
        Activation::LeakyRelu => candle_nn::ops::leaky_relu(x, rectifier::LEAKY_SLOPE as f64),
        Activation::Gelu => x.gelu_erf(),
        Activation::Silu => x.silu(),
    }
}

/// Linear → norm → activation, the hidden layer of every MLP here.
pub struct DenseBlock {
    linear: Linear,
    norm: NormLayer,
    activation: Activation,
}

impl DenseBlock {
    /// Whether an item's output depends on the other items of its batch.
    pub fn mixes_batch(&self) -> bool {
        self.norm.mixes_batch()
    }

    pub fn new(
        b: &mut Builder,
        name: &str,
        inputs: usize,
        outputs: usize,
        norm: Norm,
        activation: Activation,
    ) -> Result<DenseBlock> {
        Ok(DenseBlock {
            linear: Linear::new(b, name, inputs, outputs)?,
            norm: NormLayer::new(b, &format!("{name}.norm"), norm, outputs)?,
            activation,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match self.norm {
            NormLayer::None => self.linear.forward_activated(x, self.activation, mode),
            _ => self.norm.forward_activated(
                &self.linear.forward(x, mode)?,
                mode,
                self.activation,
                self.linear.kernels,
            ),
        }
    }
}

/// A stack of dense blocks of the given widths, starting from `inputs`; returns the blocks and the last width.
pub fn dense_stack(
    b: &mut Builder,
    name: &str,
    inputs: usize,
    widths: &[usize],
    norm: Norm,
    activation: Activation,
) -> Result<(Vec<DenseBlock>, usize)> {
    let mut blocks = Vec::with_capacity(widths.len());
    let mut width = inputs;
    for (i, &w) in widths.iter().enumerate() {
        blocks.push(DenseBlock::new(b, &format!("{name}.{i}"), width, w, norm, activation)?);
        width = w;
    }
    Ok((blocks, width))
}

pub fn run_stack(blocks: &[DenseBlock], x: &Tensor, mode: Mode) -> Result<Tensor> {
    blocks.iter().try_fold(x.clone(), |h, block| block.forward(&h, mode))
}

/// A tensor of f32 values on the CPU (where all training here runs).
pub fn tensor(values: Vec<f32>, dims: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(values, dims, &Device::Cpu)
}
