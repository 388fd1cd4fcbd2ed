//! Convolutions computed straight from the padded images on AVX-512 (direct convolutions), where im2row +
//! gemm first write every patch out (16 values per input value for a 4x4 kernel at stride 2), then gemm packs
//! them again before its kernels read them. `conv` uses them for a convolution's forward product, split into
//! the stride's phases for its input gradient (a transposed convolution's forward pass), and for its weight
//! gradient.
//!
//! Every output pixel's patch is the same set of taps, each at one offset from the pixel's corner in the
//! padded image. So a tile of output channels by output pixels is gemm's product with the patches read in
//! place: per tap, four 16-wide vectors of weights (64 output channels, packed once per call) times one value
//! from each of six pixels' patches, broadcast: gemm's own 4x6 AVX-512 tile, without the copies. The weight
//! gradient's tile is 64 outputs by six taps, summing over the pixels: per pixel, four vectors of its output
//! gradient (laid out panel by panel, `PanelColumns`) times six of its taps, broadcast.

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

/// Whether this CPU computes the weight gradient of a convolution to `outputs` channels over `taps` directly:
/// where there are parts enough for every thread to take a few (a first layer's 16 taps make one).
pub(super) fn gradient_applies(outputs: usize, taps: &Taps) -> bool {
    let parts = outputs / PANEL * taps.len().div_ceil(GRADIENT_TAPS);
    applies(outputs, taps) && parts >= 2 * crate::threads::count()
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
        // Parts of a few blocks each: with a panel a part, a layer of one or two panels left threads idle.
        let per_part = len.div_ceil(PACK_TAPS).div_ceil(PACK_PARTS).max(1) * PACK_TAPS;
        let parts = values[start..][..outputs * len]
            .chunks_mut(PANEL * len)
            .enumerate()
            .flat_map(|(p, panel)| {
                (panel.chunks_mut(PANEL * per_part).zip(sources.chunks(per_part))).map(move |part| (p, part))
            })
            .collect();
        crate::threads::for_each_part(parts, |_, (p, (part, sources)): (usize, (&mut [f32], &[usize]))| {
            for (block, sources) in part.chunks_mut(PANEL * PACK_TAPS).zip(sources.chunks(PACK_TAPS)) {
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

/// Parts a panel's packing is cut into.
const PACK_PARTS: usize = 4;

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
        unsafe { transpose(columns, rows, pixels, (image.as_mut_ptr(), pixels)) }
    }
}

/// An output gradient as `weight_gradient` reads it: for each panel of `PANEL` outputs, each pixel's values in
/// one run, the pixels one after another (a block of pixels is then one run: with all of a pixel's outputs
/// in one run, a block's reads lay 512 or 1024 bytes apart, in a quarter of the first-level cache's sets).
pub(super) struct PanelColumns {
    values: Vec<f32>,
    /// Pixels of all the images.
    pixels: usize,
    /// Pixels of one image.
    image_pixels: usize,
}

impl PanelColumns {
    /// Room for the gradient of `images` of `image_pixels` pixels to `outputs` (a multiple of `PANEL`).
    pub(super) fn new(images: usize, outputs: usize, image_pixels: usize) -> PanelColumns {
        assert!(outputs.is_multiple_of(PANEL));
        PanelColumns {
            values: super::unwritten(images * outputs * image_pixels),
            pixels: images * image_pixels,
            image_pixels,
        }
    }

    /// The room of each chunk of `chunk_images` consecutive images (the last may be shorter), panel by panel,
    /// for `fill_panel_columns` to fill in parallel.
    pub(super) fn chunks(&mut self, chunk_images: usize) -> Vec<Vec<&mut [f32]>> {
        let chunk = (chunk_images * self.image_pixels * PANEL).max(1);
        let panels = self.values.chunks_mut((self.pixels * PANEL).max(1));
        let mut panels: Vec<_> = panels.map(|panel| panel.chunks_mut(chunk)).collect();
        let chunks = (self.pixels * PANEL).div_ceil(chunk);
        (0..chunks)
            .map(|_| {
                panels
                    .iter_mut()
                    .map(|panel| panel.next().expect("as many chunks in every panel"))
                    .collect()
            })
            .collect()
    }
}

/// Writes `images` (images x outputs x pixels, candle's layout) into their chunk of a `PanelColumns`.
pub(super) fn fill_panel_columns(images: &[f32], (outputs, pixels): (usize, usize), chunk: &mut [&mut [f32]]) {
    assert!(
        chunk.len() * PANEL == outputs
            && chunk.iter().all(|panel| panel.len() * outputs == images.len() * PANEL)
            && crate::cpu::has_avx512()
    );
    for (i, image) in images.chunks_exact(outputs * pixels).enumerate() {
        for (panel, rows) in chunk.iter_mut().zip(image.chunks_exact(PANEL * pixels)) {
            // SAFETY: the CPU has AVX-512F (asserted); `rows` holds the panel's outputs for the image's pixels
            // and the panel's chunk PANEL values for each of them (asserted).
            unsafe { transpose(rows, pixels, PANEL, (panel[i * pixels * PANEL..].as_mut_ptr(), PANEL)) }
        }
    }
}

/// `image[o * stride + p] = pixels[p * outputs + o]` for p below `plane`: a matrix (plane x outputs)
/// transposed, its rows `stride` values apart. 16 x 16 blocks, each read as 16 runs, transposed in registers
/// and written as 16 runs: gathering each run of 16 took a fifth of the time of a DCGAN's direct kernels on
/// a Zen 5, whose gathers load value by value.
///
/// # Safety
/// The CPU must have AVX-512F; `pixels` must hold `outputs * plane` values and `image` point to `outputs`
/// rows of `plane` values, `stride` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose(pixels: &[f32], outputs: usize, plane: usize, (image, stride): (*mut f32, usize)) {
    use std::arch::x86_64::*;
    debug_assert!(pixels.len() >= outputs * plane);
    for first_output in (0..outputs).step_by(16) {
        let columns = (outputs - first_output).min(16);
        for first_pixel in (0..plane).step_by(16) {
            let rows = (plane - first_pixel).min(16);
            let from = pixels.as_ptr().add(first_pixel * outputs + first_output);
            // Sixteen runs each way, whatever the block's size, so that the block stays in registers.
            let block = transpose_block(std::array::from_fn(|i| match i < rows {
                true => _mm512_maskz_loadu_ps(first_lanes(columns), from.add(i * outputs)),
                false => _mm512_setzero_ps(),
            }));
            let to = image.add(first_output * stride + first_pixel);
            for (j, run) in block.into_iter().enumerate() {
                if j < columns {
                    _mm512_mask_storeu_ps(to.add(j * stride), first_lanes(rows), run);
                }
            }
        }
    }
}

/// A 16 x 16 block transposed: value j of `rows[i]` becomes value i of row j. Pairs of values interleaved,
/// then pairs of pairs, then the 4-value quarters twice.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose_block(rows: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    // Rows 2i and 2i + 1 interleaved: values 0 1 4 5 8 9 12 13 of their columns (lo), 2 3 6 7 ... (hi).
    let pairs: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (rows[i / 2 * 2], rows[i / 2 * 2 + 1]);
        match i % 2 {
            0 => _mm512_unpacklo_ps(a, b),
            _ => _mm512_unpackhi_ps(a, b),
        }
    });
    // quads[4g + k]: columns k, k + 4, k + 8, k + 12 of rows 4g..4g + 4, a quarter each.
    let quads: [__m512; 16] = std::array::from_fn(|i| {
        let (g, k) = (i / 4, i % 4);
        let (a, b) = (pairs[4 * g + k / 2], pairs[4 * g + 2 + k / 2]);
        let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
        _mm512_castpd_ps(match k % 2 {
            0 => _mm512_unpacklo_pd(a, b),
            _ => _mm512_unpackhi_pd(a, b),
        })
    });
    // halves[8h + k]: columns k, k + 8 (even quarters of two quads) or k + 4, k + 12 (odd quarters), of rows
    // 8h..8h + 4 and then 8h + 4..8h + 8.
    let halves: [__m512; 16] = std::array::from_fn(|i| {
        let (h, k) = (i / 8, i % 8);
        let (a, b) = (quads[8 * h + k % 4], quads[8 * h + 4 + k % 4]);
        match k / 4 {
            0 => _mm512_shuffle_f32x4::<0x88>(a, b),
            _ => _mm512_shuffle_f32x4::<0xdd>(a, b),
        }
    });
    std::array::from_fn(|j| {
        // Column j: k = j % 4 and which of its half's two columns (j / 4: 0 for k, 1 for k + 4, 2 for k + 8,
        // 3 for k + 12).
        let (k, which) = (j % 4, j / 4);
        let (a, b) = (halves[k + 4 * (which % 2)], halves[8 + k + 4 * (which % 2)]);
        match which / 2 {
            0 => _mm512_shuffle_f32x4::<0x88>(a, b),
            _ => _mm512_shuffle_f32x4::<0xdd>(a, b),
        }
    })
}

