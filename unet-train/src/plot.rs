//! Training-curve charts as PNG, in pure Rust: no plotting library, no system fonts.
//!
//! [`render_panels`] draws [`Panel`]s stacked vertically into an RGB buffer; each panel has a
//! frame, round-numbered ticks ([`nice_ticks`]; decades on a log axis) with numeric labels, a
//! grid, axis titles, a title and a legend. Text uses a built-in 5×7 bitmap font (ASCII 32–126,
//! other characters print as `?`), scaled ×2 when the panel is large enough. [`write_png`] writes
//! the picture atomically; [`read_log_csv`] and [`curves_from_log`] turn the CSV log written by
//! [`crate::train::run`] into panels.

use std::path::Path;

use crate::error::{Result, TrainError};

/// Largest accepted image width or height in pixels.
pub const MAX_SIDE: u32 = 8192;

/// One curve: `points` are `(x, y)` = (step, value). Points with a non-finite coordinate (or
/// `y ≤ 0` on a log axis) are skipped and break the line; an isolated point is drawn as a dot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(step, value)` pairs, drawn in this order.
    pub points: Vec<(f64, f64)>,
}

/// One chart: its series share the axes. The x axis is titled `step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title above the plot area.
    pub title: String,
    /// Y axis title (drawn vertically, reading upwards).
    pub y_label: String,
    /// Logarithmic y axis (base 10, decade ticks).
    pub log_y: bool,
    /// Fixed y range `(lo, hi)`; `None` (or an unusable range: not finite, `lo ≥ hi`, or
    /// `lo ≤ 0` on a log axis) fits the range to the data. Points outside are clipped.
    pub y_range: Option<(f64, f64)>,
    /// The curves, coloured in order from a fixed 10-colour palette.
    pub series: Vec<Series>,
}

/// An 8-bit RGB picture, rows top to bottom, `3 * width * height` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major `[height][width][3]` bytes (R, G, B).
    pub data: Vec<u8>,
}

impl RgbImage {
    /// The colour at `(x, y)` (x to the right, y down), `None` outside the picture.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }
}

/// Series colours, in order (the "tab10" palette).
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const TEXT: [u8; 3] = [30, 30, 30];
const GRID: [u8; 3] = [228, 228, 228];
const LEGEND_FRAME: [u8; 3] = [160, 160, 160];

/// 5×7 glyphs for ASCII 32..=126, one byte per column (left to right), bit `r` = row `r`
/// (row 0 at the top), after the classic public-domain "font5x7" layout; `g j p q y` use
/// row 7 as a descender.
const FONT: [[u8; 5]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x00, 0x00, 0x5F, 0x00, 0x00], // !
    [0x00, 0x07, 0x00, 0x07, 0x00], // "
    [0x14, 0x7F, 0x14, 0x7F, 0x14], // #
    [0x24, 0x2A, 0x7F, 0x2A, 0x12], // $
    [0x23, 0x13, 0x08, 0x64, 0x62], // %
    [0x36, 0x49, 0x55, 0x22, 0x50], // &
    [0x00, 0x05, 0x03, 0x00, 0x00], // '
    [0x00, 0x1C, 0x22, 0x41, 0x00], // (
    [0x00, 0x41, 0x22, 0x1C, 0x00], // )
    [0x08, 0x2A, 0x1C, 0x2A, 0x08], // *
    [0x08, 0x08, 0x3E, 0x08, 0x08], // +
    [0x00, 0x50, 0x30, 0x00, 0x00], // ,
    [0x08, 0x08, 0x08, 0x08, 0x08], // -
    [0x00, 0x60, 0x60, 0x00, 0x00], // .
    [0x20, 0x10, 0x08, 0x04, 0x02], // /
    [0x3E, 0x51, 0x49, 0x45, 0x3E], // 0
    [0x00, 0x42, 0x7F, 0x40, 0x00], // 1
    [0x42, 0x61, 0x51, 0x49, 0x46], // 2
    [0x21, 0x41, 0x45, 0x4B, 0x31], // 3
    [0x18, 0x14, 0x12, 0x7F, 0x10], // 4
    [0x27, 0x45, 0x45, 0x45, 0x39], // 5
    [0x3C, 0x4A, 0x49, 0x49, 0x30], // 6
    [0x01, 0x71, 0x09, 0x05, 0x03], // 7
    [0x36, 0x49, 0x49, 0x49, 0x36], // 8
    [0x06, 0x49, 0x49, 0x29, 0x1E], // 9
    [0x00, 0x36, 0x36, 0x00, 0x00], // :
    [0x00, 0x56, 0x36, 0x00, 0x00], // ;
    [0x08, 0x14, 0x22, 0x41, 0x00], // <
    [0x14, 0x14, 0x14, 0x14, 0x14], // =
    [0x00, 0x41, 0x22, 0x14, 0x08], // >
    [0x02, 0x01, 0x51, 0x09, 0x06], // ?
    [0x32, 0x49, 0x79, 0x41, 0x3E], // @
    [0x7E, 0x11, 0x11, 0x11, 0x7E], // A
    [0x7F, 0x49, 0x49, 0x49, 0x36], // B
    [0x3E, 0x41, 0x41, 0x41, 0x22], // C
    [0x7F, 0x41, 0x41, 0x22, 0x1C], // D
    [0x7F, 0x49, 0x49, 0x49, 0x41], // E
    [0x7F, 0x09, 0x09, 0x09, 0x01], // F
    [0x3E, 0x41, 0x49, 0x49, 0x7A], // G
    [0x7F, 0x08, 0x08, 0x08, 0x7F], // H
    [0x00, 0x41, 0x7F, 0x41, 0x00], // I
    [0x20, 0x40, 0x41, 0x3F, 0x01], // J
    [0x7F, 0x08, 0x14, 0x22, 0x41], // K
    [0x7F, 0x40, 0x40, 0x40, 0x40], // L
    [0x7F, 0x02, 0x0C, 0x02, 0x7F], // M
    [0x7F, 0x04, 0x08, 0x10, 0x7F], // N
    [0x3E, 0x41, 0x41, 0x41, 0x3E], // O
    [0x7F, 0x09, 0x09, 0x09, 0x06], // P
    [0x3E, 0x41, 0x51, 0x21, 0x5E], // Q
    [0x7F, 0x09, 0x19, 0x29, 0x46], // R
    [0x46, 0x49, 0x49, 0x49, 0x31], // S
    [0x01, 0x01, 0x7F, 0x01, 0x01], // T
    [0x3F, 0x40, 0x40, 0x40, 0x3F], // U
    [0x1F, 0x20, 0x40, 0x20, 0x1F], // V
    [0x3F, 0x40, 0x38, 0x40, 0x3F], // W
    [0x63, 0x14, 0x08, 0x14, 0x63], // X
    [0x07, 0x08, 0x70, 0x08, 0x07], // Y
    [0x61, 0x51, 0x49, 0x45, 0x43], // Z
    [0x00, 0x7F, 0x41, 0x41, 0x00], // [
    [0x02, 0x04, 0x08, 0x10, 0x20], // backslash
    [0x00, 0x41, 0x41, 0x7F, 0x00], // ]
    [0x04, 0x02, 0x01, 0x02, 0x04], // ^
    [0x40, 0x40, 0x40, 0x40, 0x40], // _
    [0x00, 0x01, 0x02, 0x04, 0x00], // `
    [0x20, 0x54, 0x54, 0x54, 0x78], // a
    [0x7F, 0x48, 0x44, 0x44, 0x38], // b
    [0x38, 0x44, 0x44, 0x44, 0x20], // c
    [0x38, 0x44, 0x44, 0x48, 0x7F], // d
    [0x38, 0x54, 0x54, 0x54, 0x18], // e
    [0x08, 0x7E, 0x09, 0x01, 0x02], // f
    [0x98, 0xA4, 0xA4, 0xA4, 0x7C], // g
    [0x7F, 0x08, 0x04, 0x04, 0x78], // h
    [0x00, 0x44, 0x7D, 0x40, 0x00], // i
    [0x40, 0x80, 0x84, 0x7D, 0x00], // j
    [0x7F, 0x10, 0x28, 0x44, 0x00], // k
    [0x00, 0x41, 0x7F, 0x40, 0x00], // l
    [0x7C, 0x04, 0x18, 0x04, 0x78], // m
    [0x7C, 0x08, 0x04, 0x04, 0x78], // n
    [0x38, 0x44, 0x44, 0x44, 0x38], // o
    [0xFC, 0x24, 0x24, 0x24, 0x18], // p
    [0x18, 0x24, 0x24, 0x24, 0xFC], // q
    [0x7C, 0x08, 0x04, 0x04, 0x08], // r
    [0x48, 0x54, 0x54, 0x54, 0x20], // s
    [0x04, 0x3F, 0x44, 0x40, 0x20], // t
    [0x3C, 0x40, 0x40, 0x20, 0x7C], // u
    [0x1C, 0x20, 0x40, 0x20, 0x1C], // v
    [0x3C, 0x40, 0x30, 0x40, 0x3C], // w
    [0x44, 0x28, 0x10, 0x28, 0x44], // x
    [0x9C, 0xA0, 0xA0, 0xA0, 0x7C], // y
    [0x44, 0x64, 0x54, 0x4C, 0x44], // z
    [0x00, 0x08, 0x36, 0x41, 0x00], // {
    [0x00, 0x00, 0x7F, 0x00, 0x00], // |
    [0x00, 0x41, 0x36, 0x08, 0x00], // }
    [0x08, 0x04, 0x08, 0x10, 0x08], // ~
];

