//! Targets and weight maps against the scipy reference made by
//! `tests/reference/make_weight_map_fixtures.py` (real label crops: epithelium with 1-px
//! boundaries, directly touching scratch-assay cells, bacteria with 1–5 px gaps), and hand cases.
//!
//! Tolerance: |rust − scipy| ≤ 1e-5·|scipy| + 2e-6·w0. The reference is float64 without any
//! bounding-box restriction; the Rust side rounds to f32 (relative 1e-7 per operation) and drops
//! border terms below 1e-6·w0 outside each cell's margin.

use ndarray::Array2;
use std::path::PathBuf;
use unet_train::weight_map::{
    semantic_target, semantic_target_ignoring, two_nearest_distances, weight_map, ClassBalance,
    WeightParams,
};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/train")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

struct Case {
    name: String,
    labels: Array2<u32>,
    target: Array2<u8>,
    weight: Array2<f32>,
    params: WeightParams,
}

fn cases() -> Vec<Case> {
    let list = String::from_utf8(read("weight_map_cases.txt")).expect("utf8");
    list.lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (h, w): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            let w0: f32 = f[3].parse().unwrap();
            let sigma: f32 = f[4].parse().unwrap();
            let balance = match f[5] {
                "inverse" => ClassBalance::InverseFrequency,
                _ => ClassBalance::Fixed {
                    background: f[6].parse().unwrap(),
                },
            };
            let lab: Vec<u32> = read(&format!("weight_map_{}.labels.u16", f[0]))
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32)
                .collect();
            let tgt = read(&format!("weight_map_{}.target.u8", f[0]));
            let wt: Vec<f32> = read(&format!("weight_map_{}.weight.f32", f[0]))
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Case {
                name: f[0].to_string(),
                labels: Array2::from_shape_vec((h, w), lab).unwrap(),
                target: Array2::from_shape_vec((h, w), tgt).unwrap(),
                weight: Array2::from_shape_vec((h, w), wt).unwrap(),
                params: WeightParams {
                    w0,
                    sigma,
                    balance,
                    ignore: None,
                },
            }
        })
        .collect()
}

#[test]
fn matches_scipy_reference() {
    let cases = cases();
    assert_eq!(cases.len(), 3);
    for c in &cases {
        let t = semantic_target(c.labels.view());
        assert_eq!(t, c.target, "{}: semantic target", c.name);
        let w = weight_map(c.labels.view(), t.view(), &c.params);
        let mut worst = 0.0f32;
        for ((p, &got), &want) in w.indexed_iter().zip(c.weight.iter()) {
            let tol = 1e-5 * want.abs() + 2e-6 * c.params.w0;
            assert!(
                (got - want).abs() <= tol,
                "{}: pixel {p:?}: {got} vs scipy {want}",
                c.name
            );
            worst = worst.max((got - want).abs());
        }
        eprintln!("{}: max |rust - scipy| = {worst:e}", c.name);
    }
}

#[test]
fn borders_between_touching_cells_weigh_most() {
    for c in cases() {
        let t = semantic_target(c.labels.view());
        let w = weight_map(c.labels.view(), t.view(), &c.params);
        // Background pixels with two cells close by (d1 + d2 ≤ 5): the separating gaps.
        let (d1, d2) = two_nearest_distances(c.labels.view(), t.view(), c.params.sigma);
        let mut border = Vec::new();
        let mut far = Vec::new();
        for ((p, &tv), &wv) in t.indexed_iter().zip(w.iter()) {
            if tv == 0 && d1[p] + d2[p] <= 5.0 {
                border.push(wv);
            } else if tv == 0 && d1[p] > 15.0 {
                far.push(wv);
            }
        }
        assert!(!border.is_empty(), "{}: no border pixels", c.name);
        // w_c of background: the weight map without border term.
        let wc = weight_map(
            c.labels.view(),
            t.view(),
            &WeightParams {
                w0: 0.0,
                ..c.params
            },
        );
        let wc_bg = wc
            .iter()
            .zip(t.iter())
            .find(|(_, &tv)| tv == 0)
            .map(|(&x, _)| x)
            .unwrap();
        // d1 + d2 ≤ 5 on these pixels: term ≥ w0·exp(−25/(2σ²)) > 0.6·w0 for σ ≥ 5.
        for &b in &border {
            assert!(
                b >= wc_bg + 0.6 * c.params.w0,
                "{}: border weight {b} too low",
                c.name
            );
        }
        let wmax = w.iter().copied().fold(0.0, f32::max);
        assert!(
            border.contains(&wmax),
            "{}: the maximum weight is not on a border",
            c.name
        );
        for &f in &far {
            assert!(
                f < wc_bg + 1e-3 * c.params.w0,
                "{}: far pixel weight {f}",
                c.name
            );
        }
    }
}

