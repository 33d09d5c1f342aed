//! The `unet-train` binary end to end on a tiny synthetic data set (bright discs on a dark
//! background, instance labels, written as PNG): `train` writes the model, checkpoint, CSV log
//! and curve plot; `--resume` reaches the same weights as an uninterrupted run; `predict`
//! writes label, instance and overlay images of the input's size; `eval` prints and writes
//! metrics next to the threshold baseline; bad arguments give clear errors.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::Array2;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_unet-train"))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("unet-cliwf-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_png8(path: &Path, a: &Array2<u8>) {
    let (h, w) = a.dim();
    let mut enc = png::Encoder::new(
        BufWriter::new(File::create(path).unwrap()),
        w as u32,
        h as u32,
    );
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().unwrap();
    wr.write_image_data(a.as_slice().unwrap()).unwrap();
}

/// `n` images of 64×64 with four discs each (two of them touching), labels 1..=4.
fn make_data(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("labels")).unwrap();
    for k in 0..n {
        let centres = [
            (14.0 + k as f32, 14.0),
            (14.0 + k as f32, 25.0),
            (44.0, 20.0 + 2.0 * k as f32),
            (40.0, 48.0),
        ];
        let mut img = Array2::<u8>::from_elem((64, 64), 40);
        let mut lab = Array2::<u8>::zeros((64, 64));
        for ((y, x), v) in img.indexed_iter_mut() {
            for (id, &(cy, cx)) in centres.iter().enumerate() {
                let d2 = (y as f32 - cy).powi(2) + (x as f32 - cx).powi(2);
                if d2 < 30.0 {
                    *v = 200 - (d2 as u8);
                    lab[[y, x]] = id as u8 + 1;
                }
            }
            *v = v.wrapping_add(((y * 7 + x * 13 + k) % 9) as u8);
        }
        write_png8(&dir.join(format!("images/im{k}.png")), &img);
        write_png8(&dir.join(format!("labels/im{k}.png")), &lab);
    }
}

fn run(args: &[&str]) -> Output {
    let out = bin().args(args).output().unwrap();
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn train_args<'a>(data: &'a str, out: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "--threads",
        "1",
        "train",
        "--data",
        data,
        "--out",
        out,
        "--val-frames",
        "2",
        "--levels",
        "2",
        "--base",
        "4",
        "--tile",
        "44",
        "--batch",
        "2",
        "--steps",
        steps,
        "--log-every",
        "3",
        "--validate-every",
        "3",
        "--checkpoint-every",
        "3",
        "--seed",
        "5",
        "--no-progress",
    ]
}

