//! How training shares the CPU's cores: how many threads Gantry's kernels use, and the passes they split
//! between them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The threads Gantry's kernels split work over; 0 until set (then the pools' size).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sizes candle's thread pools (`None`: candle's default, one per physical core). Call first thing in
/// `main`: the pools read this once, when they start, and the environment must not change while other
/// threads may read it.
pub fn configure_pools(threads: Option<usize>) {
    if let Some(threads) = threads.filter(|n| *n > 0) {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
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

thread_local! {
    /// Set while this thread runs a part of `map_parts`: a nested call then runs its parts in place.
    static IN_PARTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `work(index, part)` for every part, spread over Gantry's threads, results in the parts' order.
///
/// The calling thread takes parts too, the others go to candle's barrier-pool workers (thread `t` of
/// `threads` takes parts `t`, `t + threads`, ...), and all meet at a spinning barrier. A training step runs
/// hundreds of these short passes; rayon's `install` instead puts the caller to sleep until a pool thread
/// wakes it, and those hand-overs left a fifth of two cores idle (BENCHMARKS.md).
pub fn map_parts<T: Send, R: Send>(parts: Vec<T>, work: impl Fn(usize, T) -> R + Sync) -> Vec<R> {
    let pool = candle_core::utils::barrier_pool();
    let threads = count().min(pool.n_workers() + 1);
    if threads <= 1 || parts.len() <= 1 || IN_PARTS.with(|flag| flag.get()) {
        return parts.into_iter().enumerate().map(|(i, part)| work(i, part)).collect();
    }
    let parts: Vec<Mutex<Option<T>>> = parts.into_iter().map(|part| Mutex::new(Some(part))).collect();
    let results: Vec<Mutex<Option<R>>> = parts.iter().map(|_| Mutex::new(None)).collect();
    let workers = pool.n_workers();
    pool.execute(|tid| {
        // The caller is the pool's last id: make it thread 0, so that it always has work.
        let thread = if tid == workers { 0 } else { tid + 1 };
        if thread >= threads {
            return;
        }
        IN_PARTS.with(|flag| flag.set(true));
        for i in (thread..parts.len()).step_by(threads) {
            if let Some(part) = lock(&parts[i]).take() {
                *lock(&results[i]) = Some(work(i, part));
            }
        }
        IN_PARTS.with(|flag| flag.set(false));
    });
    results
        .into_iter()
        .map(|result| {
            result
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every part ran")
        })
        .collect()
}

/// `work(index, part)` for every part, spread over Gantry's threads as `map_parts` does.
pub fn for_each_part<T: Send>(parts: Vec<T>, work: impl Fn(usize, T) + Sync) {
    map_parts(parts, work);
}

/// A lock that a panic elsewhere does not poison (the panic itself reaches the caller).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

    #[test]
    fn parts_run_once_each_and_results_keep_their_order() {
        let ran = AtomicUsize::new(0);
        let results = map_parts((0..37).collect(), |i, part: usize| {
            ran.fetch_add(1, Ordering::Relaxed);
            // A nested call runs in place.
            let inner: usize = map_parts(vec![part; 3], |_, v| v).into_iter().sum();
            (i, inner)
        });
        assert_eq!(ran.load(Ordering::Relaxed), 37);
        assert_eq!(results, (0..37).map(|i| (i, 3 * i)).collect::<Vec<_>>());
    }
}
