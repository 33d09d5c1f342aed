//! Tile geometry: which input sizes a U-Net accepts, the size of every intermediate feature map,
//! the output size and the halo. The one source of truth for sizes; everything else calls it.
//!
//! Sizes are per spatial dimension (height and width are independent). For `L` levels:
//! - **valid** (the paper): each 3×3 conv loses 1 px per side, each 2×2 pool halves an even
//!   size, each up-conv doubles. A legal input is `n = 2^(L−1)·(b + 8) − 4` with the bottom
//!   feature map `b ≥ b_min` (4 for `L ≥ 3`); the output is `n − (6·2^L − 8)`, so the halo lost on
//!   each side is `3·2^L − 4` (92 px for the paper's 5 levels: 572 → 388).
//! - **same**: every conv keeps the size; a legal input is a positive multiple of `2^(L−1)`;
//!   output = input. An output pixel's receptive field reaches `7·2^(L−1) − 5` px: further than
//!   the valid halo, because a pixel's position inside each 2×2 pooling block shifts the window
//!   (derived by brute force in `tile.rs`'s tests).

use crate::arch::{Padding, MAX_LEVELS};
use crate::error::Error;

/// Geometry of a network: number of levels and padding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    levels: usize,
    padding: Padding,
}

/// Sizes along one dimension of every feature map for one legal input size.
///
/// Index `i` is the level (0 = full resolution). Decoder arrays are meaningful for
/// `i < levels − 1` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    /// Number of levels.
    pub levels: usize,
    /// Input size of the network.
    pub input: usize,
    /// Size entering encoder level `i` (the input for level 0, the pooled map otherwise).
    pub enc_in: [usize; MAX_LEVELS],
    /// Size after the first 3×3 conv of encoder level `i`.
    pub enc_mid: [usize; MAX_LEVELS],
    /// Size after the second conv of encoder level `i` (the skip connection; for the bottom
    /// level, the input of the first up-conv).
    pub enc_out: [usize; MAX_LEVELS],
    /// Size of the up-conv output arriving at decoder level `i` (= `2 · dec_out[i+1]`, or
    /// `2 · enc_out[L−1]` for the deepest decoder level).
    pub up: [usize; MAX_LEVELS],
    /// Offset of the centre crop of the skip `enc_out[i]` to `up[i]`: `(enc_out[i] − up[i]) / 2`.
    pub crop: [usize; MAX_LEVELS],
    /// Size after the first conv of decoder level `i`.
    pub dec_mid: [usize; MAX_LEVELS],
    /// Size after the second conv of decoder level `i`.
    pub dec_out: [usize; MAX_LEVELS],
    /// Output size of the network.
    pub output: usize,
}

impl Geometry {
    /// A geometry; `levels` must be in `1..=MAX_LEVELS`.
    pub fn new(levels: usize, padding: Padding) -> Result<Self, Error> {
        if levels == 0 || levels > MAX_LEVELS {
            return Err(Error::InvalidArgument {
                what: "levels must be in 1..=8",
            });
        }
        Ok(Geometry { levels, padding })
    }

    /// Number of levels.
    pub fn levels(&self) -> usize {
        self.levels
    }

    /// Padding mode.
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// Distance between consecutive legal input sizes: `2^(L−1)`.
    pub fn step(&self) -> usize {
        1 << (self.levels - 1)
    }

    /// Pixels lost on each side between input and output: `3·2^L − 4` for valid, 0 for same.
    pub fn halo(&self) -> usize {
        match self.padding {
            Padding::Valid => 3 * (1 << self.levels) - 4,
            Padding::Same => 0,
        }
    }

    /// Input pixels on each side of an output pixel that can influence it: the halo `3·2^L − 4`
    /// for valid models, `7·2^(L−1) − 5` for same models (see the module docs). Overlap-tiling
    /// uses it as the context margin.
    pub fn receptive_radius(&self) -> usize {
        match self.padding {
            Padding::Valid => self.halo(),
            Padding::Same => 7 * (1 << (self.levels - 1)) - 5,
        }
    }

