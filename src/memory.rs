//! How the process's allocator treats freed memory.
//!
//! A training step allocates and frees the same few hundred tensor buffers every time. glibc's defaults hand
//! large freed blocks back to the OS (`munmap`, heap trimming), so each step faults them in again; with
//! several threads every unmap also costs a TLB shootdown on the other cores. Measured on the 2-core
//! benchmark machine that churn took about 40 % of a DCGAN step (BENCHMARKS.md). Keeping freed memory in the
//! process for reuse removes it; the cost is that memory freed after a peak stays with the process.

/// Blocks up to this size come from the heap instead of their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 64 << 20;
/// Free memory at the top of the heap beyond this is returned to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 1 << 30;

/// Makes the allocator keep freed memory for reuse; call once, first thing in `main`. Elsewhere than
/// glibc (whose allocators do not unmap this eagerly, or are tuned otherwise) it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; both values are in the ranges glibc documents.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
