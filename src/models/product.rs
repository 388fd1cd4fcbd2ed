//! Matrix products over the `gemm` crate on Gantry's thread count: the building block of the fast
//! convolutions, and a linear layer's product as an op whose backward pass computes only the gradients
//! something needs (candle's matmul always computes both, including the data input's).

use super::rectifier::{self, Epilogue, FusedActivation, FusedProduct, Gradients};
use super::{slice, unwritten};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// What the products of one shape took while [`tally_products`] was on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProductTally {
    /// Products (or parts of one, each on its own thread) of this shape.
    pub calls: u64,
    /// Their time on the threads that ran them.
    pub thread_seconds: f64,
    /// Their multiply-adds.
    pub multiply_adds: u64,
}

/// Whether products are being tallied: off (one relaxed load a product) unless `gantry bench --products`
/// asks where a step's time goes.
static TALLYING: AtomicBool = AtomicBool::new(false);
/// The tally by (rows, columns, depth) of each part as one thread ran it.
static TALLY: Mutex<BTreeMap<(usize, usize, usize), ProductTally>> = Mutex::new(BTreeMap::new());

/// Starts tallying every product this process runs, from nothing (`false` stops).
pub fn tally_products(on: bool) {
    TALLY.lock().unwrap_or_else(|e| e.into_inner()).clear();
    TALLYING.store(on, Ordering::Relaxed);
}

/// The products tallied since [`tally_products`]: (rows, columns, depth) and what they took, most time first.
pub fn product_tally() -> Vec<((usize, usize, usize), ProductTally)> {
    let tally = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    let mut shapes: Vec<_> = tally.iter().map(|(shape, t)| (*shape, *t)).collect();
    shapes.sort_by(|a, b| b.1.thread_seconds.total_cmp(&a.1.thread_seconds));
    shapes
}

/// Runs `product` (of `shape`, with `parallelism`), tallying what it took when products are tallied.
pub(super) fn tallied<R>(shape: (usize, usize, usize), parallelism: Parallelism, product: impl FnOnce() -> R) -> R {
    let started = TALLYING.load(Ordering::Relaxed).then(Instant::now);
    let result = product();
    if let Some(started) = started {
        let threads = match parallelism {
            Parallelism::None => 1,
            Parallelism::Rayon(0) => rayon::current_num_threads(),
            Parallelism::Rayon(n) => n,
        };
        tally(shape, started.elapsed().as_secs_f64(), threads);
    }
    result
}

/// Adds one product of `shape` that took `seconds` on each of `threads` threads.
fn tally(shape: (usize, usize, usize), seconds: f64, threads: usize) {
    let mut tally = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    let entry = tally.entry(shape).or_default();
    entry.calls += 1;
    entry.thread_seconds += seconds * threads as f64;
    entry.multiply_adds += (shape.0 * shape.1 * shape.2) as u64;
}

/// `dst (m x n) = lhs (m x k) · rhs (k x n)` (plus `dst` when `accumulate`), row-major, where `(values,
/// true)` is a matrix stored transposed (for `dst`: column by column, as an image holds a product over its
/// pixels channel by channel).
pub(super) fn matmul(
    (m, n, k): (usize, usize, usize),
    (dst, dst_t): (&mut [f32], bool),
    (lhs, lhs_t): (&[f32], bool),
    (rhs, rhs_t): (&[f32], bool),
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    let operands = Operands::new((m, n, k), dst_t, lhs_t, rhs_t);
    // SAFETY: the slices hold the m x k, k x n and m x n elements the strides address.
    unsafe {
        operands.band(
            (0, m),
            (0, n),
            dst.as_mut_ptr(),
            lhs.as_ptr(),
            rhs.as_ptr(),
            accumulate,
            parallelism,
        )
    }
}

/// The element strides of a product's three matrices (rows, columns), row-major unless stored transposed.
#[derive(Clone, Copy)]
struct Operands {
    k: usize,
    dst: (isize, isize),
    lhs: (isize, isize),
    rhs: (isize, isize),
}

impl Operands {
    fn new((m, n, k): (usize, usize, usize), dst_t: bool, lhs_t: bool, rhs_t: bool) -> Operands {
        let (m, n, k) = (m as isize, n as isize, k as isize);
        Operands {
            k: k as usize,
            dst: if dst_t { (1, m) } else { (n, 1) },
            lhs: if lhs_t { (1, m) } else { (k, 1) },
            rhs: if rhs_t { (1, k) } else { (n, 1) },
        }
    }