/// Glyph columns of `c` (`?` for characters outside ASCII 32..=126).
fn glyph(c: char) -> &'static [u8; 5] {
    let code = c as u32;
    let i = if (32..=126).contains(&code) {
        code - 32
    } else {
        '?' as u32 - 32
    };
    &FONT[i as usize]
}

/// Width in pixels of `s` at font scale `scale` (glyphs 5 wide plus 1 spacing column).
fn text_width(s: &str, scale: i64) -> i64 {
    let n = s.chars().count() as i64;
    if n == 0 {
        0
    } else {
        (n * 6 - 1) * scale
    }
}

/// Half-open pixel rectangle `[x0, x1) × [y0, y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

impl Rect {
    fn width(&self) -> i64 {
        self.x1 - self.x0
    }
    fn height(&self) -> i64 {
        self.y1 - self.y0
    }
    fn intersect(&self, o: &Rect) -> Rect {
        Rect {
            x0: self.x0.max(o.x0),
            y0: self.y0.max(o.y0),
            x1: self.x1.min(o.x1),
            y1: self.y1.min(o.y1),
        }
    }
}

/// Drawing surface; every primitive clips to `clip` (always inside the picture).
struct Canvas {
    w: i64,
    h: i64,
    px: Vec<u8>,
    clip: Rect,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Canvas {
        let px = vec![255u8; w as usize * h as usize * 3];
        let (w, h) = (w as i64, h as i64);
        Canvas {
            w,
            h,
            px,
            clip: Rect {
                x0: 0,
                y0: 0,
                x1: w,
                y1: h,
            },
        }
    }

    fn set_clip(&mut self, r: Rect) {
        self.clip = r.intersect(&Rect {
            x0: 0,
            y0: 0,
            x1: self.w,
            y1: self.h,
        });
    }

