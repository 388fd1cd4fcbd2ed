//! How the process's allocator treats freed memory.
//!
//! A training step allocates and frees the same few hundred tensor buffers every time. glibc's defaults hand
//! large freed blocks back to the OS (`munmap`, heap trimming), so each step faults them in again; with
//! several threads every unmap also costs a TLB shootdown on the other cores. Measured on the 2-core
//! benchmark machine that churn took about 40 % of a DCGAN step (BENCHMARKS.md). Keeping freed memory in the
//! process for reuse removes it; the cost is that memory freed after a peak stays with the process.
//!
//! The thresholds hold for the main heap only. Every other thread that allocates gets its own arena, made of
//! heaps of at most 64 MB that glibc unmaps whole as soon as they empty, whatever the thresholds say: a run
//! trained on the worker thread (`gantry train`, the workbench) faulted its buffers in again every step,
//! where `gantry bench`, on the main thread, did not (a DCGAN: 300 to 3,200 page faults a step, against
//! none, and up to a tenth of the CPU in the kernel). So all threads share the main heap, and its one lock:
//! the training threads start each part of a pass at the same moment, so the parts do not allocate (gemm's
//! packing buffers are kept per thread, vendor/README.md; scratch comes from `conv::with_scratch` or from
//! the caller), or each allocation would wait for the other thread's.

/// Blocks up to this size come from the heap instead of their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 64 << 20;
/// Free memory at the top of the heap beyond this is returned to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 1 << 30;

/// Makes the allocator keep freed memory for reuse, on every thread; call once, first thing in `main`, before
/// any other thread starts (a thread takes its arena when it first allocates). Elsewhere than
/// glibc (whose allocators do not unmap this eagerly, or are tuned otherwise) it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; the values are in the ranges glibc documents.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
