//! Percentile normalisation against numpy (fixture from
//! `tests/reference/make_weight_map_fixtures.py`: `np.percentile(x.astype(f64), q)`), exact.

use ndarray::{Array1, Array3};
use std::path::PathBuf;
use unet_core::Normalization;
use unet_train::image_norm::{
    channel_affines, decimal_f64, normalize, percentile_linear, try_normalize,
};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/train")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn data() -> Vec<f32> {
    fixture("percentile_data.f32")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn percentiles_equal_numpy_exactly() {
    let mut sorted: Vec<f64> = data().iter().map(|&v| v as f64).collect();
    sorted.sort_by(f64::total_cmp);
    let text = String::from_utf8(fixture("percentile_expected.txt")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let q: f32 = it.next().unwrap().parse().unwrap();
        let want: f64 = it.next().unwrap().parse().unwrap();
        assert_eq!(percentile_linear(&sorted, decimal_f64(q)), want, "q = {q}");
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn normalize_uses_numpy_percentiles() {
    let d = data();
    let img = Array3::from_shape_vec((1, 40, 50), d.clone()).unwrap();
    let text = String::from_utf8(fixture("percentile_expected.txt")).unwrap();
    let get = |q: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("{q} ")))
            .unwrap()[q.len() + 1..]
            .parse()
            .unwrap()
    };
    let (lo, hi) = (get("1.0"), get("99.8"));
    let aff = channel_affines(
        img.view(),
        Normalization::Percentile {
            low: 1.0,
            high: 99.8,
        },
        true,
    )
    .unwrap();
    assert_eq!(aff[0], (lo as f32, (1.0 / (hi - lo)) as f32));
    let out = normalize(
        img.view(),
        Normalization::Percentile {
            low: 1.0,
            high: 99.8,
        },
    );
    for (o, &x) in out.iter().zip(d.iter()) {
        assert_eq!(*o, (x - lo as f32) * ((1.0 / (hi - lo)) as f32));
    }
}

#[test]
fn per_channel_constant_and_fixed_maps() {
    // Channel 0 constant -> zeros; channel 1 a ramp -> [0, 1] for percentiles 0/100.
    let img = Array3::from_shape_fn(
        (2, 3, 4),
        |(c, y, x)| if c == 0 { 7.0 } else { (y * 4 + x) as f32 },
    );
    let out = normalize(
        img.view(),
        Normalization::Percentile {
            low: 0.0,
            high: 100.0,
        },
    );
    assert!(out
        .index_axis(ndarray::Axis(0), 0)
        .iter()
        .all(|&v| v == 0.0));
    let ramp: Array1<f32> = out
        .index_axis(ndarray::Axis(0), 1)
        .iter()
        .copied()
        .collect();
    assert_eq!(ramp[0], 0.0);
    assert_eq!(ramp[11], 1.0);
    let ms = normalize(
        img.view(),
        Normalization::MeanStd {
            mean: 1.0,
            std: 2.0,
        },
    );
    assert_eq!(ms[[1, 2, 3]], (11.0 - 1.0) * 0.5);
    let mm = normalize(
        img.view(),
        Normalization::MinMax {
            min: 0.0,
            max: 22.0,
        },
    );
    assert_eq!(mm[[1, 2, 3]], 0.5);
    assert_eq!(normalize(img.view(), Normalization::None), img);
}

#[test]
fn non_finite_values() {
    let mut img = Array3::from_shape_fn((1, 2, 3), |(_, y, x)| (y * 3 + x) as f32);
    img[[0, 0, 0]] = f32::NAN;
    let p = Normalization::Percentile {
        low: 0.0,
        high: 100.0,
    };
    assert_eq!(try_normalize(img.view(), p).unwrap_err().channel, 0);
    // Lenient: statistics over finite values 1..=5.
    let out = normalize(img.view(), p);
    assert_eq!(out[[0, 0, 1]], 0.0);
    assert_eq!(out[[0, 1, 2]], 1.0);
    assert!(out[[0, 0, 0]].is_nan());
}

/// The trainer's normalisation equals what inference computes (`unet_core::frame::channel_affine`)
/// for u16 and f32 frames.
#[test]
fn agrees_with_unet_core_frame_normalisation() {
    use unet_core::frame::{channel_affine, statistics_scratch_len};
    use unet_core::{FrameView, SampleType};
    let (c, h, w) = (2usize, 31usize, 23usize);
    let raw: Vec<u16> = (0..c * h * w)
        .map(|k| ((k * 7919) % 4099) as u16 + if k % 11 == 0 { 30000 } else { 0 })
        .collect();
    let img = Array3::from_shape_vec((c, h, w), raw.iter().map(|&v| v as f32).collect()).unwrap();
    for norm in [
        Normalization::Percentile {
            low: 1.0,
            high: 99.8,
        },
        Normalization::Percentile {
            low: 3.3,
            high: 50.0,
        },
        Normalization::MeanStd {
            mean: 100.0,
            std: 7.3,
        },
        Normalization::MinMax {
            min: 0.0,
            max: 65535.0,
        },
        Normalization::None,
    ] {
        let ours = channel_affines(img.view(), norm, true).unwrap();
        let view = FrameView::new(&raw[..], c, h, w, w, h * w).unwrap();
        let mut scratch =
            vec![0.0f32; statistics_scratch_len(norm, SampleType::U16, h, w).unwrap()];
        let fv: Vec<f32> = raw.iter().map(|&v| v as f32).collect();
        let view_f = FrameView::new(&fv[..], c, h, w, w, h * w).unwrap();
        let mut scratch_f =
            vec![0.0f32; statistics_scratch_len(norm, SampleType::F32, h, w).unwrap()];
        for (ch, ours_ch) in ours.iter().enumerate() {
            let a = channel_affine(norm, &view, ch, &mut scratch).unwrap();
            let b = channel_affine(norm, &view_f, ch, &mut scratch_f).unwrap();
            assert_eq!(*ours_ch, (a.offset, a.scale), "{norm:?} channel {ch} (u16)");
            assert_eq!(*ours_ch, (b.offset, b.scale), "{norm:?} channel {ch} (f32)");
        }
    }
}
