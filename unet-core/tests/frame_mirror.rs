//! Mirror extrapolation against numpy: `np.pad(a, p, mode="symmetric")` (edge repeated),
//! including pad widths larger than the array (repeated mirroring) and a 2-D asymmetric pad.
//! Fixture: tests/fixtures/frame/mirror.safetensors (tests/reference/make_frame_fixtures.py).
//! Exact integer comparison.

mod frame_support;

use frame_support::{fixture, tensor_f64};
use safetensors::SafeTensors;
use unet_core::mirror::symmetric_index;

#[test]
fn matches_np_pad_symmetric_1d() {
    let bytes = fixture("mirror.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut checked = 0;
    for name in st.names() {
        let Some(rest) = name.strip_prefix('n') else {
            continue;
        };
        let (n, p) = rest.split_once("_p").unwrap();
        let (n, p): (usize, usize) = (n.parse().unwrap(), p.parse().unwrap());
        let (shape, want) = tensor_f64(&st, name);
        assert_eq!(shape, [n + 2 * p]);
        for (i, &v) in want.iter().enumerate() {
            assert_eq!(
                symmetric_index(i as isize - p as isize, n),
                v as usize,
                "n={n} p={p} i={i}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 25, "fixture has {checked} 1-D cases");
}

#[test]
fn matches_np_pad_symmetric_2d() {
    let bytes = fixture("mirror.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, want) = tensor_f64(&st, "grid");
    // np.pad(arange(15).reshape(3, 5), ((7, 4), (2, 9)), mode="symmetric")
    assert_eq!(shape, [3 + 7 + 4, 5 + 2 + 9]);
    for y in 0..shape[0] {
        for x in 0..shape[1] {
            let (fy, fx) = (
                symmetric_index(y as isize - 7, 3),
                symmetric_index(x as isize - 2, 5),
            );
            assert_eq!((fy * 5 + fx) as f64, want[y * shape[1] + x], "({y}, {x})");
        }
    }
}
