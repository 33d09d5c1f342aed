//! Writing prediction results: label maps as 8- or 16-bit gray PNG, class probabilities as a
//! multi-page 32-bit float TIFF (one page per class), and an RGB overlay PNG (the gray input
//! with each non-background class tinted in its own colour).

use std::io::BufWriter;
use std::path::Path;

use ndarray::{Array2, Array3, ArrayView2};

use crate::error::{Result, TrainError};

fn create(path: &Path) -> Result<BufWriter<std::fs::File>> {
    Ok(BufWriter::new(
        std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?,
    ))
}

fn png_err(path: &Path, e: png::EncodingError) -> TrainError {
    TrainError::io(path, std::io::Error::other(e.to_string()))
}

fn dims(h: usize, w: usize) -> Result<(u32, u32)> {
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(TrainError::invalid(format!("cannot write a {h}x{w} image"))),
    }
}

/// Writes a label map `[H, W]` as gray PNG: 8-bit if every label is < 256, else 16-bit
/// (labels ≥ 65536 are an error).
pub fn write_labels_png(path: &Path, labels: &Array2<u32>) -> Result<()> {
    let (h, w) = labels.dim();
    let (pw, ph) = dims(h, w)?;
    let max = labels.iter().copied().max().unwrap_or(0);
    if max > u16::MAX as u32 {
        return Err(TrainError::invalid(format!(
            "label {max} does not fit a 16-bit PNG"
        )));
    }
    let mut enc = png::Encoder::new(create(path)?, pw, ph);
    enc.set_color(png::ColorType::Grayscale);
    let data: Vec<u8> = if max < 256 {
        enc.set_depth(png::BitDepth::Eight);
        labels.iter().map(|&v| v as u8).collect()
    } else {
        enc.set_depth(png::BitDepth::Sixteen);
        labels
            .iter()
            .flat_map(|&v| (v as u16).to_be_bytes())
            .collect()
    };
    let mut wr = enc.write_header().map_err(|e| png_err(path, e))?;
    wr.write_image_data(&data).map_err(|e| png_err(path, e))?;
    wr.finish().map_err(|e| png_err(path, e))
}

/// Writes probabilities `[K, H, W]` as a K-page Gray32Float TIFF (page k = class k).
pub fn write_probabilities_tiff(path: &Path, probs: &Array3<f32>) -> Result<()> {
    let (k, h, w) = probs.dim();
    let (pw, ph) = dims(h, w)?;
    let terr = |e: tiff::TiffError| TrainError::io(path, std::io::Error::other(e.to_string()));
    let mut enc = tiff::encoder::TiffEncoder::new(create(path)?).map_err(terr)?;
    for c in 0..k {
        let page: Vec<f32> = probs
            .index_axis(ndarray::Axis(0), c)
            .iter()
            .copied()
            .collect();
        enc.write_image::<tiff::encoder::colortype::Gray32Float>(pw, ph, &page)
            .map_err(terr)?;
    }
    Ok(())
}

/// Distinct tint colours for classes 1, 2, … (class 0, background, is not tinted).
const PALETTE: [[u8; 3]; 6] = [
    [255, 64, 64],
    [64, 220, 64],
    [64, 128, 255],
    [255, 200, 0],
    [220, 64, 255],
    [0, 220, 220],
];

/// Writes an RGB overlay: `gray` (`[H, W]`, any range; min–max scaled to 0–255) with pixels of
/// class `c ≥ 1` blended 50 % with the class colour.
pub fn write_overlay_png(
    path: &Path,
    gray: ArrayView2<'_, f32>,
    labels: &Array2<u32>,
) -> Result<()> {
    let (h, w) = labels.dim();
    if gray.dim() != (h, w) {
        return Err(TrainError::invalid(format!(
            "overlay: image {:?} vs labels {:?}",
            gray.dim(),
            labels.dim()
        )));
    }
    let (pw, ph) = dims(h, w)?;
    let g = gray_u8(gray);
    let mut data = Vec::with_capacity(h * w * 3);
    for ((y, x), &l) in labels.indexed_iter() {
        let g = g[[y, x]] as f32;
        if l == 0 {
            data.extend([g as u8; 3]);
        } else {
            let c = PALETTE[(l as usize - 1) % PALETTE.len()];
            data.extend(c.map(|v| ((g + v as f32) / 2.0) as u8));
        }
    }
    write_rgb(path, pw, ph, &data)
}

