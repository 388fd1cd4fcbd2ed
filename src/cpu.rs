//! Gantry's own hot loops (the optimiser update) built for the widest vector instructions the CPU has, chosen
//! at run time: the binary is built for every x86-64 (and any other architecture), and an AVX-512 or AVX2 CPU
//! still gets 16- or 8-wide loops. gemm picks its own kernels the same way.

/// The widest vector instructions this CPU has that `widest` builds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vectors {
    Avx512,
    /// AVX2 with FMA.
    Avx2,
    Baseline,
}

fn vectors() -> Vectors {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Vectors::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Vectors::Avx2;
        }
    }
    Vectors::Baseline
}

/// Runs `f` compiled for AVX-512 where the CPU has it, else for AVX2 with FMA, else as built. `f` and what
/// it calls must inline into it (mark them `#[inline(always)]`) to be compiled for the wider instructions.
#[inline(always)]
pub fn widest<R>(f: impl FnOnce() -> R) -> R {
    match vectors() {
        // SAFETY: the CPU has AVX-512F (and with it AVX2 and FMA).
        #[cfg(target_arch = "x86_64")]
        Vectors::Avx512 => unsafe { avx512(f) },
        // SAFETY: the CPU has AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Vectors::Avx2 => unsafe { avx2(f) },
        _ => f(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Whether this CPU has AVX-512F, for kernels written for it alone.
pub fn has_avx512() -> bool {
    vectors() == Vectors::Avx512
}

/// The widest vector instructions `widest` uses on this CPU, for the benchmark's report.
pub fn vector_instructions() -> &'static str {
    match vectors() {
        Vectors::Avx512 => "AVX-512",
        Vectors::Avx2 => "AVX2",
        Vectors::Baseline => "baseline",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widest_build_of_a_loop_computes_what_the_plain_one_does() {
        let values: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let update = |v: &[f32]| -> Vec<f32> { v.iter().map(|x| x.mul_add(*x, 0.1).sqrt()).collect() };
        assert_eq!(widest(|| update(&values)), update(&values));
        assert!(["AVX-512", "AVX2", "baseline"].contains(&vector_instructions()));
    }
}
