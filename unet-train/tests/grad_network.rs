//! The whole network against PyTorch autograd (fixtures by tests/reference/make_train_fixtures.py,
//! float64 reference on f32-rounded weights, inputs and weight maps; non-uniform weight map with
//! ignored pixels): loss, logits and every parameter gradient; and the optimisers against
//! `torch.optim.SGD` / `torch.optim.Adam` (3 steps, float32).
//!
//! Tolerances. Our forward/backward run in f32 with different summation orders than a float64
//! reference, so each value carries a relative error of ~1e-6·√(terms); logits: ≤ 1e-4 of the
//! largest |logit|; loss: 1e-5 relative; gradients: per tensor, max |Δ| ≤ 1e-3 · max |g_ref|
//! (+1e-7) — a missing term, a wrong crop offset or a swapped concat order gives O(1) errors.
//! Optimisers (same f32 arithmetic, possibly different operation order/FMA): 1e-5 relative.

use std::path::PathBuf;

use ndarray::{Array3, Array4, ArrayD, IxDyn};
use safetensors::SafeTensors;
use unet_core::{Config, Padding};
use unet_train::backend::cpu::CpuBackend;
use unet_train::backend::{Backend, BatchView};
use unet_train::loss::LossNorm;
use unet_train::optim::{Optimizer, OptimizerKind};
use unet_train::params::Params;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/train_grad")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn f32s(st: &SafeTensors<'_>, name: &str) -> ArrayD<f32> {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture lacks {name}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let v: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    ArrayD::from_shape_vec(IxDyn(t.shape()), v).unwrap()
}

fn params_from(st: &SafeTensors<'_>, cfg: &Config, prefix: &str) -> Params {
    let mut p = Params::zeros(cfg).unwrap();
    for k in 0..p.len() {
        let t = f32s(st, &format!("{prefix}.{}", p.id(k)));
        assert_eq!(t.shape(), p.tensor(k).shape());
        p.data_mut(k).copy_from_slice(t.as_slice().unwrap());
    }
    p
}

struct Case {
    cfg: Config,
    norm: LossNorm,
    params: Params,
    grads: Params,
    input: Array4<f32>,
    target: Array3<u8>,
    weight: Array3<f32>,
    logits: Array4<f32>,
    loss: f64,
}

fn load(bytes: &[u8]) -> (Case, SafeTensors<'_>) {
    let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let n = |k: &str| meta[k].parse::<usize>().unwrap();
    let cfg = Config {
        in_channels: n("in_channels"),
        num_classes: n("num_classes"),
        base_channels: n("base_channels"),
        levels: n("levels"),
        padding: if meta["padding"] == "valid" {
            Padding::Valid
        } else {
            Padding::Same
        },
    };
    let st = SafeTensors::deserialize(bytes).unwrap();
    let tgt = st.tensor("target").unwrap();
    let ts = tgt.shape().to_vec();
    let target = Array3::from_shape_vec((ts[0], ts[1], ts[2]), tgt.data().to_vec()).unwrap();
    let loss_t = st.tensor("loss").unwrap();
    let loss = f64::from_le_bytes(loss_t.data()[..8].try_into().unwrap());
    let case = Case {
        cfg,
        norm: LossNorm::parse(&meta["norm"]).unwrap(),
        params: params_from(&st, &cfg, "param"),
        grads: params_from(&st, &cfg, "grad"),
        input: f32s(&st, "input").into_dimensionality().unwrap(),
        target,
        weight: f32s(&st, "weight").into_dimensionality().unwrap(),
        logits: f32s(&st, "logits").into_dimensionality().unwrap(),
        loss,
    };
    (case, st)
}

fn check_case(file: &str) {
    let bytes = fixture(file);
    let (c, _) = load(&bytes);
    let opt = Optimizer::new(OptimizerKind::paper_sgd(), 0.0, &c.params);
    let mut be = CpuBackend::new(c.params.clone(), opt);
    let logits = be.forward(c.input.view()).unwrap();
    assert_eq!(logits.dim(), c.logits.dim());
    let lmax = c.logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let lerr = logits
        .iter()
        .zip(c.logits.iter())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        lerr <= 1e-4 * lmax,
        "{file}: logits max err {lerr} (max |logit| {lmax})"
    );

    let batch = BatchView {
        input: c.input.view(),
        target: c.target.view(),
        weight: c.weight.view(),
    };
    let stats = be.compute_gradients(&batch, c.norm, None).unwrap();
    assert!(
        (stats.loss - c.loss).abs() <= 1e-5 * c.loss.abs(),
        "{file}: loss {} vs torch {}",
        stats.loss,
        c.loss
    );
    let g = be.gradients().unwrap();
    for k in 0..g.len() {
        let gmax = c.grads.data(k).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = g
            .data(k)
            .iter()
            .zip(c.grads.data(k))
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-3 * gmax + 1e-7,
            "{file}: {} grad max err {err} (max |g| {gmax})",
            g.id(k)
        );
        assert!(
            gmax > 0.0,
            "{file}: {} has an all-zero reference gradient",
            g.id(k)
        );
    }
}

#[test]
fn valid_network_matches_pytorch() {
    check_case("valid.safetensors");
}

#[test]
fn same_network_matches_pytorch() {
    check_case("same.safetensors");
}

#[test]
fn optimizers_match_pytorch() {
    let bytes = fixture("valid.safetensors");
    let (c, st) = load(&bytes);
    for (name, kind, lr) in [
        (
            "sgd",
            OptimizerKind::Sgd {
                momentum: 0.99,
                dampening: 0.0,
                nesterov: false,
            },
            0.1f32,
        ),
        ("adam", OptimizerKind::adam(), 0.01),
    ] {
        let want = params_from(&st, &c.cfg, name);
        let mut p = c.params.clone();
        let mut opt = Optimizer::new(kind, 1e-3, &p);
        for _ in 0..3 {
            opt.step(&mut p, &c.grads, lr).unwrap();
        }
        assert_eq!(opt.state().step, 3);
        for k in 0..p.len() {
            for (a, b) in p.data(k).iter().zip(want.data(k)) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1e-2),
                    "{name} {}: {a} vs torch {b}",
                    p.id(k)
                );
            }
        }
        assert!(p.max_abs_diff(&c.params) > 0.0);
    }
}
