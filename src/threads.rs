//! How training shares the CPU's cores: how many threads Gantry's kernels use, and how long candle's idle
//! pool workers spin.
//!
//! candle runs element-wise ops on a barrier pool whose workers spin for up to 25,000 pause instructions
//! (about half a millisecond) after each op before they sleep, while gemm's threads want the same cores for
//! the next matrix product. On the 2-core benchmark machine that spinning took a third of all samples at
//! 2 threads; a short spin measured 10-30 % faster on the benchmark models (BENCHMARKS.md).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Pause instructions candle's idle pool workers spin before they sleep, unless the environment says.
const SPIN_LIMIT: u32 = 1_000;

/// The environment variable candle reads the spin limit from.
const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// The threads Gantry's kernels split work over; 0 until set (then the pools' size).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sizes candle's thread pools (`None`: candle's default, one per physical core) and sets their spin. Call
/// first thing in `main`: the pools read these once, when they start, and the environment must not change
/// while other threads may read it.
pub fn configure_pools(threads: Option<usize>) {
    if let Some(threads) = threads.filter(|n| *n > 0) {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    }
    if std::env::var_os(SPIN_LIMIT_VAR).is_none() {
        std::env::set_var(SPIN_LIMIT_VAR, SPIN_LIMIT.to_string());
    }
}

/// The size of candle's pools: one thread per physical core unless `configure_pools` said otherwise.
pub fn pool_size() -> usize {
    candle_core::utils::get_num_threads()
}

/// Sets how many threads Gantry's kernels (convolutions, batch norm, bias and activations, the matrix
/// products in them) use from now on, at most the pools' size; 0 restores the default (all of them).
pub fn set(threads: usize) {
    THREADS.store(threads.min(pool_size()), Ordering::Relaxed);
}

/// The threads Gantry's kernels use: what `set` said, else the pools' size.
pub fn count() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => pool_size(),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_use_the_set_count_within_the_pools_size() {
        set(1);
        assert_eq!(count(), 1);
        set(pool_size() + 5);
        assert_eq!(count(), pool_size());
        set(0);
        assert_eq!(count(), pool_size());
    }
}
