//! The packed GEMM against `matrixmultiply::sgemm`, for every micro-kernel available on this
//! machine, with A stored as f32, f16 or bf16 (compared against the f32 upcast of the stored
//! values, so only summation order differs).
//!
//! Tolerance: `|c − c_ref| ≤ 1e-5 · Σ_p |a_ip|·|b_pj| + 1e-30` per element. Both sides sum `k`
//! products in f32 in different orders (blocked, FMA or not); the worst-case bound of each is
//! about `k·2⁻²⁴·Σ|a||b|`, and random rounding errors grow like `√k·2⁻²⁴`, far below 1e-5 for the
//! `k ≤ 700` used here.

use proptest::prelude::*;
use unet_core::gemm::{self, Epilogue, Kernel, MatMut, MatRef, WeightMatrix, KC, MC, NC};
use unet_core::{DType, Shape, TensorView};

/// Stores `vals` in `dtype`; returns the bytes and the values as stored (upcast to f32).
fn encode(vals: &[f32], dtype: DType) -> (Vec<u8>, Vec<f32>) {
    let mut bytes = Vec::new();
    let mut stored = Vec::new();
    for &v in vals {
        match dtype {
            DType::F32 => {
                bytes.extend_from_slice(&v.to_le_bytes());
                stored.push(v);
            }
            DType::F16 => {
                let h = half::f16::from_f32(v);
                bytes.extend_from_slice(&h.to_bits().to_le_bytes());
                stored.push(h.to_f32());
            }
            DType::BF16 => {
                let h = half::bf16::from_f32(v);
                bytes.extend_from_slice(&h.to_bits().to_le_bytes());
                stored.push(h.to_f32());
            }
            _ => unreachable!(),
        }
    }
    (bytes, stored)
}

/// Deterministic pseudo-random values in [-1, 1) (xorshift), so big cases need no proptest
/// shrinking machinery.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// One case: C = A·B with A stored in `dtype` (row-major, or transposed if `a_trans`), B
/// row-major (or column-major if `b_trans`), computed in two column ranges split at `split`
/// (as two workers would), compared with matrixmultiply.
#[allow(clippy::too_many_arguments)]
fn check(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    dtype: DType,
    a_trans: bool,
    b_trans: bool,
    split: usize,
    seed: u64,
) {
    let (a_bytes, a_vals) = encode(&values(m * k, seed), dtype);
    let b_vals = values(k * n, seed ^ 0xABCD);
    // Logical A[i, p] = a_vals[i*k + p] (row-major) or a_vals[p*m + i] (stored transposed).
    let (ars, acs) = if a_trans { (1, m) } else { (k, 1) };
    let (brs, bcs) = if b_trans { (1, k) } else { (n, 1) };
    let view = TensorView::new(dtype, Shape::new(&[m * k]).unwrap(), &a_bytes).unwrap();
    let a = WeightMatrix::new(view, m, k, ars, acs).unwrap();
    let b = MatRef::new(&b_vals, k, n, brs, bcs).unwrap();

    let mut c = vec![f32::NAN; m * n];
    let split = split.min(n);
    for cols in [0..split, split..n] {
        // An exactly sized pack full of NaN: padding must be written, never read as-is.
        let mut pack = vec![f32::NAN; kernel.pack_len(m, cols.len(), k)];
        assert!(kernel.pack_len(m, cols.len(), k) <= gemm::pack_len(m, cols.len(), k));
        let mut dest = MatMut::new(&mut c, m, n, n, Epilogue::NONE).unwrap();
        gemm::gemm(kernel, &a, &b, &mut dest, cols, &mut pack).unwrap();
    }

    let mut reference = vec![0.0f32; m * n];
    let mut abs = vec![0.0f32; m * n];
    let a_abs: Vec<f32> = a_vals.iter().map(|v| v.abs()).collect();
    let b_abs: Vec<f32> = b_vals.iter().map(|v| v.abs()).collect();
    // SAFETY: all pointers cover m·k, k·n and m·n elements with the strides given.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a_vals.as_ptr(),
            ars as isize,
            acs as isize,
            b_vals.as_ptr(),
            brs as isize,
            bcs as isize,
            0.0,
            reference.as_mut_ptr(),
            n as isize,
            1,
        );
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a_abs.as_ptr(),
            ars as isize,
            acs as isize,
            b_abs.as_ptr(),
            brs as isize,
            bcs as isize,
            0.0,
            abs.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    for i in 0..m * n {
        let tol = 1e-5 * abs[i] + 1e-30;
        assert!(
            (c[i] - reference[i]).abs() <= tol,
            "{} m={m} n={n} k={k} {dtype} a_trans={a_trans} b_trans={b_trans}: C[{}, {}] = {} vs {} (tol {tol})",
            kernel.name(),
            i / n,
            i % n,
            c[i],
            reference[i]
        );
    }
}

