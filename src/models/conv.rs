//! Fast CPU convolutions: patches (im2row) and GEMMs over the `gemm` crate, as candle custom ops with their own
//! backward.
//!
//! candle's CPU `conv_transpose2d` is a direct loop of dot products, and it also computes `conv2d`'s input
//! gradient; both dominate a DCGAN step. Here all three products a convolution needs — forward, input
//! gradient, weight gradient — are GEMMs over the patches of a chunk of images at a time, the threads
//! taking the chunks in turn (`threads::map_parts`); on AVX-512 CPUs, where the outputs fill whole panels,
//! they are computed from the padded images in place instead (`direct`). A transposed convolution is the
//! adjoint of a convolution, so it reuses the same three kernels with their roles swapped (and makes both
//! its gradients from one set of patches, or one padded batch). The input gradient is skipped when nothing
//! needs it (the data).

use super::direct;
use super::product::{matmul, product};
use super::rectifier::{self, Epilogue, FusedActivation, FusedProduct, Gradients};
use super::{slice, unwritten};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use std::sync::Mutex;

/// The geometry of a square convolution from `channels`x`height`x`width` images to `outputs` maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    images: usize,
    channels: usize,
    height: usize,
    width: usize,
    outputs: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    out_height: usize,
    out_width: usize,
}