    /// Every feature-map size for input size `n` along one dimension, or the reason `n` is not
    /// legal.
    pub fn sizes(&self, n: usize) -> Result<Sizes, &'static str> {
        let l = self.levels;
        let conv_loss = match self.padding {
            Padding::Valid => 2,
            Padding::Same => 0,
        };
        let conv = |s: usize| -> Result<usize, &'static str> {
            match s.checked_sub(conv_loss) {
                Some(v) if v >= 1 => Ok(v),
                _ => Err("too small: a feature map would be empty"),
            }
        };
        if n == 0 {
            return Err("size must be at least 1");
        }
        let mut z = Sizes {
            levels: l,
            input: n,
            ..Sizes::default()
        };
        let mut s = n;
        for i in 0..l {
            z.enc_in[i] = s;
            z.enc_mid[i] = conv(s)?;
            z.enc_out[i] = conv(z.enc_mid[i])?;
            s = z.enc_out[i];
            if i + 1 < l {
                if !s.is_multiple_of(2) {
                    return Err("a 2x2 max-pool would see an odd size");
                }
                s /= 2;
            }
        }
        for i in (0..l.saturating_sub(1)).rev() {
            let up = s.checked_mul(2).ok_or("too large")?;
            let skip = z.enc_out[i];
            if up > skip || !(skip - up).is_multiple_of(2) {
                return Err("skip connection cannot be centre-cropped");
            }
            z.up[i] = up;
            z.crop[i] = (skip - up) / 2;
            z.dec_mid[i] = conv(up)?;
            z.dec_out[i] = conv(z.dec_mid[i])?;
            s = z.dec_out[i];
        }
        z.output = s;
        Ok(z)
    }

    /// Output size for input size `n`, or [`Error::TileSize`].
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize), Error> {
        let oh = self
            .sizes(h)
            .map_err(|what| Error::TileSize { h, w, what })?
            .output;
        let ow = self
            .sizes(w)
            .map_err(|what| Error::TileSize { h, w, what })?
            .output;
        Ok((oh, ow))
    }

    /// True if `n` is a legal input size along one dimension.
    pub fn is_legal(&self, n: usize) -> bool {
        self.sizes(n).is_ok()
    }

    /// The smallest legal input size.
    pub fn min_input(&self) -> usize {
        // Legal sizes are `step·k + r` for a fixed residue r; the smallest is below 16·step.
        (1..=16 * self.step())
            .find(|&n| self.is_legal(n))
            .unwrap_or(usize::MAX)
    }

    /// The smallest legal input size `≥ n`, or `None` on overflow.
    pub fn next_legal(&self, n: usize) -> Option<usize> {
        let start = n.max(self.min_input());
        (start..start.checked_add(self.step())?).find(|&m| self.is_legal(m))
    }

    /// The largest legal input size `≤ n`, or `None` if `n` is below [`Geometry::min_input`].
    pub fn prev_legal(&self, n: usize) -> Option<usize> {
        let lo = self.min_input();
        if n < lo {
            return None;
        }
        (n.saturating_sub(self.step() - 1).max(lo)..=n)
            .rev()
            .find(|&m| self.is_legal(m))
    }

    /// The smallest legal input whose output is at least `out` pixels, or `None` on overflow.
    pub fn input_for_output(&self, out: usize) -> Option<usize> {
        let n = out.checked_add(2 * self.halo())?;
        self.next_legal(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_tile() {
        let g = Geometry::new(5, Padding::Valid).unwrap();
        let z = g.sizes(572).unwrap();
        assert_eq!(z.output, 388);
        assert_eq!(g.halo(), 92);
        assert_eq!(z.enc_out[4], 28);
        assert_eq!(&z.enc_out[..5], &[568, 280, 136, 64, 28]);
        assert_eq!(&z.up[..4], &[392, 200, 104, 56]);
        assert_eq!(&z.crop[..4], &[88, 40, 16, 4]);
        assert!(g.sizes(571).is_err() && g.sizes(573).is_err());
        assert_eq!(g.min_input(), 16 * 4 + 124);
        assert_eq!(g.next_legal(573), Some(588));
        assert_eq!(g.prev_legal(587), Some(572));
        assert_eq!(g.input_for_output(388), Some(572));
    }

    #[test]
    fn same_tile() {
        let g = Geometry::new(4, Padding::Same).unwrap();
        assert_eq!(g.output_size(64, 72).unwrap(), (64, 72));
        assert!(g.output_size(60, 64).is_err());
        assert_eq!(g.min_input(), 8);
        assert_eq!(g.halo(), 0);
    }

    #[test]
    fn one_level() {
        let g = Geometry::new(1, Padding::Valid).unwrap();
        assert_eq!(g.min_input(), 5);
        assert_eq!(g.output_size(5, 9).unwrap(), (1, 5));
        assert_eq!(g.halo(), 2);
    }
}
