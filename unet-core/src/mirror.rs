//! Mirror extrapolation of a frame beyond its borders (the paper's overlap-tile strategy fills
//! the missing context of border tiles by mirroring the image).
//!
//! The mirror is numpy's `np.pad(a, w, mode="symmetric")`: the edge pixel **is repeated**
//! (`… 2 1 0 | 0 1 2 … n−1 | n−1 n−2 …`). Repeated for any distance, this is the periodic
//! extension, with period `2n`, of the image followed by its mirror image, so it is defined for
//! every size `n ≥ 1` (a 1-pixel image extends to a constant) and for context wider than the
//! image itself — exactly what `np.pad(..., mode="symmetric")` gives for pad widths larger than
//! the array (checked against a committed numpy fixture in `tests/frame_mirror.rs`).
//!
//! 'symmetric' rather than 'reflect' (edge not repeated, period `2n − 2`) because it is defined
//! for `n = 1` and treats both borders of a pixel grid alike.

/// Index into `0..n` of position `i` (any integer) of the symmetric extension of an axis of
/// length `n`. Returns 0 when `n == 0` (no pixels; callers never ask).
///
/// `n` must be at most `isize::MAX / 2` (frame sizes are checked against this by the planner).
#[inline]
pub fn symmetric_index(i: isize, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    if i >= 0 && (i as usize) < n {
        return i as usize;
    }
    let period = (2 * n) as isize;
    let m = i.rem_euclid(period) as usize;
    if m < n {
        m
    } else {
        2 * n - 1 - m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_axes() {
        // np.pad(np.arange(3), 7, mode="symmetric")
        let want = [0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2];
        let got: [usize; 17] = core::array::from_fn(|k| symmetric_index(k as isize - 7, 3));
        assert_eq!(got, want);
        for i in -5..5 {
            assert_eq!(symmetric_index(i, 1), 0);
        }
        assert_eq!(
            symmetric_index(isize::MIN, 5),
            symmetric_index(isize::MIN % 10 + 10, 5)
        );
    }
}
