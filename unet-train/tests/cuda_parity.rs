//! The CUDA backend against the CPU backend (the reference).
//!
//! Without a GPU (CI): feature `cuda-emu` runs (1) every kernel of `src/backend/cuda/kernels/`
//! — the `.cu` sources compiled as C++ for the host — against the CPU backend's operation on
//! random inputs (sizes not multiples of the block size, several blocks, grid-stride loops),
//! (2) the whole CUDA engine on that emulation (cuBLAS replaced by matrixmultiply with the
//! same column-major strided-batched contract) against `CpuBackend`: forward, loss, gradients,
//! optimiser steps, a short training run.
//!
//! With a GPU: the same parity and training tests run on `CudaBackend`; without a driver they
//! print `skipped: no CUDA driver` (and fail if `UNET_REQUIRE_GPU=1`).
//!
//! Tolerances: the engine and the CPU differ only in GEMM summation order (f32), so logits
//! agree to 1e-4 of the largest |logit|, the loss to 1e-5 relative, every gradient tensor to
//! 1e-3 of its largest |value| (+1e-6), parameters after 3 optimiser steps to 1e-4 of their
//! largest |value| — a wrong offset, transposition, crop or missing term gives O(1) errors.
//! Element-wise kernels on the host round exactly as the CPU code (no FMA): compared exactly.
#![cfg(feature = "cuda")]

use ndarray::{Array3, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unet_core::{Config, Geometry, Padding};
use unet_train::backend::cpu::CpuBackend;
use unet_train::backend::device::{list_devices, make_backend, Device};
use unet_train::backend::{Backend, BatchView, Dropout};
use unet_train::loss::LossNorm;
use unet_train::optim::{Optimizer, OptimizerKind};
use unet_train::params::Params;

fn legal(cfg: &Config, from: usize) -> usize {
    Geometry::new(cfg.levels, cfg.padding)
        .unwrap()
        .next_legal(from)
        .unwrap()
}

struct Data {
    input: Array4<f32>,
    target: Array3<u8>,
    weight: Array3<f32>,
}

fn data(cfg: &Config, b: usize, h: usize, w: usize, seed: u64) -> Data {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let g = Geometry::new(cfg.levels, cfg.padding).unwrap();
    let (oh, ow) = g.output_size(h, w).unwrap();
    let input = Array4::from_shape_fn((b, cfg.in_channels, h, w), |_| r.random_range(-1.0..1.0));
    let target = Array3::from_shape_fn((b, oh, ow), |_| r.random_range(0..cfg.num_classes as u8));
    let weight = Array3::from_shape_fn((b, oh, ow), |_| {
        if r.random::<f32>() < 0.2 {
            0.0
        } else {
            r.random_range(0.5..3.0)
        }
    });
    Data {
        input,
        target,
        weight,
    }
}

fn view(d: &Data) -> BatchView<'_> {
    BatchView {
        input: d.input.view(),
        target: d.target.view(),
        weight: d.weight.view(),
    }
}

fn max_abs(a: impl Iterator<Item = f32>) -> f32 {
    a.fold(0.0, |m, v| m.max(v.abs()))
}

fn assert_params_close(a: &Params, b: &Params, rel: f32, what: &str) {
    for k in 0..a.len() {
        let scale = max_abs(b.data(k).iter().copied());
        let diff = max_abs(a.data(k).iter().zip(b.data(k)).map(|(x, y)| x - y));
        assert!(
            diff <= rel * scale + 1e-6,
            "{what}: tensor {} differs by {diff} (scale {scale})",
            a.id(k)
        );
    }
}

