//! Shared references of the convolution oracle tests (`conv_oracle.rs`, `winograd_oracle.rs`):
//! deterministic test values and a naive f64 3×3 convolution.

/// `n` values in `[-1, 1)` from a xorshift stream seeded by `seed` (deterministic).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
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

/// Naive 3×3 convolution of a dense `[cin, h, w]` input (`pad` zeros per side, optional ReLU);
/// returns (output, `|b| + Σ|terms|` per output, out_h, out_w).
#[allow(clippy::too_many_arguments)]
pub fn naive_conv(
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    wt: &[f32],
    b: &[f32],
    cout: usize,
    pad: usize,
    relu: bool,
) -> (Vec<f64>, Vec<f64>, usize, usize) {
    let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
    let mut out = vec![0.0f64; cout * oh * ow];
    let mut scale = vec![0.0f64; cout * oh * ow];
    for co in 0..cout {
        for y in 0..oh {
            for xo in 0..ow {
                let mut acc = b[co] as f64;
                let mut sc = (b[co] as f64).abs();
                for ci in 0..cin {
                    for i in 0..3 {
                        for j in 0..3 {
                            let yy = (y + i) as isize - pad as isize;
                            let xx = (xo + j) as isize - pad as isize;
                            if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                                continue;
                            }
                            let v = x[(ci * h + yy as usize) * w + xx as usize] as f64;
                            let wv = wt[((co * cin + ci) * 3 + i) * 3 + j] as f64;
                            acc += v * wv;
                            sc += (v * wv).abs();
                        }
                    }
                }
                if relu && acc < 0.0 {
                    acc = 0.0;
                }
                out[(co * oh + y) * ow + xo] = acc;
                scale[(co * oh + y) * ow + xo] = sc;
            }
        }
    }
    (out, scale, oh, ow)
}