/// Two vertical bands of cells with a 4-px gap: known d1, d2 on every gap pixel.
#[test]
fn hand_computed_gap() {
    let mut lab = Array2::<u32>::zeros((6, 14));
    for y in 0..6 {
        for x in 0..14 {
            if x < 5 {
                lab[[y, x]] = 1;
            } else if x >= 9 {
                lab[[y, x]] = 2;
            }
        }
    }
    let t = semantic_target(lab.view());
    assert_eq!(t, lab.mapv(|v| (v != 0) as u8));
    let p = WeightParams {
        w0: 10.0,
        sigma: 5.0,
        balance: ClassBalance::None,
        ignore: None,
    };
    let w = weight_map(lab.view(), t.view(), &p);
    for x in 5..9 {
        // Cell 1 ends at x = 4, cell 2 starts at x = 9: d1 + d2 = (x − 4) + (9 − x) = 5.
        let want = 1.0 + 10.0 * (-25.0f64 / 50.0).exp();
        assert!(
            (w[[2, x]] as f64 - want).abs() < 1e-5,
            "x={x}: {} vs {want}",
            w[[2, x]]
        );
    }
    // Cell pixels get only w_c.
    assert_eq!(w[[0, 0]], 1.0);
    assert_eq!(w[[3, 12]], 1.0);
    // Inverse frequency: 60 background... 24 background of 84 pixels, 2 classes.
    let p = WeightParams {
        balance: ClassBalance::InverseFrequency,
        w0: 0.0,
        ..p
    };
    let w = weight_map(lab.view(), t.view(), &p);
    assert!((w[[0, 6]] - 84.0 / (2.0 * 24.0)).abs() < 1e-6);
    assert!((w[[0, 0]] - 84.0 / (2.0 * 60.0)).abs() < 1e-6);
}

#[test]
fn touching_cells_are_cut_on_both_sides() {
    // Cells 1 (x < 4) and 2 (x ≥ 4) touch directly.
    let mut lab = Array2::<u32>::zeros((8, 8));
    for y in 0..5 {
        for x in 0..8 {
            lab[[y, x]] = if x < 4 { 1 } else { 2 };
        }
    }
    let t = semantic_target(lab.view());
    for y in 0..5 {
        assert_eq!(t[[y, 3]], 0);
        assert_eq!(t[[y, 4]], 0);
        assert_eq!(t[[y, 2]], 1);
        assert_eq!(t[[y, 5]], 1);
    }
    // Cells touching only diagonally are cut too (8-neighbourhood); an isolated cell is kept.
    let mut diag = Array2::<u32>::zeros((4, 4));
    diag[[0, 0]] = 1;
    diag[[1, 1]] = 2;
    diag[[3, 3]] = 3;
    let td = semantic_target(diag.view());
    assert_eq!(td[[0, 0]], 0);
    assert_eq!(td[[1, 1]], 0);
    assert_eq!(td[[3, 3]], 1);
    // The 2-px background line between cells 1 and 2 gets a high weight: at x = 3 the nearest
    // cell pixel is x = 2 (d1 = 1), the second cell starts at x = 5 (d2 = 2).
    let p = WeightParams {
        w0: 10.0,
        sigma: 5.0,
        balance: ClassBalance::None,
        ignore: None,
    };
    let w = weight_map(lab.view(), t.view(), &p);
    let want = 1.0 + 10.0 * (-9.0f64 / 50.0).exp();
    assert!((w[[2, 3]] as f64 - want).abs() < 1e-5, "{}", w[[2, 3]]);
}

#[test]
fn ignore_label_gets_zero_weight_and_is_no_cell() {
    let mut lab = Array2::<u32>::zeros((10, 10));
    for y in 0..10 {
        lab[[y, 0]] = 1;
        lab[[y, 1]] = 99;
        lab[[y, 2]] = 2;
        lab[[y, 8]] = 3;
    }
    let p = WeightParams {
        ignore: Some(99),
        ..WeightParams::default()
    };
    let t = semantic_target_ignoring(lab.view(), Some(99));
    // The ignored column does not cut cells 1 and 2 apart.
    assert_eq!(t[[4, 0]], 1);
    assert_eq!(t[[4, 2]], 1);
    assert_eq!(t[[4, 1]], 0);
    let w = weight_map(lab.view(), t.view(), &p);
    for y in 0..10 {
        assert_eq!(w[[y, 1]], 0.0);
        assert!(w[[y, 5]] > 0.0);
    }
    // Without the ignore label, 99 is a cell between 1 and 2 and both are cut.
    let t2 = semantic_target(lab.view());
    assert_eq!(t2[[4, 0]], 0);
}
