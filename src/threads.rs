//! How training shares the CPU's cores: how many threads Gantry's kernels use, and the passes they split
//! between them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The threads Gantry's kernels split work over; 0 until set (then the pools' size).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sizes the thread pools (`None`: one thread per physical core) and keeps candle's own element-wise ops on
/// the calling thread: Gantry's kernels do the parallel work on their helpers, and candle's barrier pool
/// would only add threads that spin for the same cores. Call first thing in `main`: the pools read these
/// once, when they start, and the environment must not change while other threads may read it.
pub fn configure_pools(threads: Option<usize>) {
    if let Some(threads) = threads.filter(|n| *n > 0) {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    std::env::set_var("CANDLE_NUM_THREADS", "1");
}

/// The threads Gantry's kernels can use: one per physical core unless `configure_pools` said otherwise.
/// Read once, as the pools are sized once: every parallel pass asks, and the answer comes from the
/// environment.
pub fn pool_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(candle_core::utils::get_num_threads)
}

/// Sets how many threads Gantry's kernels (convolutions, batch norm, bias and activations, the matrix
/// products in them) use from now on, at most the pools' size; 0 restores the default (all of them).
pub fn set(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// The threads Gantry's kernels use: what `set` said, else the pools' size; 1 on a thread that works alone.
pub fn count() -> usize {
    if ALONE.with(|alone| alone.get()) {
        return 1;
    }
    within_pool(THREADS.load(Ordering::Relaxed), pool_size())
}

/// The threads a `set` of `requested` gives out of a pool of `pool`: 0 is all of them.
fn within_pool(requested: usize, pool: usize) -> usize {
    match requested {
        0 => pool,
        n => n.min(pool),
    }
}

/// Makes the calling thread run Gantry's kernels on itself only. A background thread (the quality metric's)
/// then never waits for the helper threads training holds, nor holds them up: the helpers run one pass at a
/// time, so a training step would otherwise wait behind the background thread's passes.
pub fn work_alone() {
    ALONE.with(|alone| alone.set(true));
}

thread_local! {
    /// Set by `work_alone`: this thread's kernels use no helper threads.
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The thread's number while it runs a part of `map_parts`: a nested call then runs its parts in place.
    static IN_PARTS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// `work(index, part)` for every part, spread over Gantry's threads, results in the parts' order.
///
/// The calling thread takes parts too, the others go to the helper threads. A training step runs hundreds
/// of these short passes: rayon's `install` puts the caller to sleep until a pool thread wakes it, and those
/// hand-overs left a fifth of two cores idle; a barrier where everyone only spins loses whole time slices
/// when another thread (the workbench drawing a frame) takes a core from one of them (BENCHMARKS.md).
pub fn map_parts<T: Send, R: Send>(parts: Vec<T>, work: impl Fn(usize, T) -> R + Sync) -> Vec<R> {
    map_parts_on_threads(parts, |_, index, part| work(index, part))
}

/// `work(thread, index, part)` for every part as `map_parts`, also naming the thread (below `count()`) that
/// runs it: no two parts run at once on one thread, so parts that sum into one buffer per thread need no
/// lock.
///
/// Each thread claims the next part when it has finished its last: a thread that starts late or runs slow
/// (a virtual core shared with another machine, the workbench drawing a frame) takes fewer parts instead of
/// holding up the others, as one equal share per thread did (the caller waited out 15 % of a DCGAN step).
pub fn map_parts_on_threads<T: Send, R: Send>(parts: Vec<T>, work: impl Fn(usize, usize, T) -> R + Sync) -> Vec<R> {
    let helpers = helpers();
    let threads = count().min(helpers.threads().len() + 1);
    let nested = IN_PARTS.with(|thread| thread.get());
    if threads <= 1 || parts.len() <= 1 || nested.is_some() {
        let thread = nested.unwrap_or(0);
        return parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| work(thread, i, part))
            .collect();
    }
    let parts: Vec<Mutex<Option<T>>> = parts.into_iter().map(|part| Mutex::new(Some(part))).collect();
    let results: Vec<Mutex<Option<R>>> = parts.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    helpers.run(threads, &|thread| {
        struct InParts;
        impl Drop for InParts {
            fn drop(&mut self) {
                IN_PARTS.with(|flag| flag.set(None));
            }
        }
        IN_PARTS.with(|flag| flag.set(Some(thread)));
        let _in_parts = InParts;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = parts.get(i) else { break };
            if let Some(part) = lock(part).take() {
                *lock(&results[i]) = Some(work(thread, i, part));
            }
        }
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

/// One pass for the helpers: `job(thread)` for threads 1..threads (the caller is thread 0).
type Job = &'static (dyn Fn(usize) + Sync);

/// Threads that run parts of `map_parts` passes, one per core of the pool but the caller's.
///
/// A waiting thread spins a little, then yields its core, then (a helper between passes) sleeps: when more
/// threads want the cores than there are, the waiting one hands its core to the one it waits for instead of
/// spinning through that one's time slice.
///
/// The caller waits only for helpers that took up the pass: one that has not by the time the caller has
/// claimed every part (another thread has its core: the run's file writer, the quality metric) finds the pass
/// withdrawn, instead of holding the caller until it arrives to find nothing left (BENCHMARKS.md).
#[derive(Default)]
struct Helpers {
    threads: std::sync::OnceLock<Vec<std::thread::Thread>>,
    /// Serialises callers (several runs training at once).
    call: Mutex<()>,
    /// The current pass, its number of threads and its generation; `None` once withdrawn.
    job: Mutex<Option<(Job, usize, usize)>>,
    /// Counts the passes.
    generation: AtomicUsize,
    /// Helpers that took up the current pass and have not finished it.
    running: AtomicUsize,
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

/// Spins before a waiting thread starts yielding its core (about as long as a pass takes to set up), and
/// yields before an idle helper sleeps.
const SPINS: usize = 25_000;
const YIELDS: usize = 200;

fn helpers() -> &'static Helpers {
    static HELPERS: std::sync::OnceLock<Helpers> = std::sync::OnceLock::new();
    let helpers = HELPERS.get_or_init(Helpers::default);
    helpers.threads.get_or_init(|| {
        (1..pool_size())
            .filter_map(|thread| {
                std::thread::Builder::new()
                    .name(format!("gantry-kernels-{thread}"))
                    .spawn(move || helpers.serve(thread))
                    .ok()
                    .map(|handle| handle.thread().clone())
            })
            .collect()
    });
    helpers
}

impl Helpers {
    fn threads(&self) -> &[std::thread::Thread] {
        self.threads.get().map_or(&[], Vec::as_slice)
    }

    /// Runs `job(thread)` on the caller (thread 0) and on those of threads 1..threads that take it up before
    /// the caller's part is done; returns when all of them have finished. `job` must claim its work as it
    /// goes, as `map_parts_on_threads` does: any thread may end up with all of it.
    fn run(&self, threads: usize, job: &(dyn Fn(usize) + Sync)) {
        let _call = lock(&self.call);
        // SAFETY: a helper uses the job only after taking it from `self.job` (counting itself in `running`
        // under that lock) and until its decrement of `running`; this function withdraws the job under the
        // same lock and does not return (nor unwind, when `job` panics here) before `running` is 0.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(job) };
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        *lock(&self.job) = Some((job, threads, generation));
        self.generation.store(generation, Ordering::Release);
        self.threads().iter().for_each(std::thread::Thread::unpark);
        struct WaitForHelpers<'a>(&'a Helpers);
        impl Drop for WaitForHelpers<'_> {
            fn drop(&mut self) {
                *lock(&self.0.job) = None;
                wait_until(|| self.0.running.load(Ordering::Acquire) == 0);
            }
        }
        let wait = WaitForHelpers(self);
        job(0);
        drop(wait);
        if let Some(payload) = lock(&self.panic).take() {
            std::panic::resume_unwind(payload);
        }
    }

    /// A helper's life: wait for a new pass, run its part if it has one, report, repeat.
    fn serve(&self, thread: usize) {
        let mut seen = 0;
        loop {
            let mut waited = 0;
            while self.generation.load(Ordering::Acquire) == seen {
                waited += 1;
                if waited < SPINS {
                    std::hint::spin_loop();
                } else if waited < SPINS + YIELDS {
                    std::thread::yield_now();
                } else {
                    // The caller unparks after the bump: a wake-up between the check and the park is kept.
                    std::thread::park();
                }
            }
            seen = self.generation.load(Ordering::Acquire);
            let taken = {
                let current = lock(&self.job);
                let job = current.filter(|(_, threads, _)| thread < *threads);
                if let Some((_, _, generation)) = job {
                    // Counted while the caller cannot withdraw the pass; a pass newer than the one that woke
                    // this thread is the one to take up.
                    self.running.fetch_add(1, Ordering::AcqRel);
                    seen = generation;
                }
                job
            };
            if let Some((job, _, _)) = taken {
                if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(thread))) {
                    lock(&self.panic).get_or_insert(payload);
                }
                self.running.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Waits for `done`: spinning a little, then yielding the core to whoever needs it.
fn wait_until(done: impl Fn() -> bool) {
    let mut waited = 0;
    while !done() {
        waited += 1;
        if waited < SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Below this many values an element-wise pass runs on the calling thread: sharing it out costs more.
pub const PARALLEL_MIN: usize = 1 << 17;

/// Parts a pass shares out per thread where it can choose: enough that a thread that falls behind leaves
/// the rest to the others (`map_parts_on_threads`), few enough that each stays a long run.
pub const PARTS_PER_THREAD: usize = 4;

/// The length of the spans a pass over `len` values shares out: `PARTS_PER_THREAD` per thread, in multiples
/// of `align` values; below `parallel_min` values (or on one thread) one span of them all (at least 1, for
/// `chunks`).
pub fn span_len(len: usize, align: usize, parallel_min: usize) -> usize {
    let threads = count();
    if len < parallel_min || threads == 1 {
        return len.max(1);
    }
    let align = align.max(1);
    len.div_ceil(threads * PARTS_PER_THREAD).div_ceil(align) * align
}

/// Fills `out` by calling `work(offset, span)` on spans of it (multiples of `align` values), shared over the
/// threads when `out` is large enough to be worth sharing.
pub fn in_spans(out: &mut [f32], align: usize, work: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let span = span_len(out.len(), align, PARALLEL_MIN);
    if span >= out.len() {
        return work(0, out);
    }
    for_each_part(out.chunks_mut(span).collect(), |i, part| work(i * span, part));
}

/// `work(index, part)` for every part, spread over Gantry's threads as `map_parts` does.
pub fn for_each_part<T: Send>(parts: Vec<T>, work: impl Fn(usize, T) + Sync) {
    map_parts(parts, work);
}

/// A lock that a panic elsewhere does not poison (the panic itself reaches the caller).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_use_the_set_count_within_the_pools_size() {
        // On the pure rule: setting the count itself would change it for the other tests running meanwhile.
        assert_eq!(within_pool(1, 4), 1);
        assert_eq!(within_pool(9, 4), 4);
        assert_eq!(within_pool(0, 4), 4);
    }

    #[test]
    fn a_panicking_part_reaches_the_caller_and_the_helpers_go_on() {
        for failing in [4, 5] {
            let outcome = std::panic::catch_unwind(|| {
                map_parts((0..8).collect(), |_, part: usize| {
                    assert_ne!(part, failing, "part {failing} fails");
                    part
                })
            });
            assert!(outcome.is_err(), "part {failing}'s panic was lost");
            let doubled = map_parts((0..8).collect(), |_, part: usize| part * 2);
            assert_eq!(doubled, (0..16).step_by(2).collect::<Vec<_>>());
        }
    }

    /// A thread held up in one part leaves the other parts to the others, instead of owning a fixed share;
    /// each thread that runs parts has a number of its own.
    #[test]
    fn a_thread_held_up_leaves_the_remaining_parts_to_the_others() {
        let done = AtomicUsize::new(0);
        let numbers = Mutex::new(std::collections::HashMap::new());
        let waited_for_the_rest = map_parts_on_threads((0..8).collect(), |thread, _, part: usize| {
            lock(&numbers)
                .entry(std::thread::current().id())
                .or_insert_with(std::collections::BTreeSet::new)
                .insert(thread);
            assert!(thread < count().max(1), "thread {thread} of {}", count());
            if part > 0 {
                done.fetch_add(1, Ordering::SeqCst);
                return true;
            }
            // The first part waits (at most 2 s) for all the others to finish on other threads.
            let start = std::time::Instant::now();
            while done.load(Ordering::SeqCst) < 7 && start.elapsed().as_secs() < 2 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            done.load(Ordering::SeqCst) == 7
        });
        let numbers = lock(&numbers);
        let distinct: std::collections::BTreeSet<usize> = numbers.values().flatten().copied().collect();
        assert!(
            numbers.values().all(|n| n.len() == 1) && distinct.len() == numbers.len(),
            "threads and their numbers: {numbers:?}"
        );
        // Where the pass ran on one thread alone (one core, or another test set one thread), nothing more to
        // check.
        if numbers.len() > 1 {
            assert!(waited_for_the_rest[0], "parts waited behind the held-up one");
        }
    }

    #[test]
    fn a_pass_does_not_wait_for_a_helper_that_never_takes_it_up() {
        // A helper whose core another thread holds all the while: here one that never serves at all.
        let helpers: &'static Helpers = Box::leak(Box::default());
        helpers.threads.set(vec![std::thread::current()]).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ran_on = Mutex::new(Vec::new());
            helpers.run(2, &|thread| lock(&ran_on).push(thread));
            helpers.run(2, &|thread| lock(&ran_on).push(thread));
            done.send(ran_on.into_inner().unwrap()).unwrap();
        });
        let ran_on = finished.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(
            ran_on,
            Ok(vec![0, 0]),
            "each pass ran on the caller alone, without waiting"
        );
        assert!(lock(&helpers.job).is_none(), "the pass is withdrawn");
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