    fn fill(&mut self, r: Rect, c: [u8; 3]) {
        let r = r.intersect(&self.clip);
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                let i = ((y * self.w + x) * 3) as usize;
                self.px[i..i + 3].copy_from_slice(&c);
            }
        }
    }

    fn dot(&mut self, x: i64, y: i64, size: i64, c: [u8; 3]) {
        self.fill(
            Rect {
                x0: x,
                y0: y,
                x1: x.saturating_add(size),
                y1: y.saturating_add(size),
            },
            c,
        );
    }

    /// Outline of `r`, `t` pixels thick, inside `r`.
    fn frame(&mut self, r: Rect, t: i64, c: [u8; 3]) {
        self.fill(Rect { y1: r.y0 + t, ..r }, c);
        self.fill(Rect { y0: r.y1 - t, ..r }, c);
        self.fill(Rect { x1: r.x0 + t, ..r }, c);
        self.fill(Rect { x0: r.x1 - t, ..r }, c);
    }

    /// Text with its top-left corner at `(x, y)`.
    fn text(&mut self, x: i64, y: i64, scale: i64, c: [u8; 3], s: &str) {
        let mut cx = x;
        for ch in s.chars() {
            if cx >= self.clip.x1 {
                break;
            }
            if cx + 5 * scale > self.clip.x0 {
                for (col, bits) in glyph(ch).iter().enumerate() {
                    for row in 0..8 {
                        if bits >> row & 1 == 1 {
                            self.dot(cx + col as i64 * scale, y + row * scale, scale, c);
                        }
                    }
                }
            }
            cx += 6 * scale;
        }
    }

    /// Text rotated 90° counter-clockwise (reading upwards); the glyph tops face left,
    /// `(x, y_bottom)` is the bottom-left corner of the rotated text box.
    fn text_up(&mut self, x: i64, y_bottom: i64, scale: i64, c: [u8; 3], s: &str) {
        let mut u = 0;
        for ch in s.chars() {
            if y_bottom - u < self.clip.y0 {
                break;
            }
            for (col, bits) in glyph(ch).iter().enumerate() {
                for row in 0..8 {
                    if bits >> row & 1 == 1 {
                        let along = u + col as i64 * scale;
                        self.dot(x + row * scale, y_bottom - along - scale, scale, c);
                    }
                }
            }
            u += 6 * scale;
        }
    }

    /// A straight segment `thick` pixels wide between pixel-centre coordinates, clipped to the
    /// clip rectangle first (Liang–Barsky) so far-away endpoints cost nothing.
    fn line(&mut self, a: (f64, f64), b: (f64, f64), thick: i64, c: [u8; 3]) {
        let r = self.clip;
        if r.width() <= 0 || r.height() <= 0 {
            return;
        }
        let (xmin, xmax) = (r.x0 as f64 - 0.5, r.x1 as f64 - 0.5);
        let (ymin, ymax) = (r.y0 as f64 - 0.5, r.y1 as f64 - 0.5);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        if !(a.0.is_finite() && a.1.is_finite() && dx.is_finite() && dy.is_finite()) {
            return;
        }
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (p, q) in [
            (-dx, a.0 - xmin),
            (dx, xmax - a.0),
            (-dy, a.1 - ymin),
            (dy, ymax - a.1),
        ] {
            if p == 0.0 {
                if q < 0.0 {
                    return;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
            }
        }
        if t0 > t1 {
            return;
        }
        // Clamped: with huge endpoints the products above lose all precision.
        let cx = |v: f64| v.clamp(xmin, xmax);
        let cy = |v: f64| v.clamp(ymin, ymax);
        let (x0, y0) = (cx(a.0 + t0 * dx), cy(a.1 + t0 * dy));
        let (x1, y1) = (cx(a.0 + t1 * dx), cy(a.1 + t1 * dy));
        // At most the clip rectangle's diagonal in steps.
        let n = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        let off = (thick - 1) / 2;
        for i in 0..=n {
            let t = i as f64 / n as f64;
            let x = (x0 + t * (x1 - x0)).round() as i64;
            let y = (y0 + t * (y1 - y0)).round() as i64;
            self.dot(x - off, y - off, thick, c);
        }
    }
}

/// Round tick positions covering `[lo, hi]`: consecutive multiples of a step `m·10^k`
/// (`m` ∈ {1, 2, 5}) chosen so that there are about five intervals; the first tick is `≤ lo`
/// and the last `≥ hi`. `lo == hi` is widened (by 5 % of `|lo|`, or by 1 around 0). Returns an
/// empty vector when a bound is not finite or `lo > hi`.
///
/// ```
/// assert_eq!(unet_train::plot::nice_ticks(0.0, 97.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
/// ```
pub fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    nice_ticks_step(lo, hi).map(|(t, _)| t).unwrap_or_default()
}

/// [`nice_ticks`] plus the step's decimal exponent `k`.
fn nice_ticks_step(lo: f64, hi: f64) -> Option<(Vec<f64>, i32)> {
    if !(lo.is_finite() && hi.is_finite()) || lo > hi {
        return None;
    }
    let (lo, hi) = if lo == hi {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.05 };
        (lo - pad, hi + pad)
    } else {
        (lo, hi)
    };
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return Some((vec![lo, hi], 0));
    }
    let raw = span / 5.0;
    let mut k = raw.log10().floor() as i32;
    let f = raw / 10f64.powi(k);
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        k += 1;
        1.0
    };
    // Tick i is (i·m)·10^k, computed so that e.g. 0.6 is printed as 0.6, not 0.6000000000000001.
    let value = |i: f64| {
        if k >= 0 {
            i * m * 10f64.powi(k)
        } else {
            i * m / 10f64.powi(-k)
        }
    };
    let step = value(1.0);
    let (i0, i1) = ((lo / step).floor(), (hi / step).ceil());
    if !(step > 0.0 && i0.is_finite() && i1.is_finite()) || i1 - i0 > 100.0 || i1 <= i0 {
        return Some((vec![lo, hi], k));
    }
    let ticks = (0..=(i1 - i0) as i64)
        .map(|j| value(i0 + j as f64))
        .collect();
    Some((ticks, k))
}

/// Labels for linear ticks whose step has decimal exponent `k`.
fn linear_labels(ticks: &[f64], k: i32) -> Vec<String> {
    let max = ticks.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let sci = max >= 1e6 || (max > 0.0 && max < 1e-3);
    ticks
        .iter()
        .map(|&v| {
            let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
            if sci && v == 0.0 {
                "0".to_string()
            } else if sci {
                let digits = (v.abs().log10().floor() as i32 - k).clamp(0, 6) as usize;
                sci_trim(&format!("{v:.digits$e}"))
            } else {
                let d = (-k).clamp(0, 12) as usize;
                format!("{v:.d$}")
            }
        })
        .collect()
}

/// `2.50e5` → `2.5e5`, `2.00e5` → `2e5`.
fn sci_trim(s: &str) -> String {
    match s.split_once('e') {
        Some((mant, exp)) if mant.contains('.') => {
            let mant = mant.trim_end_matches('0').trim_end_matches('.');
            format!("{mant}e{exp}")
        }
        _ => s.to_string(),
    }
}

/// Label of `m·10^e` on a log axis.
fn log_label(m: f64, e: i32) -> String {
    if (-3..=4).contains(&e) {
        let v = if e >= 0 {
            m * 10f64.powi(e)
        } else {
            m / 10f64.powi(-e)
        };
        let d = (-e).max(0) as usize;
        format!("{v:.d$}")
    } else {
        format!("{m}e{e}")
    }
}

/// One axis: its range, labelled ticks and unlabelled minor ticks, in data units.
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    major: Vec<(f64, String)>,
    minor: Vec<f64>,
}

