//! Overlap-tile layout invariants for every depth and padding, random frame and tile sizes:
//! owned ranges partition the frame, origins are aligned to 2^(levels−1), every owned pixel is
//! inside the part of its tile that is computed exactly, the last tile is shifted inward.

use proptest::prelude::*;
use unet_core::tile::{margin, AxisTiling};
use unet_core::{Geometry, Padding};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn layout_invariants(levels in 1usize..=6, same in any::<bool>(), frame in 1usize..5000, extra in 0usize..40) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let g = Geometry::new(levels, padding).unwrap();
        let m = margin(&g);
        let input = g.next_legal(2 * m + g.step() + extra * g.step()).unwrap();
        let a = AxisTiling::new(&g, frame, input).unwrap();
        let (oh, _) = g.output_size(input, input).unwrap();
        prop_assert_eq!(a.usable(), input - 2 * m);
        let mut next = 0;
        for k in 0..a.count() {
            let r = a.owned(k);
            prop_assert_eq!(r.start, next);
            prop_assert!(!r.is_empty());
            next = r.end;
            prop_assert_eq!(a.origin(k), r.start);
            if a.count() > 1 {
                prop_assert_eq!(a.origin(k) % g.step(), 0);
            }
            prop_assert_eq!(a.input_start(k), a.origin(k) as isize - m as isize);
            // Owned pixels lie in the usable window, which lies in the network output.
            prop_assert!(r.end <= a.origin(k) + a.usable());
            prop_assert!(a.output_index(k, r.end - 1) < oh);
            let first = a.output_index(k, r.start);
            match padding {
                Padding::Valid => prop_assert_eq!(first, 0),
                Padding::Same => prop_assert_eq!(first, m),
            }
        }
        prop_assert_eq!(next, frame);
        let last = a.count() - 1;
        if a.count() > 1 {
            // Shifted inward: reaches the end, aligned, overlaps (or abuts) its neighbour.
            prop_assert!(a.origin(last) + a.usable() >= frame);
            prop_assert!(a.origin(last) + a.usable() < frame + g.step());
            prop_assert!(a.origin(last) <= last * a.stride());
            // Fewest tiles for the stride.
            prop_assert!((a.count() - 2) * a.stride() + a.usable() < frame);
        } else {
            prop_assert!(frame <= a.usable());
        }
    }

    #[test]
    fn covering_input_is_the_smallest_single_tile(levels in 1usize..=6, same in any::<bool>(), frame in 1usize..3000) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let g = Geometry::new(levels, padding).unwrap();
        let n = AxisTiling::covering_input(&g, frame).unwrap();
        prop_assert_eq!(AxisTiling::new(&g, frame, n).unwrap().count(), 1);
        if let Some(p) = g.prev_legal(n - 1) {
            if let Ok(a) = AxisTiling::new(&g, frame, p) {
                prop_assert!(a.count() > 1);
            }
        }
    }
}

#[test]
fn bad_layouts_are_errors() {
    let g = Geometry::new(3, Padding::Valid).unwrap();
    assert!(AxisTiling::new(&g, 0, 44).is_err());
    assert!(AxisTiling::new(&g, 10, 45).is_err());
    assert!(AxisTiling::new(&g, usize::MAX, 44).is_err());
    let s = Geometry::new(3, Padding::Same).unwrap();
    // 48 is a legal same size but its usable window (48 − 2·23 = 2) is below the step 4.
    assert!(AxisTiling::new(&s, 2, 48).is_ok());
    assert!(AxisTiling::new(&s, 3, 48).is_err());
    assert!(AxisTiling::new(&s, 100, 40).is_err()); // no usable pixel at all
}
