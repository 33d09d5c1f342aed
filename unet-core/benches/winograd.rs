//! 3×3 convolution, direct (im2col + packed GEMM) vs Winograd F(4×4, 3×3), best kernel, one
//! thread. Throughput is in "elements/s" where one element is one flop of the *direct*
//! convolution (2·C_out·C_in·9 per output pixel): read `Gelem/s` as effective GFLOP/s, so the
//! two algorithms compare directly.
//!
//! `cargo bench -p unet-core --bench winograd` runs the layer shapes that decide
//! [`unet_core::winograd::prefers_winograd`] (channels 1…64 on a 128² output) and a paper-sized
//! layer (128 → 128 channels, 280² output, the paper's second level, 23 GFLOP direct);
//! `UNET_BENCH_BIG=1` adds the paper's top layer (64 → 64, 568², 24 GFLOP) and bottom layer
//! (1024 → 1024, 28², 15 GFLOP).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use unet_core::conv::{ConvInput, Map, MapMut};
use unet_core::gemm::Kernel;
use unet_core::winograd::{self, ConvAlgo};
use unet_core::{DType, Padding, Shape, TensorView};

fn values(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919) % 1000) as f32 / 1000.0 - 0.5) * scale)
        .collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv3x3_algo");
    g.sample_size(10);
    // (c_in, c_out, output side), valid padding.
    let mut shapes = vec![
        (1usize, 64usize, 128usize),
        (8, 8, 128),
        (16, 16, 128),
        (32, 32, 128),
        (64, 64, 128),
        (128, 128, 280),
    ];
    if std::env::var_os("UNET_BENCH_BIG").is_some() {
        shapes.push((64, 64, 568));
        shapes.push((1024, 1024, 28));
    }
    let kernel = Kernel::best();
    for &(cin, cout, o) in &shapes {
        let (h, w) = (o + 2, o + 2);
        let x = values(cin * h * w, 1.0);
        let wb = bytes(&values(cout * cin * 9, 0.1));
        let bb = bytes(&values(cout, 1.0));
        let wv = TensorView::new(DType::F32, Shape::new(&[cout, cin, 3, 3]).unwrap(), &wb).unwrap();
        let bv = TensorView::new(DType::F32, Shape::new(&[cout]).unwrap(), &bb).unwrap();
        let input = ConvInput::single(Map {
            data: &x,
            c: cin,
            h,
            w,
        });
        let mut out = vec![0.0f32; cout * o * o];
        g.throughput(Throughput::Elements((2 * cout * cin * 9 * o * o) as u64));
        for algo in [ConvAlgo::Direct, ConvAlgo::Winograd] {
            let mut work = vec![0.0f32; winograd::conv3x3_scratch_len(algo, cout, cin, o, o, 1)];
            g.bench_function(
                BenchmarkId::new(format!("{algo:?}"), format!("{cin}to{cout}_{o}x{o}")),
                |bch| {
                    bch.iter(|| {
                        let dst = MapMut {
                            data: &mut out,
                            c: cout,
                            h: o,
                            w: o,
                        };
                        winograd::conv3x3_by(
                            algo,
                            kernel,
                            &unet_core::Sequential,
                            &wv,
                            &bv,
                            &input,
                            Padding::Valid,
                            true,
                            dst,
                            &mut work,
                        )
                        .unwrap();
                        black_box(&out);
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
