//! ReLU and leaky ReLU as fused ops, alone or with a layer's bias inside its product's op (the epilogue of
//! a linear layer or a convolution): one pass forward and one backward, where candle's tensor ops take a
//! broadcast add, the activation (leaky ReLU alone is five ops) and about five more passes for their
//! gradients.

use super::{lane_sum, slice, unwritten};
use crate::config::Activation;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// The slope of leaky ReLU below zero (PyTorch's DCGAN and GAN examples use 0.2).
pub const LEAKY_SLOPE: f32 = 0.2;

/// An activation the fused ops have (those whose gradient follows from the output's sign).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Rectifier {
    Relu,
    Leaky,
}

impl Rectifier {
    pub(super) fn of(activation: Activation) -> Option<Rectifier> {
        match activation {
            Activation::Relu => Some(Rectifier::Relu),
            Activation::LeakyRelu => Some(Rectifier::Leaky),
            Activation::Gelu | Activation::Silu => None,
        }
    }

    /// The slope below zero.
    pub(super) fn negative_slope(self) -> f32 {
        match self {
            Rectifier::Relu => 0.0,
            Rectifier::Leaky => LEAKY_SLOPE,
        }
    }
}

/// An activation a product's op applies itself (`Epilogue`): one whose gradient follows from its output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum FusedActivation {
    Rectifier(Rectifier),
    /// A generator's last layer (images in -1..1).
    Tanh,
}

impl FusedActivation {
    /// The activation as candle's own tensor ops (the reference kernels).
    pub(super) fn with_tensor_ops(self, y: &Tensor) -> Result<Tensor> {
        match self {
            FusedActivation::Rectifier(Rectifier::Relu) => y.relu(),
            FusedActivation::Rectifier(Rectifier::Leaky) => candle_nn::ops::leaky_relu(y, LEAKY_SLOPE as f64),
            FusedActivation::Tanh => y.tanh(),
        }
    }
}

/// What a layer does to its product in the product's own op: add a bias per output channel (feature),
/// then an activation. As ops of their own each costs a pass over the output each way, and candle's backward pass
/// a zeroed gradient and a sum for every tensor between two ops (a fifth of a conv AE step, on the calling
/// thread alone).
#[derive(Clone, Copy, Default)]
pub(super) struct Epilogue<'a> {
    pub bias: Option<&'a Tensor>,
    pub activation: Option<FusedActivation>,
}

/// The gradients of a layer's input, weight and bias.
pub(super) type Gradients = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// A product with its epilogue (a linear layer's, a convolution's), made one op of (x, w), or (x, w, bias)
/// with a bias, by `apply_fused`.
pub(super) trait FusedProduct: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// The product of `x` and `w`, then the epilogue with the bias's values (`finish_product`).
    fn forward(&self, x: (&[f32], &Layout), w: (&[f32], &Layout), bias: Option<&[f32]>) -> Result<(CpuStorage, Shape)>;

    /// The gradients of x, w and the bias (where each is tracked) from the output y and its gradient.
    fn backward(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, y: &Tensor, dy: &Tensor) -> Result<Gradients>;
}

/// `product` of `x` and `w` with `bias` as one op: candle's op traits take two or three operands, so a
/// bias makes it a three-operand op.
pub(super) fn apply_fused(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, product: impl FusedProduct) -> Result<Tensor> {
    let (x, w, op) = (x.contiguous()?, w.contiguous()?, AsOp(product));
    match bias {
        Some(bias) => x.apply_op3(&w, &bias.contiguous()?, op),
        None => x.apply_op2(&w, op),
    }
}

/// The product of the contiguous `x` and `w` alone (no bias, no activation) as a tensor outside the graph:
/// the first part of an op that goes on from it and differentiates through the product itself
/// (`norm::normalised_product`, which passes the operands it then gives that op).
pub(super) fn product_alone(x: &Tensor, w: &Tensor, product: &impl FusedProduct) -> Result<Tensor> {
    x.apply_op2_no_bwd(w, &Alone(product))
}

struct Alone<'a, P>(&'a P);

impl<P: FusedProduct> CustomOp2 for Alone<'_, P> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.forward((slice(s1, l1)?, l1), (slice(s2, l2)?, l2), None)
    }
}

/// A `FusedProduct` as candle's op.
struct AsOp<P>(P);

/// Without a bias.
impl<P: FusedProduct> CustomOp2 for AsOp<P> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        Alone(&self.0).cpu_fwd(s1, l1, s2, l2)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.0.backward(x, w, None, y, dy)?;
        Ok((dx, dw))
    }
}

/// With a bias.
impl<P: FusedProduct> CustomOp3 for AsOp<P> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0
            .forward((slice(s1, l1)?, l1), (slice(s2, l2)?, l2), Some(slice(s3, l3)?))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Gradients> {
        self.0.backward(x, w, Some(b), y, dy)
    }
}

