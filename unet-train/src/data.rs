//! Loading annotated images from disk.
//!
//! # Folder layout ([`load_folder`])
//! ```text
//! DIR/images/NAME.tif | NAME.tiff | NAME.png     raw image, 8- or 16-bit grayscale
//! DIR/labels/NAME.tif | NAME.tiff | NAME.png     labels with the same stem and size
//! ```
//! Every image needs a label file with the same stem (extension may differ) and vice versa.
//! Files are read in name order. A multi-page TIFF is a stack: page `k` of the image pairs with
//! page `k` of the labels (equal page counts required) and becomes a [`Sample`] named
//! `NAME#k` (`k` from 0); single-page files give a sample named `NAME`.
//!
//! Pixel formats: grayscale 8- or 16-bit unsigned (TIFF also 32-bit unsigned for labels), read
//! as f32 values (exact) for images and as u32 ids for labels. Anything else (colour, float,
//! signed, 1-bit) is [`DataError::Unsupported`]. Every error names the file. Loaded samples have
//! one channel (`C = 1`); multi-channel samples can be built directly as [`Sample`] values.

use ndarray::{Array2, Array3, Axis};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// One annotated training image.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `NAME` or `NAME#page` (see the module documentation).
    pub name: String,
    /// Raw pixel values `[C, H, W]` (not normalised).
    pub image: Array3<f32>,
    /// Label ids `[H, W]`, 0 = background.
    pub labels: Array2<u32>,
}

/// What label ids mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    /// Every non-zero id is one object (cell); 0 is background. Targets and weight maps are made
    /// by [`crate::weight_map`].
    Instance,
    /// Every pixel holds its class id `0..num_classes`.
    Class,
}

/// Which samples go to validation ([`split`]).
#[derive(Debug, Clone, PartialEq)]
pub enum SplitSpec {
    /// Samples at these positions of the loaded list (e.g. frames 15..20 of a time-lapse).
    Indices(Vec<usize>),
    /// Samples whose name, or whose file stem (the name before `#`), is listed.
    Names(Vec<String>),
    /// The last `⌈fraction · n⌉` samples (`fraction` clamped to `0..=1`).
    LastFraction(f32),
}

/// Errors of reading training data; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or folder could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a decodable TIFF/PNG.
    #[error("{}: cannot decode: {what}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// Decoder message.
        what: String,
    },
    /// Extension, colour type or bit depth not supported.
    #[error("{}: unsupported format: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What was found.
        what: String,
    },
    /// Image and labels differ in size.
    #[error("{}: labels are {label_h}x{label_w} but the image {} is {image_h}x{image_w}", labels.display(), image.display())]
    SizeMismatch {
        /// Image file.
        image: PathBuf,
        /// Label file.
        labels: PathBuf,
        /// Image height.
        image_h: usize,
        /// Image width.
        image_w: usize,
        /// Label height.
        label_h: usize,
        /// Label width.
        label_w: usize,
    },
    /// Image and label stacks have different page counts (or pages of one stack differ in size).
    #[error("{}: {labels_pages} label page(s) but the image {} has {image_pages}", labels.display(), image.display())]
    PageCount {
        /// Image file.
        image: PathBuf,
        /// Label file.
        labels: PathBuf,
        /// Pages in the image.
        image_pages: usize,
        /// Pages in the labels.
        labels_pages: usize,
    },
    /// An image has no label file, or a label file no image.
    #[error("{}: no matching {missing} file with the same stem", path.display())]
    Unpaired {
        /// The file without a partner.
        path: PathBuf,
        /// `"label"` or `"image"`.
        missing: &'static str,
    },
    /// A label value out of range (class id ≥ number of classes).
    #[error("{where_}: label value {value} at (y={y}, x={x}) is not below the number of classes {limit}")]
    LabelValue {
        /// File (or sample name) holding the value.
        where_: String,
        /// The value.
        value: u32,
        /// Row.
        y: usize,
        /// Column.
        x: usize,
        /// Number of classes.
        limit: usize,
    },
    /// The folder holds no image.
    #[error("{}: no images found", path.display())]
    Empty {
        /// The `images` folder.
        path: PathBuf,
    },
}

