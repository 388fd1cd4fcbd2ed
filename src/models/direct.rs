//! Convolutions computed straight from the padded images on AVX-512 (direct convolutions), where im2row +
//! gemm first write every patch out (16 values per input value for a 4x4 kernel at stride 2), then gemm packs
//! them again before its kernels read them. `conv` uses them for a convolution's forward product and, split
//! into the stride's phases, for its input gradient (a transposed convolution's forward pass).
//!
//! Every output pixel's patch is the same set of taps, each at one offset from the pixel's corner in the
//! padded image. So a tile of output channels by output pixels is gemm's product with the patches read in
//! place: per tap, four 16-wide vectors of weights (64 output channels, packed once per call) times one value
//! from each of six pixels' patches, broadcast: gemm's own 4x6 AVX-512 tile, without the copies. The weight
//! gradient stays with im2row and gemm: the same tiles summing over the pixels instead ran at 0.6-0.9x
//! gemm's speed (each tap's values, broadcast, came from pixels spread over the chunk).

/// Output channels a tile holds: four 16-wide vectors.
const PANEL: usize = 64;

/// Output pixels a tile holds: 4 x 6 accumulators and the four weight vectors fill the 32 vector registers
/// with room for the broadcasts.
const TILE: usize = 6;

/// Patches shorter than this stay with im2row and gemm: a tile's few taps would not pay for rearranging its
/// outputs into candle's layout. A DCGAN's first layer (one channel, 4x4: 16 taps) ran at 44 G/s directly,
/// 14 G/s in gemm's small per-image products.
const MIN_PATCH: usize = 16;

/// Where a patch's taps lie in the padded images: tap (channel, kernel row, kernel column) of the pixel whose
/// patch starts at `corner` is at `corner + channel * plane + kernel_row * row + kernel_column`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Taps {
    pub channels: usize,
    pub kernel: usize,
    /// Values of one padded channel plane.
    pub plane: usize,
    /// Values of one padded row.
    pub row: usize,
}

impl Taps {
    pub(super) fn len(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// The offset of a patch's last tap from its corner.
    fn last(&self) -> usize {
        let k = self.kernel.max(1);
        self.channels.max(1) * self.plane - self.plane + (k - 1) * (self.row + 1)
    }
}

/// Whether this CPU computes a convolution to `outputs` channels over `taps` directly.
pub(super) fn applies(outputs: usize, taps: &Taps) -> bool {
    outputs.is_multiple_of(PANEL) && taps.len() >= MIN_PATCH && crate::cpu::has_avx512()
}

/// A convolution's weights as the tiles read them: panels of `PANEL` outputs, each tap's `PANEL` weights
/// contiguous, starting on a cache line (each vector load then reads one line, not parts of two).
pub(super) struct PackedWeights {
    values: Vec<f32>,
    start: usize,
}

impl PackedWeights {
    /// Packs the weights `w[sources[tap] + output * stride]`, output by output for each of the taps.
    pub(super) fn new(w: &[f32], (sources, stride): (&[usize], usize), outputs: usize) -> PackedWeights {
        let len = sources.len();
        let mut values = super::unwritten(outputs * len + LINE);
        let start = values
            .as_ptr()
            .align_offset(LINE * std::mem::size_of::<f32>())
            .min(LINE);
        let panels = values[start..][..outputs * len].chunks_mut(PANEL * len).collect();
        crate::threads::for_each_part(panels, |p, panel: &mut [f32]| {
            for (block, sources) in panel.chunks_mut(PANEL * PACK_TAPS).zip(sources.chunks(PACK_TAPS)) {
                for r in 0..PANEL {
                    let from = &w[(p * PANEL + r) * stride..];
                    for (value, source) in block[r..].iter_mut().step_by(PANEL).zip(sources) {
                        *value = from[*source];
                    }
                }
            }
        });
        values.truncate(start + outputs * len);
        PackedWeights { values, start }
    }

