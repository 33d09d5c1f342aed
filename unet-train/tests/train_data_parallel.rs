//! The data-parallel protocol of the `Backend` seam: two replicas, each computing gradients on
//! half of a batch with the whole batch's loss denominator and the whole batch's dropout masks,
//! then summing gradients (the all-reduce) and stepping, stay identical to one replica training
//! on the whole batch. Summation order differs (per-sample sums are added pairwise), so the
//! comparison allows 1e-5 relative to the tensor's largest entry, for gradients and for weights
//! after 3 Adam steps (a bias gradient is a sum of per-sample terms that largely cancel: reordering
//! four such terms moves a 2-element bias gradient by ~2e-6 of its size).

use ndarray::{s, Array3, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unet_core::{Config, Padding};
use unet_train::backend::cpu::CpuBackend;
use unet_train::backend::{Backend, BatchView, Dropout, Shard};
use unet_train::init::he_init;
use unet_train::loss::{denominator, LossNorm};
use unet_train::optim::{Optimizer, OptimizerKind};

fn close(a: &unet_train::params::Params, b: &unet_train::params::Params, rel: f32) {
    for k in 0..a.len() {
        let m = b.data(k).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (x, y) in a.data(k).iter().zip(b.data(k)) {
            assert!(
                (x - y).abs() <= rel * m.max(1e-6),
                "{}: {x} vs {y}",
                a.id(k)
            );
        }
    }
}

#[test]
fn two_shards_equal_one_batch() {
    let cfg = Config {
        in_channels: 1,
        num_classes: 3,
        base_channels: 2,
        levels: 2,
        padding: Padding::Valid,
    };
    let p = he_init(&cfg, 3).unwrap();
    let mk = || CpuBackend::new(p.clone(), Optimizer::new(OptimizerKind::adam(), 0.0, &p));
    let (mut whole, mut r0, mut r1) = (mk(), mk(), mk());
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for step in 0..3u64 {
        let input = Array4::from_shape_simple_fn((4, 1, 28, 28), || rng.random_range(0.0f32..1.0));
        let target = Array3::from_shape_simple_fn((4, 12, 12), || rng.random_range(0u8..3));
        let weight = Array3::from_shape_simple_fn((4, 12, 12), || rng.random_range(0.0f32..4.0));
        let d = Some(Dropout {
            p: 0.4,
            seed: 5,
            step,
        });
        let full = BatchView {
            input: input.view(),
            target: target.view(),
            weight: weight.view(),
        };
        let sw = whole
            .compute_gradients(&full, LossNorm::WeightSum, d)
            .unwrap();

        let den = denominator(weight.view(), LossNorm::WeightSum).unwrap();
        let half = |a: usize| BatchView {
            input: input.slice(s![a..a + 2, .., .., ..]),
            target: target.slice(s![a..a + 2, .., ..]),
            weight: weight.slice(s![a..a + 2, .., ..]),
        };
        let s0 = r0
            .compute_shard_gradients(
                &half(0),
                Shard {
                    first_sample: 0,
                    denominator: den,
                },
                d,
            )
            .unwrap();
        let s1 = r1
            .compute_shard_gradients(
                &half(2),
                Shard {
                    first_sample: 2,
                    denominator: den,
                },
                d,
            )
            .unwrap();
        assert!(
            (s0.loss + s1.loss - sw.loss).abs() <= 1e-9 * sw.loss.abs(),
            "losses"
        );
        // All-reduce.
        let mut g = r0.gradients().unwrap();
        g.add_assign(&r1.gradients().unwrap()).unwrap();
        close(&g, &whole.gradients().unwrap(), 1e-5);
        r0.set_gradients(&g).unwrap();
        r1.set_gradients(&g).unwrap();
        for b in [&mut whole, &mut r0, &mut r1] {
            b.apply_gradients(1e-2).unwrap();
        }
        assert_eq!(r0.params().unwrap(), r1.params().unwrap());
    }
    close(&r0.params().unwrap(), &whole.params().unwrap(), 1e-5);
    assert!(r0.params().unwrap().max_abs_diff(&p) > 0.0);
}
