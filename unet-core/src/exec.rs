//! Running the tiles of a frame: the [`Executor`] seam. unet-core never spawns threads; the
//! caller brings an executor ([`Sequential`] here, [`RayonExecutor`] with the `rayon` feature,
//! or their own, e.g. a camera pipeline's worker pool).

/// Runs `jobs` independent jobs on up to [`Executor::workers`] workers.
///
/// # Safety
///
/// [`crate::Model::segment`] hands each worker index its own part of the caller's scratch
/// through raw pointers, so an implementation must guarantee, for every call of
/// [`Executor::run`]:
/// - `job(j, w)` is called with `w < self.workers()`;
/// - two calls that may overlap in time never get the same worker index `w`;
/// - every call of `job` has returned when `run` returns (no call outlives `run`);
/// - each `j` in `0..jobs` is passed exactly once (otherwise part of the output is not
///   written — not unsound, but wrong).
///
/// Which worker runs which job does not affect the result: jobs write disjoint outputs.
pub unsafe trait Executor {
    /// Number of workers (≥ 1); the scratch holds one tile workspace per worker.
    fn workers(&self) -> usize;
    /// Calls `job(j, w)` for every `j` in `0..jobs` (see the trait's safety contract).
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync));
}

/// Runs every job on the calling thread, in order, as worker 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

// SAFETY: one worker (index 0), jobs run one after another on the calling thread, each `j`
// exactly once, all before `run` returns.
unsafe impl Executor for Sequential {
    fn workers(&self) -> usize {
        1
    }
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        for j in 0..jobs {
            job(j, 0);
        }
    }
}

#[cfg(feature = "rayon")]
pub use self::rayon_impl::RayonExecutor;

#[cfg(feature = "rayon")]
mod rayon_impl {
    use core::sync::atomic::{AtomicUsize, Ordering};

    use super::Executor;

    /// Runs jobs on its own rayon thread pool of `threads` threads (feature `rayon`, needs
    /// `std`). Each of `min(threads, jobs)` tasks is one worker and pulls job indices from a
    /// shared counter until none are left, so the worker index is fixed by the task, not by
    /// the thread that happens to run it.
    #[derive(Debug)]
    pub struct RayonExecutor {
        pool: rayon::ThreadPool,
        threads: usize,
    }

    impl RayonExecutor {
        /// A pool of `threads` threads (`0` means 1).
        pub fn new(threads: usize) -> Result<Self, rayon::ThreadPoolBuildError> {
            let threads = threads.max(1);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()?;
            Ok(RayonExecutor { pool, threads })
        }
    }

    // SAFETY: worker indices are the task numbers `0..min(threads, jobs)`, each used by exactly
    // one task, and a task runs its jobs one after another, so no two concurrent calls share a
    // worker index. `fetch_add` hands out each job index once. `ThreadPool::scope` returns only
    // after every spawned task has finished.
    unsafe impl Executor for RayonExecutor {
        fn workers(&self) -> usize {
            self.threads
        }
        fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
            let next = AtomicUsize::new(0);
            let next = &next;
            self.pool.scope(|s| {
                for w in 0..self.threads.min(jobs) {
                    s.spawn(move |_| loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        if j >= jobs {
                            break;
                        }
                        job(j, w);
                    });
                }
            });
        }
    }
}