const EXTS: [&str; 3] = ["tif", "tiff", "png"];

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Raw integer pages of a file with their bit depth.
enum Pages {
    U8(Vec<Array2<u8>>),
    U16(Vec<Array2<u16>>),
    U32(Vec<Array2<u32>>),
}

fn ext_of(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

fn read_pages(path: &Path, allow_u32: bool) -> Result<Pages, DataError> {
    match ext_of(path).as_deref() {
        Some("tif") | Some("tiff") => read_tiff(path, allow_u32),
        Some("png") => read_png(path),
        _ => Err(DataError::Unsupported {
            path: path.to_path_buf(),
            what: "extension must be .tif, .tiff or .png".into(),
        }),
    }
}

fn shape2<T>(path: &Path, h: usize, w: usize, v: Vec<T>) -> Result<Array2<T>, DataError> {
    Array2::from_shape_vec((h, w), v).map_err(|_| DataError::Decode {
        path: path.to_path_buf(),
        what: "pixel count disagrees with the dimensions".into(),
    })
}

fn read_tiff(path: &Path, allow_u32: bool) -> Result<Pages, DataError> {
    use tiff::decoder::{Decoder, DecodingResult};
    use tiff::ColorType;
    let dec_err = |e: tiff::TiffError| DataError::Decode {
        path: path.to_path_buf(),
        what: e.to_string(),
    };
    let f = File::open(path).map_err(io_err(path))?;
    let mut dec = Decoder::new(BufReader::new(f)).map_err(dec_err)?;
    let (mut p8, mut p16, mut p32) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let ct = dec.colortype().map_err(dec_err)?;
        let (w, h) = dec.dimensions().map_err(dec_err)?;
        let (w, h) = (w as usize, h as usize);
        match ct {
            ColorType::Gray(8) | ColorType::Gray(16) => {}
            ColorType::Gray(32) if allow_u32 => {}
            other => {
                return Err(DataError::Unsupported {
                    path: path.to_path_buf(),
                    what: format!("TIFF colour type {other:?} (need 8- or 16-bit grayscale)"),
                })
            }
        }
        match dec.read_image().map_err(dec_err)? {
            DecodingResult::U8(v) => p8.push(shape2(path, h, w, v)?),
            DecodingResult::U16(v) => p16.push(shape2(path, h, w, v)?),
            DecodingResult::U32(v) if allow_u32 => p32.push(shape2(path, h, w, v)?),
            _ => {
                return Err(DataError::Unsupported {
                    path: path.to_path_buf(),
                    what: "TIFF sample format (need unsigned integers)".into(),
                })
            }
        }
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(dec_err)?;
    }
    let kinds = [!p8.is_empty(), !p16.is_empty(), !p32.is_empty()]
        .iter()
        .filter(|&&b| b)
        .count();
    if kinds > 1 {
        return Err(DataError::Unsupported {
            path: path.to_path_buf(),
            what: "pages of mixed bit depth".into(),
        });
    }
    Ok(if !p8.is_empty() {
        Pages::U8(p8)
    } else if !p16.is_empty() {
        Pages::U16(p16)
    } else {
        Pages::U32(p32)
    })
}

