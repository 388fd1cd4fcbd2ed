//! e^x and ln x as Cephes' single-precision polynomials in branch-free f32 arithmetic, so that a loop over
//! them compiles to vector instructions (inside `cpu::widest`); the standard library's `exp` and `ln` are a
//! call to libm per value, which made the VAE's reconstruction loss a fifth of its step (BENCHMARKS.md).

/// ln 2 split into a part exact in a few bits and the rest, so that `n * LN_2_HIGH` is exact.
const LN_2_HIGH: f32 = 0.693_359_4;
const LN_2_LOW: f32 = -2.121_944_4e-4;

/// e^x to within 2 ulp for x in [-87.3, 88]; outside it, the value at the nearer end (about 1e-38 and 1.7e38,
/// so that no value is infinite or subnormal); NaN stays NaN, so that a diverged loss shows as one.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.0);
    // x = n ln 2 + r with |r| ≤ ln 2 / 2, e^x = 2^n e^r.
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * LN_2_HIGH - n * LN_2_LOW;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65)
        * r
        + 0.5)
        * (r * r)
        + r
        + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// ln x to within 2 ulp for positive, normal x.
#[inline(always)]
pub(super) fn ln(x: f32) -> f32 {
    // x = m 2^k with m in [√½, √2), ln x = k ln 2 + ln m.
    let bits = x.to_bits();
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = m > std::f32::consts::SQRT_2;
    let m = if high { m * 0.5 } else { m };
    let k = ((bits >> 23) as i32 - 127 + high as i32) as f32;
    let f = m - 1.0;
    let z = f * f;
    let y = ((((((((7.037_683_6e-2 * f - 0.115_146_1) * f + 0.116_769_99) * f - 0.124_201_41) * f + 0.142_493_23)
        * f
        - 0.166_680_57)
        * f
        + 0.200_007_15)
        * f
        - 0.249_999_94)
        * f
        + 0.333_333_3)
        * f
        * z;
    (f + (y + k * LN_2_LOW - 0.5 * z)) + k * LN_2_HIGH
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error against the standard library's (correctly rounded or nearly) f64 results.
    fn worst(f: fn(f32) -> f32, reference: fn(f64) -> f64, inputs: impl Iterator<Item = f32>) -> (f64, f32) {
        inputs
            .map(|x| {
                let exact = reference(x as f64);
                (((f(x) as f64) - exact).abs() / exact.abs().max(f64::MIN_POSITIVE), x)
            })
            .fold((0.0, 0.0), |w, e| if e.0 > w.0 { e } else { w })
    }

    #[test]
    fn exp_is_within_two_ulp_and_finite_at_the_ends() {
        let (error, at) = worst(exp, f64::exp, (-873_000..=880_000).map(|i| i as f32 * 1e-4));
        assert!(error < 2.5e-7, "exp: relative error {error} at {at}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn ln_is_within_two_ulp_over_many_octaves() {
        let inputs = (-600..=600).flat_map(|e| (0..97).map(move |i| (1.0 + i as f32 / 97.0) * 2f32.powi(e / 5)));
        let (error, at) = worst(ln, f64::ln, inputs.filter(|x| (*x - 1.0).abs() > 1e-3));
        assert!(error < 2.5e-7, "ln: relative error {error} at {at}");
        // Near 1, where ln x is small, the error is absolute.
        for i in 1..2000 {
            let x = 1.0 + i as f32 * 1e-6;
            assert!((ln(x) as f64 - (x as f64).ln()).abs() < 1e-7, "ln({x})");
        }
        assert_eq!(ln(1.0), 0.0);
    }
}