fn dtype_of(i: u8) -> DType {
    [DType::F32, DType::F16, DType::BF16][i as usize % 3]
}

#[test]
fn kernels_are_listed() {
    let names: Vec<_> = Kernel::available().map(Kernel::name).collect();
    assert_eq!(names[0], "portable");
    assert!(names.contains(&Kernel::best().name()));
    let missing: Vec<_> = Kernel::unavailable().collect();
    // Every test iterating over `Kernel::available()` covers exactly these kernels here.
    eprintln!("kernels tested: {names:?}; not supported by this CPU, so not tested: {missing:?}");
    for name in &names {
        assert_eq!(Kernel::by_name(name).map(Kernel::name), Some(*name));
        assert!(!missing.contains(name));
    }
    #[cfg(target_arch = "x86_64")]
    {
        // Independent check of the run-time detection: a CPU with the feature gets the kernel,
        // and the fastest one is preferred.
        let avx512 = std::is_x86_feature_detected!("avx512f");
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        assert_eq!(names.contains(&"avx512"), avx512);
        assert_eq!(names.contains(&"avx2-fma"), avx2);
        let best = if avx512 {
            "avx512"
        } else if avx2 {
            "avx2-fma"
        } else {
            "portable"
        };
        assert_eq!(Kernel::best().name(), best);
    }
    assert_eq!(Kernel::by_name("no-such-kernel"), None);
}

#[test]
fn edge_sizes_every_kernel() {
    // 1, around the tile shapes (6, 8, 16, 32), around the block sizes MC, KC, NC.
    let cases = [
        (1, 1, 1),
        (1, 17, 3),
        (5, 1, 9),
        (6, 16, 7),
        (7, 15, 8),
        (8, 8, 1),
        (9, 33, 2),
        (8, 32, 5),
        (16, 31, 3),
        (17, 65, 11),
        (24, 64, 257),
        (MC, 40, KC),
        (MC + 1, 19, KC + 1),
        (MC - 1, 23, 2 * KC + 3),
        (3, NC + 5, 20),
        (13, NC - 1, KC - 1),
        (20, 2 * NC + 17, 9),
    ];
    for kernel in Kernel::available() {
        for (idx, &(m, n, k)) in cases.iter().enumerate() {
            for (d, &(at, bt)) in [(false, false), (true, false), (false, true)]
                .iter()
                .enumerate()
            {
                check(
                    kernel,
                    m,
                    n,
                    k,
                    dtype_of((idx + d) as u8),
                    at,
                    bt,
                    n / 3,
                    idx as u64,
                );
            }
        }
    }
}

