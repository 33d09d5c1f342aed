//! The exact EDT against brute force.

use ndarray::Array2;
use proptest::prelude::*;
use unet_train::edt::edt;

/// Distance of every pixel to the nearest false pixel by exhaustive search (f64, then f32).
fn brute(mask: &Array2<bool>) -> Array2<f32> {
    let zeros: Vec<(usize, usize)> = mask
        .indexed_iter()
        .filter(|(_, &m)| !m)
        .map(|(p, _)| p)
        .collect();
    Array2::from_shape_fn(mask.dim(), |(y, x)| {
        let best = zeros
            .iter()
            .map(|&(yy, xx)| {
                let (dy, dx) = (y as i64 - yy as i64, x as i64 - xx as i64);
                (dy * dy + dx * dx) as f64
            })
            .fold(f64::INFINITY, f64::min);
        if best.is_finite() {
            best.sqrt() as f32
        } else {
            f32::INFINITY
        }
    })
}

fn mask_strategy() -> impl Strategy<Value = Array2<bool>> {
    (1usize..40, 1usize..40, 0.0f64..1.0).prop_flat_map(|(h, w, p)| {
        proptest::collection::vec(proptest::bool::weighted(p), h * w)
            .prop_map(move |v| Array2::from_shape_vec((h, w), v).expect("shape"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn edt_equals_brute_force(mask in mask_strategy()) {
        // Both are sqrt of the same integer, rounded to f32: exactly equal.
        prop_assert_eq!(edt(mask.view()), brute(&mask));
    }
}

#[test]
fn edt_corner_cases() {
    let all_true = Array2::from_elem((3, 5), true);
    assert!(edt(all_true.view()).iter().all(|v| v.is_infinite()));
    let all_false = Array2::from_elem((4, 2), false);
    assert!(edt(all_false.view()).iter().all(|&v| v == 0.0));
    assert_eq!(
        edt(Array2::<bool>::from_elem((0, 3), true).view()).dim(),
        (0, 3)
    );
    // One false pixel in a corner of a long strip: distance grows along the strip.
    let mut m = Array2::from_elem((2, 50), true);
    m[[0, 0]] = false;
    let d = edt(m.view());
    assert_eq!(d[[0, 49]], 49.0);
    assert_eq!(d[[1, 49]], ((49.0f64 * 49.0 + 1.0).sqrt()) as f32);
}