    fn panels(&self) -> &[f32] {
        &self.values[self.start..]
    }
}

/// Taps packed together, output by output: each output's weights for them are read in one run, and the
/// block they fill (16 KiB) stays in the first-level cache. Tap by tap, the 64 outputs' weights lay whole
/// rows apart, 4 or 8 KiB in a DCGAN: each went to the same few cache sets, and most reads missed.
const PACK_TAPS: usize = 64;

/// Values in a 64-byte cache line.
const LINE: usize = 16;

/// The outputs of the pixels whose patches start at `corners` in `padded`, from the packed weights, pixel by
/// pixel: pixel j's outputs go to `out[slots[j] * outputs..][..outputs]` (`images_from_columns` then lays
/// them out as candle's images).
///
/// A panel's weights go through the tiles a block of channels at a time (`BLOCK_TAPS` taps, 32 KiB), each
/// tile adding the block's part to its pixels' sums, so that the block's weights can stay in the first-level
/// cache while every tile reads them (a panel holds 256-512 KiB in a DCGAN; measured, the blocks made no
/// difference there that the host's drift did not hide).
pub(super) fn forward(
    taps: &Taps,
    padded: &[f32],
    corners: &[usize],
    slots: &[usize],
    weights: &PackedWeights,
    out: &mut [f32],
) {
    let packed = weights.panels();
    let outputs = packed.len() / taps.len();
    assert!(
        slots.len() == corners.len()
            && slots.iter().all(|s| (s + 1) * outputs <= out.len())
            && corners.iter().all(|c| c + taps.last() < padded.len())
            && crate::cpu::has_avx512()
    );
    super::product::tallied((corners.len(), outputs, taps.len()), gemm::Parallelism::None, || {
        add_tiles(taps, padded, corners, slots, packed, out)
    });
}

/// `forward`'s tiles, panel by panel and block by block.
fn add_tiles(taps: &Taps, padded: &[f32], corners: &[usize], slots: &[usize], packed: &[f32], out: &mut [f32]) {
    let outputs = packed.len() / taps.len();
    let per_channel = taps.kernel * taps.kernel;
    let block = (BLOCK_TAPS / per_channel.max(1)).max(1);
    for (p, panel) in packed.chunks_exact(PANEL * taps.len()).enumerate() {
        for first in (0..taps.channels).step_by(block) {
            let channels = first..(first + block).min(taps.channels);
            let weights = &panel[first * per_channel * PANEL..];
            for (group, slots) in corners.chunks(TILE).zip(slots.chunks(TILE)) {
                // A short last group repeats its last pixel, which writes the same sums twice.
                let last = group.len() - 1;
                let starts = std::array::from_fn(|i| group[i.min(last)]);
                let rows = std::array::from_fn(|i| out[slots[i.min(last)] * outputs + p * PANEL..].as_mut_ptr());
                // SAFETY: the CPU has AVX-512F (asserted); every tap of every corner lies inside `padded`, the
                // panel holds PANEL weights for each of the channels' taps, and each row PANEL sums (asserted).
                unsafe {
                    match taps.kernel {
                        4 => add_tile::<4>(taps, channels.clone(), padded.as_ptr(), starts, weights.as_ptr(), rows),
                        3 => add_tile::<3>(taps, channels.clone(), padded.as_ptr(), starts, weights.as_ptr(), rows),
                        2 => add_tile::<2>(taps, channels.clone(), padded.as_ptr(), starts, weights.as_ptr(), rows),
                        _ => add_tile::<0>(taps, channels.clone(), padded.as_ptr(), starts, weights.as_ptr(), rows),
                    }
                }
            }
        }
    }
}

/// `columns` (images x pixels x rows, one row of outputs per pixel, as `forward` writes them) as candle's
/// images (images x rows x pixels): each row's run of pixels gathered 16 at a time and written in order
/// (`conv::images_from_columns` on AVX-512 CPUs; written value by value, each pixel's outputs went to as many
/// cache lines, and the stores waited on them).
pub(super) fn images_from_columns(columns: &[f32], rows: usize, pixels: usize, images: &mut [f32]) {
    assert!(
        columns.len() == images.len()
            && images.len().is_multiple_of((rows * pixels).max(1))
            && crate::cpu::has_avx512()
    );
    for (image, columns) in images
        .chunks_exact_mut(rows * pixels)
        .zip(columns.chunks_exact(rows * pixels))
    {
        // SAFETY: the CPU has AVX-512F (asserted); both hold one image of rows x pixels values.
        unsafe { transpose(columns, rows, pixels, image) }
    }
}

/// `image[o * plane + p] = pixels[p * outputs + o]`: a matrix (plane x outputs) transposed.
///
/// # Safety
/// The CPU must have AVX-512F; both slices must hold `outputs * plane` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose(pixels: &[f32], outputs: usize, plane: usize, image: &mut [f32]) {
    use std::arch::x86_64::*;
    let lanes = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(outputs as i32),
    );
    for (o, values) in image.chunks_exact_mut(plane).enumerate() {
        for first in (0..plane).step_by(16) {
            let mask = first_lanes((plane - first).min(16));
            let from = pixels.as_ptr().add(first * outputs + o);
            let run = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, lanes, from);
            _mm512_mask_storeu_ps(values.as_mut_ptr().add(first), mask, run);
        }
    }
}

