//! Using several cores: the [`Executor`] seam. unet-core never spawns threads; the caller brings
//! an executor ([`Sequential`] here, `RayonExecutor` with the `rayon` feature, or their own,
//! e.g. a camera pipeline's worker pool). Two things run on it: the tiles of a frame
//! ([`crate::Model::segment`]) and the work of every convolution of one tile
//! ([`crate::Model::forward_with`]: column blocks through [`crate::gemm::gemm_exec`], Winograd
//! blocks through [`crate::winograd::conv3x3_winograd_exec`]).

use core::marker::PhantomData;

/// Jobs per worker that a parallel phase is cut into where its work allows (whole
/// micro-panels, blocks of at least one panel of tiles): executors hand jobs out as workers
/// become free, so a slower core ends up with fewer. On the 2-core VM this project is measured
/// on, one core is often 1.3–1.5× slower than the other: a compute loop cut in two halves ran
/// 1.6× faster on two threads than on one, cut in 64 jobs 2.2× (the fast core did more).
pub const JOBS_PER_WORKER: usize = 4;

/// Runs `jobs` independent jobs on up to [`Executor::workers`] workers.
///
/// # Safety
///
/// [`crate::Model::segment`] and [`crate::gemm::gemm_exec`] hand each worker index its own part
/// of the caller's scratch through raw pointers, so an implementation must guarantee, for every
/// call of [`Executor::run`]:
/// - `job(j, w)` is called with `w < self.workers()`;
/// - two calls that may overlap in time never get the same worker index `w`;
/// - every call of `job` has returned when `run` returns (no call outlives `run`);
/// - each `j` in `0..jobs` is passed exactly once: [`crate::gemm::gemm_exec`] lets job `j`
///   write its own columns of a layer's output, so two calls with the same `j` at once would
///   race (and a job never run leaves part of the output unwritten).
///
/// Which worker runs which job does not affect the result: jobs write disjoint outputs.
pub unsafe trait Executor {
    /// Number of workers (≥ 1); the scratch holds one workspace per worker (a tile workspace
    /// for [`crate::Model::segment`], a GEMM pack buffer for [`crate::Model::forward_with`]).
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

/// A mutable slice that several workers write through, each into a part no other worker
/// touches at the same time. The only place where unet-core aliases a `&mut`.
pub(crate) struct Shared<'s, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'s mut [T]>,
}

// SAFETY: a `Shared` is only a way to hand disjoint sub-slices of one `&mut [T]` to several
// threads; sending or sharing it is as safe as sending `&mut [T]` parts, which needs `T: Send`.
unsafe impl<T: Send> Sync for Shared<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Shared<'_, T> {}

impl<'s, T> Shared<'s, T> {
    pub(crate) fn new(s: &'s mut [T]) -> Self {
        Shared {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: PhantomData,
        }
    }

    /// Length of the shared slice.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first element (for views that address disjoint parts themselves, e.g.
    /// [`crate::conv::Band`]).
    pub(crate) fn ptr(&self) -> *mut T {
        self.ptr
    }

    /// Elements `start..start + len`, or `None` if out of bounds.
    ///
    /// # Safety
    /// While the returned slice lives, no other slice obtained from this `Shared` (by any
    /// thread) may overlap it.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn range(&self, start: usize, len: usize) -> Option<&mut [T]> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `start..end` lies inside the original `&'s mut [T]` (checked above), which
        // this `Shared` borrows for `'s`; the caller guarantees no overlapping slice is alive.
        Some(unsafe { core::slice::from_raw_parts_mut(self.ptr.add(start), len) })
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
