//! Metrics and connected components on hand-made cases; Rand error against brute-force pair
//! counting.

use ndarray::{arr2, Array2};
use proptest::prelude::*;
use unet_train::components::{instances_from_classes, label_components, Connectivity};
use unet_train::metrics::{class_overlap, evaluate, object_scores, pixel_error, rand_error};

#[test]
fn components_four_vs_eight() {
    let m = arr2(&[
        [true, false, false, true],
        [false, true, false, true],
        [false, false, false, false],
        [true, true, false, true],
    ]);
    let (l4, n4) = label_components(m.view(), Connectivity::Four);
    let (l8, n8) = label_components(m.view(), Connectivity::Eight);
    assert_eq!(n4, 5);
    assert_eq!(
        l4,
        arr2(&[[1, 0, 0, 2], [0, 3, 0, 2], [0, 0, 0, 0], [4, 4, 0, 5]])
    );
    assert_eq!(n8, 4);
    assert_eq!(
        l8,
        arr2(&[[1, 0, 0, 2], [0, 1, 0, 2], [0, 0, 0, 0], [3, 3, 0, 4]])
    );
    // A U shape joined only at the bottom: one component, found through a later union.
    let u = arr2(&[[true, false, true], [true, false, true], [true, true, true]]);
    let (lu, nu) = label_components(u.view(), Connectivity::Four);
    assert_eq!(nu, 1);
    assert!(lu.iter().zip(u.iter()).all(|(&l, &m)| (l == 1) == m));
}

#[test]
fn class_instances_do_not_merge_classes() {
    let c = arr2(&[[1u8, 1, 2, 2], [0, 0, 2, 0], [1, 0, 0, 1]]);
    let (l, n) = instances_from_classes(c.view(), Connectivity::Four);
    assert_eq!(n, 4);
    assert_eq!(l, arr2(&[[1, 1, 2, 2], [0, 0, 2, 0], [3, 0, 0, 4]]));
}

#[test]
fn pixel_iou_dice() {
    let gt = arr2(&[[0u8, 0, 1, 1], [0, 0, 1, 1]]);
    let pr = arr2(&[[0u8, 1, 1, 1], [0, 0, 0, 1]]);
    assert_eq!(pixel_error(pr.view(), gt.view()), 2.0 / 8.0);
    let o = class_overlap(pr.view(), gt.view(), 3);
    // Class 1: |P| = 4, |G| = 4, |P∩G| = 3 → IoU 3/5, Dice 6/8.
    assert_eq!(o[1], (Some(3.0 / 5.0), Some(6.0 / 8.0)));
    assert_eq!(o[0], (Some(3.0 / 5.0), Some(6.0 / 8.0)));
    assert_eq!(o[2], (None, None));
}

#[test]
fn object_matching_at_iou_half() {
    // GT: objects 1 (4 px) and 2 (4 px), 3 (1 px). Prediction: 7 covers 1 exactly, 8 covers
    // half of 2 (IoU 2/4 = 0.5: not > 0.5 → no match), 9 is a false positive.
    let gt = arr2(&[[1u32, 1, 0, 2, 2], [1, 1, 0, 2, 2], [0, 0, 0, 0, 3]]);
    let pr = arr2(&[[7u32, 7, 0, 8, 0], [7, 7, 0, 8, 0], [9, 0, 0, 0, 0]]);
    let s = object_scores(pr.view(), gt.view());
    assert_eq!((s.tp, s.fp, s.fn_), (1, 2, 2));
    assert_eq!(s.precision, 1.0 / 3.0);
    assert_eq!(s.recall, 1.0 / 3.0);
    assert_eq!(s.f1, 2.0 / 6.0);
    // One more pixel makes IoU 3/4 for object 2.
    let pr2 = arr2(&[[7u32, 7, 0, 8, 8], [7, 7, 0, 8, 0], [9, 0, 0, 0, 0]]);
    assert_eq!(object_scores(pr2.view(), gt.view()).tp, 2);
    // Empty vs empty: perfect.
    let z = Array2::<u32>::zeros((2, 2));
    let e = object_scores(z.view(), z.view());
    assert_eq!((e.precision, e.recall, e.f1), (1.0, 1.0, 1.0));
}

fn brute_rand_error(a: &Array2<u32>, b: &Array2<u32>) -> f64 {
    let (a, b): (Vec<u32>, Vec<u32>) = (a.iter().copied().collect(), b.iter().copied().collect());
    let n = a.len();
    if n < 2 {
        return 0.0;
    }
    let mut disagree = 0u64;
    for i in 0..n {
        for j in i + 1..n {
            if (a[i] == a[j]) != (b[i] == b[j]) {
                disagree += 1;
            }
        }
    }
    disagree as f64 / (n * (n - 1) / 2) as f64
}

#[test]
fn rand_error_hand_case() {
    let gt = arr2(&[[1u32, 1], [2, 2]]);
    assert_eq!(rand_error(gt.view(), gt.view()), 0.0);
    // Relabelling does not matter.
    assert_eq!(rand_error(gt.mapv(|v| v + 10).view(), gt.view()), 0.0);
    // Merging both objects: pairs (0,2),(0,3),(1,2),(1,3) disagree: 4 of 6.
    let merged = arr2(&[[5u32, 5], [5, 5]]);
    assert_eq!(rand_error(merged.view(), gt.view()), 4.0 / 6.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn rand_error_equals_pair_counting(
        (h, w, a, b) in (1usize..9, 1usize..9).prop_flat_map(|(h, w)| (
            Just(h), Just(w),
            proptest::collection::vec(0u32..4, h * w),
            proptest::collection::vec(0u32..4, h * w),
        ))
    ) {
        let a = Array2::from_shape_vec((h, w), a).unwrap();
        let b = Array2::from_shape_vec((h, w), b).unwrap();
        let got = rand_error(a.view(), b.view());
        let want = brute_rand_error(&a, &b);
        prop_assert!((got - want).abs() < 1e-12, "{} vs {}", got, want);
    }
}

#[test]
fn evaluate_and_display() {
    let gt_c = arr2(&[[0u8, 1, 1], [0, 1, 1]]);
    let gt_i = arr2(&[[0u32, 1, 1], [0, 1, 1]]);
    let m = evaluate(gt_c.view(), gt_i.view(), gt_c.view(), gt_i.view(), 2).unwrap();
    assert_eq!(m.pixel_error, 0.0);
    assert_eq!(m.rand_error, 0.0);
    assert_eq!(m.objects.f1, 1.0);
    assert_eq!(m.iou, vec![Some(1.0), Some(1.0)]);
    let s = m.to_string();
    assert!(
        s.contains("pixel error 0.0000")
            && s.contains("class 1: IoU 1.0000")
            && s.contains("F1 1.0000"),
        "{s}"
    );
    let small = Array2::<u8>::zeros((1, 3));
    let e = evaluate(small.view(), gt_i.view(), gt_c.view(), gt_i.view(), 2).unwrap_err();
    assert_eq!(e.what, "pred_classes");
}
