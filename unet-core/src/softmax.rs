//! The soft-max over classes of the probability outputs, with an `exp` written as plain
//! arithmetic so that the compiler vectorises it across pixels (a scalar `libm::expf` per value
//! took 5 % of a base-16 tile). Every path — one pixel at a time ([`crate::frame`]) or a row of
//! pixels with any vector width ([`columns`]) — runs the same IEEE operations in the same order,
//! so they give the same bits.

use crate::gemm::Kernel;

/// Below this `exp` is under `f32`'s smallest normal number (2⁻¹²⁶); [`exp_nonpositive`] returns 0.
const LOWEST: f32 = -87.336_54;

/// `eˣ` for `x ≤ 0` (the soft-max's logits minus their maximum), NaN for NaN, 0 below
/// −87.34 (where `eˣ` is subnormal). Cephes' `expf`: `x = n·ln 2 + r` with `n` rounded to
/// nearest (`|r| ≤ ln 2 / 2`, `ln 2` in two parts so that `r` is exact), a degree-7
/// polynomial for `eʳ`, then `2ⁿ` built in the exponent bits. Relative error under 2·10⁻⁷
/// (tested against `f64::exp`). Positive `x` up to 88 also work; beyond, the result is wrong.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    // Round `x·log₂e` to the nearest integer in the mantissa of 1.5·2²³.
    const SHIFT: f32 = 12_582_912.0;
    let t = x * core::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    // 2ⁿ: the integer `n` sits in the low mantissa bits of `t` (two's complement around
    // 0x4B40_0000); move `n + 127` into the exponent field.
    let pow = f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127) << 23);
    if x < LOWEST {
        0.0
    } else {
        e * pow
    }
}

/// Turns a class-major row of logits (`[k, n]`: class `cls`, pixel `x` at `cls·n + x`) into
/// probabilities in place: per pixel `exp(v − max) / Σ exp(v − max)` with the maximum over
/// classes ignoring NaN (as `f32::max`), the sum in class order, one division and `k`
/// multiplications — the same bits as that computed one pixel at a time. Compiled with the
/// kernel's vector instructions on x86-64.
pub(crate) fn columns(kernel: Kernel, row: &mut [f32], k: usize, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if Kernel::avx512() == Some(kernel) {
            // SAFETY: that kernel exists only on a CPU with AVX-512F.
            return unsafe { x86::columns_avx512(row, k, n) };
        }
        if Kernel::avx2_fma() == Some(kernel) {
            // SAFETY: that kernel exists only on a CPU with AVX2 and FMA.
            return unsafe { x86::columns_avx2(row, k, n) };
        }
    }
    let _ = kernel;
    columns_portable(row, k, n)
}

/// Pixels per step of [`columns`] (a few vectors; the per-pixel state lives in arrays).
const STEP: usize = 32;

#[inline(always)]
fn columns_portable(row: &mut [f32], k: usize, n: usize) {
    let row = &mut row[..k * n];
    let mut x0 = 0;
    while x0 < n {
        let len = STEP.min(n - x0);
        let mut m = [f32::NEG_INFINITY; STEP];
        for cls in 0..k {
            let v = &row[cls * n + x0..cls * n + x0 + len];
            for (m, &v) in m.iter_mut().zip(v) {
                *m = m.max(v);
            }
        }
        let mut sum = [0.0f32; STEP];
        for cls in 0..k {
            let v = &mut row[cls * n + x0..cls * n + x0 + len];
            for ((v, &m), s) in v.iter_mut().zip(&m).zip(sum.iter_mut()) {
                let e = exp_nonpositive(*v - m);
                *v = e;
                *s += e;
            }
        }
        let mut inv = [0.0f32; STEP];
        for (i, s) in inv.iter_mut().zip(&sum) {
            *i = 1.0 / s;
        }
        for cls in 0..k {
            let v = &mut row[cls * n + x0..cls * n + x0 + len];
            for (v, &i) in v.iter_mut().zip(&inv) {
                *v *= i;
            }
        }
        x0 += len;
    }
}

/// [`columns`] compiled with x86-64 target features (the same code, wider vectors; Rust never
/// fuses a multiply and an add on its own, so the bits do not change).
#[cfg(target_arch = "x86_64")]
mod x86 {
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn columns_avx2(row: &mut [f32], k: usize, n: usize) {
        super::columns_portable(row, k, n)
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn columns_avx512(row: &mut [f32], k: usize, n: usize) {
        super::columns_portable(row, k, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_tenths_of_a_millionth() {
        let mut worst = 0.0f64;
        let mut x = 0.0f32;
        while x > -87.3 {
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x -= 1.0 / 1024.0 + x.abs() * 1e-4;
        }
        assert!(worst < 2e-7, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
        // Small positive arguments (not used by the soft-max) are still right.
        assert!((exp_nonpositive(1.0) as f64 - 1f64.exp()).abs() < 1e-6);
    }

    #[test]
    fn columns_match_one_pixel_at_a_time_bit_for_bit() {
        let (k, n) = (3, 77);
        let mut row: Vec<f32> = (0..k * n)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 37.0)
            .collect();
        row[5] = f32::NAN;
        row[n + 9] = f32::NEG_INFINITY;
        row[2 * n + 11] = 1e30;
        let mut want = row.clone();
        for x in 0..n {
            let mut m = f32::NEG_INFINITY;
            for cls in 0..k {
                m = m.max(want[cls * n + x]);
            }
            let mut sum = 0.0f32;
            for cls in 0..k {
                let e = exp_nonpositive(want[cls * n + x] - m);
                want[cls * n + x] = e;
                sum += e;
            }
            let inv = 1.0 / sum;
            for cls in 0..k {
                want[cls * n + x] *= inv;
            }
        }
        for kernel in Kernel::available() {
            let mut got = row.clone();
            columns(kernel, &mut got, k, n);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{}: element {i}", kernel.name());
            }
        }
        assert!(want[5].is_nan());
        assert_eq!(want[n + 9], 0.0);
        assert_eq!(want[2 * n + 11], 1.0);
    }
}