/// Writes an RGB overlay of instance outlines: `gray` (`[H, W]`, min–max scaled to 0–255)
/// with every boundary pixel of every instance of `instances` (`[H, W]`, 0 = background)
/// drawn in the instance's colour (palette by id) and instance interiors tinted 15 %. A
/// boundary pixel is an instance pixel with a 4-neighbour outside the image or of another id.
pub fn write_outline_overlay_png(
    path: &Path,
    gray: ArrayView2<'_, f32>,
    instances: &Array2<u32>,
) -> Result<()> {
    let (h, w) = instances.dim();
    if gray.dim() != (h, w) {
        return Err(TrainError::invalid(format!(
            "overlay: image {:?} vs instances {:?}",
            gray.dim(),
            instances.dim()
        )));
    }
    let (pw, ph) = dims(h, w)?;
    let g = gray_u8(gray);
    let mut data = Vec::with_capacity(h * w * 3);
    for ((y, x), &id) in instances.indexed_iter() {
        let v = g[[y, x]];
        if id == 0 {
            data.extend([v; 3]);
            continue;
        }
        let c = PALETTE[(id as usize - 1) % PALETTE.len()];
        let other = |yy: usize, xx: usize| instances[[yy, xx]] != id;
        let edge = y == 0
            || x == 0
            || y + 1 == h
            || x + 1 == w
            || other(y - 1, x)
            || other(y + 1, x)
            || other(y, x - 1)
            || other(y, x + 1);
        if edge {
            data.extend(c);
        } else {
            data.extend(c.map(|cv| (0.85 * v as f32 + 0.15 * cv as f32) as u8));
        }
    }
    write_rgb(path, pw, ph, &data)
}

/// Min–max scales the finite values of `gray` to 0–255 (non-finite → 0).
fn gray_u8(gray: ArrayView2<'_, f32>) -> Array2<u8> {
    let (lo, hi) = gray
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    gray.mapv(|g| {
        if g.is_finite() {
            ((g - lo) / span * 255.0).clamp(0.0, 255.0) as u8
        } else {
            0
        }
    })
}

fn write_rgb(path: &Path, pw: u32, ph: u32, data: &[u8]) -> Result<()> {
    let mut enc = png::Encoder::new(create(path)?, pw, ph);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().map_err(|e| png_err(path, e))?;
    wr.write_image_data(data).map_err(|e| png_err(path, e))?;
    wr.finish().map_err(|e| png_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = std::env::temp_dir().join(format!("unet-imgout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let labels = Array2::from_shape_fn((5, 7), |(y, x)| ((y + x) % 3) as u32);
        let p = dir.join("l.png");
        write_labels_png(&p, &labels).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0u8; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (7, 5));
        assert_eq!(
            &buf[..35],
            labels
                .iter()
                .map(|&v| v as u8)
                .collect::<Vec<_>>()
                .as_slice()
        );

        let probs =
            Array3::from_shape_fn((2, 5, 7), |(c, y, x)| (c * 35 + y * 7 + x) as f32 / 70.0);
        let t = dir.join("p.tif");
        write_probabilities_tiff(&t, &probs).unwrap();
        let mut d = tiff::decoder::Decoder::new(std::fs::File::open(&t).unwrap()).unwrap();
        for c in 0..2 {
            match d.read_image().unwrap() {
                tiff::decoder::DecodingResult::F32(v) => {
                    assert_eq!(
                        v,
                        probs
                            .index_axis(ndarray::Axis(0), c)
                            .iter()
                            .copied()
                            .collect::<Vec<_>>()
                    )
                }
                _ => panic!("expected f32 pages"),
            }
            if c == 0 {
                d.next_image().unwrap();
            }
        }
        let gray = Array2::from_shape_fn((5, 7), |(y, _)| y as f32);
        write_overlay_png(&dir.join("o.png"), gray.view(), &labels).unwrap();
        assert!(write_overlay_png(&dir.join("bad.png"), gray.t(), &labels).is_err());
        // Outlines: a 3x3 instance inside a 5x7 image has 8 boundary pixels and 1 interior.
        let mut inst = Array2::<u32>::zeros((5, 7));
        inst.slice_mut(ndarray::s![1..4, 2..5]).fill(1);
        let o = dir.join("outline.png");
        write_outline_overlay_png(&o, gray.view(), &inst).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&o).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut rgb = vec![0u8; r.output_buffer_size().unwrap()];
        r.next_frame(&mut rgb).unwrap();
        let px = |y: usize, x: usize| {
            [
                rgb[(y * 7 + x) * 3],
                rgb[(y * 7 + x) * 3 + 1],
                rgb[(y * 7 + x) * 3 + 2],
            ]
        };
        let colour = PALETTE[0];
        let edges = (0..5)
            .flat_map(|y| (0..7).map(move |x| (y, x)))
            .filter(|&(y, x)| px(y, x) == colour)
            .count();
        assert_eq!(edges, 8);
        assert_ne!(px(2, 3), colour);
        let g0 = (0.0f32 / 4.0 * 255.0) as u8;
        assert_eq!(px(0, 0), [g0; 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