/// The mask of a 16-lane vector's first `count` lanes (`count` at most 16).
pub(super) fn first_lanes(count: usize) -> u16 {
    ((1u32 << count) - 1) as u16
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transpose(_: &[f32], _: usize, _: usize, _: &mut [f32]) {
    unreachable!("direct convolutions run on x86-64 with AVX-512 only")
}

/// Taps of a block of channels whose weights `forward` passes through all the tiles before the next.
const BLOCK_TAPS: usize = 128;

/// Adds the `channels`' part of one tile to its sums (`PANEL` outputs at `rows[j]` for each of the `TILE`
/// pixels j whose patches start at `starts`), or writes it where the channels start at the first. `K` is the
/// kernel's size, known when compiled for the usual kernels (0: read from `taps`).
///
/// # Safety
/// The CPU must have AVX-512F; `weights` must hold `PANEL` weights for each tap of the channels, every
/// tap of every start must lie inside the buffer `padded` points into, and each row must hold `PANEL` sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_tile<const K: usize>(
    taps: &Taps,
    channels: std::ops::Range<usize>,
    padded: *const f32,
    starts: [usize; TILE],
    weights: *const f32,
    rows: [*mut f32; TILE],
) {
    use std::arch::x86_64::*;
    let kernel = if K == 0 { taps.kernel } else { K };
    let mut tile = [[_mm512_setzero_ps(); TILE]; 4];
    if channels.start > 0 {
        for (j, row) in rows.iter().enumerate() {
            for (i, sum) in tile.iter_mut().enumerate() {
                sum[j] = _mm512_loadu_ps(row.add(16 * i));
            }
        }
    }
    let corners = starts.map(|s| padded.add(s));
    let mut weights = weights;
    for channel in channels {
        for row in 0..kernel {
            let offset = channel * taps.plane + row * taps.row;
            for column in 0..kernel {
                let w = [0, 16, 32, 48].map(|i| _mm512_loadu_ps(weights.add(i)));
                for (j, corner) in corners.iter().enumerate() {
                    let x = _mm512_set1_ps(*corner.add(offset + column));
                    for (sum, w) in tile.iter_mut().zip(&w) {
                        sum[j] = _mm512_fmadd_ps(*w, x, sum[j]);
                    }
                }
                weights = weights.add(PANEL);
            }
        }
    }
    for (j, row) in rows.iter().enumerate() {
        for (i, sum) in tile.iter().enumerate() {
            _mm512_storeu_ps(row.add(16 * i), sum[j]);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn add_tile<const K: usize>(
    _: &Taps,
    _: std::ops::Range<usize>,
    _: *const f32,
    _: [usize; TILE],
    _: *const f32,
    _: [*mut f32; TILE],
) {
    unreachable!("direct convolutions run on x86-64 with AVX-512 only")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn a_direct_convolution_computes_every_output_of_every_pixel() {
        if !crate::cpu::has_avx512() {
            return; // The direct kernels are built for AVX-512 only; elsewhere the patches path runs.
        }
        // Three padded 20-channel 7x8 images, a 3x3 kernel at stride 2 to 128 outputs: two panels, 3 x 3
        // pixels an image (27: the last tile short), 180 taps in two blocks of channels (14 and 6).
        let (images, channels, rows, columns, kernel, stride, outputs) = (3, 20, 7, 8, 3, 2, 128);
        let taps = Taps {
            channels,
            kernel,
            plane: rows * columns,
            row: columns,
        };
        let padded = values(images * channels * rows * columns, 1);
        let w = values(outputs * taps.len(), 2);
        let (out_rows, out_columns) = ((rows - kernel) / stride + 1, (columns - kernel) / stride + 1);
        let mut corners = Vec::new();
        for image in 0..images {
            for y in 0..out_rows {
                for x in 0..out_columns {
                    corners.push(image * channels * rows * columns + y * stride * columns + x * stride);
                }
            }
        }
        let sources: Vec<usize> = (0..taps.len()).collect();
        let packed = PackedWeights::new(&w, (&sources, taps.len()), outputs);
        let slots: Vec<usize> = (0..corners.len()).collect();
        let mut by_pixel = vec![f32::NAN; corners.len() * outputs];
        forward(&taps, &padded, &corners, &slots, &packed, &mut by_pixel);
        let pixels = out_rows * out_columns;
        let mut y = vec![f32::NAN; by_pixel.len()];
        images_from_columns(&by_pixel, outputs, pixels, &mut y);
        for (j, corner) in corners.iter().enumerate() {
            for o in 0..outputs {
                let mut expected = 0.0f64;
                for c in 0..channels {
                    for ky in 0..kernel {
                        for kx in 0..kernel {
                            let tap = (c * kernel + ky) * kernel + kx;
                            let x = padded[corner + c * taps.plane + ky * taps.row + kx];
                            expected += (w[o * taps.len() + tap] * x) as f64;
                        }
                    }
                }
                let got = y[(j / pixels * outputs + o) * pixels + j % pixels];
                assert!(
                    (got as f64 - expected).abs() < 1e-4,
                    "pixel {j} output {o}: {got} where {expected}"
                );
            }
        }
    }
}