impl Geometry {
    fn new(
        input: (usize, usize, usize, usize),
        outputs: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Geometry> {
        let (images, channels, height, width) = input;
        let side = |size: usize| (size + 2 * padding).checked_sub(kernel).map(|s| s / stride + 1);
        match (side(height), side(width)) {
            (Some(out_height), Some(out_width)) if stride > 0 => Ok(Geometry {
                images,
                channels,
                height,
                width,
                outputs,
                kernel,
                stride,
                padding,
                out_height,
                out_width,
            }),
            _ => Err(candle_core::Error::msg(format!(
                "a {kernel}x{kernel} kernel with padding {padding} does not fit a {height}x{width} input"
            ))),
        }
    }

    /// Values in a patch: one per (channel, kernel row, kernel column).
    fn patch_rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// Output pixels per image: one patch each.
    fn out_pixels(&self) -> usize {
        self.out_height * self.out_width
    }

    fn in_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    fn out_len(&self) -> usize {
        self.outputs * self.out_pixels()
    }

    /// Values of the image with its padding.
    fn padded_len(&self) -> usize {
        let p2 = 2 * self.padding;
        self.channels * (self.height + p2) * (self.width + p2)
    }

    /// Copies `image` (or consecutive images) into `padded` with `padding` zeros around each channel, so that
    /// every tap of the kernel reads inside it.
    fn pad(&self, image: &[f32], padded: &mut [f32]) {
        let (p, h, w) = (self.padding, self.height, self.width);
        pad_planes(image, (h, w), (h + 2 * p, w + 2 * p), (p, p), padded);
    }

    /// Where each patch's taps lie in an image padded by `pad`.
    fn taps(&self) -> direct::Taps {
        let (hp, wp) = (self.height + 2 * self.padding, self.width + 2 * self.padding);
        direct::Taps {
            channels: self.channels,
            kernel: self.kernel,
            plane: hp * wp,
            row: wp,
        }
    }

    /// The corner of each output pixel's patch in `images` consecutive images padded by `pad`.
    fn corners(&self, images: usize) -> Vec<usize> {
        let (s, wp) = (self.stride, self.width + 2 * self.padding);
        let mut corners = Vec::with_capacity(images * self.out_pixels());
        for image in 0..images {
            for oh in 0..self.out_height {
                for ow in 0..self.out_width {
                    corners.push(image * self.padded_len() + oh * s * wp + ow * s);
                }
            }
        }
        corners
    }

    /// Runs `f` with `images` (consecutive images) padded by `pad`, one after another.
    fn with_padded<R>(&self, images: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
        with_scratch(images.len() / self.in_len().max(1) * self.padded_len(), |padded| {
            self.pad(images, padded);
            f(padded)
        })
    }

    /// Images in a chunk of a direct convolution's pass: `DIRECT_CHUNKS` chunks a thread.
    fn direct_chunk_images(&self) -> usize {
        self.images.div_ceil(crate::threads::count() * DIRECT_CHUNKS).max(1)
    }

    /// `w` (outputs x patch_rows) as the direct convolution reads it.
    fn packed_weights(&self, w: &[f32]) -> direct::PackedWeights {
        let len = self.patch_rows();
        let taps: Vec<usize> = (0..len).collect();
        direct::PackedWeights::new(w, (&taps, len), self.outputs)
    }

    /// y = conv(x, w) of the images in `padded`, computed directly, with `patches` of a chunk as large.
    fn forward_padded(&self, padded: &[f32], patches: &ChunkPatches, w: &direct::PackedWeights, y: &mut [f32]) {
        let (corners, slots) = patches.of_images(y.len() / self.out_len());
        with_scratch(y.len(), |by_pixel| {
            direct::forward(&self.taps(), padded, corners, slots, w, by_pixel);
            images_from_columns(by_pixel, self.outputs, self.out_pixels(), y);
        });
    }

    /// Writes one image's patches one after another into `patches`: output pixel p's patch (`patch_rows`
    /// values, channel by kernel row by kernel column as the weights are laid out) at
    /// `patches[p * patch_rows..]`. Each patch contiguous (im2row) rather than each tap's values over the
    /// pixels (im2col): gemm's packing then copies runs instead of gathering strided values, and the weight
    /// gradient's product runs 1.1-1.6x as fast (BENCHMARKS.md).
    fn im2row(&self, image: &[f32], patches: &mut [f32]) {
        with_scratch(self.padded_len(), |padded| {
            self.pad(image, padded);
            let patches = &mut patches[..self.out_pixels() * self.patch_rows()];
            // Each run of taps is a fixed-size copy for the usual kernels.
            match self.kernel {
                4 => self.copy_runs::<4>(padded, patches),
                3 => self.copy_runs::<3>(padded, patches),
                _ => self.copy_runs::<0>(padded, patches),
            }
        });
    }

    #[inline(always)]
    fn copy_runs<const K: usize>(&self, padded: &[f32], patches: &mut [f32]) {
        let k = self.run_len::<K>();
        self.for_each_tap_run::<K>(|run, first| {
            patches[run * k..][..k].copy_from_slice(&padded[first..][..k]);
        });
    }

    /// Adds each patch value (laid out as `im2row` writes them) back onto the image pixel it came from: the
    /// adjoint of `im2row`.
    fn row2im(&self, patches: &[f32], image: &mut [f32]) {
        let p = self.padding;
        with_scratch(self.padded_len(), |padded| {
            padded.fill(0.0);
            match self.kernel {
                4 => self.add_runs::<4>(patches, padded),
                3 => self.add_runs::<3>(patches, padded),
                _ => self.add_runs::<0>(patches, padded),
            }
            // The sums that fell on the padding belong to no pixel.
            let (h, wi) = (self.height, self.width);
            let wp = wi + 2 * p;
            for (plane, padded) in image
                .chunks_exact_mut(h * wi)
                .zip(padded.chunks_exact((h + 2 * p) * wp))
            {
                for (values, row) in plane.chunks_exact_mut(wi).zip(padded[p * wp..].chunks_exact(wp)) {
                    values.copy_from_slice(&row[p..p + wi]);
                }
            }
        });
    }

    #[inline(always)]
    fn add_runs<const K: usize>(&self, patches: &[f32], padded: &mut [f32]) {
        if K == 0 {
            let k = self.kernel;
            self.for_each_tap_run::<K>(|run, first| {
                for (sum, value) in padded[first..][..k].iter_mut().zip(&patches[run * k..][..k]) {
                    *sum += value;
                }
            });
            return;
        }
        // Runs as fixed-size arrays: the compiler then adds each run as one vector (it added the slices' values
        // one at a time).
        self.for_each_tap_run::<K>(|run, first| {
            let sums: &mut [f32; K] = (&mut padded[first..first + K]).try_into().expect("K values");
            let values: &[f32; K] = patches[run * K..run * K + K].try_into().expect("K values");
            *sums = std::array::from_fn(|j| sums[j] + values[j]);
        });
    }

    /// Taps in a run of `for_each_tap_run::<K>`: `K`, or the kernel's width for `K` = 0.
    #[inline(always)]
    fn run_len<const K: usize>(&self) -> usize {
        if K == 0 {
            self.kernel
        } else {
            K
        }
    }

    /// Calls `f(run, first)` for each run of one kernel row's taps, in `im2row`'s order: run `run` of the
    /// patches starts at padded value `first`.
    #[inline(always)]
    fn for_each_tap_run<const K: usize>(&self, mut f: impl FnMut(usize, usize)) {
        let k = self.run_len::<K>();
        let (s, hp, wp) = (
            self.stride,
            self.height + 2 * self.padding,
            self.width + 2 * self.padding,
        );
        let mut run = 0;
        for oh in 0..self.out_height {
            for ow in 0..self.out_width {
                for c in 0..self.channels {
                    for ki in 0..k {
                        f(run, (c * hp + oh * s + ki) * wp + ow * s);
                        run += 1;
                    }
                }
            }
        }
    }

    /// Whether the kernel covers the whole unpadded image in one place (DCGAN's 7x7 first and last layers):
    /// each image's one patch is then the image itself, and the convolution a dense layer over the batch.
    fn is_dense(&self) -> bool {
        self.out_pixels() == 1 && self.padding == 0 && self.kernel == self.height && self.kernel == self.width
    }

    /// How the batch is shared out and how its GEMMs run: chunks of `chunk_images` consecutive images (the
    /// last may be shorter) whose patches share one GEMM of about `COLUMNS` columns, at least one chunk per
    /// thread, each GEMM on one thread; with fewer chunks than threads, one chunk of the whole batch with a
    /// multi-threaded GEMM. (Cutting the chunks smaller, for threads that fall behind to leave more of them
    /// to the others, cost more in slower GEMMs than it saved.)
    fn plan(&self) -> (usize, Parallelism) {
        let threads = crate::threads::count();
        let by_columns = COLUMNS.div_ceil(self.out_pixels());
        let for_sharing = self.images.div_ceil(threads);
        let chunk_images = by_columns.min(for_sharing).max(1);
        if self.images.div_ceil(chunk_images) >= threads || threads == 1 {
            (chunk_images, Parallelism::None)
        } else {
            (self.images.max(1), Parallelism::Rayon(threads))
        }
    }
}

/// The output pixels (patches) a chunk of images gathers into one GEMM at most: with only one small image's
/// pixels (9 or 16 in DCGAN's middle layers) gemm falls back to its narrowest, slowest kernels.
const COLUMNS: usize = 512;

/// Copies each `height` x `width` plane of `planes` into a `rows` x `columns` plane of `padded`, `top` rows
/// down and `left` columns in, zeros around it.
fn pad_planes(
    planes: &[f32],
    (height, width): (usize, usize),
    (rows, columns): (usize, usize),
    (top, left): (usize, usize),
    padded: &mut [f32],
) {
    if crate::cpu::has_avx512() {
        assert!(
            planes.len() / (height * width).max(1) * rows * columns == padded.len()
                && top + height <= rows
                && left + width <= columns
        );
        // SAFETY: the CPU has AVX-512F; the planes fit inside the padded planes (asserted).
        unsafe { pad_rows(planes, (height, width), (rows, columns), (top, left), padded) };
        return;
    }
    for (plane, padded) in planes
        .chunks_exact(height * width)
        .zip(padded.chunks_exact_mut(rows * columns))
    {
        let (above, rest) = padded.split_at_mut(top * columns);
        let (middle, below) = rest.split_at_mut(height * columns);
        above.fill(0.0);
        below.fill(0.0);
        for (row, values) in middle.chunks_exact_mut(columns).zip(plane.chunks_exact(width)) {
            row[..left].fill(0.0);
            row[left..left + width].copy_from_slice(values);
            row[left + width..].fill(0.0);
        }
    }
}

/// `pad_planes` a padded row 16 values at a time, each a masked load of the plane's values that fall in it
/// (none above and below the plane) and a store: the per-row copies and fills of a few values each were libc
/// calls, 4 % of a DCGAN's step. Which lanes load and store depends on the column only, so the masks are
/// worked out once: worked out lane by lane in each row, they took three times as long as the copies did
/// (9 % of a DCGAN step on a Zen 5).
///
/// # Safety
/// The CPU must have AVX-512F; `padded` must hold a `rows` x `columns` plane for each `height` x `width`
/// plane of `planes`, with `top + height <= rows` and `left + width <= columns`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pad_rows(
    planes: &[f32],
    (height, width): (usize, usize),
    (rows, columns): (usize, usize),
    (top, left): (usize, usize),
    padded: &mut [f32],
) {
    use std::arch::x86_64::*;
    let lanes = direct::first_lanes;
    // Per 16 columns: where they start, the lanes that the padded row holds, and the lanes whose columns
    // lie in left..left + width, read from the plane's row (the pointer to the lane before the row's start
    // is never read through).
    let groups: Vec<(usize, u16, u16)> = (0..columns)
        .step_by(16)
        .map(|first| {
            let end = (first + 16).min(columns);
            let (from, to) = (left.clamp(first, end), (left + width).clamp(first, end));
            (first, lanes(end - first), lanes(to - first) & !lanes(from - first))
        })
        .collect();
    let zeros = _mm512_setzero_ps();
    for (plane, padded) in planes
        .chunks_exact(height * width)
        .zip(padded.chunks_exact_mut(rows * columns))
    {
        let (plane, padded) = (plane.as_ptr().wrapping_sub(left), padded.as_mut_ptr());
        for r in 0..rows {
            let row = padded.add(r * columns);
            match r.checked_sub(top).filter(|y| *y < height) {
                Some(y) => {
                    let source = plane.wrapping_add(y * width);
                    for &(first, stored, loaded) in &groups {
                        let values = _mm512_maskz_loadu_ps(loaded, source.wrapping_add(first));
                        _mm512_mask_storeu_ps(row.add(first), stored, values);
                    }
                }
                None => {
                    for &(first, stored, _) in &groups {
                        _mm512_mask_storeu_ps(row.add(first), stored, zeros);
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pad_rows(_: &[f32], _: (usize, usize), _: (usize, usize), _: (usize, usize), _: &mut [f32]) {
    unreachable!("the masked rows are built for x86-64 with AVX-512 only")
}

/// Runs `f` with a scratch buffer of `len` values kept between calls on this thread; its contents are
/// whatever the last user left there.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    thread_local!(static SCRATCH: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) });
    // Taken out while in use, so a nested call gets a buffer of its own.
    let mut buffer = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let result = f(&mut buffer[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(buffer));
    result
}

/// `(images, rows, pixels)` images to `(rows, images * pixels)`: one row of the product per channel.
fn channels_first(images: &[f32], rows: usize, pixels: usize, out: &mut [f32]) {
    let n = images.len() / (rows * pixels);
    for (i, image) in images.chunks_exact(rows * pixels).enumerate() {
        for (r, values) in image.chunks_exact(pixels).enumerate() {
            out[(r * n + i) * pixels..][..pixels].copy_from_slice(values);
        }
    }
}

/// The convolution's output `y` of a chunk of images from their `patches`: yᵀ (columns x outputs) = patches
/// (columns x rows) · wᵀ. Where the patches are short (a network's first layer, of few input channels) and
/// an image has rows enough for a GEMM of its own, the GEMM writes straight into each image (whose channels
/// over its pixels are its part of the product stored transposed): rearranging a product of so few
/// multiply-adds per value costs nearly as much as the product. Else the chunk's product in one GEMM, then
/// rearranged into the images: with long patches gemm packs them more slowly as its left operand than the
/// rearranging costs.
fn product_into_images(g: &Geometry, patches: &[f32], w: &[f32], y: &mut [f32], parallelism: Parallelism) {
    let (pixels, rows, outputs) = (g.out_pixels(), g.patch_rows(), g.outputs);
    if pixels >= IMAGE_GEMM_PIXELS && rows <= outputs {
        for (y, patches) in y.chunks_exact_mut(g.out_len()).zip(patches.chunks_exact(pixels * rows)) {
            matmul(
                (pixels, outputs, rows),
                (y, true),
                (patches, false),
                (w, true),
                false,
                parallelism,
            );
        }
        return;
    }
    let columns = y.len() / g.out_len() * pixels;
    with_scratch(outputs * columns, |product| {
        matmul(
            (columns, outputs, rows),
            (product, false),
            (patches, false),
            (w, true),
            false,
            parallelism,
        );
        images_from_columns(product, outputs, pixels, y);
    });
}

/// Output pixels of one image that make a GEMM of its own (`product_into_images`).
const IMAGE_GEMM_PIXELS: usize = 128;

/// `(images * pixels, rows)` (one row per output pixel) to `(images, rows, pixels)` images.
fn images_from_columns(columns: &[f32], rows: usize, pixels: usize, images: &mut [f32]) {
    if crate::cpu::has_avx512() {
        return direct::images_from_columns(columns, rows, pixels, images);
    }
    for (image, columns) in images
        .chunks_exact_mut(rows * pixels)
        .zip(columns.chunks_exact(pixels * rows))
    {
        for (p, values) in columns.chunks_exact(rows).enumerate() {
            for (r, v) in values.iter().enumerate() {
                image[r * pixels + p] = *v;
            }
        }
    }
}

/// Runs `work(first_image, chunk_out, parallelism)` on each chunk's part of `out` (`per_image` values per
/// image), the chunks shared over the threads as `Geometry::plan` says.
fn per_chunk(g: &Geometry, out: &mut [f32], per_image: usize, work: impl Fn(usize, &mut [f32], Parallelism) + Sync) {
    let (chunk_images, parallelism) = g.plan();
    let chunks = out.chunks_mut(chunk_images * per_image).collect();
    crate::threads::for_each_part(chunks, |c, out| work(c * chunk_images, out, parallelism));
}

/// As `per_chunk` for a direct convolution, whose chunks cost nothing to start (the weights are packed once
/// for all of them, where each GEMM packs its own): `DIRECT_CHUNKS` a thread, so that a thread that falls
/// behind leaves more of them to the others, and smaller towards the end (at most a quarter of a thread's
/// share of the images left), so that the threads finish together: with equal chunks one thread waited for
/// the other's last one, half a chunk on average, 4 % of the two threads' time in these passes.
fn per_direct_chunk(g: &Geometry, out: &mut [f32], per_image: usize, work: impl Fn(usize, &mut [f32]) + Sync) {
    let (most, threads) = (g.direct_chunk_images(), crate::threads::count());
    let mut chunks = Vec::new();
    let (mut first, mut rest) = (0, out);
    while first < g.images {
        let n = most.min((g.images - first).div_ceil(4 * threads));
        let (chunk, after) = std::mem::take(&mut rest).split_at_mut(n * per_image);
        chunks.push((first, chunk));
        (first, rest) = (first + n, after);
    }
    crate::threads::for_each_part(chunks, |_, (first, out)| work(first, out));
}

/// Where the patches of a chunk's output pixels start in its padded images, and each pixel's place among
/// them, for the largest chunk of a pass: a smaller chunk's are the first of them. Made once per pass, not per
/// chunk, where the threads' allocations queued for the allocator's one lock.
struct ChunkPatches {
    corners: Vec<usize>,
    slots: Vec<usize>,
    /// Patches an image has (the same for every image: they are laid out image by image).
    per_image: usize,
}

impl ChunkPatches {
    /// Of `corners` and `slots` over the largest chunk's images.
    fn new(g: &Geometry, corners: Vec<usize>, slots: Vec<usize>) -> ChunkPatches {
        let per_image = corners.len() / g.direct_chunk_images();
        ChunkPatches {
            corners,
            slots,
            per_image,
        }
    }

    /// A direct convolution's, in output pixel order.
    fn of(g: &Geometry) -> ChunkPatches {
        let corners = g.corners(g.direct_chunk_images());
        let slots = (0..corners.len()).collect();
        ChunkPatches::new(g, corners, slots)
    }

    /// Those of a chunk's first `images` images.
    fn of_images(&self, images: usize) -> (&[usize], &[usize]) {
        let patches = images * self.per_image;
        (&self.corners[..patches], &self.slots[..patches])
    }
}

/// Chunks a thread for a direct convolution: DCGAN steps were 1-3 % faster at 6 or 8 than at the GEMMs' 3,
/// and slower again from 16.
const DIRECT_CHUNKS: usize = 8;

/// y = conv(x, w): per chunk of images, yᵀ (pixels of the chunk x outputs) = the chunk's patches (pixels x
/// patch_rows) · wᵀ.
fn conv_forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    if g.is_dense() {
        // y (images x outputs) = x (images x patch_rows) · wᵀ
        return product((g.images, g.outputs, g.patch_rows()), (x, false), (w, true));
    }
    let (pixels, rows) = (g.out_pixels(), g.patch_rows());
    let mut y = unwritten(g.images * g.out_len());
    let taps = g.taps();
    if direct::applies(g.outputs, &taps) {
        let (packed, patches) = (g.packed_weights(w), ChunkPatches::of(g));
        per_direct_chunk(g, &mut y, g.out_len(), |first, y| {
            let n = y.len() / g.out_len();
            g.with_padded(&x[first * g.in_len()..][..n * g.in_len()], |padded| {
                g.forward_padded(padded, &patches, &packed, y);
            });
        });
        return y;
    }
    per_chunk(g, &mut y, g.out_len(), |first, y, parallelism| {
        let n = y.len() / g.out_len();
        let columns = n * pixels;
        with_scratch(rows * columns, |patches| {
            for (i, patches) in patches.chunks_exact_mut(pixels * rows).enumerate() {
                g.im2row(&x[(first + i) * g.in_len()..][..g.in_len()], patches);
            }
            product_into_images(g, patches, w, y, parallelism);
        });
    });
    y
}

/// dx = row2im(dyᵀ · w) per chunk of images: the input gradient of a convolution (and a transposed
/// convolution's forward pass).
fn conv_backward_input(g: &Geometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    if g.is_dense() {
        // dx (images x patch_rows) = dy (images x outputs) · w
        return product((g.images, g.patch_rows(), g.outputs), (dy, false), (w, false));
    }
    if let Some(dx) = direct_backward_input(g, dy, w) {
        return dx;
    }
    let (pixels, rows) = (g.out_pixels(), g.patch_rows());
    let mut dx = unwritten(g.images * g.in_len());
    per_chunk(g, &mut dx, g.in_len(), |first, dx, parallelism| {
        let n = dx.len() / g.in_len();
        let columns = n * pixels;
        let dy = &dy[first * g.out_len()..(first + n) * g.out_len()];
        with_scratch(rows * columns, |patches| {
            // patches (columns x rows) = dyᵀ (columns x outputs) · w (outputs x rows)
            let shape = (columns, rows, g.outputs);
            if n == 1 {
                matmul(shape, (patches, false), (dy, true), (w, false), false, parallelism);
            } else {
                with_scratch(g.outputs * columns, |dy_rows| {
                    channels_first(dy, g.outputs, pixels, dy_rows);
                    matmul(shape, (patches, false), (dy_rows, true), (w, false), false, parallelism);
                });
            }
            for (dx, patches) in dx.chunks_exact_mut(g.in_len()).zip(patches.chunks_exact(pixels * rows)) {
                g.row2im(patches, dx);
            }
        });
    });
    dx
}

/// dx computed directly (`direct`), where the kernel is a whole number of strides wide and the CPU has
/// AVX-512: the input pixels of one phase (row and column modulo the stride) each gather the same taps of
/// dy, so each phase's gradient is a stride-1 convolution of dy (zero-padded) with that phase's taps of the
/// kernel, flipped, from input channels to output channels swapped. No patches written and added back.
fn direct_backward_input(g: &Geometry, dy: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    let (s, k, p) = (g.stride, g.kernel, g.padding);
    if k % s != 0 {
        return None;
    }
    // dy padded with t - 1 zero rows above (and columns left), and below as far as the last phase reads.
    let t = k / s;
    let rows = ((p + g.height - 1) / s + t).max(g.out_height + t - 1);
    let columns = ((p + g.width - 1) / s + t).max(g.out_width + t - 1);
    let taps = direct::Taps {
        channels: g.outputs,
        kernel: t,
        plane: rows * columns,
        row: columns,
    };
    if !direct::applies(g.channels, &taps) {
        return None;
    }
    let padded_len = g.outputs * rows * columns;
    // Phase (a, b)'s tap (output, i, j) is the kernel's tap (a + s (t - 1 - i), b + s (t - 1 - j)).
    let phases: Vec<(usize, usize)> = (0..s).flat_map(|a| (0..s).map(move |b| (a, b))).collect();
    let weights: Vec<direct::PackedWeights> = phases
        .iter()
        .map(|&(a, b)| {
            let mut sources = Vec::with_capacity(taps.len());
            for output in 0..g.outputs {
                for i in 0..t {
                    for j in 0..t {
                        let (ky, kx) = (a + s * (t - 1 - i), b + s * (t - 1 - j));
                        sources.push((output * g.channels * k + ky) * k + kx);
                    }
                }
            }
            // Input channel c's weight of a tap is k x k values on from channel 0's.
            direct::PackedWeights::new(w, (&sources, k * k), g.channels)
        })
        .collect();
    // Each phase's input pixels in the largest chunk, image by image (a smaller chunk's are the first of them).
    let plane = g.height * g.width;
    let patches: Vec<ChunkPatches> = phases
        .iter()
        .map(|&(a, b)| {
            let (mut corners, mut slots) = (Vec::new(), Vec::new());
            for image in 0..g.direct_chunk_images() {
                for y in (0..g.height).filter(|y| (y + p) % s == a) {
                    for x in (0..g.width).filter(|x| (x + p) % s == b) {
                        corners.push(image * padded_len + (y + p) / s * columns + (x + p) / s);
                        slots.push(image * plane + y * g.width + x);
                    }
                }
            }
            ChunkPatches::new(g, corners, slots)
        })
        .collect();
    let mut dx = unwritten(g.images * g.in_len());
    per_direct_chunk(g, &mut dx, g.in_len(), |first, dx| {
        let n = dx.len() / g.in_len();
        with_scratch(n * padded_len, |padded| {
            let dy = &dy[first * g.out_len()..][..n * g.out_len()];
            pad_planes(dy, (g.out_height, g.out_width), (rows, columns), (t - 1, t - 1), padded);
            with_scratch(dx.len(), |by_pixel| {
                for (patches, weights) in patches.iter().zip(&weights) {
                    let (corners, slots) = patches.of_images(n);
                    direct::forward(&taps, padded, corners, slots, weights, by_pixel);
                }
                images_from_columns(by_pixel, g.channels, plane, dx);
            });
        });
    });
    Some(dx)
}

/// dw = Σ over chunks of dy · patchesᵀ: the weight gradient, its chunks' parts added in chunk order.
fn conv_backward_weight(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    weight_and_forward(g, x, dy, None)
}

/// The weight gradient from `x` and `dy` as `conv_backward_weight`, and with `Some(w)` also `conv(x, w)` from
/// the same patches (a transposed convolution's input gradient needs both from its output gradient), in one
/// buffer: the weight gradient, then the product.
fn weight_and_forward(g: &Geometry, x: &[f32], dy: &[f32], w: Option<&[f32]>) -> Vec<f32> {
    if g.is_dense() {
        // dw (outputs x patch_rows) = dyᵀ · x
        let mut out = product((g.outputs, g.patch_rows(), g.images), (dy, true), (x, false));
        if let Some(w) = w {
            out.extend(conv_forward(g, x, w));
        }
        return out;
    }
    if let Some(out) = direct_weight_and_forward(g, x, dy, w) {
        return out;
    }
    let (pixels, rows, len) = (g.out_pixels(), g.patch_rows(), g.outputs * g.patch_rows());
    let (chunk_images, parallelism) = g.plan();
    let mut out = unwritten(len + if w.is_some() { g.images * g.out_len() } else { 0 });
    let (dw, y) = out.split_at_mut(len);
    let chunks: Vec<&mut [f32]> = match w {
        Some(_) => y.chunks_mut(chunk_images * g.out_len()).collect(),
        None => (0..g.images.div_ceil(chunk_images)).map(|_| &mut [][..]).collect(),
    };
    // The first chunk writes dw itself; the others' parts are added to it in chunk order, whichever thread
    // finishes first, so that the sum (and the run) comes out the same every time.
    let first_chunk = Mutex::new(Some(dw));
    let sum = Mutex::new(OrderedSum {
        dw: None,
        next: 1,
        waiting: std::collections::BTreeMap::new(),
    });
    crate::threads::for_each_part(chunks, |c, y| {
        let first = c * chunk_images;
        let n = chunk_images.min(g.images - first);
        let columns = n * pixels;
        let mut taken = match c {
            0 => crate::threads::lock(&first_chunk).take(),
            _ => None,
        };
        let mut own = Vec::new();
        let part: &mut [f32] = match taken.as_deref_mut() {
            Some(dw) => dw,
            None => {
                own = unwritten(len);
                &mut own
            }
        };
        let dy = &dy[first * g.out_len()..(first + n) * g.out_len()];
        with_scratch(rows * columns, |patches| {
            for (i, patches) in patches.chunks_exact_mut(pixels * rows).enumerate() {
                g.im2row(&x[(first + i) * g.in_len()..][..g.in_len()], patches);
            }
            with_scratch(g.outputs * columns, |dy_rows| {
                channels_first(dy, g.outputs, pixels, dy_rows);
                // part (outputs x rows) = dy (outputs x columns) · patches (columns x rows)
                let shape = (g.outputs, rows, columns);
                matmul(
                    shape,
                    (part, false),
                    (dy_rows, false),
                    (patches, false),
                    false,
                    parallelism,
                );
                if let Some(w) = w {
                    product_into_images(g, patches, w, y, parallelism);
                }
            });
        });
        let mut sum = crate::threads::lock(&sum);
        match taken {
            Some(dw) => sum.dw = Some(dw),
            None => {
                sum.waiting.insert(c, own);
            }
        }
        sum.fold();
    });
    // No images, no chunks: the gradient is zero.
    if let Some(dw) = first_chunk.into_inner().unwrap_or_else(|e| e.into_inner()) {
        dw.fill(0.0);
    }
    out
}

/// `weight_and_forward` computed directly (`direct::weight_gradient`, `direct::forward`) from the whole batch
/// padded once, where the CPU and the shapes allow.
fn direct_weight_and_forward(g: &Geometry, x: &[f32], dy: &[f32], w: Option<&[f32]>) -> Option<Vec<f32>> {
    let taps = g.taps();
    if !direct::gradient_applies(g.outputs, &taps) {
        return None;
    }
    let len = g.outputs * g.patch_rows();
    let mut out = unwritten(len + if w.is_some() { g.images * g.out_len() } else { 0 });
    let (dw, y) = out.split_at_mut(len);
    with_scratch(g.images * g.padded_len(), |padded| {
        let mut dy_columns = direct::PanelColumns::new(g.images, g.outputs, g.out_pixels());
        let chunk_images = g.direct_chunk_images();
        let chunks = padded
            .chunks_mut(chunk_images * g.padded_len())
            .zip(dy_columns.chunks(chunk_images))
            .collect();
        crate::threads::for_each_part(chunks, |c, (padded, mut columns): (&mut [f32], Vec<&mut [f32]>)| {
            let (first, n) = (c * chunk_images, padded.len() / g.padded_len());
            g.pad(&x[first * g.in_len()..][..n * g.in_len()], padded);
            let dy = &dy[first * g.out_len()..][..n * g.out_len()];
            direct::fill_panel_columns(dy, (g.outputs, g.out_pixels()), &mut columns);
        });
        direct::weight_gradient(&taps, padded, &g.corners(g.images), &dy_columns, dw);
        if let Some(w) = w {
            let (packed, patches) = (g.packed_weights(w), ChunkPatches::of(g));
            per_direct_chunk(g, y, g.out_len(), |first, y| {
                let n = y.len() / g.out_len();
                let padded = &padded[first * g.padded_len()..][..n * g.padded_len()];
                g.forward_padded(padded, &patches, &packed, y);
            });
        }
    });
    Some(out)
}

/// A weight gradient's chunk parts, added to the first chunk's in chunk order as they become ready.
struct OrderedSum<'a> {
    /// The first chunk's part (the output), once it is written.
    dw: Option<&'a mut [f32]>,
    /// The next chunk to add (the first is `dw` itself).
    next: usize,
    /// Parts written before their turn.
    waiting: std::collections::BTreeMap<usize, Vec<f32>>,
}

impl OrderedSum<'_> {
    /// Adds every part whose turn has come.
    fn fold(&mut self) {
        let Some(dw) = self.dw.as_deref_mut() else { return };
        while let Some(part) = self.waiting.remove(&self.next) {
            dw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
            self.next += 1;
        }
    }
}

/// Which product of a convolution a kernel op computes; the first operand is the one named first.
#[derive(Clone, Copy, Debug)]
enum Product {
    /// (x, w) → y
    Forward,
    /// (dy, w) → dx
    BackwardInput,
    /// (x, dy) → dw
    BackwardWeight,
}

/// One product as a tensor op (used inside the backward passes; it has no backward of its own).
struct Kernel {
    product: Product,
    geometry: Geometry,
}

impl CustomOp2 for Kernel {
    fn name(&self) -> &'static str {
        "gantry-conv-kernel"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (values, shape) = self.compute(slice(s1, l1)?, slice(s2, l2)?);
        Ok((CpuStorage::F32(values), shape))
    }
}

impl Kernel {
    fn compute(&self, a: &[f32], b: &[f32]) -> (Vec<f32>, Shape) {
        let (g, k) = (&self.geometry, self.geometry.kernel);
        match self.product {
            Product::Forward => (
                conv_forward(g, a, b),
                (g.images, g.outputs, g.out_height, g.out_width).into(),
            ),
            Product::BackwardInput => (
                conv_backward_input(g, a, b),
                (g.images, g.channels, g.height, g.width).into(),
            ),
            Product::BackwardWeight => (conv_backward_weight(g, a, b), (g.outputs, g.channels, k, k).into()),
        }
    }
}

fn kernel(product: Product, geometry: Geometry, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?
        .apply_op2_no_bwd(&b.contiguous()?, &Kernel { product, geometry })
}

/// A convolution (weight: outputs x channels x k x k) or a transposed convolution (weight: inputs x outputs
/// x k x k), with its backward pass. A transposed convolution is the adjoint of the convolution from its
/// output back to its input (`geometry` is that convolution's), so the same kernels serve with their roles
/// swapped. With a bias (a third operand) and an activation it also adds the bias per output channel and
/// activates, in the same op.
struct Convolution {
    geometry: Geometry,
    transposed: bool,
    activation: Option<FusedActivation>,
}

impl Convolution {
    /// The output's channels and the values per channel and image.
    fn output_planes(&self) -> (usize, usize) {
        let g = &self.geometry;
        match self.transposed {
            true => (g.channels, g.height * g.width),
            false => (g.outputs, g.out_pixels()),
        }
    }
}

impl FusedProduct for Convolution {
    fn name(&self) -> &'static str {
        if self.transposed {
            "gantry-conv-transpose2d"
        } else {
            "gantry-conv2d"
        }
    }

    fn forward(
        &self,
        (x, _): (&[f32], &Layout),
        (w, _): (&[f32], &Layout),
        bias: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let product = match self.transposed {
            true => Product::BackwardInput,
            false => Product::Forward,
        };
        let (mut y, shape) = Kernel {
            product,
            geometry: self.geometry,
        }
        .compute(x, w);
        let (channels, plane) = self.output_planes();
        rectifier::finish_product(&mut y, bias, self.activation, channels, plane)?;
        Ok((CpuStorage::F32(y), shape))
    }

    fn backward(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, y: &Tensor, dy: &Tensor) -> Result<Gradients> {
        let g = self.geometry;
        let (dy, db) = rectifier::finish_product_backward(self.activation, bias, y, dy, self.output_planes().1)?;
        if self.transposed && x.track_op() && w.track_op() {
            // Both gradients come from the patches of dy: made once.
            let both = dy
                .contiguous()?
                .apply_op3_no_bwd(&x.contiguous()?, &w.contiguous()?, &WeightAndInput(g))?;
            let (dw_len, dx_len) = (w.elem_count(), x.elem_count());
            let dx = both.narrow(0, dw_len, dx_len)?.reshape(x.shape())?;
            // dw copied out: as a view it would keep dx's values alive until the optimiser step.
            let dw = both.narrow(0, 0, dw_len)?.force_contiguous()?.reshape(w.shape())?;
            return Ok((Some(dx), Some(dw), db));
        }
        let (dx_product, (conv_input, conv_grad)) = if self.transposed {
            (Product::Forward, (&dy, x))
        } else {
            (Product::BackwardInput, (x, &dy))
        };
        let dx = x.track_op().then(|| kernel(dx_product, g, &dy, w)).transpose()?;
        let dw = w
            .track_op()
            .then(|| kernel(Product::BackwardWeight, g, conv_input, conv_grad))
            .transpose()?;
        Ok((dx, dw, db))
    }
}

/// Both gradients of a transposed convolution from (dy, x, w), as one buffer: dw, then dx.
struct WeightAndInput(Geometry);

impl CustomOp3 for WeightAndInput {
    fn name(&self) -> &'static str {
        "gantry-conv-transpose2d-backward"
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
        let (dy, x, w) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        // The transposed convolution's output gradient is the input of the convolution it is the adjoint of.
        let both = weight_and_forward(&self.0, dy, x, Some(w));
        let len = both.len();
        Ok((CpuStorage::F32(both), Shape::from(len)))
    }
}

