//! Procedural handwritten-looking digits, an offline stand-in for MNIST.
//!
//! Gantry must be usable without a network connection, so instead of
//! downloading MNIST it can synthesise digits. Each digit class has a few
//! writing styles described as pen strokes (lines, Bézier curves and elliptic
//! arcs) in a unit box with y pointing down. Every sample perturbs the strokes
//! the way a hand would (control-point jitter, slant, rotation, aspect, scale,
//! pen width), rasterises them with anti-aliasing, and frames the result like
//! MNIST: the ink fits a ~20x20 box centred in the 28x28 canvas, white ink on
//! black. A single seeded [`StdRng`] drives everything, so a seed always
//! produces the same data set.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Width and height of every generated digit, in pixels.
pub const DIGIT_SIZE: usize = 28;

/// Side of the box the ink is fitted into before random scaling, as in MNIST.
const FIT_BOX: f32 = 20.0;

/// Standard deviation of control-point jitter, in unit-box coordinates.
const JITTER: f32 = 0.025;

/// Relative weight of each writing style, per digit class.
const STYLE_WEIGHTS: [&[u32]; 10] = [
    &[3, 2],
    &[5, 4, 1],
    &[4, 2, 2],
    &[3, 2],
    &[2, 2, 1],
    &[1, 1],
    &[1, 1],
    &[3, 1, 2],
    &[1, 1],
    &[2, 2, 1],
];

type Pt = [f32; 2];

/// Generates `count` digits and their labels from `seed`.
///
/// Returns `(pixels, labels)`: `pixels` holds `count * 28 * 28` row-major
/// values in `[0, 1]` (0 is background, 1 is ink) and `labels[i]` is the digit
/// shown by item `i`. Classes are balanced: labels cycle through 0..=9 and are
/// then shuffled.
pub fn generate_digits(count: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut labels: Vec<u32> = (0..count).map(|i| (i % 10) as u32).collect();
    labels.shuffle(&mut rng);
    let mut pixels = vec![0.0; count * DIGIT_SIZE * DIGIT_SIZE];
    for (&label, canvas) in labels.iter().zip(pixels.chunks_exact_mut(DIGIT_SIZE * DIGIT_SIZE)) {
        render_digit(label, &mut rng, canvas);
    }
    (pixels, labels)
}

/// Draws one randomly styled and deformed sample of `digit` into `canvas`.
fn render_digit(digit: u32, rng: &mut StdRng, canvas: &mut [f32]) {
    let style = pick_weighted(rng, STYLE_WEIGHTS[digit as usize]);
    let mut pen = Pen::new(rng);
    write_digit(&mut pen, digit, style);
    let mut strokes = pen.strokes;

    let angle = rng.random_range(-15.0f32..15.0).to_radians();
    let shear = rng.random_range(-0.3f32..0.3);
    let aspect = rng.random_range(0.8f32..1.2);
    let (sin, cos) = angle.sin_cos();
    // Slant about mid-height, stretch, then rotate.
    for p in strokes.iter_mut().flatten() {
        let x = (p[0] + shear * (0.5 - p[1])) * aspect;
        let y = p[1];
        *p = [cos * x - sin * y, sin * x + cos * y];
    }

    let width = rng.random_range(1.2f32..3.0);
    let scale = rng.random_range(0.8f32..1.1);
    let shift = [rng.random_range(-2.0f32..2.0), rng.random_range(-2.0f32..2.0)];
    // Fit the ink (stroke width included) into the scaled MNIST box.
    let (lo, hi) = bounds(&strokes);
    let extent = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-3);
    let k = (FIT_BOX * scale - width) / extent;
    let centre = DIGIT_SIZE as f32 / 2.0;
    for p in strokes.iter_mut().flatten() {
        for (axis, v) in p.iter_mut().enumerate() {
            *v = (*v - (lo[axis] + hi[axis]) / 2.0) * k + centre + shift[axis];
        }
    }

    for stroke in &strokes {
        for seg in stroke.windows(2) {
            stamp_segment(canvas, seg[0], seg[1], width / 2.0);
        }
    }
}

