//! Percentile normalisation against numpy: `np.percentile(x.astype(np.float64), [LOW, HIGH])`
//! (default method "linear") for u8, u16 and f32 frames, through the u8/u16 histogram and the
//! f32 selection paths of `frame::channel_affine`. Fixture: tests/fixtures/frame/
//! percentile.safetensors (tests/reference/make_frame_fixtures.py).
//!
//! Tolerances: the percentiles are computed with numpy's own f64 formula, so they must be
//! **equal** (asserted bitwise). The normalised values are computed in f32 (`(x − lo) · scale`,
//! see unet_core::normalize) against numpy's f64 `(x − lo)/(hi − lo)` rounded to f32: they
//! differ by the f32 rounding of `lo`, of the scale and of two operations, bounded here by
//! `4·2^−24·(|x − lo| + |lo|)·scale + 2^−24` (asserted).

mod frame_support;

use frame_support::{fixture, tensor_f64};
use safetensors::SafeTensors;
use unet_core::frame::{channel_affine, statistics_scratch_len, FrameView, Sample};
use unet_core::normalize::{decimal_f64, percentile_linear};
use unet_core::{Affine, Normalization, SampleType};

fn affine_of<T: Sample>(data: &[T], h: usize, w: usize, low: f32, high: f32) -> Affine {
    let norm = Normalization::Percentile { low, high };
    let view = FrameView::packed(data, 1, h, w).unwrap();
    let mut scratch = vec![f32::NAN; statistics_scratch_len(norm, T::TYPE, h, w).unwrap()];
    channel_affine(norm, &view, 0, &mut scratch).unwrap()
}

/// The exact percentiles (as f64) behind an affine: recomputed by sorting, for comparison.
fn sorted_percentiles(values: &[f64], low: f64, high: f64) -> (f64, f64) {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    (
        percentile_linear(s.len(), low, |k| s[k]),
        percentile_linear(s.len(), high, |k| s[k]),
    )
}

