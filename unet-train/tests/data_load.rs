//! Folder loading (TIFF stacks and PNGs written here), errors naming the file, splits.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use tiff::encoder::{colortype, TiffEncoder};
use unet_train::data::{
    load_folder, load_folder_checked, load_image, load_labels, split, validate_labels, DataError,
    LabelKind, Sample, SplitSpec,
};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("unet-train-data-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("images")).unwrap();
        std::fs::create_dir_all(p.join("labels")).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_tiff16(path: &Path, pages: &[Array2<u16>]) {
    let mut enc = TiffEncoder::new(BufWriter::new(File::create(path).unwrap())).unwrap();
    for p in pages {
        let (h, w) = p.dim();
        enc.write_image::<colortype::Gray16>(w as u32, h as u32, p.as_slice().unwrap())
            .unwrap();
    }
}

fn write_tiff8(path: &Path, pages: &[Array2<u8>]) {
    let mut enc = TiffEncoder::new(BufWriter::new(File::create(path).unwrap())).unwrap();
    for p in pages {
        let (h, w) = p.dim();
        enc.write_image::<colortype::Gray8>(w as u32, h as u32, p.as_slice().unwrap())
            .unwrap();
    }
}

fn write_png(
    path: &Path,
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) {
    let mut enc = png::Encoder::new(BufWriter::new(File::create(path).unwrap()), w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

fn page16(h: usize, w: usize, k: u16) -> Array2<u16> {
    Array2::from_shape_fn((h, w), |(y, x)| (y * 1000 + x) as u16 + k * 7)
}

#[test]
fn loads_stacks_and_pngs() {
    let d = TempDir::new("ok");
    let pages: Vec<Array2<u16>> = (0..3).map(|k| page16(5, 6, k)).collect();
    write_tiff16(&d.0.join("images/stack.tif"), &pages);
    let labs: Vec<Array2<u8>> = (0..3).map(|k| Array2::from_elem((5, 6), k as u8)).collect();
    write_tiff8(&d.0.join("labels/stack.tiff"), &labs);
    // A 16-bit PNG image (big-endian samples) with 8-bit PNG labels.
    let img: Vec<u16> = (0..12).map(|v| v * 5000).collect();
    let bytes: Vec<u8> = img.iter().flat_map(|v| v.to_be_bytes()).collect();
    write_png(
        &d.0.join("images/single.png"),
        4,
        3,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &bytes,
    );
    write_png(
        &d.0.join("labels/single.png"),
        4,
        3,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[3; 12],
    );

    let s = load_folder(&d.0, LabelKind::Instance).unwrap();
    let names: Vec<&str> = s.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["single", "stack#0", "stack#1", "stack#2"]);
    assert_eq!(s[0].image.dim(), (1, 3, 4));
    assert_eq!(s[0].image[[0, 2, 3]], 55000.0);
    assert_eq!(s[0].labels[[1, 1]], 3);
    for k in 0..3 {
        assert_eq!(
            s[k + 1].image.index_axis(ndarray::Axis(0), 0),
            pages[k].mapv(f32::from)
        );
        assert_eq!(s[k + 1].labels, labs[k].mapv(u32::from));
    }
    assert_eq!(load_image(&d.0.join("images/stack.tif")).unwrap().len(), 3);
    assert_eq!(
        load_labels(&d.0.join("labels/single.png")).unwrap()[0][[0, 0]],
        3
    );
}

fn err_text(e: DataError) -> String {
    e.to_string()
}

#[test]
fn errors_name_the_file() {
    // Unreadable (garbage bytes).
    let d = TempDir::new("garbage");
    std::fs::write(d.0.join("images/broken.tif"), b"this is not a tiff").unwrap();
    write_tiff16(&d.0.join("labels/broken.tif"), &[page16(2, 2, 0)]);
    let e = err_text(load_folder(&d.0, LabelKind::Instance).unwrap_err());
    assert!(e.contains("broken.tif") && e.contains("decode"), "{e}");

    // Truncated PNG.
    let d = TempDir::new("trunc");
    write_png(
        &d.0.join("images/t.png"),
        4,
        3,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[1; 12],
    );
    let full = std::fs::read(d.0.join("images/t.png")).unwrap();
    std::fs::write(d.0.join("images/t.png"), &full[..full.len() / 2]).unwrap();
    write_png(
        &d.0.join("labels/t.png"),
        4,
        3,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[1; 12],
    );
    let e = err_text(load_folder(&d.0, LabelKind::Instance).unwrap_err());
    assert!(
        e.contains("images/t.png") || e.contains("images\\t.png"),
        "{e}"
    );

    // Unsupported colour.
    let d = TempDir::new("rgb");
    write_png(
        &d.0.join("images/rgb.png"),
        2,
        2,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &[9; 12],
    );
    write_png(
        &d.0.join("labels/rgb.png"),
        2,
        2,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[0; 4],
    );
    let e = load_folder(&d.0, LabelKind::Instance).unwrap_err();
    assert!(matches!(e, DataError::Unsupported { .. }));
    assert!(err_text(e).contains("rgb.png"));

    // Size mismatch.
    let d = TempDir::new("size");
    write_tiff16(&d.0.join("images/m.tif"), &[page16(4, 5, 0)]);
    write_tiff16(&d.0.join("labels/m.tif"), &[page16(5, 4, 0)]);
    let e = load_folder(&d.0, LabelKind::Instance).unwrap_err();
    assert!(matches!(e, DataError::SizeMismatch { .. }));
    let t = err_text(e);
    assert!(
        t.contains("labels/m.tif") && t.contains("images/m.tif") && t.contains("5x4"),
        "{t}"
    );

    // Page-count mismatch.
    let d = TempDir::new("pages");
    write_tiff16(
        &d.0.join("images/p.tif"),
        &[page16(4, 4, 0), page16(4, 4, 1)],
    );
    write_tiff16(&d.0.join("labels/p.tif"), &[page16(4, 4, 0)]);
    let e = load_folder(&d.0, LabelKind::Instance).unwrap_err();
    assert!(matches!(
        e,
        DataError::PageCount {
            image_pages: 2,
            labels_pages: 1,
            ..
        }
    ));
    assert!(err_text(e).contains("p.tif"));

    // Class label out of range.
    let d = TempDir::new("class");
    write_tiff16(&d.0.join("images/c.tif"), &[page16(4, 4, 0)]);
    let mut lab = Array2::<u16>::zeros((4, 4));
    lab[[2, 3]] = 5;
    write_tiff16(&d.0.join("labels/c.tif"), &[lab]);
    let e = load_folder_checked(&d.0, LabelKind::Class, Some(3)).unwrap_err();
    assert!(matches!(
        e,
        DataError::LabelValue {
            value: 5,
            y: 2,
            x: 3,
            limit: 3,
            ..
        }
    ));
    assert!(err_text(e).contains("labels/c.tif"));
    assert!(load_folder_checked(&d.0, LabelKind::Class, Some(6)).is_ok());
    assert!(load_folder_checked(&d.0, LabelKind::Instance, Some(3)).is_ok());

    // Unpaired image, unpaired label, empty folder, missing folder.
    let d = TempDir::new("unpaired");
    write_tiff16(&d.0.join("images/alone.tif"), &[page16(2, 2, 0)]);
    let e = err_text(load_folder(&d.0, LabelKind::Instance).unwrap_err());
    assert!(e.contains("alone.tif") && e.contains("label"), "{e}");
    std::fs::remove_file(d.0.join("images/alone.tif")).unwrap();
    write_tiff16(&d.0.join("labels/orphan.tif"), &[page16(2, 2, 0)]);
    assert!(matches!(
        load_folder(&d.0, LabelKind::Instance).unwrap_err(),
        DataError::Empty { .. }
    ));
    write_tiff16(&d.0.join("images/other.tif"), &[page16(2, 2, 0)]);
    let e = err_text(load_folder(&d.0, LabelKind::Instance).unwrap_err());
    assert!(e.contains("orphan.tif"), "{e}");
    let e = err_text(load_folder(&d.0.join("nope"), LabelKind::Instance).unwrap_err());
    assert!(e.contains("nope"), "{e}");

    // Float TIFF images are refused.
    let d = TempDir::new("float");
    let mut enc = TiffEncoder::new(BufWriter::new(
        File::create(d.0.join("images/f.tif")).unwrap(),
    ))
    .unwrap();
    enc.write_image::<colortype::Gray32Float>(2, 2, &[0.5f32; 4])
        .unwrap();
    drop(enc);
    let e = load_image(&d.0.join("images/f.tif")).unwrap_err();
    assert!(matches!(e, DataError::Unsupported { .. }) && err_text(e).contains("f.tif"));
}

fn named(names: &[&str]) -> Vec<Sample> {
    names
        .iter()
        .map(|n| Sample {
            name: n.to_string(),
            image: ndarray::Array3::zeros((1, 1, 1)),
            labels: Array2::zeros((1, 1)),
        })
        .collect()
}

#[test]
fn splits() {
    let s = named(&["a#0", "a#1", "a#2", "b", "c"]);
    let names = |v: &[Sample]| v.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    let (t, v) = split(s.clone(), &SplitSpec::Indices(vec![1, 4, 99]));
    assert_eq!(names(&t), ["a#0", "a#2", "b"]);
    assert_eq!(names(&v), ["a#1", "c"]);
    let (t, v) = split(s.clone(), &SplitSpec::Names(vec!["a".into(), "c".into()]));
    assert_eq!(names(&t), ["b"]);
    assert_eq!(names(&v), ["a#0", "a#1", "a#2", "c"]);
    let (t, v) = split(s.clone(), &SplitSpec::LastFraction(0.25));
    assert_eq!(names(&t), ["a#0", "a#1", "a#2"]);
    assert_eq!(names(&v), ["b", "c"]);
    let (t, v) = split(s.clone(), &SplitSpec::LastFraction(0.0));
    assert_eq!((t.len(), v.len()), (5, 0));
    let (t, v) = split(s, &SplitSpec::LastFraction(f32::NAN));
    assert_eq!((t.len(), v.len()), (5, 0));
}

#[test]
fn validate_class_labels() {
    let mut s = named(&["x", "y"]);
    s[1].labels[[0, 0]] = 4;
    assert!(validate_labels(&s, LabelKind::Class, 5).is_ok());
    let e = validate_labels(&s, LabelKind::Class, 4).unwrap_err();
    assert!(err_text(e).starts_with("y:"));
    assert!(validate_labels(&s, LabelKind::Instance, 2).is_ok());
}