/// `activation(y + bias)` in place over a product `y` of `channels` channels of `plane` values per image:
/// an `Epilogue` inside the product's op, the bias checked to have one value per channel.
pub(super) fn finish_product(
    y: &mut [f32],
    bias: Option<&[f32]>,
    activation: Option<FusedActivation>,
    channels: usize,
    plane: usize,
) -> Result<()> {
    if let Some(bias) = bias.filter(|b| b.len() != channels) {
        return Err(candle_core::Error::msg(format!(
            "a bias of {} values for {channels} output channels",
            bias.len()
        )));
    }
    let image = channels * plane;
    if image == 0 || (bias.is_none() && activation.is_none()) {
        return Ok(());
    }
    match activation {
        Some(FusedActivation::Tanh) => per_channel(y, bias, channels, plane, tanh),
        rectifier => {
            // Without a rectifier the slope 1 below zero keeps every value as it is.
            let slope = match rectifier {
                Some(FusedActivation::Rectifier(r)) => r.negative_slope(),
                _ => 1.0,
            };
            per_channel(
                y,
                bias,
                channels,
                plane,
                move |pre| if pre > 0.0 { pre } else { slope * pre },
            );
        }
    }
    Ok(())
}

/// `y = f(y + bias)` over (batch, channels, plane) values, the images shared over the threads, each span
/// built for the widest vectors.
#[inline(always)]
fn per_channel(
    y: &mut [f32],
    bias: Option<&[f32]>,
    channels: usize,
    plane: usize,
    f: impl Fn(f32) -> f32 + Copy + Sync + Send,
) {
    let image = channels * plane;
    crate::threads::in_spans(y, image, move |_, y| {
        crate::cpu::widest(
            // Inlined, or the loop is compiled without the wider instructions (and `floor` is a call).
            #[inline(always)]
            || {
                for y in y.chunks_exact_mut(image) {
                    match (bias, plane) {
                        (Some(bias), 1) => y.iter_mut().zip(bias).for_each(|(y, b)| *y = f(*y + b)),
                        (None, 1) => y.iter_mut().for_each(|y| *y = f(*y)),
                        _ => {
                            for (c, y) in y.chunks_exact_mut(plane).enumerate() {
                                let b = bias.map_or(0.0, |b| b[c]);
                                y.iter_mut().for_each(|y| *y = f(*y + b));
                            }
                        }
                    }
                }
            },
        )
    });
}

/// tanh over the vectorisable `exp` (libm's `tanhf` is a call per value): 1 - 2 / (e^2x + 1), within a
/// few units of 1e-7 of it.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let t = super::elementary::exp(-2.0 * x.abs());
    ((1.0 - t) / (1.0 + t)).copysign(x)
}

/// The backward pass of `finish_product` from its output `y` and the output's gradient: the gradient at the
/// product, and the bias's where it is tracked (`plane` values per channel and image).
pub(super) fn finish_product_backward(
    activation: Option<FusedActivation>,
    bias: Option<&Tensor>,
    y: &Tensor,
    dy: &Tensor,
    plane: usize,
) -> Result<(Tensor, Option<Tensor>)> {
    let dz = match activation {
        Some(activation) => gradient_through(activation, y, dy)?,
        None => dy.contiguous()?,
    };
    let dbias = match bias.filter(|b| b.track_op()) {
        Some(bias) => Some(channel_sums(&dz, bias.elem_count(), plane)?),
        None => None,
    };
    Ok((dz, dbias))
}

/// `rectifier(x)` as one op.
pub(super) fn rectify(x: &Tensor, rectifier: Rectifier) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Rectify(rectifier))
}

struct Rectify(Rectifier);

impl CustomOp1 for Rectify {
    fn name(&self) -> &'static str {
        "gantry-rectifier"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(storage, layout)?;
        let slope = self.0.negative_slope();
        let mut y = unwritten(x.len());
        crate::threads::in_spans(&mut y, 1, move |at, y| {
            for (y, x) in y.iter_mut().zip(&x[at..]) {
                *y = if *x > 0.0 { *x } else { slope * x };
            }
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(gradient_through(FusedActivation::Rectifier(self.0), y, dy)?))
    }
}

/// The gradient through an activation from its output `y` and the output's gradient `dy`.
fn gradient_through(activation: FusedActivation, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    y.apply_op2_no_bwd(&dy.contiguous()?, &ActivationGradient(activation))
}

/// Per channel, the sum over the batch and the plane of `values`, (batch, channels, plane): a bias's
/// gradient.
fn channel_sums(values: &Tensor, channels: usize, plane: usize) -> Result<Tensor> {
    values.apply_op1_no_bwd(&ChannelSums { channels, plane })
}

/// Per channel, the sum over the batch and the plane of a (batch, channels, plane) tensor.
struct ChannelSums {
    channels: usize,
    plane: usize,
}