/// The mask of a 16-lane vector's first `count` lanes (`count` at most 16).
pub(super) fn first_lanes(count: usize) -> u16 {
    ((1u32 << count) - 1) as u16
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transpose(_: &[f32], _: usize, _: usize, _: (*mut f32, usize)) {
    unreachable!("direct convolutions run on x86-64 with AVX-512 only")
}

/// The weight gradient `dw` (outputs x taps, as the weights lie) of a convolution whose output gradient is
/// `dy` over the pixels whose patches start at `corners` in `padded`: dw[o][t] = sum over pixels p of
/// dy[p][o] times tap t of p's patch.
///
/// Gemm's tile with the patches read in place: per pixel, four 16-wide vectors of its gradient (64 outputs)
/// times six of its taps, broadcast. The pixels go through the tiles `GRADIENT_PIXELS` at a time, so that
/// their gradients stay in the first-level cache while every tile of a part reads them; a part is a panel of
/// outputs by `GRADIENT_TAPS` taps, its sums over all the pixels (in order: the same on any thread count),
/// written into its rectangle of `dw` when done. im2row wrote 16 values per input value for a 4x4 kernel at
/// stride 2, and gemm packed them again.
pub(super) fn weight_gradient(taps: &Taps, padded: &[f32], corners: &[usize], dy: &PanelColumns, dw: &mut [f32]) {
    let len = taps.len();
    let outputs = dw.len() / len.max(1);
    assert!(
        dw.len() == outputs * len
            && outputs.is_multiple_of(PANEL)
            && dy.pixels == corners.len()
            && dy.values.len() == corners.len() * outputs
            && corners.iter().all(|c| c + taps.last() < padded.len())
            && crate::cpu::has_avx512()
    );
    if corners.is_empty() {
        return dw.fill(0.0);
    }
    let offsets: Vec<usize> = (0..taps.channels)
        .flat_map(|c| (0..taps.kernel).flat_map(move |i| (0..taps.kernel).map(move |j| (c, i, j))))
        .map(|(c, i, j)| c * taps.plane + i * taps.row + j)
        .collect();
    let parts: Vec<(usize, usize)> = (0..outputs / PANEL)
        .flat_map(|panel| (0..len).step_by(GRADIENT_TAPS).map(move |first| (panel, first)))
        .collect();
    let dw_at = super::product::Shared::new(dw.as_mut_ptr());
    let threads = gemm::Parallelism::Rayon(crate::threads::count());
    super::product::tallied((outputs, len, corners.len()), threads, || {
        crate::threads::for_each_part(parts, |_, (panel, first)| {
            let offsets = &offsets[first..(first + GRADIENT_TAPS).min(len)];
            super::conv::with_scratch(offsets.len() * PANEL, |sums| {
                for (block, corners) in corners.chunks(GRADIENT_PIXELS).enumerate() {
                    let dy = &dy.values[(panel * dy.pixels + block * GRADIENT_PIXELS) * PANEL..];
                    for (tile, offsets) in offsets.chunks(TILE).enumerate() {
                        // A short last tile repeats its last tap, which writes the same sums twice.
                        let last = offsets.len() - 1;
                        let offsets = std::array::from_fn(|j| offsets[j.min(last)]);
                        let sums = std::array::from_fn(|j| sums[(tile * TILE + j.min(last)) * PANEL..].as_mut_ptr());
                        // SAFETY: the CPU has AVX-512F, every tap of every corner lies inside `padded` and each
                        // pixel's gradient holds the panel's outputs (asserted); each tap's sums hold PANEL.
                        unsafe { add_gradient_tile(padded.as_ptr(), corners, offsets, dy.as_ptr(), sums, block > 0) };
                    }
                }
                // SAFETY: this part alone writes the panel's rows at its taps, inside `dw` (asserted).
                unsafe {
                    transpose(
                        sums,
                        PANEL,
                        offsets.len(),
                        (dw_at.get().add(panel * PANEL * len + first), len),
                    )
                };
            });
        });
    });
}

/// Pixels whose gradients (a panel's: 256 bytes each) `weight_gradient`'s tiles read before the next.
const GRADIENT_PIXELS: usize = 128;

/// Taps of one part of `weight_gradient`: 16 tiles.
const GRADIENT_TAPS: usize = 16 * TILE;

/// Adds the pixels at `corners` to one tile of a weight gradient: for each of the `TILE` taps j (at
/// `offsets[j]` from a pixel's corner in `padded`), `PANEL` sums at `sums[j]`, each plus the pixel's
/// gradient (`PANEL` values at `dy`, the next pixel's right after) times the tap's value; `add` says whether
/// the sums hold earlier pixels' parts (else they are written).
///
/// # Safety
/// The CPU must have AVX-512F; every tap of every corner must lie inside the buffer `padded` points into,
/// `dy` must hold `PANEL` values for each corner and each `sums[j]` `PANEL` sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_gradient_tile(
    padded: *const f32,
    corners: &[usize],
    offsets: [usize; TILE],
    dy: *const f32,
    sums: [*mut f32; TILE],
    add: bool,
) {
    use std::arch::x86_64::*;
    let mut tile = load_tile(&sums, add);
    let mut dy = dy;
    for corner in corners {
        let patch = padded.add(*corner);
        let g = [0, 16, 32, 48].map(|i| _mm512_loadu_ps(dy.add(i)));
        for (j, offset) in offsets.iter().enumerate() {
            let x = _mm512_set1_ps(*patch.add(*offset));
            for (sum, g) in tile.iter_mut().zip(&g) {
                sum[j] = _mm512_fmadd_ps(*g, x, sum[j]);
            }
        }
        dy = dy.add(PANEL);
    }
    store_tile(&tile, &sums);
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn add_gradient_tile(_: *const f32, _: &[usize], _: [usize; TILE], _: *const f32, _: [*mut f32; TILE], _: bool) {
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
    let mut tile = load_tile(&rows, channels.start > 0);
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
    store_tile(&tile, &rows);
}

/// A tile's sums (`PANEL` for each of its `TILE` columns, at `sums[j]`) as four vectors a column, or zeros
/// where `add` is false.
///
/// # Safety
/// The CPU must have AVX-512F; with `add`, each `sums[j]` must hold `PANEL` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_tile(sums: &[*mut f32; TILE], add: bool) -> [[std::arch::x86_64::__m512; TILE]; 4] {
    use std::arch::x86_64::*;
    let mut tile = [[_mm512_setzero_ps(); TILE]; 4];
    if add {
        for (j, sums) in sums.iter().enumerate() {
            for (i, sum) in tile.iter_mut().enumerate() {
                sum[j] = _mm512_loadu_ps(sums.add(16 * i));
            }
        }
    }
    tile
}