#[test]
fn k_zero_stores_zeros_plus_bias() {
    let bias_bytes: Vec<u8> = [1.5f32, -2.0, 0.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bias = TensorView::new(DType::F32, Shape::new(&[3]).unwrap(), &bias_bytes).unwrap();
    for kernel in Kernel::available() {
        let a = MatRef::new(&[], 3, 0, 0, 1).unwrap();
        let b = MatRef::new(&[], 0, 5, 5, 1).unwrap();
        let mut c = vec![f32::NAN; 15];
        let mut pack = vec![f32::NAN; gemm::pack_len(3, 5, 0)];
        let mut dest = MatMut::new(&mut c, 3, 5, 5, Epilogue::new(Some(bias), 1, true)).unwrap();
        gemm::gemm(kernel, &a, &b, &mut dest, 0..5, &mut pack).unwrap();
        let want: Vec<f32> = [1.5f32, 0.0, 0.25].iter().flat_map(|&v| [v; 5]).collect();
        assert_eq!(c, want, "{}", kernel.name());
    }
}

#[test]
fn bias_and_relu_epilogue_across_k_blocks() {
    // K spans three blocks; bias on the first, ReLU (NaN kept) only after the last.
    let (m, n, k) = (10, 21, 2 * KC + 7);
    let a_vals = values(m * k, 7);
    let mut b_vals = values(k * n, 8);
    b_vals[5] = f32::NAN; // column 5 becomes NaN in every row
    let bias_vals = values(m, 9);
    let bias_bytes: Vec<u8> = bias_vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bias = TensorView::new(DType::F32, Shape::new(&[m]).unwrap(), &bias_bytes).unwrap();
    for kernel in Kernel::available() {
        let a = MatRef::new(&a_vals, m, k, k, 1).unwrap();
        let b = MatRef::new(&b_vals, k, n, n, 1).unwrap();
        let mut c = vec![0.0f32; m * n];
        let mut pack = vec![f32::NAN; gemm::pack_len(m, n, k)];
        let mut dest = MatMut::new(&mut c, m, n, n, Epilogue::new(Some(bias), 1, true)).unwrap();
        gemm::gemm(kernel, &a, &b, &mut dest, 0..n, &mut pack).unwrap();
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut sa) = (bias_vals[i] as f64, bias_vals[i].abs() as f64);
                for p in 0..k {
                    s += a_vals[i * k + p] as f64 * b_vals[p * n + j] as f64;
                    sa += (a_vals[i * k + p] * b_vals[p * n + j]).abs() as f64;
                }
                let got = c[i * n + j];
                if j == 5 {
                    assert!(got.is_nan(), "{}: NaN must survive ReLU", kernel.name());
                } else {
                    let want = s.max(0.0);
                    assert!(
                        (got as f64 - want).abs() <= 1e-5 * sa,
                        "{}: ({i},{j}) {got} vs {want}",
                        kernel.name()
                    );
                }
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    let a_vals = values(12, 1);
    let b_vals = values(12, 2);
    let a = MatRef::new(&a_vals, 3, 4, 4, 1).unwrap();
    let b = MatRef::new(&b_vals, 4, 3, 3, 1).unwrap();
    let b_wrong = MatRef::new(&b_vals, 3, 4, 4, 1).unwrap();
    let mut c = vec![0.0f32; 9];
    let mut pack = vec![0.0f32; gemm::pack_len(3, 3, 4)];
    let k = Kernel::portable();
    let mut dest = MatMut::new(&mut c, 3, 3, 3, Epilogue::NONE).unwrap();
    assert!(gemm::gemm(k, &a, &b_wrong, &mut dest, 0..3, &mut pack).is_err());
    assert!(gemm::gemm(k, &a, &b, &mut dest, 0..4, &mut pack).is_err());
    let short = k.pack_len(3, 3, 4) - 1;
    assert!(gemm::gemm(k, &a, &b, &mut dest, 0..3, &mut pack[..short]).is_err());
    assert!(MatRef::new(&a_vals, 4, 4, 4, 1).is_none());
    assert!(MatRef::new(&a_vals, usize::MAX, 2, usize::MAX, 1).is_none());
}

#[test]
fn pack_len_is_bounded_by_the_layer() {
    // Tiny products need tiny buffers (one micro-panel of A, at most 8 rows, and one of B, at
    // most 32 columns: the AVX-512 kernel's, compiled on x86-64, plus the alignment slack);
    // huge ones are capped by the blocking.
    let slack = 2 * gemm::ALIGN;
    assert!(gemm::pack_len(2, 4, 9) <= 8 * 9 + 9 * 32 + slack);
    assert!(gemm::pack_len(usize::MAX, usize::MAX, usize::MAX) <= (MC + 8) * KC + KC * NC + slack);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_products_every_kernel(
        m in 1usize..100,
        n in 1usize..140,
        k in 1usize..700,
        dt in 0u8..3,
        at in any::<bool>(),
        bt in any::<bool>(),
        split in 0usize..140,
        seed in any::<u64>(),
    ) {
        for kernel in Kernel::available() {
            check(kernel, m, n, k, dtype_of(dt), at, bt, split, seed);
        }
    }
}