/// Forward, loss, gradients (with dropout), and 3 optimiser steps of `dev` against the CPU.
fn parity(make: &dyn Fn(Params, Optimizer) -> Box<dyn Backend>) {
    let cases = [
        (
            Config {
                in_channels: 2,
                num_classes: 3,
                base_channels: 4,
                levels: 3,
                padding: Padding::Valid,
            },
            OptimizerKind::paper_sgd(),
            0.0,
        ),
        (
            Config {
                in_channels: 1,
                num_classes: 2,
                base_channels: 3,
                levels: 2,
                padding: Padding::Same,
            },
            OptimizerKind::adam(),
            1e-3,
        ),
        (
            Config {
                in_channels: 1,
                num_classes: 2,
                base_channels: 3,
                levels: 1,
                padding: Padding::Valid,
            },
            OptimizerKind::Sgd {
                momentum: 0.9,
                dampening: 0.1,
                nesterov: false,
            },
            1e-2,
        ),
    ];
    for (ci, (cfg, kind, wd)) in cases.into_iter().enumerate() {
        let (h, w) = (legal(&cfg, 30 + 2 * ci), legal(&cfg, 45));
        let params = unet_train::init::he_init(&cfg, 7 + ci as u64).unwrap();
        let mut cpu = CpuBackend::new(params.clone(), Optimizer::new(kind, wd, &params));
        let mut dev = make(params.clone(), Optimizer::new(kind, wd, &params));
        let d = data(&cfg, 2, h, w, 11 + ci as u64);

        let lc = cpu.forward(d.input.view()).unwrap();
        let ld = dev.forward(d.input.view()).unwrap();
        assert_eq!(lc.dim(), ld.dim());
        let scale = max_abs(lc.iter().copied());
        let diff = max_abs(lc.iter().zip(ld.iter()).map(|(a, b)| a - b));
        assert!(
            diff <= 1e-4 * scale,
            "case {ci}: logits differ by {diff} (scale {scale})"
        );

        for step in 0..3u64 {
            let dropout = (cfg.levels > 1).then_some(Dropout {
                p: 0.5,
                seed: 5,
                step,
            });
            let norm = if step % 2 == 0 {
                LossNorm::Pixels
            } else {
                LossNorm::WeightSum
            };
            let sc = cpu.compute_gradients(&view(&d), norm, dropout).unwrap();
            let sd = dev.compute_gradients(&view(&d), norm, dropout).unwrap();
            assert_eq!((sc.tiles, sc.denominator), (sd.tiles, sd.denominator));
            assert!(
                (sc.loss - sd.loss).abs() <= 1e-5 * sc.loss.abs(),
                "case {ci} step {step}: loss {} vs {}",
                sc.loss,
                sd.loss
            );
            let gc = cpu.gradients().unwrap();
            let gd = dev.gradients().unwrap();
            assert_params_close(&gd, &gc, 1e-3, &format!("case {ci} step {step} gradients"));
            // Apply the CPU's gradients on both, so that the optimisers are compared on the
            // same input and the parameters cannot drift apart through the gradients' noise.
            dev.set_gradients(&gc).unwrap();
            cpu.apply_gradients(0.05).unwrap();
            dev.apply_gradients(0.05).unwrap();
            let pc = cpu.params().unwrap();
            assert_params_close(
                &dev.params().unwrap(),
                &pc,
                1e-4,
                &format!("case {ci} params"),
            );
            dev.set_params(&pc).unwrap();
        }
        let (oc, od) = (
            cpu.optimizer_state().unwrap(),
            dev.optimizer_state().unwrap(),
        );
        assert_eq!(oc.step, od.step);
        assert_eq!(oc.buffers.len(), od.buffers.len());
        for (a, b) in od.buffers.iter().zip(&oc.buffers) {
            assert_params_close(a, b, 1e-4, &format!("case {ci} optimiser state"));
        }
        // State round trip.
        dev.set_optimizer_state(oc.clone()).unwrap();
        assert_eq!(dev.optimizer_state().unwrap(), oc);
        // Errors as the CPU's.
        let mut bad = data(&cfg, 1, h, w, 3);
        bad.weight[[0, 1, 2]] = 1.0;
        bad.target[[0, 1, 2]] = cfg.num_classes as u8;
        let ec = cpu.compute_gradients(&view(&bad), LossNorm::Pixels, None);
        let ed = dev.compute_gradients(&view(&bad), LossNorm::Pixels, None);
        assert_eq!(
            ec.unwrap_err().to_string(),
            ed.unwrap_err().to_string(),
            "bad target"
        );
        assert!(dev
            .forward(d.input.slice(ndarray::s![..0, .., .., ..]))
            .is_err());
    }
}

/// A short run on a learnable problem (class = sign of the input's centre pixel): the loss
/// must fall well below its start.
fn smoke(make: &dyn Fn(Params, Optimizer) -> Box<dyn Backend>, steps: usize) {
    let cfg = Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: 4,
        levels: 2,
        padding: Padding::Same,
    };
    let params = unet_train::init::he_init(&cfg, 1).unwrap();
    let mut dev = make(
        params.clone(),
        Optimizer::new(OptimizerKind::adam(), 0.0, &params),
    );
    let mut d = data(&cfg, 2, 16, 16, 9);
    for (i, t) in d.target.iter_mut().enumerate() {
        let (b, y, x) = (i / 256, (i / 16) % 16, i % 16);
        *t = u8::from(d.input[[b, 0, y, x]] > 0.0);
    }
    d.weight.fill(1.0);
    let first = dev
        .train_step(&view(&d), LossNorm::Pixels, None, 2e-2)
        .unwrap()
        .loss;
    let mut last = first;
    for _ in 1..steps {
        last = dev
            .train_step(&view(&d), LossNorm::Pixels, None, 2e-2)
            .unwrap()
            .loss;
    }
    println!(
        "{}: loss {first:.4} -> {last:.4} in {steps} steps",
        dev.name()
    );
    assert!(last < 0.5 * first, "loss {first} -> {last}");
}