    /// The rows `r0..r1` and columns `c0..c1` of the product.
    ///
    /// # Safety
    /// The pointers must address whole matrices of the product's shape.
    #[allow(clippy::too_many_arguments)]
    unsafe fn band(
        &self,
        (r0, r1): (usize, usize),
        (c0, c1): (usize, usize),
        dst: *mut f32,
        lhs: *const f32,
        rhs: *const f32,
        accumulate: bool,
        parallelism: Parallelism,
    ) {
        let (r, c) = (r0 as isize, c0 as isize);
        tallied((r1 - r0, c1 - c0, self.k), parallelism, || {
            gemm::gemm(
                r1 - r0,
                c1 - c0,
                self.k,
                dst.offset(r * self.dst.0 + c * self.dst.1),
                self.dst.1,
                self.dst.0,
                accumulate,
                lhs.offset(r * self.lhs.0),
                self.lhs.1,
                self.lhs.0,
                rhs.offset(c * self.rhs.1),
                self.rhs.1,
                self.rhs.0,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            )
        });
    }
}

/// Products below this many multiply-adds run on one thread: sharing them costs more than it saves.
const PARALLEL_MIN: usize = 1 << 18;

/// A pointer that parts of one product on other threads may write through (each to its own band).
#[derive(Clone, Copy)]
pub(super) struct Shared(*mut f32);
// SAFETY: the parts that share it (`product`'s bands, `direct::weight_gradient`'s rectangles) write disjoint
// values of one buffer that outlives them.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    pub(super) fn new(values: *mut f32) -> Shared {
        Shared(values)
    }

    /// The pointer (a method, so that closures capture the `Shared`, not its field).
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// `lhs · rhs` of `shape` (m, n, k), where `(values, true)` is an operand stored transposed: the longer side
/// of the output split into one band per thread.
pub(super) fn product(shape: (usize, usize, usize), lhs: (&[f32], bool), rhs: (&[f32], bool)) -> Vec<f32> {
    let (m, n, k) = shape;
    assert!(lhs.0.len() >= m * k && rhs.0.len() >= k * n);
    let mut out = unwritten(m * n);
    let operands = Operands::new(shape, false, lhs.1, rhs.1);
    let side = m.max(n);
    let bands = if m * n * k < PARALLEL_MIN {
        1
    } else {
        crate::threads::count().min(side.div_ceil(16))
    };
    let width = side.div_ceil(bands.max(1));
    let dst = Shared(out.as_mut_ptr());
    crate::threads::for_each_part((0..bands).collect(), |_, band: usize| {
        let range = (band * width, ((band + 1) * width).min(side));
        let (rows, columns) = if m >= n { (range, (0, n)) } else { ((0, m), range) };
        // SAFETY: the operands hold the whole product's matrices (asserted above) and each band writes only
        // its own rows or columns of `out`.
        unsafe {
            operands.band(
                rows,
                columns,
                dst.get(),
                lhs.0.as_ptr(),
                rhs.0.as_ptr(),
                false,
                Parallelism::None,
            )
        }
    });
    out
}

/// `activation(x · wᵀ + bias)` for `x` (batch x inputs, or batch x any dimensions that flatten to the
/// inputs) and `w` (outputs x inputs): a linear layer, its bias and activation in the product's own op.
pub(super) fn linear(x: &Tensor, w: &Tensor, then: Epilogue) -> Result<Tensor> {
    let op = Linear {
        activation: then.activation,
    };
    rectifier::apply_fused(x, w, then.bias, op)
}

/// `x · wᵀ` (then the bias, a third operand, and the activation) with its backward pass.
struct Linear {
    activation: Option<FusedActivation>,
}

impl FusedProduct for Linear {
    fn name(&self) -> &'static str {
        "gantry-linear"
    }

    fn forward(
        &self,
        (x, lx): (&[f32], &Layout),
        (w, lw): (&[f32], &Layout),
        bias: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (outputs, inputs) = lw.shape().dims2()?;
        let batch = lx.dims().first().copied().unwrap_or(0);
        if batch * inputs != x.len() {
            return Err(candle_core::Error::msg(format!(
                "a linear layer of {inputs} inputs given {:?}",
                lx.dims()
            )));
        }
        let mut y = product((batch, outputs, inputs), (x, false), (w, true));
        rectifier::finish_product(&mut y, bias, self.activation, outputs, 1)?;
        Ok((CpuStorage::F32(y), Shape::from((batch, outputs))))
    }

    fn backward(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, y: &Tensor, dy: &Tensor) -> Result<Gradients> {
        let (dy, dbias) = rectifier::finish_product_backward(self.activation, bias, y, dy, 1)?;
        // dx = dy · w, dw = dyᵀ · x (x as the matrix it is to the product)
        let dx = x
            .track_op()
            .then(|| {
                dy.apply_op2_no_bwd(w, &Transposed { lhs: false, rhs: false })?
                    .reshape(x.shape())
            })
            .transpose()?;
        let dw = w
            .track_op()
            .then(|| dy.apply_op2_no_bwd(&x.flatten_from(1)?, &Transposed { lhs: true, rhs: false }))
            .transpose()?;
        Ok((dx, dw, dbias))
    }
}

