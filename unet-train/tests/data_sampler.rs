//! Tile sampler: shapes, reproducibility, foreground centring, alignment of input and target,
//! tiles larger than the image (mirroring), construction errors.

use ndarray::{s, Array2, Array3, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use unet_core::arch::Padding;
use unet_core::Geometry;
use unet_train::augment::AugmentParams;
use unet_train::data::{LabelKind, Sample};
use unet_train::sampler::{SamplerError, TileSampler};
use unet_train::weight_map::WeightParams;

/// Separated discs (no touching) on a 0 background, image = labels != 0.
fn disc_sample(name: &str, h: usize, w: usize, discs: &[(usize, usize, usize)]) -> Sample {
    let labels = Array2::from_shape_fn((h, w), |(y, x)| {
        for (k, &(cy, cx, r)) in discs.iter().enumerate() {
            let (dy, dx) = (y as i64 - cy as i64, x as i64 - cx as i64);
            if dy * dy + dx * dx <= (r * r) as i64 {
                return k as u32 + 1;
            }
        }
        0
    });
    let image = labels.mapv(|v| (v != 0) as u8 as f32).insert_axis(Axis(0));
    Sample {
        name: name.into(),
        image,
        labels,
    }
}

fn geometry_sizes(levels: usize, input: usize) -> (usize, usize) {
    let g = Geometry::new(levels, Padding::Valid).unwrap();
    let (o, _) = g.output_size(input, input).unwrap();
    (input, o)
}

fn samples() -> Vec<Sample> {
    vec![
        disc_sample("a", 90, 120, &[(20, 30, 8), (60, 90, 12)]),
        disc_sample("b", 70, 70, &[(10, 10, 5), (50, 40, 9), (30, 60, 6)]),
    ]
}

#[test]
fn shapes_and_same_seed_same_batch() {
    let (i, o) = geometry_sizes(2, 44);
    assert_eq!(o, 44 - 2 * 8);
    let sm = TileSampler::new(
        &samples(),
        LabelKind::Instance,
        &WeightParams::default(),
        (i, i),
        (o, o),
        AugmentParams::default(),
    )
    .unwrap();
    let a = sm.sample(5, &mut ChaCha8Rng::seed_from_u64(42));
    let b = sm.sample(5, &mut ChaCha8Rng::seed_from_u64(42));
    let c = sm.sample(5, &mut ChaCha8Rng::seed_from_u64(43));
    assert_eq!(a.input.dim(), (5, 1, i, i));
    assert_eq!(a.target.dim(), (5, o, o));
    assert_eq!(a.weight.dim(), (5, o, o));
    assert_eq!(a, b);
    assert_ne!(a.input, c.input);
    // Items differ from each other (per-item seeds).
    assert_ne!(
        a.input.slice(s![0, .., .., ..]),
        a.input.slice(s![1, .., .., ..])
    );
    assert!(a.weight.iter().all(|&w| w > 0.0));
}

#[test]
fn foreground_centring_and_exact_alignment_without_augmentation() {
    let (i, o) = geometry_sizes(2, 44);
    let halo = (i - o) / 2;
    let sm = TileSampler::new(
        &samples(),
        LabelKind::Instance,
        &WeightParams::default(),
        (i, i),
        (o, o),
        AugmentParams::none(),
    )
    .unwrap()
    .with_foreground_probability(1.0);
    let batch = sm.sample(16, &mut ChaCha8Rng::seed_from_u64(9));
    for b in 0..16 {
        // The chosen foreground pixel is output pixel (o/2 − 1, o/2 − 1) for an even tile.
        assert_eq!(batch.target[[b, o / 2 - 1, o / 2 - 1]], 1, "item {b}");
        // Image (= cell mask) and target agree pixel for pixel over the output window.
        for y in 0..o {
            for x in 0..o {
                assert_eq!(
                    batch.input[[b, 0, y + halo, x + halo]],
                    batch.target[[b, y, x]] as f32
                );
            }
        }
    }
}

#[test]
fn alignment_with_full_augmentation() {
    let (i, o) = geometry_sizes(3, 92);
    let halo = (i - o) / 2;
    let aug = AugmentParams {
        gamma: (1.0, 1.0),
        contrast: (1.0, 1.0),
        brightness: 0.0,
        ..AugmentParams::default()
    };
    let sm = TileSampler::new(
        &samples(),
        LabelKind::Instance,
        &WeightParams::default(),
        (i, i),
        (o, o),
        aug,
    )
    .unwrap();
    let batch = sm.sample(6, &mut ChaCha8Rng::seed_from_u64(1));
    let mut exact = 0;
    let mut total = 0;
    for b in 0..6 {
        for y in 0..o {
            for x in 0..o {
                let v = batch.input[[b, 0, y + halo, x + halo]];
                total += 1;
                if v == 0.0 || v == 1.0 {
                    exact += 1;
                    assert_eq!(batch.target[[b, y, x]] as f32, v, "item {b} ({y},{x})");
                }
            }
        }
    }
    assert!(exact * 2 > total);
}

#[test]
fn tiles_larger_than_the_image_are_mirrored() {
    let tiny = vec![disc_sample("tiny", 9, 7, &[(4, 3, 2)])];
    let (i, o) = geometry_sizes(2, 44);
    let sm = TileSampler::new(
        &tiny,
        LabelKind::Instance,
        &WeightParams::default(),
        (i, i),
        (o, o),
        AugmentParams::none(),
    )
    .unwrap();
    let batch = sm.sample(3, &mut ChaCha8Rng::seed_from_u64(2));
    // Every input row is a mirrored copy of image rows: each value is 0 or 1 and the tile
    // repeats with period 2·9 rows and 2·7 columns.
    for b in 0..3 {
        let t = batch.input.slice(s![b, 0, .., ..]);
        for y in 0..i - 18 {
            for x in 0..i - 14 {
                assert_eq!(t[[y, x]], t[[y + 18, x]]);
                assert_eq!(t[[y, x]], t[[y, x + 14]]);
            }
        }
    }
}

#[test]
fn class_labels_and_ignore() {
    let mut s = disc_sample("c", 40, 40, &[(20, 20, 10)]);
    // Class map: 0 background, 1 inside the disc, 2 in a stripe, 7 = ignore.
    s.labels = s.labels.mapv(|v| v.min(1));
    for y in 0..40 {
        s.labels[[y, 35]] = 2;
        s.labels[[y, 0]] = 7;
    }
    let wp = WeightParams {
        ignore: Some(7),
        ..WeightParams::default()
    };
    let sm = TileSampler::new(
        &[s],
        LabelKind::Class,
        &wp,
        (24, 24),
        (24, 24),
        AugmentParams::none(),
    )
    .unwrap();
    let (t, w) = sm.prepared(0).unwrap();
    assert_eq!(t[[20, 20]], 1);
    assert_eq!(t[[3, 35]], 2);
    assert_eq!(w[[3, 0]], 0.0);
    assert!(
        w[[20, 20]] > 0.0 && w[[3, 35]] > w[[20, 20]],
        "rare class 2 weighs more"
    );
    let b = sm.sample(4, &mut ChaCha8Rng::seed_from_u64(0));
    assert!(b.target.iter().all(|&v| v <= 2));
}

#[test]
fn construction_errors() {
    let wp = WeightParams::default();
    let aug = AugmentParams::none();
    assert_eq!(
        TileSampler::new(&[], LabelKind::Instance, &wp, (44, 44), (28, 28), aug).unwrap_err(),
        SamplerError::NoSamples
    );
    assert!(matches!(
        TileSampler::new(
            &samples(),
            LabelKind::Instance,
            &wp,
            (44, 44),
            (29, 28),
            aug
        ),
        Err(SamplerError::Tile { .. })
    ));
    assert!(matches!(
        TileSampler::new(
            &samples(),
            LabelKind::Instance,
            &wp,
            (20, 20),
            (28, 28),
            aug
        ),
        Err(SamplerError::Tile { .. })
    ));
    let mut two = samples();
    two[1].image = Array3::zeros((2, 70, 70));
    assert!(matches!(
        TileSampler::new(&two, LabelKind::Instance, &wp, (44, 44), (28, 28), aug),
        Err(SamplerError::Channels { .. })
    ));
    let mut bad = samples();
    bad[0].labels = Array2::zeros((3, 3));
    assert_eq!(
        TileSampler::new(&bad, LabelKind::Instance, &wp, (44, 44), (28, 28), aug).unwrap_err(),
        SamplerError::Shape { name: "a".into() }
    );
}