impl Axis {
    /// Position of `v` along the axis: 0 at `lo`, 1 at `hi`; `None` if `v` cannot be placed
    /// (not finite, or `≤ 0` on a log axis).
    fn frac(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        let t = if self.log {
            if v <= 0.0 {
                return None;
            }
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        t.is_finite().then_some(t)
    }

    /// Linear axis over the data range `[lo, hi]` (`None`: no data), or fixed to `fixed`.
    fn linear(data: Option<(f64, f64)>, fixed: Option<(f64, f64)>) -> Axis {
        let (ticks, k, lo, hi) = match fixed {
            Some((a, b)) => {
                let (t, k) = nice_ticks_step(a, b).unwrap_or((vec![a, b], 0));
                let eps = (b - a) * 1e-9;
                let t: Vec<f64> = t
                    .into_iter()
                    .filter(|&v| v >= a - eps && v <= b + eps)
                    .collect();
                (t, k, a, b)
            }
            None => {
                let (a, b) = data.unwrap_or((0.0, 1.0));
                match nice_ticks_step(a, b) {
                    Some((t, k)) if t.len() >= 2 && t[0] < t[t.len() - 1] => {
                        let (lo, hi) = (t[0], t[t.len() - 1]);
                        (t, k, lo, hi)
                    }
                    _ => (vec![0.0, 1.0], 0, 0.0, 1.0),
                }
            }
        };
        let labels = linear_labels(&ticks, k);
        Axis {
            lo,
            hi,
            log: false,
            major: ticks.into_iter().zip(labels).collect(),
            minor: Vec::new(),
        }
    }

    /// Log axis over whole decades covering the positive data range (or fixed to `fixed`).
    fn logarithmic(data: Option<(f64, f64)>, fixed: Option<(f64, f64)>) -> Axis {
        let (lo, hi, e0, e1) = match fixed {
            Some((a, b)) => (a, b, a.log10().floor() as i32, b.log10().ceil() as i32),
            None => {
                let (a, b) = data.unwrap_or((1.0, 10.0));
                let e0 = a.log10().floor().clamp(-300.0, 300.0) as i32;
                let mut e1 = b.log10().ceil().clamp(-300.0, 300.0) as i32;
                if e1 <= e0 {
                    e1 = e0 + 1;
                }
                (10f64.powi(e0), 10f64.powi(e1), e0, e1)
            }
        };
        let decades = e1 - e0;
        let stride = ((decades + 5) / 6).max(1);
        let mut major = Vec::new();
        let mut minor = Vec::new();
        let inside = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
        for e in e0..=e1 {
            for m in 1..10 {
                let v = m as f64 * 10f64.powi(e);
                if !inside(v) {
                    continue;
                }
                let labelled = if decades <= 2 {
                    m == 1 || m == 2 || m == 5
                } else {
                    m == 1 && (e - e0) % stride == 0
                };
                if labelled {
                    major.push((v, log_label(m as f64, e)));
                } else if decades <= 8 {
                    minor.push(v);
                }
            }
        }
        Axis {
            lo,
            hi,
            log: true,
            major,
            minor,
        }
    }
}

/// Where everything of one panel goes.
#[derive(Debug, Clone)]
struct Geometry {
    scale: i64,
    plot: Rect,
    x: Axis,
    y: Axis,
}

fn min_max(it: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    it.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((a, b)) => Some((a.min(v), b.max(v))),
    })
}

/// The panel's axes and plot rectangle inside `area`.
fn geometry(panel: &Panel, area: Rect, scale: i64) -> Geometry {
    let usable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!panel.log_y || y > 0.0);
    let pts = || {
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| usable(p))
    };
    let fixed = panel
        .y_range
        .filter(|&(a, b)| a.is_finite() && b.is_finite() && a < b && (!panel.log_y || a > 0.0));
    let x = Axis::linear(min_max(pts().map(|p| p.0)), None);
    let ydata = min_max(pts().map(|p| p.1));
    let y = if panel.log_y {
        Axis::logarithmic(ydata, fixed)
    } else {
        Axis::linear(ydata, fixed)
    };
    let s = scale;
    let ylab_w = y
        .major
        .iter()
        .map(|(_, l)| text_width(l, s))
        .max()
        .unwrap_or(0);
    let last_x_w = x.major.last().map_or(0, |(_, l)| text_width(l, s));
    let left = 3 * s + 7 * s + 5 * s + ylab_w + 2 * s + 3 * s;
    let top = 4 * s + 7 * s + 5 * s;
    let bottom = 3 * s + 3 * s + 7 * s + 4 * s + 7 * s + 3 * s;
    let right = (6 * s).max(last_x_w / 2 + 2 * s);
    let plot = Rect {
        x0: area.x0 + left,
        y0: area.y0 + top,
        x1: area.x1 - right,
        y1: area.y1 - bottom,
    };
    Geometry { scale, plot, x, y }
}

/// Pixel-centre coordinates of the data point `(x, y)` (`None`: the point cannot be placed).
fn map(g: &Geometry, x: f64, y: f64) -> Option<(f64, f64)> {
    let (tx, ty) = (g.x.frac(x)?, g.y.frac(y)?);
    let px = g.plot.x0 as f64 + tx * (g.plot.width() - 1) as f64;
    let py = (g.plot.y1 - 1) as f64 - ty * (g.plot.height() - 1) as f64;
    Some((px, py))
}

/// Keeps labels at least `min_gap` pixels apart: every `stride`-th label is drawn.
fn label_stride(n: usize, span: i64, max_label: i64, min_gap: i64) -> usize {
    if n < 2 || span <= 0 {
        return 1;
    }
    let per = span as f64 / (n - 1) as f64;
    let need = (max_label + min_gap) as f64;
    ((need / per.max(1e-9)).ceil() as usize).clamp(1, n)
}

/// The legend rectangle (`bw × bh`): the first of the top-right, bottom-right, top-left and
/// bottom-left corners of the plot that covers the fewest curve samples (vertices and 4
/// points along each segment).
fn legend_box(g: &Geometry, panel: &Panel, bw: i64, bh: i64) -> Rect {
    let (p, m) = (g.plot, 4 * g.scale);
    let at = |x0: i64, y0: i64| Rect {
        x0,
        y0,
        x1: x0 + bw,
        y1: y0 + bh,
    };
    let corners = [
        at(p.x1 - m - bw, p.y0 + m),
        at(p.x1 - m - bw, p.y1 - m - bh),
        at(p.x0 + m, p.y0 + m),
        at(p.x0 + m, p.y1 - m - bh),
    ];
    let mut hits = [0usize; 4];
    for series in &panel.series {
        let pts: Vec<Option<(f64, f64)>> =
            series.points.iter().map(|&(x, y)| map(g, x, y)).collect();
        for (i, q) in pts.iter().enumerate() {
            let Some(a) = *q else { continue };
            let b = pts.get(i + 1).copied().flatten().unwrap_or(a);
            for k in 0..5 {
                let t = k as f64 / 5.0;
                let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
                for (h, r) in hits.iter_mut().zip(&corners) {
                    let inside = x >= r.x0 as f64 && x < r.x1 as f64;
                    if inside && y >= r.y0 as f64 && y < r.y1 as f64 {
                        *h += 1;
                    }
                }
            }
        }
    }
    let best = (0..4).min_by_key(|&i| hits[i]).unwrap_or(0);
    corners[best]
}