/// The product of two matrices, either transposed first where its flag says so.
struct Transposed {
    lhs: bool,
    rhs: bool,
}

impl CustomOp2 for Transposed {
    fn name(&self) -> &'static str {
        "gantry-matmul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let ((r1, c1), (r2, c2)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        let (m, k) = if self.lhs { (c1, r1) } else { (r1, c1) };
        let (k2, n) = if self.rhs { (c2, r2) } else { (r2, c2) };
        if k != k2 {
            return Err(candle_core::Error::msg(format!(
                "matrix product of {:?} and {:?}: inner sizes {k} and {k2} differ",
                l1.dims(),
                l2.dims()
            )));
        }
        let values = product((m, n, k), (slice(s1, l1)?, self.lhs), (slice(s2, l2)?, self.rhs));
        Ok((CpuStorage::F32(values), Shape::from((m, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::rectifier::Rectifier;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut rand::rngs::StdRng, dims: (usize, usize)) -> Vec<f32> {
        (0..dims.0 * dims.1).map(|_| rng.random_range(-1f32..1.0)).collect()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn close(ours: &[f32], theirs: &[f32], what: &str) {
        assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
        let scale = theirs.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        for (a, b) in ours.iter().zip(theirs) {
            assert!((a - b).abs() <= 1e-4 * scale, "{what}: {a} vs candle's {b}");
        }
    }

    /// Forward and the gradients against candle's ops, on odd shapes and batch 1, without and with the bias
    /// and a leaky ReLU in the op, from a matrix and from images (flattened to the inputs); an input nothing
    /// tracks (the data) gets no gradient.
    #[test]
    fn linear_matches_candle_and_skips_untracked_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for (batch, inputs, outputs) in [(1, 3, 2), (7, 13, 5), (64, 100, 33), (129, 784, 20)] {
            let x = Var::from_vec(random(&mut rng, (batch, inputs)), (batch, inputs), &Device::Cpu).unwrap();
            let w = Var::from_vec(random(&mut rng, (outputs, inputs)), (outputs, inputs), &Device::Cpu).unwrap();
            let b = Var::from_vec(random(&mut rng, (1, outputs)), outputs, &Device::Cpu).unwrap();
            let probe = Tensor::from_vec(random(&mut rng, (batch, outputs)), (batch, outputs), &Device::Cpu).unwrap();
            let grads = |y: &Tensor| (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let leaky = Epilogue {
                bias: Some(b.as_tensor()),
                activation: Some(FusedActivation::Rectifier(Rectifier::Leaky)),
            };
            let slope = Rectifier::Leaky.negative_slope() as f64;
            // Images of `inputs` values: one channel, one row.
            let images = x.reshape((batch, 1, 1, inputs)).unwrap();
            let cases = [
                (
                    "plain",
                    linear(&x, &w, Epilogue::default()),
                    x.matmul(&w.t().unwrap()),
                    false,
                ),
                (
                    "plain, from images",
                    linear(&images, &w, Epilogue::default()),
                    x.matmul(&w.t().unwrap()),
                    false,
                ),
                (
                    "bias + leaky",
                    linear(&x, &w, leaky),
                    candle_nn::ops::leaky_relu(&x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap(), slope),
                    true,
                ),
            ];
            for (case, ours, theirs, with_bias) in cases {
                let (ours, theirs) = (ours.unwrap(), theirs.unwrap());
                let what = format!("{case} {batch}x{inputs} -> {outputs}");
                close(&values(&ours), &values(&theirs), &what);
                let (g1, g2) = (grads(&ours), grads(&theirs));
                let mut vars = vec![("dx", &x), ("dw", &w)];
                if with_bias {
                    vars.push(("dbias", &b));
                }
                for (name, var) in vars {
                    let ours = g1.get(var).unwrap_or_else(|| panic!("{what}: no {name}"));
                    close(&values(ours), &values(g2.get(var).unwrap()), &format!("{what} {name}"));
                }
            }

            let data = x.as_detached_tensor();
            let grads = grads(&linear(&data, &w, leaky).unwrap());
            assert!(grads.get(&data).is_none(), "{batch}x{inputs}: the data got a gradient");
            assert!(grads.get(&w).is_some() && grads.get(&b).is_some());
        }
    }
}
