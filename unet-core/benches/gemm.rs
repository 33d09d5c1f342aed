//! GEMM and conv3x3 throughput per micro-kernel. Throughput is reported in "elements/s" where
//! one element is one flop (2·M·N·K per product), i.e. read `Gelem/s` as GFLOP/s.
//!
//! `cargo bench -p unet-core --bench gemm`; set `UNET_BENCH_BIG=1` to add a paper-sized layer
//! (64→64 channels, 570×570 output, 24 GFLOP per call).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use unet_core::conv::{self, ConvInput, Map, MapMut};
use unet_core::gemm::{self, Epilogue, Kernel, MatMut, MatRef, WeightMatrix};
use unet_core::{DType, Padding, Shape, TensorView};

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bench_gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    g.sample_size(10);
    for &(m, n, k) in &[
        (64usize, 4096usize, 576usize),
        (128, 1024, 1152),
        (8, 4096, 9),
    ] {
        let a_bytes = bytes(&values(m * k));
        let b_vals = values(k * n);
        let view = TensorView::new(DType::F32, Shape::new(&[m, k]).unwrap(), &a_bytes).unwrap();
        let a = WeightMatrix::new(view, m, k, k, 1).unwrap();
        let b = MatRef::new(&b_vals, k, n, n, 1).unwrap();
        let mut cbuf = vec![0.0f32; m * n];
        let mut pack = vec![0.0f32; gemm::pack_len(m, n, k)];
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for kernel in Kernel::available() {
            g.bench_function(
                BenchmarkId::new(kernel.name(), format!("{m}x{n}x{k}")),
                |bch| {
                    bch.iter(|| {
                        let mut d = MatMut::new(&mut cbuf, m, n, n, Epilogue::NONE).unwrap();
                        gemm::gemm(kernel, &a, &b, &mut d, 0..n, &mut pack).unwrap();
                        black_box(&cbuf);
                    })
                },
            );
        }
    }
    g.finish();
}

fn bench_conv(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv3x3");
    g.sample_size(10);
    let mut shapes = vec![
        (1usize, 64usize, 130usize),
        (64, 64, 130),
        (128, 128, 66),
        (512, 512, 18),
    ];
    if std::env::var_os("UNET_BENCH_BIG").is_some() {
        shapes.push((64, 64, 572));
    }
    for (cin, cout, hin) in shapes {
        let hout = hin - 2;
        let x = values(cin * hin * hin);
        let w_bytes = bytes(&values(cout * cin * 9));
        let b_bytes = bytes(&values(cout));
        let wv = TensorView::new(
            DType::F32,
            Shape::new(&[cout, cin, 3, 3]).unwrap(),
            &w_bytes,
        )
        .unwrap();
        let bv = TensorView::new(DType::F32, Shape::new(&[cout]).unwrap(), &b_bytes).unwrap();
        let mut out = vec![0.0f32; cout * hout * hout];
        let mut pack = vec![0.0f32; conv::conv3x3_pack_len(cout, cin, hout, hout)];
        g.throughput(Throughput::Elements(
            (2 * cout * cin * 9 * hout * hout) as u64,
        ));
        let input = ConvInput::single(Map {
            data: &x,
            c: cin,
            h: hin,
            w: hin,
        });
        for kernel in Kernel::available() {
            let id = BenchmarkId::new(kernel.name(), format!("{cin}to{cout}_{hout}x{hout}"));
            g.bench_function(id, |bch| {
                bch.iter(|| {
                    let o = MapMut {
                        data: &mut out,
                        c: cout,
                        h: hout,
                        w: hout,
                    };
                    conv::conv3x3_with(
                        kernel,
                        &wv,
                        &bv,
                        &input,
                        Padding::Valid,
                        true,
                        o,
                        &mut pack,
                    )
                    .unwrap();
                    black_box(&out);
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_gemm, bench_conv);
criterion_main!(benches);