fn draw_panel(cv: &mut Canvas, panel: &Panel, area: Rect) {
    cv.set_clip(area);
    let big = area.width() >= 400 && area.height() >= 200;
    let mut g = geometry(panel, area, if big { 2 } else { 1 });
    if big && (g.plot.width() < 40 || g.plot.height() < 40) {
        g = geometry(panel, area, 1);
    }
    let s = g.scale;
    // Title, centred over the plot (over the panel if the plot has no room).
    let tw = text_width(&panel.title, s);
    let (cx0, cx1) = if g.plot.width() > 0 {
        (g.plot.x0, g.plot.x1)
    } else {
        (area.x0, area.x1)
    };
    let tx = (cx0 + (cx1 - cx0 - tw) / 2).max(area.x0 + s);
    cv.text(tx, area.y0 + 4 * s, s, TEXT, &panel.title);
    let p = g.plot;
    if p.width() < 4 || p.height() < 4 {
        return; // no room for a chart: the title alone
    }
    // Grid and ticks.
    let tick = 3 * s;
    for &(v, _) in &g.y.major {
        if let Some(t) = g.y.frac(v) {
            let y = ((p.y1 - 1) as f64 - t * (p.height() - 1) as f64).round() as i64;
            cv.fill(
                Rect {
                    y0: y,
                    y1: y + 1,
                    ..p
                },
                GRID,
            );
            cv.fill(
                Rect {
                    x0: p.x0 - tick,
                    x1: p.x0,
                    y0: y,
                    y1: y + s.min(2),
                },
                BLACK,
            );
        }
    }
    for &v in &g.y.minor {
        if let Some(t) = g.y.frac(v) {
            let y = ((p.y1 - 1) as f64 - t * (p.height() - 1) as f64).round() as i64;
            cv.fill(
                Rect {
                    x0: p.x0 - tick / 2 - 1,
                    x1: p.x0,
                    y0: y,
                    y1: y + 1,
                },
                BLACK,
            );
        }
    }
    for &(v, _) in &g.x.major {
        if let Some(t) = g.x.frac(v) {
            let x = (p.x0 as f64 + t * (p.width() - 1) as f64).round() as i64;
            cv.fill(
                Rect {
                    x0: x,
                    x1: x + 1,
                    ..p
                },
                GRID,
            );
            cv.fill(
                Rect {
                    x0: x,
                    x1: x + s.min(2),
                    y0: p.y1,
                    y1: p.y1 + tick,
                },
                BLACK,
            );
        }
    }
    // Tick labels, thinned out where they would overlap.
    let ch = 7 * s;
    let ystride = label_stride(g.y.major.len(), p.height(), ch, 3 * s);
    for (i, (v, l)) in g.y.major.iter().enumerate() {
        if i % ystride != 0 {
            continue;
        }
        if let Some(t) = g.y.frac(*v) {
            let y = ((p.y1 - 1) as f64 - t * (p.height() - 1) as f64).round() as i64;
            let x = p.x0 - tick - 2 * s - text_width(l, s);
            cv.text(x, y - ch / 2, s, TEXT, l);
        }
    }
    let xmax =
        g.x.major
            .iter()
            .map(|(_, l)| text_width(l, s))
            .max()
            .unwrap_or(0);
    let xstride = label_stride(g.x.major.len(), p.width(), xmax, 4 * s);
    for (i, (v, l)) in g.x.major.iter().enumerate() {
        if i % xstride != 0 {
            continue;
        }
        if let Some(t) = g.x.frac(*v) {
            let x = (p.x0 as f64 + t * (p.width() - 1) as f64).round() as i64;
            cv.text(x - text_width(l, s) / 2, p.y1 + tick + 3 * s, s, TEXT, l);
        }
    }
    // Axis titles.
    let xt = "step";
    let xtx = p.x0 + (p.width() - text_width(xt, s)) / 2;
    cv.text(xtx, p.y1 + tick + 3 * s + ch + 4 * s, s, TEXT, xt);
    let yw = text_width(&panel.y_label, s);
    let ytb = p.y1 - (p.height() - yw) / 2;
    cv.text_up(area.x0 + 3 * s, ytb.min(p.y1), s, TEXT, &panel.y_label);
    // Curves, clipped to the plot area.
    cv.set_clip(p);
    let thick = s;
    for (si, series) in panel.series.iter().enumerate() {
        let c = PALETTE[si % PALETTE.len()];
        let pts: Vec<Option<(f64, f64)>> =
            series.points.iter().map(|&(x, y)| map(&g, x, y)).collect();
        for (i, q) in pts.iter().enumerate() {
            let Some(q) = *q else { continue };
            let prev = i.checked_sub(1).and_then(|j| pts[j]);
            let next = pts.get(i + 1).copied().flatten();
            if let Some(n) = next {
                cv.line(q, n, thick, c);
            }
            if prev.is_none() && next.is_none() {
                // An isolated point: a dot, so that it is visible.
                let r = 1 + s;
                let (x, y) = (q.0.round() as i64, q.1.round() as i64);
                cv.fill(
                    Rect {
                        x0: x - r,
                        y0: y - r,
                        x1: x + r + 1,
                        y1: y + r + 1,
                    },
                    c,
                );
            }
        }
    }
    // Legend, in the plot corner that hides the fewest data.
    if !panel.series.is_empty() {
        let row = 10 * s;
        let sample = 12 * s;
        let tw = panel
            .series
            .iter()
            .map(|se| text_width(&se.name, s))
            .max()
            .unwrap_or(0);
        let bw = 3 * s + sample + 3 * s + tw + 3 * s;
        let bh = 2 * s + row * panel.series.len() as i64 + s;
        let b = legend_box(&g, panel, bw, bh);
        cv.fill(b, WHITE);
        cv.frame(b, 1, LEGEND_FRAME);
        for (si, se) in panel.series.iter().enumerate() {
            let c = PALETTE[si % PALETTE.len()];
            let ty = b.y0 + 3 * s + si as i64 * row;
            let ly = ty + ch / 2 - s / 2;
            cv.fill(
                Rect {
                    x0: b.x0 + 3 * s,
                    x1: b.x0 + 3 * s + sample,
                    y0: ly,
                    y1: ly + s.max(2),
                },
                c,
            );
            cv.text(b.x0 + 6 * s + sample, ty, s, TEXT, &se.name);
        }
    }
    cv.set_clip(area);
    cv.frame(
        Rect {
            x0: p.x0 - 1,
            y0: p.y0 - 1,
            x1: p.x1 + 1,
            y1: p.y1 + 1,
        },
        1,
        BLACK,
    );
}

