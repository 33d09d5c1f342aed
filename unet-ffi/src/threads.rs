//! [`ScopedThreads`]: the executor behind the frame calls' thread count: `n` workers, the
//! calling thread plus `n − 1` scoped threads spawned for the call and joined before it
//! returns (libunet keeps no thread pool and no global state).

use std::sync::atomic::{AtomicUsize, Ordering};

use unet_core::Executor;

/// Runs a frame's tile jobs on `workers` threads, the caller's included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScopedThreads {
    workers: usize,
}

impl ScopedThreads {
    /// `workers ≥ 1` (checked by the caller).
    pub(crate) fn new(workers: usize) -> Self {
        ScopedThreads { workers: workers.max(1) }
    }
}

// SAFETY: worker index `w` is used by exactly one thread (0 = the calling thread, 1.. = one
// spawned thread each), and each thread runs its jobs one after another, so no two concurrent
// calls share `w`; `w < workers` because at most `workers − 1` threads are spawned. Job
// indices come from one `fetch_add` counter, so each `j < jobs` runs exactly once (a thread
// that fails to spawn simply takes no jobs). `thread::scope` joins every spawned thread before
// `run` returns, also when a job panics (the panic is then re-raised here and caught at the
// C boundary).
unsafe impl Executor for ScopedThreads {
    fn workers(&self) -> usize {
        self.workers
    }

    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        let next = AtomicUsize::new(0);
        let work = |w: usize| loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            if j >= jobs {
                break;
            }
            job(j, w);
        };
        let work = &work;
        let spawned = self.workers.min(jobs).saturating_sub(1);
        std::thread::scope(|s| {
            for w in 1..=spawned {
                if std::thread::Builder::new().spawn_scoped(s, move || work(w)).is_err() {
                    break;
                }
            }
            work(0);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_job_once_and_worker_indices_in_range() {
        for workers in [1, 2, 5] {
            for jobs in [0, 1, 3, 17] {
                let seen = Mutex::new(vec![0usize; jobs]);
                let busy: Vec<AtomicUsize> = (0..workers).map(|_| AtomicUsize::new(0)).collect();
                let exec = ScopedThreads::new(workers);
                exec.run(jobs, &|j, w| {
                    assert!(w < workers);
                    // No two concurrent jobs share a worker index.
                    assert_eq!(busy[w].fetch_add(1, Ordering::SeqCst), 0);
                    seen.lock().unwrap()[j] += 1;
                    busy[w].fetch_sub(1, Ordering::SeqCst);
                });
                assert!(seen.into_inner().unwrap().iter().all(|&c| c == 1));
            }
        }
    }
}
