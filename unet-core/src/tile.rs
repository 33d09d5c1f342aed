//! Overlap-tile layout: how one axis of a frame is cut into network tiles.
//!
//! A tile of `input` pixels yields output pixels whose receptive field lies inside the tile for
//! a centred window of `usable = input − 2·margin` pixels ([`margin`]):
//! - **valid** models: the network output *is* that window (`margin` = halo `3·2^L − 4`);
//! - **same** models: the network output has `input` pixels, of which only the central
//!   `usable` ones are free of the tile's zero padding; the `margin = 7·2^(L−1) − 5` pixels on
//!   each side are computed and discarded. This is wider than the `3·2^L − 4` radius of
//!   [`Geometry::receptive_radius`]: a level-`i` pixel stands for a block of `2^i` input pixels,
//!   and for an output pixel that is not at the start of a pooling block the dependency cone
//!   reaches further (brute-forced in this module's tests for every depth).
//!
//! Tile `k` covers frame pixels `origin(k) .. origin(k) + usable` and reads input pixels from
//! `origin(k) − margin` on (beyond the frame: [`crate::mirror`]). Origins are multiples of
//! `step = 2^(L−1)`: a U-Net is translation-equivariant only for shifts by multiples of its
//! pooling factor, so aligned origins make every tile compute each pixel exactly as one large
//! tile anchored at the frame origin would. Regular tiles are `stride = ⌊usable / step⌋·step`
//! apart (they overlap by `usable − stride < step` pixels); the last tile is shifted inward to
//! the smallest aligned origin that still reaches the frame's end (so it overlaps its neighbour
//! more, and may compute up to `step − 1` pixels past the end, which are discarded) instead of
//! padding the output. Each frame pixel is written by exactly one tile: tile `k` owns
//! `origin(k) .. origin(k + 1)` (the last one owns up to the frame end).
//!
//! A frame no larger than `usable` is a single tile at origin 0 (no alignment constraint then).

use core::ops::Range;

use crate::arch::Padding;
use crate::error::Error;
use crate::geometry::Geometry;

/// Context pixels a tile needs on each side of the pixels it computes exactly: the halo
/// `3·2^L − 4` for valid models, `7·2^(L−1) − 5` for same models (see the module docs).
pub fn margin(geometry: &Geometry) -> usize {
    geometry.receptive_radius()
}

/// Tiling of one axis (height or width) of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisTiling {
    frame: usize,
    input: usize,
    margin: usize,
    out_shift: usize,
    stride: usize,
    count: usize,
    last_origin: usize,
}

impl AxisTiling {
    /// Lays out tiles of `input` pixels (a legal input size of `geometry`) over an axis of
    /// `frame` pixels. Errors: `frame == 0`, an illegal `input`, or a tile whose usable window is
    /// smaller than the pooling step while the frame needs several tiles.
    pub fn new(geometry: &Geometry, frame: usize, input: usize) -> Result<Self, Error> {
        let bad = |what| Error::TileSize {
            h: input,
            w: input,
            what,
        };
        if frame == 0 {
            return Err(Error::InvalidArgument {
                what: "frame sizes must be at least 1",
            });
        }
        if frame > isize::MAX as usize / 4 {
            return Err(Error::Overflow);
        }
        geometry.sizes(input).map_err(bad)?;
        let margin = margin(geometry);
        let usable = input
            .checked_sub(2 * margin)
            .filter(|&u| u >= 1)
            .ok_or(bad("tile leaves no pixel free of its zero-padded border"))?;
        let out_shift = match geometry.padding() {
            Padding::Valid => 0,
            Padding::Same => margin,
        };
        let step = geometry.step();
        if frame <= usable {
            return Ok(AxisTiling {
                frame,
                input,
                margin,
                out_shift,
                stride: usable,
                count: 1,
                last_origin: 0,
            });
        }
        let stride = usable / step * step;
        if stride == 0 {
            return Err(bad(
                "tile output smaller than 2^(levels-1): cannot tile a larger frame",
            ));
        }
        let rest = frame - usable;
        let count = 1 + rest.div_ceil(stride);
        let last_origin = rest.div_ceil(step) * step;
        Ok(AxisTiling {
            frame,
            input,
            margin,
            out_shift,
            stride,
            count,
            last_origin,
        })
    }