/// Writes a tile's sums back where `load_tile` read them.
///
/// # Safety
/// The CPU must have AVX-512F; each `sums[j]` must have room for `PANEL` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_tile(tile: &[[std::arch::x86_64::__m512; TILE]; 4], sums: &[*mut f32; TILE]) {
    use std::arch::x86_64::*;
    for (j, sums) in sums.iter().enumerate() {
        for (i, sum) in tile.iter().enumerate() {
            _mm512_storeu_ps(sums.add(16 * i), sum[j]);
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

    /// `images` padded `channels` x `rows` x `columns` images of deterministic values (from `seed`), and the
    /// corners of a `kernel` x `kernel` kernel's patches at `stride`, image by image: (taps, padded images,
    /// corners, pixels an image).
    fn strided_patches(
        (images, channels, rows, columns): (usize, usize, usize, usize),
        (kernel, stride): (usize, usize),
        seed: usize,
    ) -> (Taps, Vec<f32>, Vec<usize>, usize) {
        let taps = Taps {
            channels,
            kernel,
            plane: rows * columns,
            row: columns,
        };
        let padded = values(images * channels * rows * columns, seed);
        let (out_rows, out_columns) = ((rows - kernel) / stride + 1, (columns - kernel) / stride + 1);
        let pixels = out_rows * out_columns;
        let corners = (0..images * pixels)
            .map(|j| {
                let (image, pixel) = (j / pixels, j % pixels);
                image * channels * taps.plane + pixel / out_columns * stride * columns + pixel % out_columns * stride
            })
            .collect();
        (taps, padded, corners, pixels)
    }

    /// Tap (channel, kernel row, kernel column) of each tap index, in the weights' order.
    fn tap_places(taps: &Taps) -> Vec<(usize, usize, usize)> {
        let k = taps.kernel;
        (0..taps.channels)
            .flat_map(|c| (0..k).flat_map(move |ky| (0..k).map(move |kx| (c, ky, kx))))
            .collect()
    }

    #[test]
    fn a_transpose_moves_every_value_and_writes_nothing_else() {
        if !crate::cpu::has_avx512() {
            return; // The direct kernels are built for AVX-512 only; elsewhere the patches path runs.
        }
        // Whole 16 x 16 blocks, blocks cut short in either direction and both, and a one-value matrix.
        for (outputs, plane) in [(32, 48), (20, 37), (64, 9), (7, 16), (1, 1)] {
            let pixels = values(outputs * plane, outputs + plane);
            let stride = plane + 3;
            let mut image = vec![f32::NAN; outputs * stride];
            // SAFETY: `pixels` holds plane x outputs values and `image` outputs rows of `stride` >= plane.
            unsafe { transpose(&pixels, outputs, plane, (image.as_mut_ptr(), stride)) };
            for (i, value) in image.iter().enumerate() {
                let (o, p) = (i / stride, i % stride);
                match p < plane {
                    true => assert_eq!(*value, pixels[p * outputs + o], "{outputs}x{plane}: ({o}, {p})"),
                    false => assert!(value.is_nan(), "{outputs}x{plane}: ({o}, {p}) written past the row"),
                }
            }
        }
    }

    #[test]
    fn a_direct_weight_gradient_sums_every_pixel_into_every_tap() {
        if !crate::cpu::has_avx512() {
            return; // The direct kernels are built for AVX-512 only; elsewhere the patches path runs.
        }
        // Fifteen padded 19-channel 7x8 images, a 3x3 kernel at stride 2 to 128 outputs: two panels, 171 taps
        // (two parts a panel, the second's last tile short), 135 pixels (two blocks), filled in two chunks.
        let (images, outputs) = (15, 128);
        let (taps, padded, corners, pixels) = strided_patches((images, 19, 7, 8), (3, 2), 3);
        let dy = values(images * outputs * pixels, 4);
        let mut dy_columns = PanelColumns::new(images, outputs, pixels);
        for (c, mut chunk) in dy_columns.chunks(8).into_iter().enumerate() {
            let images = &dy[c * 8 * outputs * pixels..][..chunk[0].len() / PANEL * outputs];
            fill_panel_columns(images, (outputs, pixels), &mut chunk);
        }
        let mut dw = vec![f32::NAN; outputs * taps.len()];
        weight_gradient(&taps, &padded, &corners, &dy_columns, &mut dw);
        for o in 0..outputs {
            for (tap, (c, ky, kx)) in tap_places(&taps).into_iter().enumerate() {
                let expected: f64 = (corners.iter().enumerate())
                    .map(|(j, corner)| {
                        let x = padded[corner + c * taps.plane + ky * taps.row + kx];
                        (x * dy[(j / pixels * outputs + o) * pixels + j % pixels]) as f64
                    })
                    .sum();
                let got = dw[o * taps.len() + tap];
                assert!(
                    (got as f64 - expected).abs() < 1e-3,
                    "output {o} tap {tap}: {got} where {expected}"
                );
            }
        }
    }

    #[test]
    fn a_direct_convolution_computes_every_output_of_every_pixel() {
        if !crate::cpu::has_avx512() {
            return; // The direct kernels are built for AVX-512 only; elsewhere the patches path runs.
        }
        // Three padded 20-channel 7x8 images, a 3x3 kernel at stride 2 to 128 outputs: two panels, 3 x 3
        // pixels an image (27: the last tile short), 180 taps in two blocks of channels (14 and 6).
        let outputs = 128;
        let (taps, padded, corners, pixels) = strided_patches((3, 20, 7, 8), (3, 2), 1);
        let w = values(outputs * taps.len(), 2);
        let sources: Vec<usize> = (0..taps.len()).collect();
        let packed = PackedWeights::new(&w, (&sources, taps.len()), outputs);
        let slots: Vec<usize> = (0..corners.len()).collect();
        let mut by_pixel = vec![f32::NAN; corners.len() * outputs];
        forward(&taps, &padded, &corners, &slots, &packed, &mut by_pixel);
        let mut y = vec![f32::NAN; by_pixel.len()];
        images_from_columns(&by_pixel, outputs, pixels, &mut y);
        for (j, corner) in corners.iter().enumerate() {
            for o in 0..outputs {
                let expected: f64 = (tap_places(&taps).into_iter().enumerate())
                    .map(|(tap, (c, ky, kx))| {
                        let x = padded[corner + c * taps.plane + ky * taps.row + kx];
                        (w[o * taps.len() + tap] * x) as f64
                    })
                    .sum();
                let got = y[(j / pixels * outputs + o) * pixels + j % pixels];
                assert!(
                    (got as f64 - expected).abs() < 1e-4,
                    "pixel {j} output {o}: {got} where {expected}"
                );
            }
        }
    }
}
