//! Property tests of the geometry against closed-form formulas derived independently of the
//! layer-by-layer simulation in `unet_core::geometry`.

use proptest::prelude::*;
use unet_core::{Geometry, Padding};

/// Smallest bottom size b (after the bottom convs) for which every valid feature map is ≥ 1.
fn b_min(levels: usize) -> usize {
    match levels {
        1 => 1,
        2 => 3,
        _ => 4,
    }
}

proptest! {
    /// Valid padding: legal inputs are `2^(L−1)(b+8) − 4` for bottom sizes `b ≥ b_min`, with
    /// output `2^(L−1)(b−4) + 4` and halo `3·2^L − 4`.
    #[test]
    fn valid_sizes_follow_the_closed_form(levels in 1usize..=8, n in 1usize..4000) {
        let g = Geometry::new(levels, Padding::Valid).unwrap();
        let s = 1usize << (levels - 1);
        let legal = (n + 4) % s == 0 && (n + 4) / s >= 8 + b_min(levels);
        prop_assert_eq!(g.is_legal(n), legal, "n = {}", n);
        if legal {
            let b = (n + 4) / s - 8;
            let expected = s * (b + 4) + 4 - 8 * s;
            let (oh, ow) = g.output_size(n, n).unwrap();
            prop_assert_eq!((oh, ow), (expected, expected));
            prop_assert_eq!(n - oh, 2 * g.halo());
            prop_assert_eq!(g.halo(), 3 * (1 << levels) - 4);
        } else {
            prop_assert!(g.output_size(n, n).is_err());
        }
    }

    #[test]
    fn same_sizes_are_multiples_of_the_step(levels in 1usize..=8, n in 1usize..4000) {
        let g = Geometry::new(levels, Padding::Same).unwrap();
        let legal = n % (1 << (levels - 1)) == 0;
        prop_assert_eq!(g.is_legal(n), legal);
        if legal {
            prop_assert_eq!(g.output_size(n, n).unwrap(), (n, n));
        }
        prop_assert_eq!(g.halo(), 0);
    }

    #[test]
    fn next_and_prev_legal_bracket(levels in 1usize..=8, n in 1usize..5000, valid in any::<bool>()) {
        let g = Geometry::new(levels, if valid { Padding::Valid } else { Padding::Same }).unwrap();
        let next = g.next_legal(n).unwrap();
        prop_assert!(g.is_legal(next) && next >= n);
        prop_assert!((n.max(g.min_input())..next).all(|m| !g.is_legal(m)));
        match g.prev_legal(n) {
            Some(p) => {
                prop_assert!(g.is_legal(p) && p <= n);
                prop_assert!((p + 1..=n).all(|m| !g.is_legal(m)));
            }
            None => prop_assert!(n < g.min_input()),
        }
        prop_assert!((1..g.min_input()).all(|m| !g.is_legal(m)));
        let inp = g.input_for_output(n).unwrap();
        prop_assert!(g.output_size(inp, inp).unwrap().0 >= n);
    }

    #[test]
    fn sizes_are_consistent(levels in 1usize..=8, k in 0usize..60, valid in any::<bool>()) {
        let g = Geometry::new(levels, if valid { Padding::Valid } else { Padding::Same }).unwrap();
        let n = g.min_input() + k * g.step();
        let z = g.sizes(n).unwrap();
        for i in 0..levels - 1 {
            prop_assert_eq!(z.enc_in[i + 1] * 2, z.enc_out[i]);
            prop_assert_eq!(z.enc_out[i], z.up[i] + 2 * z.crop[i]);
            if valid {
                prop_assert_eq!(z.dec_out[i] + 4, z.up[i]);
            } else {
                prop_assert_eq!(z.crop[i], 0);
            }
        }
    }
}

#[test]
fn huge_sizes_are_refused_not_overflowed() {
    for levels in 1..=8 {
        for padding in [Padding::Valid, Padding::Same] {
            let g = Geometry::new(levels, padding).unwrap();
            // usize::MAX is odd, so it is legal only for one-level networks (no pooling).
            let legal = levels == 1;
            assert_eq!(g.output_size(usize::MAX, usize::MAX).is_ok(), legal);
            assert!(g.input_for_output(usize::MAX).is_none());
        }
    }
    assert!(Geometry::new(0, Padding::Valid).is_err());
    assert!(Geometry::new(9, Padding::Same).is_err());
}