/// Index into `weights` chosen with probability proportional to its weight.
fn pick_weighted(rng: &mut StdRng, weights: &[u32]) -> usize {
    let mut ticket = rng.random_range(0..weights.iter().sum::<u32>());
    for (i, &w) in weights.iter().enumerate() {
        if ticket < w {
            return i;
        }
        ticket -= w;
    }
    unreachable!("ticket is below the total weight")
}

/// Axis-aligned bounding box of all stroke points.
fn bounds(strokes: &[Vec<Pt>]) -> (Pt, Pt) {
    let mut lo = [f32::INFINITY; 2];
    let mut hi = [f32::NEG_INFINITY; 2];
    for p in strokes.iter().flatten() {
        for axis in 0..2 {
            lo[axis] = lo[axis].min(p[axis]);
            hi[axis] = hi[axis].max(p[axis]);
        }
    }
    (lo, hi)
}

/// Inks the pixels within `radius` (plus a one-pixel soft edge) of segment
/// `a`-`b`, keeping the stronger of old and new ink so the joints between
/// segments don't build up brighter spots. Only pixels in the segment's
/// padded bounding box are visited.
fn stamp_segment(canvas: &mut [f32], a: Pt, b: Pt, radius: f32) {
    let pad = radius + 1.0;
    let max = DIGIT_SIZE as f32 - 1.0;
    let x0 = (a[0].min(b[0]) - pad).floor().clamp(0.0, max) as usize;
    let x1 = (a[0].max(b[0]) + pad).ceil().clamp(0.0, max) as usize;
    let y0 = (a[1].min(b[1]) - pad).floor().clamp(0.0, max) as usize;
    let y1 = (a[1].max(b[1]) + pad).ceil().clamp(0.0, max) as usize;
    let d = [b[0] - a[0], b[1] - a[1]];
    let len2 = (d[0] * d[0] + d[1] * d[1]).max(1e-12);
    for y in y0..=y1 {
        let py = y as f32 + 0.5 - a[1];
        for x in x0..=x1 {
            let px = x as f32 + 0.5 - a[0];
            let t = ((px * d[0] + py * d[1]) / len2).clamp(0.0, 1.0);
            let (ex, ey) = (px - t * d[0], py - t * d[1]);
            let ink = (radius + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0);
            let cell = &mut canvas[y * DIGIT_SIZE + x];
            *cell = cell.max(ink);
        }
    }
}

/// Records strokes as polylines, jittering every control point so that no
/// two samples of the same style are identical.
struct Pen<'a> {
    rng: &'a mut StdRng,
    jitter: Normal<f32>,
    strokes: Vec<Vec<Pt>>,
}

impl<'a> Pen<'a> {
    /// Segments used to flatten each Bézier curve.
    const CURVE_STEPS: usize = 10;

    fn new(rng: &'a mut StdRng) -> Self {
        Self {
            rng,
            jitter: Normal::new(0.0, JITTER).expect("jitter is a valid std dev"),
            strokes: Vec::new(),
        }
    }

