//! Exact value histograms of u8/u16 frame channels, kept in the caller's f32 scratch, and the
//! order statistics read from them (for percentile normalisation).

/// Bins of a histogram of u8 samples.
pub const BINS_U8: usize = 256;
/// Bins of a histogram of u16 samples (`u32` counts: 256 KiB).
pub const BINS_U16: usize = 65536;

/// Views f32 scratch as `u32` counters (same size, same alignment, every bit pattern valid for
/// both types), so the histogram needs no buffer of its own type.
pub fn as_counts(scratch: &mut [f32]) -> &mut [u32] {
    let len = scratch.len();
    // SAFETY: `f32` and `u32` have the same size and alignment and every bit pattern is a
    // valid value of both, so the `len` elements behind `scratch` are `len` valid `u32`s; the
    // returned slice takes over the unique borrow of `scratch` for its whole lifetime.
    unsafe { core::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<u32>(), len) }
}

/// A counting histogram: `counts[v]` is how many samples equal `v`.
#[derive(Debug)]
pub struct Histogram<'s> {
    counts: &'s mut [u32],
    total: usize,
}

impl<'s> Histogram<'s> {
    /// An empty histogram over `counts` (zeroed here); `counts.len()` is the number of bins.
    pub fn new(counts: &'s mut [u32]) -> Self {
        counts.fill(0);
        Histogram { counts, total: 0 }
    }

    /// Counts one sample `v < bins` (larger values are ignored, callers never pass them).
    /// Totals must stay below `2^32` per bin: the frame planner caps frames at `u32::MAX`
    /// pixels.
    #[inline(always)]
    pub fn add(&mut self, v: usize) {
        if let Some(c) = self.counts.get_mut(v) {
            *c = c.wrapping_add(1);
            self.total += 1;
        }
    }

    /// Number of samples counted.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The `k`-th smallest sample (`k < total`), or the largest bin index if `k ≥ total`.
    pub fn kth(&self, k: usize) -> usize {
        let mut seen = 0usize;
        for (v, &c) in self.counts.iter().enumerate() {
            seen += c as usize;
            if seen > k {
                return v;
            }
        }
        self.counts.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics() {
        let mut s = [1.5f32; 8];
        let mut h = Histogram::new(as_counts(&mut s));
        for v in [3, 1, 3, 7, 0] {
            h.add(v);
        }
        h.add(100);
        assert_eq!(h.total(), 5);
        let got: [usize; 5] = core::array::from_fn(|k| h.kth(k));
        assert_eq!(got, [0, 1, 3, 3, 7]);
    }
}