impl CustomOp1 for ChannelSums {
    fn name(&self) -> &'static str {
        "gantry-channel-sums"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let values = slice(storage, layout)?;
        let (channels, plane) = (self.channels, self.plane);
        let mut sums = vec![0f32; channels];
        for image in values.chunks_exact(channels * plane) {
            if plane == 1 {
                sums.iter_mut().zip(image).for_each(|(s, v)| *s += v);
            } else {
                for (s, values) in sums.iter_mut().zip(image.chunks_exact(plane)) {
                    *s += lane_sum(values, |v| v);
                }
            }
        }
        Ok((CpuStorage::F32(sums), Shape::from(channels)))
    }
}

/// dz from an activation's output and its gradient (y, dy): dy where y > 0, else slope * dy, through a
/// rectifier; (1 - y²) dy through tanh.
struct ActivationGradient(FusedActivation);

impl CustomOp2 for ActivationGradient {
    fn name(&self) -> &'static str {
        "gantry-activation-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let activation = self.0;
        let mut dz = unwritten(y.len());
        crate::threads::in_spans(&mut dz, 1, move |at, dz| {
            let values = dz.iter_mut().zip(&y[at..]).zip(&dy[at..]);
            crate::cpu::widest(
                #[inline(always)]
                || match activation {
                    FusedActivation::Rectifier(rectifier) => {
                        let slope = rectifier.negative_slope();
                        values.for_each(|((dz, y), dy)| *dz = if *y > 0.0 { *dy } else { slope * dy });
                    }
                    FusedActivation::Tanh => values.for_each(|((dz, y), dy)| *dz = (1.0 - y * y) * dy),
                },
            )
        });
        Ok((CpuStorage::F32(dz), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::layers::{activate, Kernels};
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn epilogues_and_rectifiers_match_the_tensor_ops_in_value_and_gradients() {
        // Inputs and biases on different grids (1009ths and 1013ths) never sum to exactly zero, where the
        // rectifiers' gradient is a matter of convention.
        let values = |n: usize, seed: usize, grid: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7919 + seed) % grid) as f32 / grid as f32 - 0.5) * 4.0)
                .collect()
        };
        // Dense and convolution layouts; the larger ones (over `threads::PARALLEL_MIN` values) are split into
        // spans over the threads.
        let shapes: [&[usize]; 4] = [&[5, 7], &[20000, 7], &[3, 7, 4, 5], &[40, 7, 30, 30]];
        for dims in shapes {
            let (n, features) = (dims.iter().product(), dims[1]);
            let z = Var::from_vec(values(n, 1, 1009), dims, &Device::Cpu).unwrap();
            let b = Var::from_vec(values(features, 2, 1013), features, &Device::Cpu).unwrap();
            let probe = Tensor::from_vec(values(n, 3, 1009), dims, &Device::Cpu).unwrap();
            let view: Vec<usize> = (0..dims.len()).map(|d| if d == 1 { features } else { 1 }).collect();
            let z_plus_b = z.broadcast_add(&b.reshape(view).unwrap()).unwrap();
            let run = |y: Tensor| {
                let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                let grad = |v: &Var| {
                    grads
                        .get(v.as_tensor())
                        .map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                };
                (y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), grad(&z), grad(&b))
            };
            let plane = n / dims[0] / features;
            // A product's epilogue: forward in place, backward from the output and the probe.
            let finished = |activation: Option<FusedActivation>| {
                let mut y = z.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let bias = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                finish_product(&mut y, Some(&bias), activation, features, plane).unwrap();
                let output = Tensor::from_vec(y.clone(), dims, &Device::Cpu).unwrap();
                let (dz, dbias) =
                    finish_product_backward(activation, Some(b.as_tensor()), &output, &probe, plane).unwrap();
                let flat = |t: Tensor| Some(t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
                (y, flat(dz), dbias.and_then(flat))
            };
            let mut pairs = vec![
                ("bias", finished(None), run(z_plus_b.clone())),
                (
                    "bias + tanh",
                    finished(Some(FusedActivation::Tanh)),
                    run(z_plus_b.tanh().unwrap()),
                ),
            ];
            for activation in [Activation::Relu, Activation::LeakyRelu] {
                let rectifier = Rectifier::of(activation).unwrap();
                let candle = |x: &Tensor| activate(x, activation, Kernels::Candle).unwrap();
                let fused = Some(FusedActivation::Rectifier(rectifier));
                pairs.push(("bias + rectifier", finished(fused), run(candle(&z_plus_b))));
                pairs.push(("rectifier", run(rectify(&z, rectifier).unwrap()), run(candle(&z))));
            }
            for (op, fused, reference) in pairs {
                let fields = [
                    ("value", Some(fused.0), Some(reference.0)),
                    ("dz", fused.1, reference.1),
                    ("dbias", fused.2, reference.2),
                ];
                for (name, ours, theirs) in fields {
                    assert_eq!(ours.is_some(), theirs.is_some(), "{op} {name}");
                    for (a, r) in ours.iter().flatten().zip(theirs.iter().flatten()) {
                        assert!(
                            (a - r).abs() <= 1e-4 * r.abs().max(1.0),
                            "{op} {dims:?} {name}: {a} vs {r}"
                        );
                    }
                }
            }
        }
    }
}
