//! One tile on several workers ([`Model::forward_with`], [`gemm::gemm_exec`]): the result is
//! bit-identical to one worker's — on random models of every depth, both paddings, every
//! stored dtype, tiles whose deepest layers have fewer pixels than there are workers — and the
//! scratch it needs is what the plan says. The single-worker path itself is checked against
//! oracles elsewhere (gemm_oracle, conv_oracle, pytorch_parity).
//!
//! Also: the multi-worker forward pass never allocates, counted on every thread that runs a
//! job, with a persistent thread pool that does not allocate per call ([`Pool`]: `RayonExecutor`
//! itself boxes its jobs, so it cannot take part in that count); and the `RayonExecutor` gives
//! the same bits (with `--features rayon`).
#![allow(clippy::result_large_err)]

mod counting_alloc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use counting_alloc::heap_calls;
use unet_core::gemm::{self, Epilogue, Kernel, MatMut, MatRef, MatShared};
use unet_core::{synth, Config, DType, Error, Executor, Model, Output, Padding, Sequential};

/// Runs jobs on `n` scoped std threads pulling from a shared counter (worker = thread number).
struct Threads(usize);

// SAFETY: worker indices are the thread numbers 0..n, one per thread, each running its jobs one
// after another; `fetch_add` hands each job out once; `thread::scope` joins before returning.
unsafe impl Executor for Threads {
    fn workers(&self) -> usize {
        self.0
    }
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for w in 0..self.0 {
                let next = &next;
                s.spawn(move || loop {
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

fn config(levels: usize, base: usize, in_c: usize, classes: usize, padding: Padding) -> Config {
    Config {
        in_channels: in_c,
        num_classes: classes,
        base_channels: base,
        levels,
        padding,
    }
}

fn logits(model: &Model<'_>, exec: &dyn Executor, h: usize, w: usize, seed: u64) -> Vec<f32> {
    logits_with(model, exec, h, w, seed, Kernel::best())
}

fn logits_with(
    model: &Model<'_>,
    exec: &dyn Executor,
    h: usize,
    w: usize,
    seed: u64,
    kernel: Kernel,
) -> Vec<f32> {
    let plan = model
        .plan_workers(h, w, exec.workers())
        .unwrap()
        .with_kernel(kernel);
    assert_eq!(plan.kernel(), kernel);
    let input = synth::random_input(plan.input_len(), seed);
    // NaN-filled scratch: nothing may be read before it is written.
    let mut scratch = vec![f32::NAN; plan.scratch_len()];
    let mut out = vec![f32::NAN; plan.output_len()];
    model
        .forward_with(exec, &plan, &input, &mut scratch, Output::Logits(&mut out))
        .unwrap();
    out
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn workers_give_the_bits_of_one_worker() {
    let cases = [
        // (levels, base, in, classes, padding, h, w, dtype)
        (1, 3, 1, 2, Padding::Same, 7, 9, DType::F32),
        (2, 2, 2, 3, Padding::Valid, 20, 28, DType::F16),
        // Deepest layers 1×1 .. 2×2 pixels: fewer columns than workers.
        (3, 4, 1, 2, Padding::Valid, 44, 44, DType::F32),
        (4, 2, 1, 2, Padding::Valid, 92, 108, DType::BF16),
        (3, 5, 3, 4, Padding::Same, 24, 40, DType::F32),
        // Wide enough for several NC blocks of columns at level 0 (3 jobs per worker and more).
        (2, 8, 1, 2, Padding::Same, 64, 100, DType::F32),
    ];
    for (i, &(levels, base, in_c, classes, padding, h, w, dtype)) in cases.iter().enumerate() {
        let cfg = config(levels, base, in_c, classes, padding);
        let bytes = synth::random_model(&cfg, dtype, 10 + i as u64, "none");
        let model = Model::from_safetensors(&bytes).unwrap();
        let one = logits(&model, &Sequential, h, w, i as u64);
        assert!(one.iter().all(|v| v.is_finite()), "case {i}");
        for workers in [1, 2, 3, 4, 7] {
            let many = logits(&model, &Threads(workers), h, w, i as u64);
            assert!(same_bits(&one, &many), "case {i}, {workers} workers");
        }
        // Every kernel this CPU runs, forced through the plan: bit-identical across workers,
        // and within rounding (summation order, FMA or not) of the portable kernel.
        let portable = logits_with(&model, &Sequential, h, w, i as u64, Kernel::portable());
        let scale = portable.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for kernel in Kernel::available() {
            let one = logits_with(&model, &Sequential, h, w, i as u64, kernel);
            for (j, (x, y)) in one.iter().zip(&portable).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-4 * scale,
                    "case {i}, {}: logit {j} = {x} vs portable {y}",
                    kernel.name()
                );
            }
            for workers in [2, 3] {
                let many = logits_with(&model, &Threads(workers), h, w, i as u64, kernel);
                let what = format!("case {i}, {}, {workers} workers", kernel.name());
                assert!(same_bits(&one, &many), "{what}");
            }
        }
        #[cfg(feature = "rayon")]
        for threads in [2, 3] {
            let pool = unet_core::exec::RayonExecutor::new(threads).unwrap();
            let many = logits(&model, &pool, h, w, i as u64);
            assert!(same_bits(&one, &many), "case {i}, rayon {threads}");
        }
    }
}

#[test]
fn gemm_exec_matches_gemm_for_every_kernel_and_split() {
    let values = |n: usize, seed: u64| synth::random_input(n, seed);
    // Shapes around the blocking constants: N across NC (1024) boundaries, K across KC (256),
    // M across MC (72); and tiny ones with fewer columns than workers.
    for (m, n, k) in [
        (1, 1, 1),
        (5, 3, 7),
        (13, 17, 9),
        (75, 2100, 300),
        (8, 1030, 20),
    ] {
        let a_vals = values(m * k, 1);
        let b_vals = values(k * n, 2);
        let a = MatRef::new(&a_vals, m, k, k, 1).unwrap();
        let b = MatRef::new(&b_vals, k, n, n, 1).unwrap();
        for kernel in Kernel::available() {
            let mut want = vec![f32::NAN; m * n];
            let mut pack = vec![f32::NAN; gemm::pack_len(m, n, k)];
            let mut d = MatMut::new(&mut want, m, n, n, Epilogue::NONE).unwrap();
            gemm::gemm(kernel, &a, &b, &mut d, 0..n, &mut pack).unwrap();
            for workers in [1, 2, 3, 5] {
                let mut got = vec![f32::NAN; m * n];
                let len = gemm::pack_len_workers(m, n, k, workers).unwrap();
                let mut pack = vec![f32::NAN; len];
                let mut d = MatShared::new(&mut got, m, n, n, Epilogue::NONE).unwrap();
                gemm::gemm_exec(kernel, &Threads(workers), &a, &b, &mut d, &mut pack).unwrap();
                assert!(
                    same_bits(&want, &got),
                    "{} {m}x{n}x{k}, {workers} workers",
                    kernel.name()
                );
            }
        }
    }
}

#[test]
fn gemm_exec_refuses_bad_arguments_without_writing() {
    let (m, n, k) = (4, 40, 3);
    let a_vals = vec![1.0f32; m * k];
    let b_vals = vec![1.0f32; k * n];
    let a = MatRef::new(&a_vals, m, k, k, 1).unwrap();
    let b = MatRef::new(&b_vals, k, n, n, 1).unwrap();
    let kernel = Kernel::best();
    let mut c = vec![7.0f32; m * n];
    // Pack for one worker only, handed to three.
    let mut pack = vec![0.0f32; gemm::pack_len(m, n, k)];
    let mut d = MatShared::new(&mut c, m, n, n, Epilogue::NONE).unwrap();
    let r = gemm::gemm_exec(kernel, &Threads(3), &a, &b, &mut d, &mut pack);
    assert!(matches!(r, Err(Error::BufferTooSmall { .. })), "{r:?}");
    let r = gemm::gemm_exec(kernel, &Threads(0), &a, &b, &mut d, &mut pack);
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    assert!(c.iter().all(|&v| v == 7.0));
    // Rows that would overlap (row stride below the column count) are refused up front.
    assert!(MatShared::new(&mut c, 2, 40, 39, Epilogue::NONE).is_none());
}

#[test]
fn scratch_grows_by_one_pack_per_worker() {
    let cfg = config(3, 4, 1, 2, Padding::Valid);
    let bytes = synth::random_model(&cfg, DType::F32, 3, "none");
    let model = Model::from_safetensors(&bytes).unwrap();
    let one = model.plan(44, 44).unwrap();
    assert_eq!(one.workers(), 1);
    assert_eq!(one, model.plan_workers(44, 44, 1).unwrap());
    for workers in [2, 3, 8] {
        let p = model.plan_workers(44, 44, workers).unwrap();
        assert_eq!(p.workers(), workers);
        assert_eq!(
            p.scratch_len(),
            one.scratch_len() + (workers - 1) * one.pack_len_per_worker()
        );
    }
    assert!(matches!(
        model.plan_workers(44, 44, 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        model.plan_workers(44, 44, usize::MAX),
        Err(Error::Overflow)
    ));

    // The documented bound of one worker's pack buffer (1.1 MiB, with the blocks' alignment
    // slack), reached by the paper's tile on the direct path: one more pack buffer per extra
    // worker.
    use unet_core::ConvAlgo;
    let paper = config(5, 64, 1, 2, Padding::Valid);
    let p = unet_core::Plan::with_options(&paper, 572, 572, ConvAlgo::Direct, 2).unwrap();
    assert_eq!(
        p.pack_len_per_worker(),
        gemm::MC * gemm::KC + gemm::KC * gemm::NC + 2 * gemm::ALIGN
    );
    assert_eq!(
        p.scratch_len(),
        unet_core::Plan::with_conv_algo(&paper, 572, 572, ConvAlgo::Direct)
            .unwrap()
            .scratch_len()
            + p.pack_len_per_worker()
    );
    // With Winograd layers the region is the larger of the Winograd work area (a shared part
    // and one part per worker, within the same budget: `winograd::spread`) and the workers'
    // pack buffers: two workers stay within 1.2x of the liveness lower bound, like one.
    let one = unet_core::Plan::new(&paper, 572, 572).unwrap();
    let two = unet_core::Plan::with_workers(&paper, 572, 572, 2).unwrap();
    for p in [&one, &two] {
        assert!(
            p.scratch_len() * 5 <= p.scratch_lower_bound() * 6,
            "{} workers: scratch {} vs lower bound {}",
            p.workers(),
            p.scratch_len(),
            p.scratch_lower_bound()
        );
    }
    // ... and at most 2 % above one worker's (the blocks of tiles differ).
    assert!(two.scratch_len() * 50 <= one.scratch_len() * 51);

    // An executor with more workers than the plan has room for is refused, output untouched.
    let p = model.plan_workers(44, 44, 2).unwrap();
    let input = synth::random_input(p.input_len(), 1);
    let mut scratch = vec![0.0f32; p.scratch_len()];
    let mut out = vec![5.0f32; p.output_len()];
    let r = model.forward_with(
        &Threads(3),
        &p,
        &input,
        &mut scratch,
        Output::Logits(&mut out),
    );
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    assert!(out.iter().all(|&v| v == 5.0));
    // Fewer workers than planned is fine.
    model
        .forward_with(
            &Sequential,
            &p,
            &input,
            &mut scratch,
            Output::Logits(&mut out),
        )
        .unwrap();
}

/// A persistent pool of `n − 1` helper threads plus the calling thread (worker 0), which hands
/// out jobs without allocating: a generation counter under a `Mutex`, two `Condvar`s and an
/// atomic job counter (futex-based on Linux, no heap). Each helper counts the heap calls made
/// while it runs jobs into `heap`.
struct Pool {
    n: usize,
    inner: Arc<Inner>,
    helpers: Vec<JoinHandle<()>>,
}

struct Inner {
    state: Mutex<State>,
    start: Condvar,
    done: Condvar,
    next: AtomicUsize,
    heap: AtomicUsize,
}

/// The job of the current generation, its lifetime erased: valid while `Pool::run` waits.
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn(usize, usize) + Sync + 'static));
// SAFETY: the pointee is `Sync` and outlives every use (see `Pool::run`).
unsafe impl Send for JobPtr {}

struct State {
    generation: u64,
    job: Option<JobPtr>,
    jobs: usize,
    running: usize,
    quit: bool,
}

impl Pool {
    fn new(n: usize) -> Pool {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                generation: 0,
                job: None,
                jobs: 0,
                running: 0,
                quit: false,
            }),
            start: Condvar::new(),
            done: Condvar::new(),
            next: AtomicUsize::new(0),
            heap: AtomicUsize::new(0),
        });
        let helpers = (1..n)
            .map(|w| {
                let inner = Arc::clone(&inner);
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    loop {
                        let mut st = inner.state.lock().unwrap();
                        while st.generation == seen && !st.quit {
                            st = inner.start.wait(st).unwrap();
                        }
                        if st.quit {
                            return;
                        }
                        seen = st.generation;
                        let (job, jobs) = (st.job.expect("job set with the generation"), st.jobs);
                        drop(st);
                        let ((), calls) = heap_calls(|| loop {
                            let j = inner.next.fetch_add(1, Ordering::Relaxed);
                            if j >= jobs {
                                break;
                            }
                            // SAFETY: `Pool::run` keeps the job alive until `running` is 0.
                            unsafe { (*job.0)(j, w) };
                        });
                        inner.heap.fetch_add(calls, Ordering::Relaxed);
                        let mut st = inner.state.lock().unwrap();
                        st.running -= 1;
                        if st.running == 0 {
                            inner.done.notify_all();
                        }
                    }
                })
            })
            .collect();
        Pool { n, inner, helpers }
    }
}