/// Draws `panels` stacked top to bottom (equal heights; the last takes the remainder) into a
/// `width × height` RGB picture on white.
///
/// Errors: no panels, a zero side, a side above [`MAX_SIDE`], or fewer pixel rows than
/// panels. Panels too small for axes get their title only.
pub fn render_panels(panels: &[Panel], width: u32, height: u32) -> Result<RgbImage> {
    if panels.is_empty() {
        return Err(TrainError::invalid("plot: no panels to draw"));
    }
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(TrainError::invalid(format!(
            "plot: image size {width}x{height} is not within 1..={MAX_SIDE} on each side"
        )));
    }
    if panels.len() > height as usize {
        return Err(TrainError::invalid(format!(
            "plot: {} panels do not fit into {height} pixel rows",
            panels.len()
        )));
    }
    let mut cv = Canvas::new(width, height);
    let n = panels.len() as i64;
    let ph = height as i64 / n;
    for (i, panel) in panels.iter().enumerate() {
        let y0 = i as i64 * ph;
        let y1 = if i as i64 == n - 1 {
            height as i64
        } else {
            y0 + ph
        };
        draw_panel(
            &mut cv,
            panel,
            Rect {
                x0: 0,
                y0,
                x1: width as i64,
                y1,
            },
        );
    }
    Ok(RgbImage {
        width,
        height,
        data: cv.px,
    })
}

/// Encodes an [`RgbImage`] as an 8-bit RGB PNG in memory.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    let perr = |e: png::EncodingError| TrainError::invalid(format!("png: {e}"));
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, img.width, img.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(perr)?;
        wr.write_image_data(&img.data).map_err(perr)?;
        wr.finish().map_err(perr)?;
    }
    Ok(out)
}

/// Renders `panels` ([`render_panels`]) and writes them to `path` as RGB PNG, atomically
/// ([`crate::atomic_write::write_atomic`]).
pub fn write_png(path: &Path, panels: &[Panel], width: u32, height: u32) -> Result<()> {
    let img = render_panels(panels, width, height)?;
    crate::atomic_write::write_atomic(path, &encode_png(&img)?)
}

/// Reads a CSV log as written by [`crate::train::run`]: a header line of column names, then
/// rows of numbers. Empty cells and `NaN` read as NaN; rows shorter than the header are padded
/// with NaN; blank lines are skipped. Errors: unreadable file, no header, a cell that is not a
/// number, or a row longer than the header.
pub fn read_log_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<f64>>)> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |line: usize, what: String| {
        TrainError::invalid(format!("{}:{line}: {what}", path.display()))
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let header: Vec<String> = match lines.next() {
        Some((_, l)) => l.split(',').map(|c| c.trim().to_string()).collect(),
        None => return Err(bad(1, "empty log: no header line".into())),
    };
    let mut rows = Vec::new();
    for (no, l) in lines {
        let cells: Vec<&str> = l.split(',').map(str::trim).collect();
        if cells.len() > header.len() {
            return Err(bad(
                no,
                format!("{} cells, the header has {}", cells.len(), header.len()),
            ));
        }
        let mut row = Vec::with_capacity(header.len());
        for (c, name) in cells.iter().zip(&header) {
            if c.is_empty() {
                row.push(f64::NAN);
            } else {
                row.push(
                    c.parse::<f64>()
                        .map_err(|_| bad(no, format!("column {name}: {c:?} is not a number")))?,
                );
            }
        }
        row.resize(header.len(), f64::NAN);
        rows.push(row);
    }
    Ok((header, rows))
}