/// `activation(x.conv2d(w, padding, stride, 1, 1) + bias)` for NCHW f32 tensors on the CPU.
pub(super) fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize, then: Epilogue) -> Result<Tensor> {
    let op = convolution(x, w, (stride, padding), false, then.activation)?;
    rectifier::apply_fused(x, w, then.bias, op)
}

/// `activation(x.conv_transpose2d(w, padding, 0, stride, 1) + bias)` for NCHW f32 tensors on the CPU.
pub(super) fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    then: Epilogue,
) -> Result<Tensor> {
    let op = convolution(x, w, (stride, padding), true, then.activation)?;
    rectifier::apply_fused(x, w, then.bias, op)
}

/// The convolution (or with `transposed` the transposed convolution) of `x` with `w` at (stride, padding),
/// then `activation`, as a product for `rectifier::apply_fused` or `norm::normalised_product`; checks that
/// the shapes fit.
pub(super) fn convolution(
    x: &Tensor,
    w: &Tensor,
    (stride, padding): (usize, usize),
    transposed: bool,
    activation: Option<FusedActivation>,
) -> Result<impl FusedProduct> {
    let geometry = match transposed {
        false => {
            let (outputs, channels, k, k2) = w.dims4()?;
            let input = x.dims4()?;
            if input.1 != channels || k != k2 {
                return Err(candle_core::Error::msg(format!(
                    "conv2d: input {:?} does not match weight {:?}",
                    x.dims(),
                    w.dims()
                )));
            }
            Geometry::new(input, outputs, k, stride, padding)?
        }
        true => {
            let (inputs, outputs, k, k2) = w.dims4()?;
            let (images, channels, height, width) = x.dims4()?;
            let side = |size: usize| ((size - 1) * stride + k).checked_sub(2 * padding).filter(|s| *s > 0);
            let (Some(out_height), Some(out_width), true, true) =
                (side(height), side(width), channels == inputs, k == k2)
            else {
                return Err(candle_core::Error::msg(format!(
                    "conv_transpose2d: input {:?} does not match weight {:?} (stride {stride}, padding {padding})",
                    x.dims(),
                    w.dims()
                )));
            };
            let geometry = Geometry::new((images, outputs, out_height, out_width), inputs, k, stride, padding)?;
            if (geometry.out_height, geometry.out_width) != (height, width) {
                return Err(candle_core::Error::msg("conv_transpose2d: geometry does not invert"));
            }
            geometry
        }
    };
    Ok(Convolution {
        geometry,
        transposed,
        activation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::rectifier::Rectifier;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut rand::rngs::StdRng, dims: &[usize]) -> Var {
        let n: usize = dims.iter().product();
        Var::from_vec(
            (0..n).map(|_| rng.random_range(-1f32..1.0)).collect(),
            dims,
            &Device::Cpu,
        )
        .unwrap()
    }

    fn close(a: &Tensor, b: &Tensor, what: &str) {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * scale,
                "{what}[{i}]: {x} vs candle's {y} (scale {scale})"
            );
        }
    }

    #[test]
    fn padding_places_each_plane_inside_zeros() {
        // A 3 x 5 plane in 8 x 9 (two rows above, three columns in: no 16-wide run crosses the plane's
        // edges the same way twice), a 2 x 20 plane in 4 x 37 (runs of 16 wholly inside, across the right
        // edge and past it) and planes that fill their padded planes.
        for ((height, width), (rows, columns), (top, left)) in [
            ((3, 5), (8, 9), (2, 3)),
            ((2, 20), (4, 37), (1, 14)),
            ((7, 7), (7, 7), (0, 0)),
            ((1, 16), (3, 18), (1, 1)),
        ] {
            let planes: Vec<f32> = (0..3 * height * width).map(|i| i as f32 + 1.0).collect();
            let mut padded = vec![f32::NAN; 3 * rows * columns];
            pad_planes(&planes, (height, width), (rows, columns), (top, left), &mut padded);
            for (i, value) in padded.iter().enumerate() {
                let (plane, r, c) = (i / (rows * columns), i / columns % rows, i % columns);
                let inside = (top..top + height).contains(&r) && (left..left + width).contains(&c);
                let expected = match inside {
                    true => planes[(plane * height + r - top) * width + c - left],
                    false => 0.0,
                };
                assert_eq!(
                    *value, expected,
                    "{height}x{width} in {rows}x{columns}: plane {plane} ({r}, {c})"
                );
            }
        }
    }

    /// A weight gradient summed over many chunks (taken by whichever thread is free) is the same to the bit
    /// every time, so that a run and a fork of it agree exactly.
    #[test]
    fn a_weight_gradient_over_many_chunks_is_the_same_every_time() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        // A DCGAN discriminator's second layer: 14x14x64 -> 7x7x128, 64 images in several chunks.
        let g = Geometry::new((64, 64, 14, 14), 128, 4, 2, 1).unwrap();
        assert!(g.images.div_ceil(g.plan().0) > 2, "several chunks");
        let values = |n: usize, rng: &mut rand::rngs::StdRng| (0..n).map(|_| rng.random_range(-1f32..1.0)).collect();
        let x: Vec<f32> = values(g.images * g.in_len(), &mut rng);
        let dy: Vec<f32> = values(g.images * g.out_len(), &mut rng);
        let first = conv_backward_weight(&g, &x, &dy);
        // The gradient itself, against candle's: d/dw of sum(conv(x, w) * dy).
        let tensor = |v: &[f32], dims: &[usize]| Tensor::from_slice(v, dims, &Device::Cpu).unwrap();
        let (xt, dyt) = (tensor(&x, &[64, 64, 14, 14]), tensor(&dy, &[64, 128, 7, 7]));
        let w = Var::zeros((128, 64, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let loss = (xt.conv2d(&w, 1, 2, 1, 1).unwrap() * dyt).unwrap().sum_all().unwrap();
        let theirs = loss.backward().unwrap().get(&w).unwrap().clone();
        close(&tensor(&first, &[128, 64, 4, 4]), &theirs, "dw");
        for _ in 0..30 {
            let again = conv_backward_weight(&g, &x, &dy);
            assert!(again.iter().zip(&first).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    /// Forward and both gradients against candle's own ops, on odd shapes, batch 1 and larger batches,
    /// strides 1-2, paddings 0-2 and kernels 1-5.
    #[test]
    fn convolutions_match_candle_forward_and_backward() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let cases = [
            (1, 1, 5, 2, 1, 1, 0),
            (2, 3, 7, 4, 3, 2, 1),
            (3, 2, 9, 3, 5, 2, 2),
            (1, 4, 6, 5, 4, 2, 1),
            (5, 2, 8, 3, 2, 1, 0),
            // Batches split into chunks of several images (uneven at the end) that share one GEMM.
            (37, 3, 7, 4, 3, 2, 1),
            (9, 2, 6, 3, 4, 2, 1),
            // Images of pixels enough, with patches shorter than the outputs, for the GEMM to write into each
            // image itself (`product_into_images`): the convolution's output, and the transposed one's dx.
            (3, 1, 24, 20, 4, 2, 1),
            (2, 20, 12, 1, 4, 2, 1),
            // Outputs in whole panels (`direct`): the three products computed from the padded images where
            // the CPU has AVX-512, the input gradient's four phases at stride 2; at stride 1 one phase; and a
            // kernel that is no whole number of strides, whose input gradient stays with the patches.
            (3, 64, 6, 64, 4, 2, 1),
            (2, 64, 5, 128, 3, 1, 1),
            (2, 128, 7, 64, 3, 2, 1),
            // Directly, in chunks of several images and smaller ones at the end, which read the first of the
            // largest chunk's patches.
            (37, 64, 6, 64, 4, 2, 1),
            // A first layer's short patches (one channel, 16 taps), computed directly too.
            (2, 1, 8, 64, 4, 2, 1),
        ];
        for (n, c, size, o, k, stride, pad) in cases {
            if size + 2 * pad < k {
                continue;
            }
            // Non-square; sizes where the strides tile exactly, since candle's own conv2d input gradient drops
            // the last row/column otherwise.
            let x = random(&mut rng, &[n, c, size, size + 2]);
            let w = random(&mut rng, &[o, c, k, k]);
            let what = format!("n{n} c{c} s{size} o{o} k{k} stride{stride} pad{pad}");
            let ours = conv2d(&x, &w, stride, pad, Epilogue::default()).unwrap();
            let theirs = x.conv2d(&w, pad, stride, 1, 1).unwrap();
            agree(ours, theirs, &[&x, &w], &mut rng, &format!("conv2d {what}"));
            // With a bias and a leaky ReLU in the same op.
            let b = random(&mut rng, &[o]);
            let leaky = FusedActivation::Rectifier(Rectifier::Leaky);
            let ours = conv2d(&x, &w, stride, pad, fused(&b, leaky)).unwrap();
            let theirs = reference(x.conv2d(&w, pad, stride, 1, 1).unwrap(), &b, leaky);
            agree(
                ours,
                theirs,
                &[&x, &w, &b],
                &mut rng,
                &format!("conv2d + bias + leaky {what}"),
            );

            let wt = random(&mut rng, &[c, o, k, k]);
            if pad * 2 >= (size - 1) * stride + k {
                continue;
            }
            let ours = conv_transpose2d(&x, &wt, stride, pad, Epilogue::default()).unwrap();
            let theirs = x.conv_transpose2d(&wt, pad, 0, stride, 1).unwrap();
            agree(ours, theirs, &[&x, &wt], &mut rng, &format!("conv_transpose2d {what}"));
            let b = random(&mut rng, &[o]);
            for activation in [FusedActivation::Rectifier(Rectifier::Relu), FusedActivation::Tanh] {
                let ours = conv_transpose2d(&x, &wt, stride, pad, fused(&b, activation)).unwrap();
                let theirs = reference(x.conv_transpose2d(&wt, pad, 0, stride, 1).unwrap(), &b, activation);
                let what = format!("conv_transpose2d + bias + {activation:?} {what}");
                agree(ours, theirs, &[&x, &wt, &b], &mut rng, &what);
            }
        }
        // A kernel as large as the image (one output pixel), and a transposed one from a single pixel: the
        // whole batch in one GEMM.
        for (n, c, size, o) in [(3, 4, 5, 2), (1, 2, 7, 3)] {
            let x = random(&mut rng, &[n, c, size, size]);
            let w = random(&mut rng, &[o, c, size, size]);
            let ours = conv2d(&x, &w, 1, 0, Epilogue::default()).unwrap();
            let theirs = x.conv2d(&w, 0, 1, 1, 1).unwrap();
            agree(
                ours,
                theirs,
                &[&x, &w],
                &mut rng,
                &format!("dense conv2d n{n} c{c} s{size} o{o}"),
            );
            let pixel = random(&mut rng, &[n, o, 1, 1]);
            let ours = conv_transpose2d(&pixel, &w, 1, 0, Epilogue::default()).unwrap();
            let theirs = pixel.conv_transpose2d(&w, 0, 0, 1, 1).unwrap();
            agree(
                ours,
                theirs,
                &[&pixel, &w],
                &mut rng,
                &format!("dense conv_transpose2d n{n} o{o} s{size} c{c}"),
            );
        }
    }

    fn fused(bias: &Var, activation: FusedActivation) -> Epilogue<'_> {
        Epilogue {
            bias: Some(bias.as_tensor()),
            activation: Some(activation),
        }
    }

    /// `activation(y + bias)` with candle's tensor ops.
    fn reference(y: Tensor, bias: &Var, activation: FusedActivation) -> Tensor {
        let y = y
            .broadcast_add(&bias.reshape((1, bias.dim(0).unwrap(), 1, 1)).unwrap())
            .unwrap();
        match activation {
            FusedActivation::Rectifier(Rectifier::Relu) => y.relu().unwrap(),
            FusedActivation::Rectifier(leaky) => candle_nn::ops::leaky_relu(&y, leaky.negative_slope() as f64).unwrap(),
            FusedActivation::Tanh => y.tanh().unwrap(),
        }
    }

    /// Our output and candle's agree, and so do the gradients of a random projection of them for each of
    /// `inputs`.
    fn agree(ours: Tensor, theirs: Tensor, inputs: &[&Var], rng: &mut rand::rngs::StdRng, what: &str) {
        close(&ours, &theirs, what);
        let probe = random(rng, ours.dims());
        let grads = |y: Tensor| (y * probe.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        let (g1, g2) = (grads(ours), grads(theirs));
        for (i, input) in inputs.iter().enumerate() {
            close(
                g1.get(input).unwrap(),
                g2.get(input).unwrap(),
                &format!("{what} gradient {i}"),
            );
        }
    }

    /// A transposed convolution makes both gradients in one buffer; the weight's is copied out of it, so that
    /// the input's (the larger) is freed once the layer below has used it, not at the optimiser step.
    #[test]
    fn a_transposed_convolutions_weight_gradient_holds_only_its_own_values() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let x = random(&mut rng, &[4, 6, 5, 5]);
        let w = random(&mut rng, &[6, 3, 4, 4]);
        let y = conv_transpose2d(&x, &w, 2, 1, Epilogue::default()).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(crate::models::values_held(grads.get(&w).unwrap()), w.elem_count());
    }

    #[test]
    fn the_data_input_gets_no_gradient() {
        let x = Tensor::ones((2, 1, 6, 6), candle_core::DType::F32, &Device::Cpu).unwrap();
        let w = Var::ones((3, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let grads = conv2d(&x, &w, 1, 1, Epilogue::default())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&x).is_none());
        assert!(grads.get(&w).is_some());
    }
}