    fn shake(&mut self, p: Pt) -> Pt {
        [p[0] + self.jitter.sample(self.rng), p[1] + self.jitter.sample(self.rng)]
    }

    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.rng.random_range(lo..hi)
    }

    fn current(&mut self) -> &mut Vec<Pt> {
        self.strokes.last_mut().expect("pen_down before drawing")
    }

    /// Starts a new, still empty stroke (for strokes that begin with an arc).
    fn pen_down(&mut self) -> &mut Self {
        self.strokes.push(Vec::new());
        self
    }

    fn move_to(&mut self, p: Pt) -> &mut Self {
        let p = self.shake(p);
        self.strokes.push(vec![p]);
        self
    }

    /// A hand-drawn "straight" line: a quadratic with a jittered midpoint
    /// control, so it bows slightly.
    fn line_to(&mut self, p: Pt) -> &mut Self {
        let from = *self.current().last().expect("line_to needs a start point");
        let mid = [(from[0] + p[0]) / 2.0, (from[1] + p[1]) / 2.0];
        self.quad_to(mid, p)
    }

    fn quad_to(&mut self, c: Pt, p: Pt) -> &mut Self {
        let (c, p) = (self.shake(c), self.shake(p));
        let from = *self.current().last().expect("quad_to needs a start point");
        for i in 1..=Self::CURVE_STEPS {
            let t = i as f32 / Self::CURVE_STEPS as f32;
            let (u0, u1, u2) = ((1.0 - t) * (1.0 - t), 2.0 * t * (1.0 - t), t * t);
            let q = [
                u0 * from[0] + u1 * c[0] + u2 * p[0],
                u0 * from[1] + u1 * c[1] + u2 * p[1],
            ];
            self.current().push(q);
        }
        self
    }

    fn cubic_to(&mut self, c1: Pt, c2: Pt, p: Pt) -> &mut Self {
        let (c1, c2, p) = (self.shake(c1), self.shake(c2), self.shake(p));
        let from = *self.current().last().expect("cubic_to needs a start point");
        for i in 1..=Self::CURVE_STEPS {
            let t = i as f32 / Self::CURVE_STEPS as f32;
            let s = 1.0 - t;
            let (u0, u1, u2, u3) = (s * s * s, 3.0 * s * s * t, 3.0 * s * t * t, t * t * t);
            let q = [
                u0 * from[0] + u1 * c1[0] + u2 * c2[0] + u3 * p[0],
                u0 * from[1] + u1 * c1[1] + u2 * c2[1] + u3 * p[1],
            ];
            self.current().push(q);
        }
        self
    }

    /// Elliptic arc around `c` from angle `a0` to `a1` (degrees; 0 points
    /// right, 90 down, so increasing angles run clockwise on screen). Centre
    /// and radii are jittered once, keeping the arc smooth.
    fn arc(&mut self, c: Pt, rx: f32, ry: f32, a0: f32, a1: f32) -> &mut Self {
        let c = self.shake(c);
        let rx = rx * (1.0 + 2.0 * self.jitter.sample(self.rng));
        let ry = ry * (1.0 + 2.0 * self.jitter.sample(self.rng));
        let steps = ((a1 - a0).abs() / 12.0).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let a = (a0 + (a1 - a0) * i as f32 / steps as f32).to_radians();
            let q = [c[0] + rx * a.cos(), c[1] + ry * a.sin()];
            self.current().push(q);
        }
        self
    }
}