// SAFETY: worker 0 is the calling thread, worker `w ≥ 1` is helper thread `w`; each runs its jobs
// one after another; `fetch_add` hands each job index out once; `run` returns only after every
// helper has finished this generation (`running == 0`).
unsafe impl Executor for Pool {
    fn workers(&self) -> usize {
        self.n
    }
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        let inner = &self.inner;
        let ptr: *const (dyn Fn(usize, usize) + Sync + '_) = job;
        // SAFETY: only the lifetime is erased; the helpers stop using the pointer before this
        // function returns (it waits for `running == 0`).
        let ptr: *const (dyn Fn(usize, usize) + Sync + 'static) =
            unsafe { std::mem::transmute(ptr) };
        {
            let mut st = inner.state.lock().unwrap();
            inner.next.store(0, Ordering::Relaxed);
            st.job = Some(JobPtr(ptr));
            st.jobs = jobs;
            st.running = self.n - 1;
            st.generation += 1;
            inner.start.notify_all();
        }
        loop {
            let j = inner.next.fetch_add(1, Ordering::Relaxed);
            if j >= jobs {
                break;
            }
            job(j, 0);
        }
        let mut st = inner.state.lock().unwrap();
        while st.running > 0 {
            st = inner.done.wait(st).unwrap();
        }
        st.job = None;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.state.lock().unwrap().quit = true;
        self.inner.start.notify_all();
        for h in self.helpers.drain(..) {
            h.join().unwrap();
        }
    }
}

#[test]
fn the_pool_counts_heap_calls_on_its_helpers() {
    // Guards against a vacuous no-alloc test: a job that allocates on a helper is seen.
    let pool = Pool::new(2);
    let ((), outer) = heap_calls(|| {
        pool.run(64, &|_, _| {
            std::hint::black_box(vec![1u8; 16]);
        })
    });
    assert!(outer + pool.inner.heap.load(Ordering::Relaxed) >= 64);
}

#[test]
fn multi_worker_forward_never_allocates() {
    for (levels, base, padding, h, w) in [
        (3, 4, Padding::Valid, 44, 60),
        (2, 8, Padding::Same, 64, 100),
    ] {
        let cfg = config(levels, base, 1, 3, padding);
        let bytes = synth::random_model(&cfg, DType::F16, 5, "none");
        let model = Model::from_safetensors(&bytes).unwrap();
        let pool = Pool::new(3);
        let plan = model.plan_workers(h, w, 3).unwrap();
        let input = synth::random_input(plan.input_len(), 9);
        let mut scratch = vec![0.0f32; plan.scratch_len()];
        let mut logits = vec![0.0f32; plan.output_len()];
        let mut l8 = vec![0u8; plan.label_len()];
        pool.inner.heap.store(0, Ordering::Relaxed);
        let (r, calls) = heap_calls(|| -> Result<(), Error> {
            let plan = model.plan_workers(h, w, 3)?;
            model.forward_with(
                &pool,
                &plan,
                &input,
                &mut scratch,
                Output::Logits(&mut logits),
            )?;
            model.forward_with(&pool, &plan, &input, &mut scratch, Output::Labels8(&mut l8))?;
            Ok(())
        });
        r.unwrap();
        assert_eq!(calls, 0, "calling thread");
        assert_eq!(pool.inner.heap.load(Ordering::Relaxed), 0, "helper threads");
        // And the pool really computed the tile: same bits as one worker.
        let one = self::logits(&model, &Sequential, h, w, 9);
        assert!(same_bits(&one, &logits));
    }
}
