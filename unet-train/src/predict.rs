//! Whole-image prediction by overlap-tile (paper, "Inference: overlap-tile"): the image is
//! covered by output tiles; each needs an input tile larger by a margin on every side, taken
//! from the image extended by mirroring (`… 2 1 | 0 1 2 … n−1 | n−2 …`, repeated for margins
//! larger than the image). With valid convolutions the margin is the network's halo and the
//! stitched result equals what one tile covering the whole (mirror-extended) image gives, up
//! to float summation order (tiles start on the max-pool grid, multiples of `2^(L−1)`, so every
//! tile sees the same pooling windows as the single tile). With same padding the margin is
//! [`same_margin`] and the tile centre is kept, so zero padding at tile borders never reaches a
//! kept pixel: the result equals one large tile anchored at `−margin` on the mirror-extended
//! image.
//!
//! Tiles are batched through [`Backend::forward`] (evaluation mode, no dropout).

use ndarray::{s, Array2, Array3, Array4, ArrayView3, Axis};
use unet_core::{Geometry, Padding};

use crate::backend::Backend;
use crate::error::{Result, TrainError};

/// Index of position `i` (may be negative or `≥ n`) in an axis of length `n ≥ 1` extended by
/// mirroring without repeating the edge pixel (period `2(n − 1)`).
pub fn mirror(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let r = i.rem_euclid(period);
    (if r < n as isize { r } else { period - r }) as usize
}

/// Context a same-padding tile needs on each side so that its kept centre is free of the
/// tile's zero padding: `7·2^(L−1) − 5`, wider than [`Geometry::receptive_radius`] because an
/// output pixel that does not start a pooling block depends on inputs further out (derivation
/// and brute-force check in unet-core's overlap-tile module, which uses the same value).
pub fn same_margin(g: &Geometry) -> usize {
    7 * g.step() - 5
}

/// Tiling of one axis: `(input start, output start)` per tile, output starts `0, stride, …`.
fn tiles(len: usize, stride: usize, margin: usize) -> Vec<(isize, usize)> {
    (0..len)
        .step_by(stride)
        .map(|y0| (y0 as isize - margin as isize, y0))
        .collect()
}

/// Logits `[num_classes, H, W]` of a normalised image `[in_channels, H, W]` with input tiles of
/// `tile × tile` (a legal size), `batch` tiles per forward call.
pub fn predict_logits<B: Backend>(
    backend: &B,
    image: ArrayView3<'_, f32>,
    tile: usize,
    batch: usize,
) -> Result<Array3<f32>> {
    let cfg = backend.config();
    let (c, h, w) = image.dim();
    if c != cfg.in_channels {
        return Err(TrainError::invalid(format!(
            "image has {c} channels, the model takes {}",
            cfg.in_channels
        )));
    }
    if h == 0 || w == 0 {
        return Err(TrainError::invalid("empty image"));
    }
    let g = Geometry::new(cfg.levels, cfg.padding)?;
    let sizes = g.sizes(tile).map_err(|what| unet_core::Error::TileSize {
        h: tile,
        w: tile,
        what,
    })?;
    let (margin, keep) = match cfg.padding {
        Padding::Valid => (g.halo(), sizes.output),
        Padding::Same => {
            let m = same_margin(&g);
            if tile <= 2 * m {
                return Err(TrainError::invalid(format!(
                    "same-padding tiles must exceed twice the receptive radius ({m}): use at least {}",
                    g.next_legal(2 * m + 1).unwrap_or(usize::MAX)
                )));
            }
            (m, tile - 2 * m)
        }
    };
    let skip_out = match cfg.padding {
        Padding::Valid => 0,
        Padding::Same => margin,
    };
    // Max-pooling makes the network equivariant to shifts by multiples of 2^(L−1) only: every
    // tile must start on that grid, so the stride is the kept size rounded down to it (tiles
    // overlap by the remainder; the last tile reaches into the mirrored extension).
    let stride = keep / g.step() * g.step();
    if stride == 0 {
        return Err(TrainError::invalid(format!(
            "tile {tile} keeps {keep} output pixels, fewer than the pooling grid step {}: use a larger tile",
            g.step()
        )));
    }
    let ty = tiles(h, stride, margin);
    let tx = tiles(w, stride, margin);
    let jobs: Vec<(isize, usize, isize, usize)> = ty
        .iter()
        .flat_map(|&(iy, oy)| tx.iter().map(move |&(ix, ox)| (iy, oy, ix, ox)))
        .collect();
    let k = cfg.num_classes;
    let mut out = Array3::<f32>::zeros((k, h, w));
    for chunk in jobs.chunks(batch.max(1)) {
        let mut input = Array4::<f32>::zeros((chunk.len(), c, tile, tile));
        for (b, &(iy, _, ix, _)) in chunk.iter().enumerate() {
            for ch in 0..c {
                let plane = image.index_axis(Axis(0), ch);
                let mut dst = input.slice_mut(s![b, ch, .., ..]);
                for yy in 0..tile {
                    let sy = mirror(iy + yy as isize, h);
                    for xx in 0..tile {
                        dst[[yy, xx]] = plane[[sy, mirror(ix + xx as isize, w)]];
                    }
                }
            }
        }
        let logits = backend.forward(input.view())?;
        for (b, &(_, oy, _, ox)) in chunk.iter().enumerate() {
            let ky = stride.min(h - oy);
            let kx = stride.min(w - ox);
            out.slice_mut(s![.., oy..oy + ky, ox..ox + kx])
                .assign(&logits.slice(s![b, .., skip_out..skip_out + ky, skip_out..skip_out + kx]));
        }
    }
    Ok(out)
}

/// Soft-max over classes of logits `[K, H, W]`.
pub fn softmax(logits: &Array3<f32>) -> Array3<f32> {
    let mut p = logits.clone();
    for mut px in p.lanes_mut(Axis(0)) {
        let m = px.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        px.mapv_inplace(|v| (v - m).exp());
        let z: f32 = px.sum();
        px.mapv_inplace(|v| v / z);
    }
    p
}

/// Arg-max class per pixel of `[K, H, W]` scores (ties → lowest class), `[H, W]`.
pub fn argmax(scores: &Array3<f32>) -> Array2<u32> {
    let (_, h, w) = scores.dim();
    Array2::from_shape_fn((h, w), |(y, x)| {
        let mut best = 0;
        for c in 1..scores.dim().0 {
            if scores[[c, y, x]] > scores[[best, y, x]] {
                best = c;
            }
        }
        best as u32
    })
}
