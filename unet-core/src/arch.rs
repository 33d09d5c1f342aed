//! The architecture: which parameter tensors a U-Net of a given [`Config`] has, their PyTorch
//! state-dict names and their shapes. The single place that knows the network's wiring.
//!
//! Network (levels `L`, base channels `B`, `c_i = B·2^i`):
//! - encoder level `i` in `0..L`: `enc.{i}.conv1` (3×3, in → `c_i`), ReLU, `enc.{i}.conv2`
//!   (3×3, `c_i` → `c_i`), ReLU; levels `0..L-1` are followed by a 2×2 max-pool; level `L-1` is
//!   the bottom.
//! - decoder level `i` in `(0..L-1).rev()`: `up.{i}` (2×2 stride-2 transposed conv,
//!   `c_{i+1}` → `c_i`), concatenation `[crop(skip_i), up]` (skip first, `2·c_i` channels),
//!   `dec.{i}.conv1` (3×3, `2c_i` → `c_i`), ReLU, `dec.{i}.conv2` (3×3), ReLU.
//! - `head`: 1×1 conv `c_0` → `num_classes`, giving logits.
//!
//! Shapes follow PyTorch: conv weight `[C_out, C_in, k, k]`, transposed conv weight
//! `[C_in, C_out, 2, 2]`, bias `[C_out]`.

use core::fmt;

use crate::error::{Error, Shape};

/// Most levels (resolution steps, counting the bottom) a model may have.
pub const MAX_LEVELS: usize = 8;

/// Most parameter tensors a model can have: `10·MAX_LEVELS − 4`.
pub const MAX_PARAMS: usize = 10 * MAX_LEVELS - 4;

/// Convolution padding mode of every 3×3 convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// No padding, as in the paper: every 3×3 conv loses one pixel on each side.
    Valid,
    /// Zero padding of one pixel: output size equals input size.
    Same,
}

impl Padding {
    /// The metadata spelling: `"valid"` or `"same"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        }
    }
}

/// The hyper-parameters that fix a U-Net's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Input channels (1 for a gray-scale microscope frame).
    pub in_channels: usize,
    /// Output classes (logit channels).
    pub num_classes: usize,
    /// Channels of level 0; level `i` has `base_channels << i`.
    pub base_channels: usize,
    /// Resolution levels including the bottom, `1..=MAX_LEVELS` (the paper's network has 5).
    pub levels: usize,
    /// Padding of the 3×3 convolutions.
    pub padding: Padding,
}

impl Config {
    /// Checks the ranges (all counts ≥ 1, levels ≤ [`MAX_LEVELS`], channel counts and weight
    /// sizes representable) so that every later size computation on this config is safe.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |key, what| Err(Error::BadMetadata { key, what });
        if self.in_channels == 0 || self.in_channels > 1 << 16 {
            return bad("in_channels", "expected an integer in 1..=65536");
        }
        if self.num_classes == 0 || self.num_classes > 1 << 16 {
            return bad("num_classes", "expected an integer in 1..=65536");
        }
        if self.levels == 0 || self.levels > MAX_LEVELS {
            return bad("levels", "expected an integer in 1..=8");
        }
        if self.base_channels == 0 || self.base_channels > 1 << 16 {
            return bad("base_channels", "expected an integer in 1..=65536");
        }
        // Widest weight: dec conv1 / enc conv2 of the bottom, c·2c·9 elements; keep it far from
        // overflow so every later product on channel counts is safe.
        let top = self.channels(self.levels - 1).ok_or(Error::Overflow)?;
        top.checked_mul(top)
            .and_then(|v| v.checked_mul(18))
            .filter(|&v| v <= isize::MAX as usize / 8)
            .ok_or(Error::BadMetadata {
                key: "base_channels",
                what: "network too wide",
            })?;
        Ok(())
    }

    /// Channels of level `i` (`base_channels << i`), `None` on overflow.
    pub fn channels(&self, level: usize) -> Option<usize> {
        self.base_channels
            .checked_mul(1usize.checked_shl(level as u32)?)
    }

    /// Number of parameter tensors: `10·levels − 4`.
    pub fn param_count(&self) -> usize {
        10 * self.levels - 4
    }

    /// The `k`-th parameter in file order (`0..param_count()`): for each encoder level conv1
    /// weight/bias, conv2 weight/bias; then for each decoder level `i` (0 first) up weight/bias,
    /// conv1 weight/bias, conv2 weight/bias; then head weight/bias.
    pub fn param(&self, k: usize) -> Option<ParamId> {
        let l = self.levels;
        let enc = 4 * l;
        if k < enc {
            let (level, r) = (k / 4, k % 4);
            return Some(ParamId::Enc {
                level: level as u8,
                conv: 1 + (r / 2) as u8,
                bias: r % 2 == 1,
            });
        }
        let k = k - enc;
        let dec = 6 * (l - 1);
        if k < dec {
            let (level, r) = ((k / 6) as u8, k % 6);
            return Some(match r {
                0 | 1 => ParamId::Up {
                    level,
                    bias: r == 1,
                },
                _ => ParamId::Dec {
                    level,
                    conv: 1 + ((r - 2) / 2) as u8,
                    bias: r % 2 == 1,
                },
            });
        }
        match k - dec {
            0 => Some(ParamId::Head { bias: false }),
            1 => Some(ParamId::Head { bias: true }),
            _ => None,
        }
    }

    /// Index of `p` in [`Config::param`] order, `None` if `p` is not part of this config.
    pub fn param_index(&self, p: ParamId) -> Option<usize> {
        let l = self.levels;
        let b = |x: bool| x as usize;
        match p {
            ParamId::Enc { level, conv, bias }
                if (level as usize) < l && (1..=2).contains(&conv) =>
            {
                Some(4 * level as usize + 2 * (conv as usize - 1) + b(bias))
            }
            ParamId::Up { level, bias } if (level as usize) + 1 < l => {
                Some(4 * l + 6 * level as usize + b(bias))
            }
            ParamId::Dec { level, conv, bias }
                if (level as usize) + 1 < l && (1..=2).contains(&conv) =>
            {
                Some(4 * l + 6 * level as usize + 2 + 2 * (conv as usize - 1) + b(bias))
            }
            ParamId::Head { bias } => Some(4 * l + 6 * (l - 1) + b(bias)),
            _ => None,
        }
    }

    /// Shape the architecture requires for `p`; `None` if `p` is not part of this config or a
    /// size overflows (impossible after [`Config::validate`]).
    pub fn param_shape(&self, p: ParamId) -> Option<Shape> {
        self.param_index(p)?;
        let c = |i: usize| self.channels(i);
        let dims: [usize; 4] = match p {
            ParamId::Enc { level, conv, bias } => {
                let i = level as usize;
                let cin = if conv == 2 {
                    c(i)?
                } else if i == 0 {
                    self.in_channels
                } else {
                    c(i - 1)?
                };
                if bias {
                    return Shape::new(&[c(i)?]);
                }
                [c(i)?, cin, 3, 3]
            }
            ParamId::Up { level, bias } => {
                let i = level as usize;
                if bias {
                    return Shape::new(&[c(i)?]);
                }
                [c(i + 1)?, c(i)?, 2, 2]
            }
            ParamId::Dec { level, conv, bias } => {
                let i = level as usize;
                let cin = if conv == 1 {
                    c(i)?.checked_mul(2)?
                } else {
                    c(i)?
                };
                if bias {
                    return Shape::new(&[c(i)?]);
                }
                [c(i)?, cin, 3, 3]
            }
            ParamId::Head { bias } => {
                if bias {
                    return Shape::new(&[self.num_classes]);
                }
                [self.num_classes, c(0)?, 1, 1]
            }
        };
        Shape::new(&dims)
    }

    /// Total number of weights and biases.
    pub fn param_numel(&self) -> Option<usize> {
        (0..self.param_count()).try_fold(0usize, |acc, k| {
            acc.checked_add(self.param_shape(self.param(k)?)?.numel()?)
        })
    }
}