#[test]
fn percentiles_equal_numpy() {
    let bytes = fixture("percentile.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, pairs) = tensor_f64(&st, "pairs");
    for kind in ["u8", "u16", "f32"] {
        let (shape, x) = tensor_f64(&st, kind);
        let (h, w) = (shape[0], shape[1]);
        let (_, want) = tensor_f64(&st, &format!("{kind}_pct"));
        for (p, pair) in pairs.chunks_exact(2).enumerate() {
            let (low, high) = (pair[0] as f32, pair[1] as f32);
            assert_eq!(decimal_f64(low), pair[0]);
            let (lo, hi) = sorted_percentiles(&x, decimal_f64(low), decimal_f64(high));
            assert_eq!(
                (lo, hi),
                (want[2 * p], want[2 * p + 1]),
                "{kind} pair {pair:?}"
            );
            // The frame path (histogram or selection) gives the affine of exactly these.
            let a = match kind {
                "u8" => affine_of(
                    &x.iter().map(|&v| v as u8).collect::<Vec<_>>(),
                    h,
                    w,
                    low,
                    high,
                ),
                "u16" => affine_of(
                    &x.iter().map(|&v| v as u16).collect::<Vec<_>>(),
                    h,
                    w,
                    low,
                    high,
                ),
                _ => affine_of(
                    &x.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                    h,
                    w,
                    low,
                    high,
                ),
            };
            assert_eq!(a, Affine::from_range(lo, hi), "{kind} pair {pair:?}");
        }
    }
}

#[test]
fn normalised_values_match_numpy() {
    let bytes = fixture("percentile.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, pairs) = tensor_f64(&st, "pairs");
    for kind in ["u8", "u16", "f32"] {
        let (shape, x) = tensor_f64(&st, kind);
        let (_, want) = tensor_f64(&st, &format!("{kind}_norm"));
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let a = affine_of(&xf, shape[0], shape[1], pairs[0] as f32, pairs[1] as f32);
        let eps = f32::EPSILON as f64 / 2.0;
        for (i, (&v, &wv)) in xf.iter().zip(&want).enumerate() {
            let got = a.apply(v) as f64;
            let tol =
                4.0 * eps * ((v - a.offset).abs() as f64 + a.offset.abs() as f64) * a.scale as f64
                    + eps;
            assert!(
                (got - wv).abs() <= tol.max(wv.abs() * 4.0 * eps),
                "{kind}[{i}]: {got} vs numpy {wv}"
            );
        }
    }
}

#[test]
fn same_values_same_map_across_sample_types() {
    let mut rng = frame_support::Rng(7);
    let (h, w) = (19, 23);
    let v8: Vec<u8> = (0..h * w).map(|_| (rng.next_u64() % 256) as u8).collect();
    let v16: Vec<u16> = v8.iter().map(|&v| v as u16).collect();
    let vf: Vec<f32> = v8.iter().map(|&v| v as f32).collect();
    for (lo, hi) in [(1.0, 99.8), (0.0, 100.0), (20.0, 21.0)] {
        let a = affine_of(&v8, h, w, lo, hi);
        assert_eq!(a, affine_of(&v16, h, w, lo, hi));
        assert_eq!(a, affine_of(&vf, h, w, lo, hi));
    }
}

#[test]
fn constant_channel_maps_to_zero_and_bad_input_is_refused() {
    let c = vec![1234u16; 5 * 3];
    let a = affine_of(&c, 5, 3, 1.0, 99.8);
    assert_eq!(a.apply(1234.0), 0.0);
    assert_eq!(a.scale, 0.0);
    let single = affine_of(&[9.5f32], 1, 1, 0.0, 100.0);
    assert_eq!(single.apply(9.5), 0.0);

    let norm = Normalization::Percentile {
        low: 1.0,
        high: 99.0,
    };
    let bad = [1.0f32, f32::NAN, 3.0, 4.0];
    let view = FrameView::packed(&bad[..], 1, 2, 2).unwrap();
    let mut scratch = vec![0f32; 4];
    assert!(channel_affine(norm, &view, 0, &mut scratch).is_err());
    let inf = [1.0f32, f32::INFINITY, 3.0, 4.0];
    let view = FrameView::packed(&inf[..], 1, 2, 2).unwrap();
    assert!(channel_affine(norm, &view, 0, &mut scratch).is_err());
    // Too little scratch, wrong channel: errors, not panics.
    let ok = [1u16, 2, 3, 4];
    let view = FrameView::packed(&ok[..], 1, 2, 2).unwrap();
    assert!(channel_affine(norm, &view, 0, &mut scratch).is_err());
    assert_eq!(
        statistics_scratch_len(norm, SampleType::U16, 2, 2),
        Some(65536)
    );
    let mut big = vec![0f32; 65536];
    assert!(channel_affine(norm, &view, 1, &mut big).is_err());
    assert!(channel_affine(norm, &view, 0, &mut big).is_ok());
}

#[test]
fn strided_views_read_the_right_samples() {
    // Two channels in a padded buffer: row stride 7 for width 4, channel stride 40.
    let (h, w, rs, cs) = (3usize, 4usize, 7usize, 40usize);
    let mut buf = vec![60000u16; cs + (h - 1) * rs + w];
    for c in 0..2 {
        for y in 0..h {
            for x in 0..w {
                buf[c * cs + y * rs + x] = (c * 100 + y * w + x) as u16;
            }
        }
    }
    let view = FrameView::new(&buf[..], 2, h, w, rs, cs).unwrap();
    let norm = Normalization::Percentile {
        low: 0.0,
        high: 100.0,
    };
    let mut scratch = vec![0f32; 65536];
    for c in 0..2 {
        let a = channel_affine(norm, &view, c, &mut scratch).unwrap();
        assert_eq!(
            a,
            Affine::from_range((c * 100) as f64, (c * 100 + 11) as f64)
        );
    }
    assert!(FrameView::new(&buf[..buf.len() - 1], 2, h, w, rs, cs).is_err());
    assert!(FrameView::new(&buf[..], 2, h, w, 3, cs).is_err());
    assert!(FrameView::new(&buf[..], 2, h, 0, rs, cs).is_err());
    assert!(FrameView::new(&buf[..], usize::MAX, h, w, rs, usize::MAX).is_err());
}