/// The tensors of a model file (metadata, which holds the date, left out).
fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn train_resume_predict_eval() {
    let d = TempDir::new("all");
    let data = d.0.join("data");
    make_data(&data, 3);
    let data_s = data.to_str().unwrap();

    // Uninterrupted: 6 steps.
    let full = d.0.join("full");
    let full_s = full.to_str().unwrap();
    let s = ok(&run(&train_args(data_s, full_s, "6")));
    assert!(s.contains("trained to step 6"), "{s}");
    assert!(s.contains("f1"), "{s}");
    for f in [
        "model.safetensors",
        "checkpoint.ckpt",
        "log.csv",
        "curves.png",
    ] {
        assert!(full.join(f).is_file(), "{f} missing");
    }
    let log = std::fs::read_to_string(full.join("log.csv")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].starts_with("step,lr,train_loss,tiles_per_s,elapsed_s,val_pixel_error"));
    assert!(lines[0].contains("val_iou_fg") && lines[0].contains("val_f1"));
    assert!(lines[2].starts_with("6,"));
    let bytes = std::fs::read(full.join("model.safetensors")).unwrap();
    let model = unet_core::Model::from_safetensors(&bytes).unwrap();
    assert_eq!(model.config().levels, 2);
    assert_eq!(
        model.normalization(),
        unet_core::Normalization::Percentile {
            low: 1.0,
            high: 99.8
        }
    );
    let ck = unet_train::checkpoint::Checkpoint::load(&full.join("checkpoint.ckpt")).unwrap();
    assert_eq!(ck.step, 6);
    let png = std::fs::read(full.join("curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // Interrupted after 3 steps, then resumed to 6: the same weights.
    let part = d.0.join("part");
    let part_s = part.to_str().unwrap();
    ok(&run(&train_args(data_s, part_s, "3")));
    let mut resume = train_args(data_s, part_s, "6");
    resume.push("--resume");
    let s = ok(&run(&resume));
    assert!(s.contains("trained to step 6"), "{s}");
    assert_eq!(
        tensors(&part.join("model.safetensors")),
        tensors(&full.join("model.safetensors"))
    );
    // The log continues rather than restarting.
    let log = std::fs::read_to_string(part.join("log.csv")).unwrap();
    assert_eq!(log.lines().filter(|l| l.starts_with("step,")).count(), 1);
    assert_eq!(log.lines().count(), 3, "{log}");

    // predict: files of the input's size.
    let pred = d.0.join("pred");
    let img0 = data.join("images/im0.png");
    let s = ok(&run(&[
        "predict",
        "--model",
        full.join("model.safetensors").to_str().unwrap(),
        "--out",
        pred.to_str().unwrap(),
        "--probabilities",
        img0.to_str().unwrap(),
    ]));
    assert!(s.contains("im0: 64×64"), "{s}");
    for f in [
        "im0.labels.png",
        "im0.instances.png",
        "im0.overlay.png",
        "im0.probs.tif",
    ] {
        let p = pred.join(f);
        assert!(p.is_file(), "{f} missing");
    }
    let labels = unet_train::data::load_labels(&pred.join("im0.labels.png")).unwrap();
    assert_eq!(labels[0].dim(), (64, 64));
    assert!(labels[0].iter().all(|&c| c < 2));

    // eval with the baseline and a CSV.
    let csv = d.0.join("metrics.csv");
    let s = ok(&run(&[
        "eval",
        "--model",
        full.join("model.safetensors").to_str().unwrap(),
        "--data",
        data_s,
        "--frames",
        "1..3",
        "--baseline",
        "--csv",
        csv.to_str().unwrap(),
    ]));
    assert!(s.contains("2 images"), "{s}");
    assert!(s.contains("unet ") && s.contains("baseline "), "{s}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[1].starts_with("unet,2,") && rows[2].starts_with("blur+otsu,2,"));
    // The baseline separates bright discs from a dark background well (not the touching
    // pair): its foreground IoU is high.
    let iou: f64 = rows[2].split(',').nth(2).unwrap().parse().unwrap();
    assert!(iou > 0.8, "{text}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let d = TempDir::new("bad");
    let data = d.0.join("data");
    make_data(&data, 3);
    let data_s = data.to_str().unwrap();
    let out = d.0.join("o");
    let out_s = out.to_str().unwrap();
    let err = |o: Output| {
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // Illegal tile: the nearest legal sizes are named.
    let mut a = train_args(data_s, out_s, "1");
    a[14] = "45";
    let e = err(run(&a));
    assert!(
        e.contains("tile 45 is not a legal") && e.contains("44"),
        "{e}"
    );
    // Resume without a checkpoint.
    let mut a = train_args(data_s, out_s, "1");
    a.push("--resume");
    assert!(err(run(&a)).contains("checkpoint.ckpt does not exist"));
    // A validation index past the end.
    let mut a = train_args(data_s, out_s, "1");
    a[8] = "7";
    assert!(err(run(&a)).contains("out of range"));
    // An image without labels: the error names the file.
    std::fs::remove_file(data.join("labels/im1.png")).unwrap();
    let e = err(run(&train_args(data_s, out_s, "1")));
    assert!(e.contains("im1.png"), "{e}");
    // A missing model file.
    let e = err(run(&[
        "predict",
        "--model",
        d.0.join("none.safetensors").to_str().unwrap(),
        "--out",
        out_s,
        data.join("images/im0.png").to_str().unwrap(),
    ]));
    assert!(e.contains("none.safetensors"), "{e}");
}