/// Panels for a training log ([`read_log_csv`]): first `train_loss` vs `step` on a log axis
/// (if the log has a `train_loss` column), then every column whose name starts with `val_` vs
/// `step` on a fixed `[0, 1]` axis (if there is any). Without a `step` column the row number
/// (from 1) is used as the step. Rows shorter than `header` count as NaN there.
pub fn curves_from_log(header: &[String], rows: &[Vec<f64>]) -> Vec<Panel> {
    let col = |name: &str| header.iter().position(|h| h == name);
    let step_col = col("step");
    let step = |i: usize, r: &Vec<f64>| match step_col {
        Some(c) => r.get(c).copied().unwrap_or(f64::NAN),
        None => (i + 1) as f64,
    };
    let series = |c: usize| Series {
        name: header[c].clone(),
        points: rows
            .iter()
            .enumerate()
            .map(|(i, r)| (step(i, r), r.get(c).copied().unwrap_or(f64::NAN)))
            .collect(),
    };
    let mut panels = Vec::new();
    if let Some(c) = col("train_loss") {
        panels.push(Panel {
            title: "training loss".into(),
            y_label: "loss".into(),
            log_y: true,
            y_range: None,
            series: vec![series(c)],
        });
    }
    let val: Vec<Series> = (0..header.len())
        .filter(|&c| header[c].starts_with("val_"))
        .map(series)
        .collect();
    if !val.is_empty() {
        panels.push(Panel {
            title: "validation".into(),
            y_label: "metric".into(),
            log_y: false,
            y_range: Some((0.0, 1.0)),
            series: val,
        });
    }
    panels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(series: Vec<Series>, log_y: bool, y_range: Option<(f64, f64)>) -> Panel {
        Panel {
            title: "T".into(),
            y_label: "y".into(),
            log_y,
            y_range,
            series,
        }
    }

    fn count(img: &RgbImage, r: Rect, c: [u8; 3]) -> usize {
        let mut n = 0;
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                if img.pixel(x as u32, y as u32) == Some(c) {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn nice_ticks_round_steps() {
        assert_eq!(
            nice_ticks(0.0, 97.0),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(0.0, 1.0), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(
            nice_ticks(-3.0, 7.0),
            vec![-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0]
        );
        assert_eq!(
            nice_ticks(1200.0, 1800.0),
            vec![1200.0, 1400.0, 1600.0, 1800.0]
        );
        assert_eq!(nice_ticks(0.0, 0.0), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        let t = nice_ticks(100.0, 100.0);
        assert!(t[0] < 100.0 && *t.last().unwrap() > 100.0);
        assert!(nice_ticks(f64::NAN, 1.0).is_empty());
        assert!(nice_ticks(2.0, 1.0).is_empty());
        assert!(nice_ticks(-f64::MAX, f64::MAX).len() >= 2);
        assert!(nice_ticks(1e15, 1e15 + 1.0).len() <= 101);
        let (t, k) = nice_ticks_step(0.0, 1.0).unwrap();
        assert_eq!(
            linear_labels(&t, k),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        let (t, k) = nice_ticks_step(0.0, 2e6).unwrap();
        assert_eq!(linear_labels(&t, k), ["0", "5e5", "1e6", "1.5e6", "2e6"]);
        assert_eq!(linear_labels(&[-0.0, 1.0], 0), ["0", "1"]);
    }

    #[test]
    fn log_axis_decades_and_mapping() {
        let a = Axis::logarithmic(Some((0.03, 0.7)), None);
        assert!((a.lo - 0.01).abs() < 1e-12 && (a.hi - 1.0).abs() < 1e-12);
        let labels: Vec<&str> = a.major.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"]);
        assert!((a.frac(0.1).unwrap() - 0.5).abs() < 1e-12);
        assert!((a.frac(0.01).unwrap()).abs() < 1e-12);
        assert!((a.frac(10f64.powf(-1.5)).unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(a.frac(0.0), None);
        assert_eq!(a.frac(-1.0), None);
        let wide = Axis::logarithmic(Some((1e-9, 1e3)), None);
        assert!(wide.major.len() <= 8, "{:?}", wide.major);
        assert_eq!(wide.major[0].1, "1e-9");
        // On a panel: y = 1 at 1/2 of the height of a log axis over 0.1..10.
        let p = panel(
            vec![Series {
                name: "a".into(),
                points: vec![(0.0, 1.0), (10.0, 1.0)],
            }],
            true,
            Some((0.1, 10.0)),
        );
        let img = render_panels(std::slice::from_ref(&p), 600, 401).unwrap();
        let g = geometry(
            &p,
            Rect {
                x0: 0,
                y0: 0,
                x1: 600,
                y1: 401,
            },
            2,
        );
        let (_, py) = map(&g, 5.0, 1.0).unwrap();
        let mid = (g.plot.y0 + g.plot.y1 - 1) as f64 / 2.0;
        assert!((py - mid).abs() <= 0.5);
        let x = (g.plot.x0 + g.plot.x1) / 2;
        assert_eq!(img.pixel(x as u32, py.round() as u32), Some(PALETTE[0]));
    }

    #[test]
    fn horizontal_line_lands_on_the_middle_row() {
        let p = panel(
            vec![
                Series {
                    name: "half".into(),
                    points: vec![(0.0, 0.5), (100.0, 0.5)],
                },
                Series {
                    name: "empty".into(),
                    points: vec![],
                },
            ],
            false,
            Some((0.0, 1.0)),
        );
        let (w, h) = (640u32, 360u32);
        let img = render_panels(std::slice::from_ref(&p), w, h).unwrap();
        let g = geometry(
            &p,
            Rect {
                x0: 0,
                y0: 0,
                x1: w as i64,
                y1: h as i64,
            },
            2,
        );
        let pr = g.plot;
        let row = ((pr.y0 + pr.y1 - 1) as f64 / 2.0).round() as i64;
        // Whole middle row of the plot (left of the legend) in the series colour.
        let legend_x0 = pr.x1 - 200;
        for x in pr.x0..legend_x0 {
            assert_eq!(img.pixel(x as u32, row as u32), Some(PALETTE[0]), "x {x}");
        }
        // And nowhere far from it.
        let above = Rect {
            x0: pr.x0,
            y0: pr.y0 + 60,
            x1: legend_x0,
            y1: row - 3,
        };
        let below = Rect {
            x0: pr.x0,
            y0: row + 4,
            x1: pr.x1,
            y1: pr.y1,
        };
        assert_eq!(count(&img, above, PALETTE[0]), 0);
        assert_eq!(count(&img, below, PALETTE[0]), 0);
        // The legend shows the second series' colour although it has no points.
        assert!(
            count(
                &img,
                Rect {
                    x0: 0,
                    y0: 0,
                    x1: w as i64,
                    y1: h as i64
                },
                PALETTE[1]
            ) > 0
        );
        // Frame: black pixels around the plot.
        assert_eq!(img.pixel(pr.x0 as u32 - 1, row as u32), Some(BLACK));
    }

    #[test]
    fn clipping_nan_and_single_points() {
        let p = panel(
            vec![Series {
                name: "s".into(),
                points: vec![
                    (0.0, 0.2),
                    (1.0, f64::NAN),
                    (2.0, 0.4),
                    (3.0, 5.0),
                    (4.0, f64::INFINITY),
                ],
            }],
            false,
            Some((0.0, 1.0)),
        );
        let img = render_panels(std::slice::from_ref(&p), 500, 300).unwrap();
        let g = geometry(
            &p,
            Rect {
                x0: 0,
                y0: 0,
                x1: 500,
                y1: 300,
            },
            2,
        );
        // (0, 0.2) is isolated (NaN neighbour): drawn as a dot.
        let (x, y) = map(&g, 0.0, 0.2).unwrap();
        assert_eq!(
            img.pixel(x.round() as u32 + 1, y.round() as u32),
            Some(PALETTE[0])
        );
        // Nothing between x = 0.2 and 1.8 (the NaN breaks the line).
        let (xa, _) = map(&g, 0.3, 0.0).unwrap();
        let (xb, _) = map(&g, 1.7, 0.0).unwrap();
        let gap = Rect {
            x0: xa as i64,
            y0: g.plot.y0,
            x1: xb as i64,
            y1: g.plot.y1,
        };
        assert_eq!(count(&img, gap, PALETTE[0]), 0);
        // The segment to y = 5 is clipped: nothing of the colour outside the plot area.
        let all = Rect {
            x0: 0,
            y0: 0,
            x1: 500,
            y1: 300,
        };
        let inside = count(&img, g.plot, PALETTE[0]);
        assert!(inside > 0);
        // The only other place for the colour is the legend sample, inside the plot too.
        assert_eq!(count(&img, all, PALETTE[0]), inside);
    }

    #[test]
    fn text_draws_inside_its_box() {
        let mut cv = Canvas::new(200, 40);
        let s = "Ab0.5e-3_/%():";
        cv.text(4, 6, 2, BLACK, s);
        let img = RgbImage {
            width: 200,
            height: 40,
            data: cv.px,
        };
        let b = Rect {
            x0: 4,
            y0: 6,
            x1: 4 + text_width(s, 2),
            y1: 6 + 16,
        };
        let ink = count(&img, b, BLACK);
        assert!(ink > 100, "{ink}");
        assert_eq!(
            count(
                &img,
                Rect {
                    x0: 0,
                    y0: 0,
                    x1: 200,
                    y1: 40
                },
                BLACK
            ),
            ink
        );
        // Every glyph of the label has ink in its own cell.
        for i in 0..s.len() as i64 {
            let cell = Rect {
                x0: 4 + i * 12,
                y0: 6,
                x1: 4 + i * 12 + 10,
                y1: 20,
            };
            assert!(count(&img, cell, BLACK) > 0, "glyph {i}");
        }
        // Rotated text stays in its rotated box.
        let mut cv = Canvas::new(40, 200);
        cv.text_up(5, 190, 2, BLACK, "loss");
        let img = RgbImage {
            width: 40,
            height: 200,
            data: cv.px,
        };
        let b = Rect {
            x0: 5,
            y0: 190 - text_width("loss", 2),
            x1: 5 + 16,
            y1: 190,
        };
        let ink = count(&img, b, BLACK);
        assert!(ink > 20);
        assert_eq!(
            count(
                &img,
                Rect {
                    x0: 0,
                    y0: 0,
                    x1: 40,
                    y1: 200
                },
                BLACK
            ),
            ink
        );
        // Non-ASCII prints as '?', far-off text is clipped without panicking.
        let mut cv = Canvas::new(20, 20);
        cv.text(-1_000_000, 5, 1, BLACK, "é");
        cv.text(2, 2, 1, BLACK, "é");
        cv.text_up(2, -5, 1, BLACK, "x");
        assert!(cv.px.contains(&0));
    }

    #[test]
    fn odd_inputs_never_panic() {
        let s = |pts: Vec<(f64, f64)>| Series {
            name: "s".into(),
            points: pts,
        };
        assert!(render_panels(&[], 100, 100).is_err());
        let p = panel(vec![s(vec![(1.0, 1.0)])], false, None);
        assert!(render_panels(std::slice::from_ref(&p), 0, 100).is_err());
        assert!(render_panels(std::slice::from_ref(&p), 100, 0).is_err());
        assert!(render_panels(std::slice::from_ref(&p), 8193, 10).is_err());
        assert!(render_panels(&vec![p.clone(); 5], 10, 4).is_err());
        let cases = vec![
            panel(vec![], false, None),
            panel(vec![], true, None),
            panel(vec![s(vec![])], true, Some((-1.0, 1.0))),
            panel(vec![s(vec![(3.0, 7.0)])], false, None),
            panel(vec![s(vec![(3.0, 7.0)])], true, None),
            panel(vec![s(vec![(0.0, -1.0), (1.0, 0.0)])], true, None),
            panel(
                vec![s(vec![(f64::NAN, 1.0), (f64::INFINITY, f64::NEG_INFINITY)])],
                false,
                None,
            ),
            panel(vec![s(vec![(-1e300, 1e300), (1e300, -1e300)])], false, None),
            panel(
                vec![s(vec![(0.0, -1e300), (1.0, 1e300), (2.0, 0.5)])],
                false,
                Some((0.0, 1.0)),
            ),
            panel(
                vec![s(vec![(0.0, f64::MIN_POSITIVE), (1.0, f64::MAX)])],
                true,
                None,
            ),
            panel(
                vec![s((0..10_000)
                    .map(|i| (i as f64, (i as f64).sin()))
                    .collect())],
                false,
                None,
            ),
            panel(
                vec![s(vec![(0.0, 1.0), (1.0, 2.0)]); 25],
                false,
                Some((f64::NAN, 1.0)),
            ),
        ];
        for (w, h) in [(1, 1), (3, 50), (50, 3), (120, 90), (700, 500)] {
            for p in &cases {
                let img = render_panels(std::slice::from_ref(p), w, h).unwrap();
                assert_eq!(img.data.len(), (w * h * 3) as usize);
            }
            let img = render_panels(&cases, w, h.max(cases.len() as u32)).unwrap();
            assert_eq!(img.width, w);
        }
    }

    #[test]
    fn csv_log_parsing_and_panels() {
        let dir = std::env::temp_dir().join(format!("unet-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.csv");
        std::fs::write(
            &path,
            "step,lr,train_loss,tiles_per_s,elapsed_s,val_dice,val_iou\n\
             10,1e-3,0.9,12.5,1.000,NaN,0.1\r\n\
             \n\
             20,1e-3,0.5,12.0,2.000,,0.2\n\
             30,5e-4,0.25,12.2,3.000,0.7\n",
        )
        .unwrap();
        let (header, rows) = read_log_csv(&path).unwrap();
        assert_eq!(header.len(), 7);
        assert_eq!(header[5], "val_dice");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0][2], 0.9);
        assert_eq!(rows[0][1], 1e-3);
        assert!(rows[0][5].is_nan() && rows[1][5].is_nan());
        assert_eq!(rows[2][5], 0.7);
        assert!(rows[2][6].is_nan()); // missing trailing column
        let panels = curves_from_log(&header, &rows);
        assert_eq!(panels.len(), 2);
        assert!(panels[0].log_y);
        assert_eq!(
            panels[0].series[0].points,
            vec![(10.0, 0.9), (20.0, 0.5), (30.0, 0.25)]
        );
        let names: Vec<&str> = panels[1].series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["val_dice", "val_iou"]);
        assert_eq!(panels[1].y_range, Some((0.0, 1.0)));
        assert_eq!(panels[1].series[1].points[1], (20.0, 0.2));
        // No validation columns: one panel; no step column: the row number.
        let h2: Vec<String> = ["train_loss"].map(String::from).to_vec();
        let p2 = curves_from_log(&h2, &[vec![1.0], vec![0.5]]);
        assert_eq!(p2.len(), 1);
        assert_eq!(p2[0].series[0].points, vec![(1.0, 1.0), (2.0, 0.5)]);
        assert!(curves_from_log(&[], &[]).is_empty());
        // Errors.
        std::fs::write(&path, "step,train_loss\n1,abc\n").unwrap();
        let e = read_log_csv(&path).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("train_loss"), "{e}");
        std::fs::write(&path, "step,train_loss\n1,2,3\n").unwrap();
        assert!(read_log_csv(&path).is_err());
        std::fs::write(&path, "\n\n").unwrap();
        assert!(read_log_csv(&path).is_err());
        assert!(read_log_csv(&dir.join("missing.csv")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_png_round_trips() {
        let dir = std::env::temp_dir().join(format!("unet-plot-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("curves.png");
        let header: Vec<String> = [
            "step",
            "lr",
            "train_loss",
            "tiles_per_s",
            "elapsed_s",
            "val_dice",
            "val_iou",
        ]
        .map(String::from)
        .to_vec();
        let rows: Vec<Vec<f64>> = (1..=40)
            .map(|i| {
                let s = i as f64 * 25.0;
                let l = 0.7 * (-s / 300.0).exp() + 0.05;
                let v = if i % 4 == 0 { 1.0 - l } else { f64::NAN };
                vec![s, 1e-3, l, 10.0, s / 10.0, v, v * 0.9]
            })
            .collect();
        let panels = curves_from_log(&header, &rows);
        write_png(&path, &panels, 800, 600).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (800, 600));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let img = render_panels(&panels, 800, 600).unwrap();
        assert_eq!(&buf[..info.buffer_size()], &img.data[..]);
        if let Ok(keep) = std::env::var("UNET_PLOT_EXAMPLE") {
            std::fs::copy(&path, keep).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
