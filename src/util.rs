//! Small helpers every part of the daemon uses.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the data behind
/// dtbridge's mutexes are plain values that stay consistent between statements).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The borrow `wait_for` returns must not live across an await of the caller.
    _ = shutdown.wait_for(|stop| *stop).await;
}

/// The current UNIX time in nanoseconds.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// `true`, for `#[serde(default = "crate::util::default_true")]`.
pub(crate) fn default_true() -> bool {
    true
}

/// The `q` quantile (nearest rank) of ascending samples; NaN when there are none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Latencies in milliseconds for a summary's p50 and p99: the first [`LatencySamples::CAP`]
/// are kept, so a long session costs bounded memory.
#[derive(Debug, Default)]
pub struct LatencySamples(Mutex<Vec<f64>>);

impl LatencySamples {
    /// Samples kept.
    pub const CAP: usize = 100_000;

    /// Adds one sample, unless the cap is reached.
    pub fn add(&self, ms: f64) {
        let mut samples = lock(&self.0);
        if samples.len() < Self::CAP {
            samples.push(ms);
        }
    }

    /// p50 and p99 of the samples so far; `None` without any.
    pub fn p50_p99(&self) -> Option<(f64, f64)> {
        let mut samples = lock(&self.0).clone();
        samples.sort_by(f64::total_cmp);
        (!samples.is_empty()).then(|| (percentile(&samples, 0.5), percentile(&samples, 0.99)))
    }
}

/// How much lower than the rest of the process [`bulk_work`] threads run (a nice increment).
const BULK_NICE: libc::c_int = 5;

/// Runs CPU-heavy work (drawing, encoding and compressing images) on threads that run at a
/// lower OS priority than the async workers, and waits for it.
///
/// The async workers carry every track's packets to the network. On a saturated CPU, the
/// kernel then runs them first, so a 200 Hz IMU does not wait behind a camera frame being
/// encoded; with idle CPU the bulk threads get all of it. A dedicated pool, because a thread
/// cannot raise its priority back once lowered without privileges, and tokio's own blocking
/// threads also serve DNS lookups and file I/O.
pub async fn bulk_work<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    static POOL: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    // A current-thread runtime that nobody drives: only its blocking pool is used, and
    // building it starts no thread.
    let pool = POOL.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .thread_name("dtbridge-bulk")
            .on_thread_start(lower_this_thread_priority)
            .build()
            .map_err(|err| format!("cannot start the image worker threads: {err}"))
    });
    let pool = pool.as_ref().map_err(Clone::clone)?;
    pool.spawn_blocking(work).await.map_err(|err| format!("image work failed: {err}"))
}

/// Lowers the calling thread's scheduling priority by [`BULK_NICE`]; Linux keeps the nice
/// value per thread. Failing leaves the thread as it was, which costs only the preference.
fn lower_this_thread_priority() {
    // SAFETY: plain system calls on the calling thread, with no pointers.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (now + BULK_NICE).min(19));
    }
}

/// Allocations up to this size come from the heap, where freed memory is reused: a
/// RealSense color frame (2.7 MB), a decompressed depth image (814 KB), a point cloud.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const HEAP_ALLOCATION_LIMIT: libc::c_int = 32 << 20;
/// Free memory at the top of the heap that is kept rather than returned to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const HEAP_KEPT_FREE: libc::c_int = 64 << 20;

/// Makes the allocator reuse large buffers. Every frame allocates and frees buffers of
/// hundreds of KB to MB; glibc maps each allocation above 128 KiB afresh, and the kernel
/// zero-fills its pages on first touch, so a frame cost page faults for every buffer it went
/// through (with the live view: decompressed depth, then one message per Foxglove client).
/// With these limits (glibc's own upper bound for its adaptive threshold) the operator with
/// four Foxglove clients used 17% of a core instead of 21 (BENCHMARKS.md 6d). Called first
/// thing by each binary; a no-op where the C library is not glibc.
pub fn reuse_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_ALLOCATION_LIMIT);
        libc::mallopt(libc::M_TRIM_THRESHOLD, HEAP_KEPT_FREE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_samples() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), 51.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[tokio::test]
    async fn bulk_work_runs_below_the_callers_priority() {
        // SAFETY: plain system calls on the calling thread, with no pointers.
        let priority = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as _) };
        let caller = priority();
        let worker = bulk_work(priority).await.unwrap();
        assert_eq!(worker, (caller + BULK_NICE).min(19));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_frame_sized_buffer_comes_from_the_heap_not_a_fresh_mapping() {
        reuse_large_buffers();
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let mapped = || unsafe { libc::mallinfo2() }.hblks;
        let before = mapped();
        let frame = std::hint::black_box(vec![1u8; 4 << 20]);
        // Other tests may free mapped buffers meanwhile, never add one of this size.
        assert!(mapped() <= before, "a 4 MB buffer was mapped afresh");
        drop(frame);
    }
}