fn read_png(path: &Path) -> Result<Pages, DataError> {
    use png::{BitDepth, ColorType, Decoder, Transformations};
    let dec_err = |e: png::DecodingError| DataError::Decode {
        path: path.to_path_buf(),
        what: e.to_string(),
    };
    let f = File::open(path).map_err(io_err(path))?;
    let mut dec = Decoder::new(BufReader::new(f));
    dec.set_transformations(Transformations::IDENTITY);
    let mut reader = dec.read_info().map_err(dec_err)?;
    let (ct, bd) = reader.output_color_type();
    if ct != ColorType::Grayscale || !matches!(bd, BitDepth::Eight | BitDepth::Sixteen) {
        return Err(DataError::Unsupported {
            path: path.to_path_buf(),
            what: format!("PNG {ct:?} {bd:?} (need 8- or 16-bit grayscale)"),
        });
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| DataError::Decode {
            path: path.to_path_buf(),
            what: "image too large".into(),
        })?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(dec_err)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let line = info.line_size;
    Ok(match bd {
        BitDepth::Eight => {
            let v: Vec<u8> = (0..h)
                .flat_map(|y| buf[y * line..y * line + w].iter().copied())
                .collect();
            Pages::U8(vec![shape2(path, h, w, v)?])
        }
        _ => {
            let v: Vec<u16> = (0..h)
                .flat_map(|y| {
                    buf[y * line..y * line + 2 * w]
                        .chunks_exact(2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]]))
                })
                .collect();
            Pages::U16(vec![shape2(path, h, w, v)?])
        }
    })
}

/// The pages of an 8/16-bit grayscale TIFF or PNG as f32 planes `[H, W]` (values exact).
pub fn load_image(path: &Path) -> Result<Vec<Array2<f32>>, DataError> {
    Ok(match read_pages(path, false)? {
        Pages::U8(p) => p.into_iter().map(|a| a.mapv(f32::from)).collect(),
        Pages::U16(p) => p.into_iter().map(|a| a.mapv(f32::from)).collect(),
        Pages::U32(_) => {
            return Err(DataError::Unsupported {
                path: path.to_path_buf(),
                what: "32-bit image".into(),
            })
        }
    })
}

/// The pages of an 8/16-bit (TIFF also 32-bit) unsigned grayscale label file as ids `[H, W]`.
pub fn load_labels(path: &Path) -> Result<Vec<Array2<u32>>, DataError> {
    Ok(match read_pages(path, true)? {
        Pages::U8(p) => p.into_iter().map(|a| a.mapv(u32::from)).collect(),
        Pages::U16(p) => p.into_iter().map(|a| a.mapv(u32::from)).collect(),
        Pages::U32(p) => p,
    })
}

/// Files of `dir` with a supported extension, by stem, in name order. Two files with the same
/// stem are an error.
fn list_by_stem(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if !path.is_file() || !ext_of(&path).is_some_and(|e| EXTS.contains(&e.as_str())) {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        out.push((stem, path));
    }
    out.sort();
    for pair in out.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(DataError::Unsupported {
                path: pair[1].1.clone(),
                what: format!("two files with the stem {:?}", pair[0].0),
            });
        }
    }
    Ok(out)
}

/// Loads every image/label pair of `dir` (layout in the module documentation) without a
/// class-count check; see [`load_folder_checked`].
pub fn load_folder(dir: &Path, kind: LabelKind) -> Result<Vec<Sample>, DataError> {
    load_folder_checked(dir, kind, None)
}

/// As [`load_folder`]; with [`LabelKind::Class`] and `num_classes = Some(k)`, a label value
/// `≥ k` is [`DataError::LabelValue`] naming the label file.
pub fn load_folder_checked(
    dir: &Path,
    kind: LabelKind,
    num_classes: Option<usize>,
) -> Result<Vec<Sample>, DataError> {
    let img_dir = dir.join("images");
    let lab_dir = dir.join("labels");
    let images = list_by_stem(&img_dir)?;
    let labels = list_by_stem(&lab_dir)?;
    if images.is_empty() {
        return Err(DataError::Empty { path: img_dir });
    }
    for (stem, path) in &labels {
        if !images.iter().any(|(s, _)| s == stem) {
            return Err(DataError::Unpaired {
                path: path.clone(),
                missing: "image",
            });
        }
    }
    let mut out = Vec::new();
    for (stem, ipath) in &images {
        let lpath = labels
            .iter()
            .find(|(s, _)| s == stem)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| DataError::Unpaired {
                path: ipath.clone(),
                missing: "label",
            })?;
        out.extend(load_pair_named(ipath, &lpath, stem, kind, num_classes)?);
    }
    Ok(out)
}