    /// The smallest legal tile input whose usable window covers `frame` pixels in one tile, or
    /// `None` on overflow.
    pub fn covering_input(geometry: &Geometry, frame: usize) -> Option<usize> {
        let need = frame.max(1).checked_add(2 * margin(geometry))?;
        geometry.next_legal(need)
    }

    /// Frame size along this axis.
    pub fn frame(&self) -> usize {
        self.frame
    }

    /// Tile input size along this axis.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Context pixels read on each side of a tile's usable window.
    pub fn margin(&self) -> usize {
        self.margin
    }

    /// Pixels a tile's usable window spans: `input − 2·margin`.
    pub fn usable(&self) -> usize {
        self.input - 2 * self.margin
    }

    /// Distance between regular tile origins (a multiple of the pooling step, or the usable
    /// size for a single tile).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Number of tiles along the axis (≥ 1).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Frame coordinate of the first usable pixel of tile `k` (`k < count`).
    pub fn origin(&self, k: usize) -> usize {
        if k + 1 >= self.count {
            self.last_origin
        } else {
            k * self.stride
        }
    }

    /// Frame pixels tile `k` writes; the ranges of all tiles are disjoint and cover
    /// `0..frame`.
    pub fn owned(&self, k: usize) -> Range<usize> {
        let end = if k + 1 >= self.count {
            self.frame
        } else {
            self.origin(k + 1)
        };
        self.origin(k)..end
    }

    /// Frame coordinate (negative or past the end where mirrored) of tile `k`'s first input
    /// pixel: `origin(k) − margin`.
    pub fn input_start(&self, k: usize) -> isize {
        self.origin(k) as isize - self.margin as isize
    }

    /// Index, in the network output of tile `k`, of frame pixel `p` (which must lie in
    /// `owned(k)`).
    pub fn output_index(&self, k: usize, p: usize) -> usize {
        p - self.origin(k) + self.out_shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input interval `(lo, hi)` that output pixel `y` of a same-padded `levels`-level U-Net
    /// depends on, following every layer (3×3 conv: ±1 at its level; 2×2 pool: pixel `j` reads
    /// `2j, 2j+1`; 2×2 up-conv: pixel `p` reads `⌊p/2⌋`).
    fn same_cone(levels: usize, y: i64) -> (i64, i64) {
        fn enc(i: usize, lo: i64, hi: i64) -> (i64, i64) {
            let (lo, hi) = (lo - 2, hi + 2);
            if i == 0 {
                (lo, hi)
            } else {
                enc(i - 1, 2 * lo, 2 * hi + 1)
            }
        }
        fn dec(l: usize, i: usize, lo: i64, hi: i64) -> (i64, i64) {
            let (lo, hi) = (lo - 2, hi + 2);
            let a = enc(i, lo, hi);
            let (lo2, hi2) = (lo.div_euclid(2), hi.div_euclid(2));
            let b = if i + 2 == l {
                enc(l - 1, lo2, hi2)
            } else {
                dec(l, i + 1, lo2, hi2)
            };
            (a.0.min(b.0), a.1.max(b.1))
        }
        if levels == 1 {
            enc(0, y, y)
        } else {
            dec(levels, 0, y, y)
        }
    }

    #[test]
    fn same_margin_is_the_dependency_cone() {
        for l in 1..=8 {
            let g = Geometry::new(l, Padding::Same).unwrap();
            let reach = (0..g.step() as i64)
                .map(|y| {
                    let (lo, hi) = same_cone(l, y);
                    (y - lo).max(hi - y)
                })
                .max()
                .unwrap();
            assert_eq!(margin(&g) as i64, reach, "levels {l}");
        }
    }

    #[test]
    fn paper_axis() {
        let g = Geometry::new(5, Padding::Valid).unwrap();
        let a = AxisTiling::new(&g, 2048, 572).unwrap();
        assert_eq!((a.usable(), a.stride(), a.count()), (388, 384, 6));
        assert_eq!(a.origin(4), 1536);
        assert_eq!(a.origin(5), 1664); // ⌈(2048 − 388) / 16⌉·16
        assert_eq!(a.owned(5), 1664..2048);
        assert_eq!(a.input_start(0), -92);
    }
}