/// Names one parameter tensor. `Display` gives the PyTorch state-dict name, e.g.
/// `enc.0.conv1.weight`, `up.2.bias`, `dec.1.conv2.weight`, `head.bias`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamId {
    /// Encoder level `level`, 3×3 conv `conv` (1 or 2).
    Enc {
        /// Level, 0 = full resolution.
        level: u8,
        /// 1 or 2.
        conv: u8,
        /// Bias (true) or weight (false).
        bias: bool,
    },
    /// The transposed conv that brings level `level + 1` up to level `level`.
    Up {
        /// Target level.
        level: u8,
        /// Bias (true) or weight (false).
        bias: bool,
    },
    /// Decoder level `level`, 3×3 conv `conv` (1 or 2).
    Dec {
        /// Level.
        level: u8,
        /// 1 or 2.
        conv: u8,
        /// Bias (true) or weight (false).
        bias: bool,
    },
    /// The 1×1 classification head.
    Head {
        /// Bias (true) or weight (false).
        bias: bool,
    },
}

impl ParamId {
    /// Writes the state-dict name into `buf` and returns its length (names are ≤ 24 bytes).
    pub fn write_name(&self, buf: &mut [u8; 32]) -> usize {
        struct W<'b> {
            buf: &'b mut [u8; 32],
            len: usize,
        }
        impl fmt::Write for W<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let end = self.len + s.len();
                if end > self.buf.len() {
                    return Err(fmt::Error);
                }
                self.buf[self.len..end].copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
        }
        let mut w = W { buf, len: 0 };
        // Cannot fail: the longest name, "dec.7.conv2.weight", is 18 bytes.
        let _ = fmt::write(&mut w, format_args!("{self}"));
        w.len
    }

    /// True if `name` is this parameter's state-dict name.
    pub fn is_named(&self, name: &[u8]) -> bool {
        let mut buf = [0u8; 32];
        let n = self.write_name(&mut buf);
        &buf[..n] == name
    }
}

impl fmt::Display for ParamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wb = |b: bool| if b { "bias" } else { "weight" };
        match *self {
            ParamId::Enc { level, conv, bias } => write!(f, "enc.{level}.conv{conv}.{}", wb(bias)),
            ParamId::Up { level, bias } => write!(f, "up.{level}.{}", wb(bias)),
            ParamId::Dec { level, conv, bias } => write!(f, "dec.{level}.conv{conv}.{}", wb(bias)),
            ParamId::Head { bias } => write!(f, "head.{}", wb(bias)),
        }
    }
}