/// Loads one image file and its label file (same page count, same size per page) as samples
/// named after the image's file stem (`STEM`, or `STEM#k` for the pages of a stack). With
/// [`LabelKind::Class`] and `num_classes = Some(k)`, a label value `≥ k` is an error.
pub fn load_pair(
    image: &Path,
    labels: &Path,
    kind: LabelKind,
    num_classes: Option<usize>,
) -> Result<Vec<Sample>, DataError> {
    let stem = image
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image")
        .to_string();
    load_pair_named(image, labels, &stem, kind, num_classes)
}

fn load_pair_named(
    ipath: &Path,
    lpath: &Path,
    stem: &str,
    kind: LabelKind,
    num_classes: Option<usize>,
) -> Result<Vec<Sample>, DataError> {
    let ipages = load_image(ipath)?;
    let lpages = load_labels(lpath)?;
    if ipages.len() != lpages.len() {
        return Err(DataError::PageCount {
            image: ipath.to_path_buf(),
            labels: lpath.to_path_buf(),
            image_pages: ipages.len(),
            labels_pages: lpages.len(),
        });
    }
    let many = ipages.len() > 1;
    let mut out = Vec::with_capacity(ipages.len());
    for (k, (im, lab)) in ipages.into_iter().zip(lpages).enumerate() {
        if im.dim() != lab.dim() {
            return Err(DataError::SizeMismatch {
                image: ipath.to_path_buf(),
                labels: lpath.to_path_buf(),
                image_h: im.nrows(),
                image_w: im.ncols(),
                label_h: lab.nrows(),
                label_w: lab.ncols(),
            });
        }
        if let (LabelKind::Class, Some(limit)) = (kind, num_classes) {
            check_classes(&lab, limit, &lpath.display().to_string())?;
        }
        let name = if many {
            format!("{stem}#{k}")
        } else {
            stem.to_string()
        };
        out.push(Sample {
            name,
            image: im.insert_axis(Axis(0)),
            labels: lab,
        });
    }
    Ok(out)
}

fn check_classes(labels: &Array2<u32>, limit: usize, where_: &str) -> Result<(), DataError> {
    if let Some(((y, x), &v)) = labels.indexed_iter().find(|(_, &v)| v as usize >= limit) {
        return Err(DataError::LabelValue {
            where_: where_.to_string(),
            value: v,
            y,
            x,
            limit,
        });
    }
    Ok(())
}

/// Checks that class labels are below `num_classes` (and that `num_classes ≤ 256`, the target
/// type being u8); errors name the sample. Instance labels are always valid.
pub fn validate_labels(
    samples: &[Sample],
    kind: LabelKind,
    num_classes: usize,
) -> Result<(), DataError> {
    if kind == LabelKind::Instance {
        return Ok(());
    }
    for s in samples {
        check_classes(&s.labels, num_classes.min(256), &s.name)?;
    }
    Ok(())
}

/// Splits `samples` into `(train, validation)` keeping their order; see [`SplitSpec`].
/// Indices out of range and names that match nothing are ignored.
pub fn split(samples: Vec<Sample>, val: &SplitSpec) -> (Vec<Sample>, Vec<Sample>) {
    let n = samples.len();
    let is_val = |i: usize, s: &Sample| -> bool {
        match val {
            SplitSpec::Indices(ix) => ix.contains(&i),
            SplitSpec::Names(names) => {
                let stem = s.name.split('#').next().unwrap_or("");
                names.iter().any(|m| m == &s.name || m == stem)
            }
            SplitSpec::LastFraction(f) => {
                let f = if f.is_nan() {
                    0.0
                } else {
                    f.clamp(0.0, 1.0) as f64
                };
                let k = ((n as f64) * f).ceil() as usize;
                i >= n - k.min(n)
            }
        }
    };
    let mut train = Vec::new();
    let mut valid = Vec::new();
    for (i, s) in samples.into_iter().enumerate() {
        if is_val(i, &s) {
            valid.push(s);
        } else {
            train.push(s);
        }
    }
    (train, valid)
}