/// Writes `digit` in writing style `style` (an index into its
/// [`STYLE_WEIGHTS`] row) in a unit box with y pointing down.
fn write_digit(pen: &mut Pen, digit: u32, style: usize) {
    match (digit, style) {
        (0, 0) => {
            // Round oval started at the top, closed with a small overlap.
            let rx = pen.uniform(0.22, 0.34);
            let start = pen.uniform(-100.0, -65.0);
            let sweep = pen.uniform(360.0, 390.0);
            pen.pen_down().arc([0.35, 0.5], rx, 0.48, start, start - sweep);
        }
        (0, _) => {
            // Narrow, leaning-in oval that may not quite close.
            let rx = pen.uniform(0.14, 0.22);
            let sweep = pen.uniform(330.0, 370.0);
            pen.pen_down().arc([0.35, 0.5], rx, 0.48, -60.0, -60.0 - sweep);
        }
        (1, 0) => {
            pen.move_to([0.5, 0.0]).line_to([0.45, 1.0]);
        }
        (1, style) => {
            // A short flag slanting down to the left, never a 7's bar.
            let flag_y = pen.uniform(0.18, 0.3);
            pen.move_to([0.33, flag_y]).line_to([0.5, 0.0]).line_to([0.47, 1.0]);
            if style == 2 {
                pen.move_to([0.22, 1.0]).line_to([0.72, 1.0]);
            }
        }
        (2, style) => {
            // Hook over the top, then a diagonal down to the base.
            pen.pen_down().arc([0.35, 0.3], 0.28, 0.27, -160.0, 20.0);
            match style {
                0 => {
                    pen.quad_to([0.4, 0.7], [0.03, 0.98]).line_to([0.72, 0.96]);
                }
                1 => {
                    // Curly 2: a small loop where the diagonal meets the base.
                    pen.quad_to([0.45, 0.65], [0.12, 0.88])
                        .cubic_to([0.0, 0.98], [-0.06, 0.78], [0.1, 0.8])
                        .cubic_to([0.2, 0.82], [0.22, 0.97], [0.35, 0.97])
                        .line_to([0.75, 0.95]);
                }
                _ => {
                    // Rounded bottom with a wavy base.
                    pen.cubic_to([0.55, 0.6], [0.1, 0.75], [0.05, 0.97]).cubic_to(
                        [0.3, 0.88],
                        [0.5, 1.02],
                        [0.72, 0.92],
                    );
                }
            }
        }
        (3, 0) => {
            // Two bowls meeting at a cusp on the left.
            pen.pen_down()
                .arc([0.33, 0.26], 0.28, 0.24, -160.0, 110.0)
                .arc([0.33, 0.73], 0.3, 0.26, -110.0, 150.0);
        }
        (3, _) => {
            // Flat top with a diagonal into a single bowl.
            pen.move_to([0.05, 0.02])
                .line_to([0.62, 0.02])
                .line_to([0.28, 0.4])
                .arc([0.33, 0.7], 0.3, 0.29, -105.0, 150.0);
        }
        (4, 0) => {
            // Open 4: an L then a separate upright.
            pen.move_to([0.12, 0.0]).line_to([0.05, 0.6]).line_to([0.72, 0.6]);
            pen.move_to([0.52, 0.08]).line_to([0.52, 1.0]);
        }
        (4, 1) => {
            // Closed 4: diagonal, crossbar, upright from the same apex.
            pen.move_to([0.55, 0.0]).line_to([0.02, 0.66]).line_to([0.72, 0.66]);
            pen.move_to([0.55, 0.0]).line_to([0.55, 1.0]);
        }
        (4, _) => {
            // Nearly closed: the diagonal stops short of the upright.
            pen.move_to([0.45, 0.0]).line_to([0.03, 0.62]).line_to([0.72, 0.62]);
            pen.move_to([0.58, 0.05]).line_to([0.56, 1.0]);
        }
        (5, style) => {
            if style == 0 {
                pen.move_to([0.18, 0.02]);
            } else {
                pen.move_to([0.66, 0.02]).line_to([0.18, 0.02]);
            }
            pen.line_to([0.12, 0.45]).arc([0.33, 0.69], 0.3, 0.27, -130.0, 150.0);
            if style == 0 {
                pen.move_to([0.18, 0.02]).line_to([0.66, 0.0]);
            }
        }
        (6, 0) => {
            // Sweeping stem into a round loop.
            pen.move_to([0.62, 0.02])
                .cubic_to([0.35, 0.05], [0.08, 0.35], [0.09, 0.72])
                .arc([0.36, 0.72], 0.27, 0.26, 180.0, -170.0);
        }
        (6, _) => {
            // Straighter stem with a smaller loop.
            pen.move_to([0.5, 0.0])
                .quad_to([0.12, 0.3], [0.12, 0.75])
                .arc([0.35, 0.76], 0.23, 0.22, 180.0, -175.0);
        }
        (7, 2) => {
            // Hooked start and a curved stem.
            pen.move_to([0.02, 0.15])
                .line_to([0.04, 0.04])
                .line_to([0.68, 0.04])
                .quad_to([0.42, 0.45], [0.32, 1.0]);
        }
        (7, style) => {
            pen.move_to([0.02, 0.05]).line_to([0.68, 0.05]).line_to([0.25, 1.0]);
            if style == 1 {
                pen.move_to([0.27, 0.52]).line_to([0.65, 0.52]);
            }
        }
        (8, 0) => {
            // One continuous stroke crossing itself in the middle.
            pen.move_to([0.58, 0.12])
                .cubic_to([0.5, 0.0], [0.12, 0.0], [0.13, 0.22])
                .cubic_to([0.14, 0.42], [0.62, 0.5], [0.64, 0.74])
                .cubic_to([0.66, 0.98], [0.1, 1.02], [0.08, 0.76])
                .cubic_to([0.07, 0.52], [0.56, 0.42], [0.58, 0.22])
                .line_to([0.56, 0.08]);
        }
        (8, _) => {
            // Two stacked loops, the lower one larger.
            pen.pen_down().arc([0.35, 0.25], 0.2, 0.23, -90.0, 270.0);
            pen.pen_down().arc([0.35, 0.72], 0.28, 0.27, -90.0, 270.0);
        }
        (9, style) => {
            // Loop drawn anticlockwise from its right side, then the stem.
            let start = if style == 2 { -20.0 } else { 0.0 };
            pen.pen_down().arc([0.35, 0.27], 0.28, 0.25, start, start - 360.0);
            match style {
                0 => pen.line_to([0.6, 1.0]),
                1 => pen.quad_to([0.64, 0.9], [0.3, 1.0]),
                _ => pen.line_to([0.45, 1.0]),
            };
        }
        _ => unreachable!("digit {digit} is not in 0..=9"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AREA: usize = DIGIT_SIZE * DIGIT_SIZE;

    #[test]
    fn same_seed_same_digits_different_seed_different() {
        let a = generate_digits(50, 7);
        assert_eq!(a, generate_digits(50, 7));
        let b = generate_digits(50, 8);
        assert_ne!(a.0, b.0);
    }

    #[test]
    fn output_shapes_and_value_range() {
        let (pixels, labels) = generate_digits(37, 1);
        assert_eq!(pixels.len(), 37 * AREA);
        assert_eq!(labels.len(), 37);
        assert!(pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(labels.iter().all(|&l| l < 10));
        assert_eq!(generate_digits(0, 1), (Vec::new(), Vec::new()));
    }

    #[test]
    fn labels_are_balanced() {
        let (_, labels) = generate_digits(1000, 3);
        let mut counts = [0; 10];
        for &l in &labels {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [100; 10]);
        // Shuffled, not simply cycling 0..=9.
        assert!(labels.iter().enumerate().any(|(i, &l)| l != (i % 10) as u32));
    }

    #[test]
    fn ink_sits_in_the_centre_box() {
        let (pixels, labels) = generate_digits(500, 11);
        let mut outside_total = 0.0;
        let mut ink_total = 0.0;
        for (img, &label) in pixels.chunks_exact(AREA).zip(&labels) {
            let (mut inside, mut outside) = (0.0, 0.0);
            for (i, &v) in img.iter().enumerate() {
                let (y, x) = (i / DIGIT_SIZE, i % DIGIT_SIZE);
                if (4..24).contains(&x) && (4..24).contains(&y) {
                    inside += v;
                } else {
                    outside += v;
                }
            }
            assert!(inside > 15.0, "digit {label} has too little ink: {inside}");
            assert!(
                outside < 0.4 * (inside + outside),
                "digit {label} spills out of the centre box"
            );
            // The outermost ring stays (almost) blank, as in MNIST.
            let border: f32 = (0..DIGIT_SIZE)
                .flat_map(|k| {
                    let last = DIGIT_SIZE - 1;
                    [k, last * DIGIT_SIZE + k, k * DIGIT_SIZE, k * DIGIT_SIZE + last]
                })
                .map(|i| img[i])
                .sum();
            assert!(border < 1.0, "digit {label} touches the border");
            outside_total += outside;
            ink_total += inside + outside;
        }
        assert!(outside_total < 0.05 * ink_total);
    }

    #[test]
    fn every_style_has_strokes() {
        for (digit, weights) in STYLE_WEIGHTS.iter().enumerate() {
            for style in 0..weights.len() {
                let mut rng = StdRng::seed_from_u64(5);
                let mut pen = Pen::new(&mut rng);
                write_digit(&mut pen, digit as u32, style);
                let points: usize = pen.strokes.iter().map(Vec::len).sum();
                assert!(points > 10, "digit {digit} style {style} is empty");
            }
        }
    }
}
