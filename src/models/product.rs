//! Matrix products over the `gemm` crate on Gantry's thread count: the building block of the fast
//! convolutions, and a linear layer's product as an op whose backward pass computes only the gradients
//! something needs (candle's matmul always computes both, including the data input's).

use super::slice;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use gemm::Parallelism;

/// `dst (m x n) = lhs (m x k) · rhs (k x n)` (plus `dst` when `accumulate`), row-major, where `*_t` means
/// the operand is stored transposed.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    lhs: &[f32],
    lhs_t: bool,
    rhs: &[f32],
    rhs_t: bool,
    accumulate: bool,
    parallelism: Parallelism,
) {
    debug_assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    let (lhs_rs, lhs_cs) = if lhs_t { (1, m as isize) } else { (k as isize, 1) };
    let (rhs_rs, rhs_cs) = if rhs_t { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: the slices hold at least the m x k, k x n and m x n elements the strides address.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `lhs · rhs` of `shape` (m, n, k) as one GEMM split over Gantry's threads, where `(values, true)` is an
/// operand stored transposed.
pub(super) fn product(shape: (usize, usize, usize), lhs: (&[f32], bool), rhs: (&[f32], bool)) -> Vec<f32> {
    let mut out = vec![0f32; shape.0 * shape.1];
    let threads = crate::threads::count();
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    candle_core::utils::with_threadpool(|| matmul(shape, &mut out, lhs.0, lhs.1, rhs.0, rhs.1, false, parallelism));
    out
}

/// `x · wᵀ` for `x` (batch x inputs) and `w` (outputs x inputs): a linear layer without its bias.
pub(super) fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, Linear)
}

/// `x · wᵀ` with its backward pass.
struct Linear;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "gantry-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        Transposed { lhs: false, rhs: true }.cpu_fwd(s1, l1, s2, l2)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        // dx = dy · w, dw = dyᵀ · x
        let dx = x
            .track_op()
            .then(|| dy.apply_op2_no_bwd(w, &Transposed { lhs: false, rhs: false }))
            .transpose()?;
        let dw = w
            .track_op()
            .then(|| dy.apply_op2_no_bwd(x, &Transposed { lhs: true, rhs: false }))
            .transpose()?;
        Ok((dx, dw))
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

    /// Forward and both gradients against candle's matmul, on odd shapes and batch 1; an input nothing
    /// tracks (the data) gets no gradient.
    #[test]
    fn linear_matches_candle_and_skips_untracked_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for (batch, inputs, outputs) in [(1, 3, 2), (7, 13, 5), (64, 100, 33), (129, 784, 20)] {
            let x = Var::from_vec(random(&mut rng, (batch, inputs)), (batch, inputs), &Device::Cpu).unwrap();
            let w = Var::from_vec(random(&mut rng, (outputs, inputs)), (outputs, inputs), &Device::Cpu).unwrap();
            let probe = Tensor::from_vec(random(&mut rng, (batch, outputs)), (batch, outputs), &Device::Cpu).unwrap();
            let ours = linear(&x, &w).unwrap();
            let theirs = x.matmul(&w.t().unwrap()).unwrap();
            let what = format!("{batch}x{inputs} -> {outputs}");
            close(&values(&ours), &values(&theirs), &what);
            let grads = |y: &Tensor| (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let (g1, g2) = (grads(&ours), grads(&theirs));
            close(
                &values(g1.get(&x).unwrap()),
                &values(g2.get(&x).unwrap()),
                &format!("{what} dx"),
            );
            close(
                &values(g1.get(&w).unwrap()),
                &values(g2.get(&w).unwrap()),
                &format!("{what} dw"),
            );

            let data = x.as_detached_tensor();
            let grads = grads(&linear(&data, &w).unwrap());
            assert!(grads.get(&data).is_none(), "{what}: the data got a gradient");
            assert!(grads.get(&w).is_some());
        }
    }
}