fn require_gpu() -> bool {
    std::env::var("UNET_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

fn gpu_maker() -> Option<impl Fn(Params, Optimizer) -> Box<dyn Backend>> {
    if !unet_train::backend::cuda::gpu::driver_present() {
        assert!(!require_gpu(), "UNET_REQUIRE_GPU=1 but no CUDA driver");
        println!("skipped: no CUDA driver");
        return None;
    }
    Some(|p: Params, o: Optimizer| make_backend(Device::Cuda(0), p, o).unwrap())
}

#[test]
fn gpu_parity_with_cpu() {
    if let Some(make) = gpu_maker() {
        parity(&make);
    }
}

#[test]
fn gpu_training_smoke() {
    if let Some(make) = gpu_maker() {
        smoke(&make, 40);
    }
}

#[test]
fn no_driver_is_an_error_not_a_panic() {
    let lines = list_devices();
    println!("{}", lines.join("\n"));
    if unet_train::backend::cuda::gpu::driver_present() {
        return;
    }
    assert!(lines.contains(&"cuda: no driver found (libcuda not present)".to_string()));
    let cfg = Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: 2,
        levels: 1,
        padding: Padding::Same,
    };
    let p = Params::zeros(&cfg).unwrap();
    let o = Optimizer::new(OptimizerKind::adam(), 0.0, &p);
    let e = make_backend(Device::Cuda(0), p, o)
        .err()
        .expect("no driver");
    assert!(e.to_string().contains("no driver found"), "{e}");
}

#[cfg(feature = "cuda-emu")]
mod emu {
    use super::*;
    use unet_train::backend::cpu::{conv, pool, skip, upconv};
    use unet_train::backend::cuda::emu::{signature, EmuBackend, EmuGpu, EmuMem};
    use unet_train::backend::cuda::gpu::Gpu;
    use unet_train::backend::cuda::kernels::{Arg, KERNELS, SOURCES};

    fn emu_maker(p: Params, o: Optimizer) -> Box<dyn Backend> {
        Box::new(EmuBackend::emu(p, o).unwrap())
    }

    #[test]
    fn engine_parity_with_cpu() {
        parity(&emu_maker);
    }

    #[test]
    fn engine_training_smoke() {
        // The emulation runs 256 threads per block of the reductions: keep it short.
        smoke(&emu_maker, 12);
    }

    #[test]
    fn kernel_table_matches_the_sources() {
        let mut listed: Vec<&str> = SOURCES
            .iter()
            .flat_map(|s| s.kernels.iter().copied())
            .collect();
        let mut table: Vec<&str> = KERNELS.iter().map(|k| k.0).collect();
        listed.sort();
        table.sort();
        assert_eq!(listed, table);
        for (name, kinds) in KERNELS {
            let want: String = kinds.iter().map(|k| k.code()).collect();
            assert_eq!(signature(name).as_deref(), Some(want.as_str()), "{name}");
            let src = SOURCES.iter().find(|s| s.kernels.contains(name)).unwrap();
            assert!(
                src.code
                    .contains(&format!("extern \"C\" __global__ void {name}(")),
                "{name} not declared in {}",
                src.file
            );
        }
        assert_eq!(signature("no_such_kernel"), None);
    }

    /// Host buffers on the emulated device.
    struct Dev {
        gpu: EmuGpu,
        mems: Vec<EmuMem>,
    }

    impl Dev {
        fn new() -> Self {
            Dev {
                gpu: EmuGpu::new(),
                mems: Vec::new(),
            }
        }
        fn put<T: Copy>(&mut self, v: &[T]) -> u64 {
            let n = std::mem::size_of_val(v);
            let m = self.gpu.alloc(n).unwrap();
            let a = self.gpu.addr(&m);
            // SAFETY (test): plain numeric types viewed as bytes.
            let b = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), n) };
            self.gpu.upload(a, b).unwrap();
            self.mems.push(m);
            a
        }
        fn zeros(&mut self, n: usize) -> u64 {
            self.put(&vec![0f32; n])
        }
        fn get<T: Copy + Default>(&self, a: u64, n: usize) -> Vec<T> {
            let mut v = vec![T::default(); n];
            // SAFETY (test): plain numeric types viewed as bytes.
            let b = unsafe {
                std::slice::from_raw_parts_mut(
                    v.as_mut_ptr().cast::<u8>(),
                    n * std::mem::size_of::<T>(),
                )
            };
            self.gpu.download(a, b).unwrap();
            v
        }
        /// Launch with a small odd block and few blocks, so that grid-stride loops wrap.
        fn run(&self, name: &'static str, args: &[Arg]) {
            self.gpu.launch(name, 3, 37, args).unwrap();
        }
    }

    fn rnd(n: usize, seed: u64) -> Vec<f32> {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
    }

    /// Row-major `a (m×k) · b (k×n)` on the host, f64 accumulation.
    fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = max_abs(b.iter().copied()).max(1e-6);
        let d = max_abs(a.iter().zip(b).map(|(x, y)| x - y));
        assert!(d <= tol * scale, "{what}: differs by {d} (scale {scale})");
    }

    #[test]
    fn conv3x3_kernels_match_cpu() {
        use Arg::*;
        for (pad, (cin, cout, h, w)) in [
            (Padding::Valid, (3, 5, 9, 13)),
            (Padding::Same, (2, 4, 7, 11)),
        ] {
            let p = conv::pad_of(pad);
            let (oh, ow) = (conv::conv_out(h, pad), conv::conv_out(w, pad));
            let b = 2;
            let x = rnd(b * cin * h * w, 1);
            let wt = rnd(cout * cin * 9, 2);
            let bias = rnd(cout, 3);
            let dy = rnd(b * cout * oh * ow, 4);
            let mut dev = Dev::new();
            let (xa, ba) = (dev.put(&x), dev.put(&bias));
            // Forward in two row blocks: im2col → host GEMM → bias + ReLU kernel.
            let plane = oh * ow;
            let mut y = vec![0f32; b * cout * plane];
            let dx = dev.zeros(b * cin * h * w);
            let split = oh / 2;
            for (y0, rows) in [(0, split), (split, oh - split)] {
                let nb = rows * ow;
                let cols = dev.zeros(b * 9 * cin * nb);
                let geo = |y0: usize, rows: usize| {
                    [
                        I32(b as i32),
                        I32(cin as i32),
                        I32(h as i32),
                        I32(w as i32),
                        I32(ow as i32),
                        I32(p as i32),
                        I32(y0 as i32),
                        I32(rows as i32),
                    ]
                };
                let mut args = vec![Ptr(xa), Ptr(cols)];
                args.extend(geo(y0, rows));
                dev.run("im2col3x3", &args);
                let c = dev.get::<f32>(cols, b * 9 * cin * nb);
                let mut dcols = Vec::new();
                for s in 0..b {
                    let cs = &c[s * 9 * cin * nb..(s + 1) * 9 * cin * nb];
                    let ys = matmul(&wt, cs, cout, 9 * cin, nb);
                    for co in 0..cout {
                        y[(s * cout + co) * plane + y0 * ow..][..nb]
                            .copy_from_slice(&ys[co * nb..(co + 1) * nb]);
                    }
                    // dcols = Wᵀ · dy block.
                    let mut wtt = vec![0f32; 9 * cin * cout];
                    for co in 0..cout {
                        for r in 0..9 * cin {
                            wtt[r * cout + co] = wt[co * 9 * cin + r];
                        }
                    }
                    let mut dyb = vec![0f32; cout * nb];
                    for co in 0..cout {
                        dyb[co * nb..(co + 1) * nb]
                            .copy_from_slice(&dy[(s * cout + co) * plane + y0 * ow..][..nb]);
                    }
                    dcols.extend(matmul(&wtt, &dyb, 9 * cin, cout, nb));
                }
                let da = dev.put(&dcols);
                let mut args = vec![Ptr(da), Ptr(dx)];
                args.extend(geo(y0, rows));
                dev.run("col2im3x3_add", &args);
            }
            let ya = dev.put(&y);
            dev.run(
                "bias_act_fwd",
                &[
                    Ptr(ya),
                    Ptr(ba),
                    I64((b * cout * plane) as i64),
                    I32(cout as i32),
                    I64(plane as i64),
                    I32(1),
                ],
            );
            let y = dev.get::<f32>(ya, y.len());
            let dxv = dev.get::<f32>(dx, b * cin * h * w);
            let dya = dev.put(&dy);
            let db = dev.zeros(cout);
            dev.gpu
                .launch(
                    "channel_sum_add",
                    cout as u32,
                    256,
                    &[
                        Ptr(dya),
                        Ptr(db),
                        I32(b as i32),
                        I32(cout as i32),
                        I64(plane as i64),
                    ],
                )
                .unwrap();
            let dbv = dev.get::<f32>(db, cout);
            let mut db_cpu = vec![0f32; cout];
            for s in 0..b {
                let xs = ndarray::ArrayView3::from_shape(
                    (cin, h, w),
                    &x[s * cin * h * w..][..cin * h * w],
                )
                .unwrap();
                let dys = ndarray::ArrayView3::from_shape(
                    (cout, oh, ow),
                    &dy[s * cout * plane..][..cout * plane],
                )
                .unwrap();
                let yc = conv::conv3x3_forward(xs, &wt, &bias, pad, true);
                close(
                    &y[s * cout * plane..][..cout * plane],
                    yc.as_slice().unwrap(),
                    1e-5,
                    "conv forward",
                );
                let mut dw = vec![0f32; wt.len()];
                let dxc =
                    conv::conv3x3_backward(xs, &wt, dys, pad, &mut dw, &mut db_cpu, true).unwrap();
                close(
                    &dxv[s * cin * h * w..][..cin * h * w],
                    dxc.as_slice().unwrap(),
                    1e-5,
                    "conv dx",
                );
            }
            close(&dbv, &db_cpu, 1e-5, "bias gradient");
        }
    }

    #[test]
    fn elementwise_pool_skip_up_match_cpu() {
        use Arg::*;
        let mut dev = Dev::new();
        // ReLU backward, with zeros and a NaN in the forward output.
        let (c, h, w) = (3, 10, 14);
        let n = c * h * w;
        let mut yv = rnd(n, 5);
        yv[0] = 0.0;
        yv[1] = f32::NAN;
        let dyv = rnd(n, 6);
        let (ya, da) = (dev.put(&yv), dev.put(&dyv));
        dev.run("relu_bwd", &[Ptr(da), Ptr(ya), I64(n as i64)]);
        let mut d_cpu = Array3::from_shape_vec((c, h, w), dyv.clone()).unwrap();
        conv::relu_backward(
            &mut d_cpu,
            &Array3::from_shape_vec((c, h, w), yv.clone()).unwrap(),
        );
        assert_eq!(dev.get::<f32>(da, n), d_cpu.into_raw_vec_and_offset().0);
        // Dropout mask multiply and add.
        let m = rnd(n, 7);
        let oa = dev.zeros(n);
        let xa = dev.put(&dyv);
        let ma = dev.put(&m);
        dev.run("mul_elem", &[Ptr(oa), Ptr(xa), Ptr(ma), I64(n as i64)]);
        let want: Vec<f32> = dyv.iter().zip(&m).map(|(a, b)| a * b).collect();
        assert_eq!(dev.get::<f32>(oa, n), want);
        dev.run("add_elem", &[Ptr(oa), Ptr(xa), I64(n as i64)]);
        let want2: Vec<f32> = want.iter().zip(&dyv).map(|(a, b)| a + b).collect();
        assert_eq!(dev.get::<f32>(oa, n), want2);

        // Max-pool with ties and NaNs; backward with a base (the skip gradient).
        let mut xv = rnd(n, 8);
        xv[0] = 0.5;
        xv[1] = 0.5;
        xv[w] = 0.5;
        xv[2 * w + 3] = f32::NAN;
        let x3 = Array3::from_shape_vec((c, h, w), xv.clone()).unwrap();
        let (pc, ic) = pool::maxpool_forward(x3.view());
        let on = c * (h / 2) * (w / 2);
        let (xa, pa, ia) = (dev.put(&xv), dev.zeros(on), dev.put(&vec![0u8; on]));
        dev.run(
            "maxpool_fwd",
            &[
                Ptr(xa),
                Ptr(pa),
                Ptr(ia),
                I64(c as i64),
                I32(h as i32),
                I32(w as i32),
            ],
        );
        let pv = dev.get::<f32>(pa, on);
        let pcv = pc.as_slice().unwrap();
        assert!(pv
            .iter()
            .zip(pcv)
            .all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
        assert_eq!(dev.get::<u8>(ia, on), ic);
        let dyp = rnd(on, 9);
        let base = rnd(n, 10);
        let dxa = dev.zeros(n);
        let (dypa, basea) = (dev.put(&dyp), dev.put(&base));
        dev.run(
            "maxpool_bwd",
            &[
                Ptr(dypa),
                Ptr(ia),
                Ptr(basea),
                Ptr(dxa),
                I64(c as i64),
                I32(h as i32),
                I32(w as i32),
            ],
        );
        let mut want = pool::maxpool_backward(
            ndarray::ArrayView3::from_shape((c, h / 2, w / 2), &dyp).unwrap(),
            &ic,
            h,
            w,
        );
        want += &Array3::from_shape_vec((c, h, w), base).unwrap();
        assert_eq!(dev.get::<f32>(dxa, n), want.into_raw_vec_and_offset().0);

        // Crop + concat and its adjoint, batch 2.
        let (b, cs, hs, ws, cu, hh, ww, oy, ox) = (2, 3, 11, 13, 2, 7, 8, 2, 3);
        let sk = rnd(b * cs * hs * ws, 11);
        let up = rnd(b * cu * hh * ww, 12);
        let cat_n = b * (cs + cu) * hh * ww;
        let cat = dev.zeros(cat_n);
        let geo = [
            I32(b as i32),
            I32(cs as i32),
            I32(hs as i32),
            I32(ws as i32),
            I32(cu as i32),
            I32(hh as i32),
            I32(ww as i32),
            I32(oy as i32),
            I32(ox as i32),
        ];
        let mut args = vec![Ptr(dev.put(&sk)), Ptr(dev.put(&up)), Ptr(cat)];
        args.extend(geo);
        dev.run("crop_concat", &args);
        let catv = dev.get::<f32>(cat, cat_n);
        let dcat = rnd(cat_n, 13);
        let dsk0 = rnd(b * cs * hs * ws, 14);
        let (dska, dupa) = (dev.put(&dsk0), dev.zeros(b * cu * hh * ww));
        let mut args = vec![Ptr(dev.put(&dcat)), Ptr(dska), Ptr(dupa)];
        args.extend(geo);
        dev.run("split_crop_concat", &args);
        let (dskv, dupv) = (
            dev.get::<f32>(dska, dsk0.len()),
            dev.get::<f32>(dupa, b * cu * hh * ww),
        );
        for s in 0..b {
            let skv = ndarray::ArrayView3::from_shape(
                (cs, hs, ws),
                &sk[s * cs * hs * ws..][..cs * hs * ws],
            )
            .unwrap();
            let upv = ndarray::ArrayView3::from_shape(
                (cu, hh, ww),
                &up[s * cu * hh * ww..][..cu * hh * ww],
            )
            .unwrap();
            let per = (cs + cu) * hh * ww;
            assert_eq!(
                &catv[s * per..][..per],
                skip::crop_concat(skv, oy, ox, upv).as_slice().unwrap()
            );
            let dc =
                Array3::from_shape_vec((cs + cu, hh, ww), dcat[s * per..][..per].to_vec()).unwrap();
            let mut dsk = Array3::from_shape_vec(
                (cs, hs, ws),
                dsk0[s * cs * hs * ws..][..cs * hs * ws].to_vec(),
            )
            .unwrap();
            let du = skip::split_crop_concat(&dc, oy, ox, dsk.view_mut());
            assert_eq!(
                &dskv[s * cs * hs * ws..][..cs * hs * ws],
                dsk.as_slice().unwrap()
            );
            assert_eq!(
                &dupv[s * cu * hh * ww..][..cu * hh * ww],
                du.as_slice().unwrap()
            );
        }

        // Up-convolution: host GEMM cols = Wᵀ·x, scatter kernel (+ bias) = CPU forward;
        // gather kernel inverts the scatter.
        let (cin, cout, h, w) = (3, 2, 5, 7);
        let n = h * w;
        let x = rnd(cin * n, 15);
        let wt = rnd(cin * cout * 4, 16);
        let bias = rnd(cout, 17);
        let mut wtt = vec![0f32; 4 * cout * cin];
        for i in 0..cin {
            for r in 0..4 * cout {
                wtt[r * cin + i] = wt[i * 4 * cout + r];
            }
        }
        let cols = matmul(&wtt, &x, 4 * cout, cin, n);
        let ya = dev.zeros(cout * 4 * n);
        let ca = dev.put(&cols);
        let biasa = dev.put(&bias);
        dev.run(
            "up_scatter",
            &[
                Ptr(ca),
                Ptr(biasa),
                Ptr(ya),
                I32(1),
                I32(cout as i32),
                I32(h as i32),
                I32(w as i32),
            ],
        );
        let yc = upconv::up2x2_forward(
            ndarray::ArrayView3::from_shape((cin, h, w), &x).unwrap(),
            &wt,
            &bias,
        );
        close(
            &dev.get::<f32>(ya, cout * 4 * n),
            yc.as_slice().unwrap(),
            1e-6,
            "up-conv",
        );
        let zero = dev.zeros(cout);
        dev.run(
            "up_scatter",
            &[
                Ptr(ca),
                Ptr(zero),
                Ptr(ya),
                I32(1),
                I32(cout as i32),
                I32(h as i32),
                I32(w as i32),
            ],
        );
        let back = dev.zeros(cols.len());
        dev.run(
            "up_gather",
            &[
                Ptr(ya),
                Ptr(back),
                I32(1),
                I32(cout as i32),
                I32(h as i32),
                I32(w as i32),
            ],
        );
        assert_eq!(dev.get::<f32>(back, cols.len()), cols);
    }

    #[test]
    fn loss_kernels_match_cpu() {
        use Arg::*;
        let mut dev = Dev::new();
        let (b, k, h, w) = (2, 3, 13, 23); // 299 pixels per sample: not a multiple of 37 or 256
        let npix = h * w;
        let logits = rnd(b * k * npix, 20)
            .iter()
            .map(|v| v * 8.0)
            .collect::<Vec<_>>();
        let mut r = ChaCha8Rng::seed_from_u64(21);
        let mut target: Vec<u8> = (0..b * npix).map(|_| r.random_range(0..k as u8)).collect();
        let weight: Vec<f32> = (0..b * npix)
            .map(|i| {
                if i % 5 == 0 {
                    0.0
                } else {
                    0.5 + (i % 7) as f32
                }
            })
            .collect();
        target[5] = 255; // weight 0 there: ignored
        let scale = 1.0 / 1234.5;
        let run = |dev: &mut Dev, target: &[u8]| {
            let (la, ta, wa) = (dev.put(&logits), dev.put(target), dev.put(&weight));
            let ga = dev.zeros(b * k * npix);
            let contrib = dev.put(&vec![0f64; b * npix]);
            let bad = dev.put(&[u64::MAX]);
            let out = dev.put(&[0f64]);
            dev.run(
                "softmax_xent",
                &[
                    Ptr(la),
                    Ptr(ta),
                    Ptr(wa),
                    Ptr(ga),
                    Ptr(contrib),
                    I32(b as i32),
                    I32(k as i32),
                    I64(npix as i64),
                    F64(scale),
                    Ptr(bad),
                ],
            );
            dev.gpu
                .launch(
                    "sum_f64",
                    1,
                    256,
                    &[Ptr(contrib), I64((b * npix) as i64), Ptr(out)],
                )
                .unwrap();
            (
                dev.get::<f32>(ga, b * k * npix),
                dev.get::<f64>(out, 1)[0],
                dev.get::<u64>(bad, 1)[0],
            )
        };
        let (g, sum, bad) = run(&mut dev, &target);
        assert_eq!(bad, u64::MAX);
        let mut sum_cpu = 0.0;
        for s in 0..b {
            let lv =
                ndarray::ArrayView3::from_shape((k, h, w), &logits[s * k * npix..][..k * npix])
                    .unwrap();
            let tv = ndarray::ArrayView2::from_shape((h, w), &target[s * npix..][..npix]).unwrap();
            let wv = ndarray::ArrayView2::from_shape((h, w), &weight[s * npix..][..npix]).unwrap();
            let (sc, gc) = unet_train::loss::sample_loss(lv, tv, wv, scale).unwrap();
            sum_cpu += sc;
            close(
                &g[s * k * npix..][..k * npix],
                gc.as_slice().unwrap(),
                1e-6,
                "loss gradient",
            );
        }
        assert!(
            (sum - sum_cpu).abs() <= 1e-12 * sum_cpu.abs(),
            "{sum} vs {sum_cpu}"
        );
        // Bad targets: the smallest offending index is reported.
        target[401] = 3;
        target[77] = 9;
        assert!(weight[401] != 0.0 && weight[77] != 0.0);
        let (_, _, bad) = run(&mut dev, &target);
        assert_eq!(bad, 78);
    }

    #[test]
    fn optimizer_kernels_match_optim_rs_exactly() {
        use Arg::*;
        let cfg = Config {
            in_channels: 1,
            num_classes: 2,
            base_channels: 3,
            levels: 2,
            padding: Padding::Same,
        };
        let kinds = [
            (
                OptimizerKind::Sgd {
                    momentum: 0.0,
                    dampening: 0.0,
                    nesterov: false,
                },
                0.0,
            ),
            (
                OptimizerKind::Sgd {
                    momentum: 0.0,
                    dampening: 0.0,
                    nesterov: false,
                },
                1e-2,
            ),
            (OptimizerKind::paper_sgd(), 0.0),
            (
                OptimizerKind::Sgd {
                    momentum: 0.9,
                    dampening: 0.25,
                    nesterov: true,
                },
                1e-3,
            ),
            (OptimizerKind::adam(), 0.0),
            (
                OptimizerKind::Adam {
                    beta1: 0.8,
                    beta2: 0.95,
                    eps: 1e-6,
                },
                1e-2,
            ),
        ];
        for (kind, wd) in kinds {
            let mut p = unet_train::init::he_init(&cfg, 3).unwrap();
            let mut opt = Optimizer::new(kind, wd, &p);
            let flat = |q: &Params| {
                (0..q.len())
                    .flat_map(|k| q.data(k).to_vec())
                    .collect::<Vec<f32>>()
            };
            let mut dev = Dev::new();
            let n = p.numel();
            let pa = dev.put(&flat(&p));
            let (ba, va) = (dev.zeros(n), dev.zeros(n));
            for t in 1..=4u64 {
                let mut g = p.zeros_like();
                for k in 0..g.len() {
                    let v = rnd(g.data(k).len(), 100 * t + k as u64);
                    g.data_mut(k).copy_from_slice(&v);
                }
                let ga = dev.put(&flat(&g));
                let lr = 0.01 * t as f32;
                opt.step(&mut p, &g, lr).unwrap();
                match kind {
                    OptimizerKind::Sgd { momentum: 0.0, .. } => dev.run(
                        "sgd_plain",
                        &[Ptr(pa), Ptr(ga), I64(n as i64), F32(lr), F32(wd)],
                    ),
                    OptimizerKind::Sgd {
                        momentum,
                        dampening,
                        nesterov,
                    } => dev.run(
                        "sgd_momentum",
                        &[
                            Ptr(pa),
                            Ptr(ga),
                            Ptr(ba),
                            I64(n as i64),
                            F32(lr),
                            F32(wd),
                            F32(momentum),
                            F32(dampening),
                            I32(nesterov as i32),
                            I32((t == 1) as i32),
                        ],
                    ),
                    OptimizerKind::Adam { beta1, beta2, eps } => {
                        let bc1 = 1.0 - (beta1 as f64).powi(t as i32);
                        let bc2 = 1.0 - (beta2 as f64).powi(t as i32);
                        dev.run(
                            "adam",
                            &[
                                Ptr(pa),
                                Ptr(ga),
                                Ptr(ba),
                                Ptr(va),
                                I64(n as i64),
                                F32((lr as f64 / bc1) as f32),
                                F32(bc2.sqrt() as f32),
                                F32(beta1),
                                F32(beta2),
                                F32(eps),
                                F32(wd),
                            ],
                        )
                    }
                }
                assert_eq!(dev.get::<f32>(pa, n), flat(&p), "{kind:?} wd {wd} step {t}");
            }
            if kind.buffers() >= 1 {
                assert_eq!(
                    dev.get::<f32>(ba, n),
                    flat(&opt.state().buffers[0]),
                    "{kind:?}"
                );
            }
            if kind.buffers() == 2 {
                assert_eq!(
                    dev.get::<f32>(va, n),
                    flat(&opt.state().buffers[1]),
                    "{kind:?}"
                );
            }
        }
    }

    #[test]
    fn emu_checks_ranges_and_arguments() {
        use Arg::*;
        let mut dev = Dev::new();
        let a = dev.zeros(10);
        // Wrong kinds / counts are refused before launching.
        assert!(dev
            .gpu
            .launch("relu_bwd", 1, 32, &[Ptr(a), Ptr(a), I32(10)])
            .is_err());
        assert!(dev
            .gpu
            .launch("relu_bwd", 1, 32, &[Ptr(a), Ptr(a)])
            .is_err());
        assert!(dev.gpu.launch("nope", 1, 32, &[]).is_err());
        // Reductions need 256-thread blocks.
        assert!(dev
            .gpu
            .launch("sum_f64", 1, 128, &[Ptr(a), I64(1), Ptr(a)])
            .is_err());
        // Out-of-range copies and GEMM operands are refused.
        assert!(dev.gpu.upload(a + 4, &[0u8; 40]).is_err());
        let g = unet_train::backend::cuda::gpu::Gemm {
            ta: false,
            tb: false,
            m: 3,
            n: 4,
            k: 2,
            alpha: 1.0,
            a,
            lda: 3,
            stride_a: 0,
            b: a,
            ldb: 2,
            stride_b: 0,
            beta: 0.0,
            c: dev.zeros(11),
            ldc: 3,
            stride_c: 0,
            batch: 1,
        };
        assert!(dev.gpu.gemm(&g).is_err()); // C needs 12 floats
        let c12 = dev.zeros(12);
        assert!(dev
            .gpu
            .gemm(&unet_train::backend::cuda::gpu::Gemm { c: c12, ..g })
            .is_ok());
    }
}
