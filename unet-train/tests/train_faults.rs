//! Fault injection on the `unet-train train` command (issue #10):
//! - `kill -9` at seeded random moments (checkpoint every step, so many kills land while a
//!   checkpoint is being written), then `--resume`: the checkpoint on disk always loads, the
//!   step counter never goes back, training reaches the end, and the result equals an
//!   uninterrupted run bit for bit (checkpoints are exact);
//! - a full disk, simulated with `RLIMIT_FSIZE` on the child (`prlimit`, with SIGXFSZ ignored so
//!   the write fails with EFBIG instead of killing it; works as root, unlike `chmod`): a non-zero
//!   exit, an error naming the file, the previous checkpoint intact and loadable, no temporary
//!   file left behind;
//! - a corrupt or truncated image in the data folder: a non-zero exit and an error naming it.
//!
//! The data are tiny synthetic PNGs (8-bit images, 16-bit instance labels) written here with the
//! `png` crate; the model is tiny (2 levels, 2 base channels) so that every test runs in seconds.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use unet_train::checkpoint::Checkpoint;

/// A directory under cargo's per-target temporary directory, emptied first, removed on drop
/// (kept when a test fails, for inspection).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("train-faults-{tag}"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// SplitMix64: the seeded source of every random choice here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn write_png(path: &Path, w: u32, h: u32, depth: png::BitDepth, data: &[u8]) {
    let f = BufWriter::new(File::create(path).unwrap());
    let mut enc = png::Encoder::new(f, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(depth);
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

/// Side of the synthetic images.
const SIDE: usize = 48;

/// Writes `n` image/label pairs `DIR/images/sNN.png` (8-bit) and `DIR/labels/sNN.png` (16-bit
/// instance ids): a few bright noisy disks on a dark noisy background, each disk its own
/// instance, some touching.
fn write_dataset(dir: &Path, n: usize, seed: u64) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("labels")).unwrap();
    let mut rng = Rng(seed);
    for i in 0..n {
        let mut img = vec![0u8; SIDE * SIDE];
        let mut lab = vec![0u16; SIDE * SIDE];
        let disks = 2 + rng.below(4) as usize;
        for id in 1..=disks {
            let cy = rng.below(SIDE as u64) as f64;
            let cx = rng.below(SIDE as u64) as f64;
            let r = 4.0 + rng.below(6) as f64;
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let d = ((y as f64 - cy).powi(2) + (x as f64 - cx).powi(2)).sqrt();
                    if d <= r {
                        lab[y * SIDE + x] = id as u16;
                    }
                }
            }
        }
        for (p, l) in img.iter_mut().zip(&lab) {
            let base = if *l > 0 { 170 } else { 40 };
            *p = base + rng.below(40) as u8;
        }
        let name = format!("s{i:02}.png");
        write_png(
            &dir.join("images").join(&name),
            SIDE as u32,
            SIDE as u32,
            png::BitDepth::Eight,
            &img,
        );
        let lab_be: Vec<u8> = lab.iter().flat_map(|v| v.to_be_bytes()).collect();
        write_png(
            &dir.join("labels").join(&name),
            SIDE as u32,
            SIDE as u32,
            png::BitDepth::Sixteen,
            &lab_be,
        );
    }
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_unet-train"))
}

/// The arguments of a tiny training run of `steps` steps on `data` into `out`, checkpointing
/// every `every` steps.
fn train_args(data: &Path, out: &Path, steps: u64, every: u64, resume: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        &steps.to_string(),
        "--checkpoint-every",
        &every.to_string(),
        "--log-every",
        "1",
        "--levels",
        "2",
        "--base",
        "2",
        "--padding",
        "same",
        "--tile",
        "32",
        "--batch",
        "1",
        "--seed",
        "7",
        "--threads",
        "1",
        "--no-progress",
        "--val-fraction",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if resume {
        a.push("--resume".into());
    }
    a
}

fn train(data: &Path, out: &Path, steps: u64, every: u64, resume: bool) -> Command {
    let mut c = Command::new(bin());
    c.args(train_args(data, out, steps, every, resume))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_ok(mut c: Command) -> Output {
    let o = c.output().expect("spawn unet-train");
    assert!(o.status.success(), "unet-train failed: {}", text(&o));
    o
}

/// Files in `out` that are neither a known output nor a temporary file of an interrupted
/// atomic write (`.NAME.tmp-PID`, which a crash may leave).
fn unexpected_files(out: &Path) -> Vec<String> {
    let known = [
        "checkpoint.ckpt",
        "model.safetensors",
        "log.csv",
        "curves.png",
    ];
    file_names(out)
        .into_iter()
        .filter(|n| {
            !known.contains(&n.as_str())
                && !known.iter().any(|k| n.starts_with(&format!(".{k}.tmp-")))
        })
        .collect()
}

/// Names of the files in `dir` (none if it does not exist yet).
fn file_names(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

fn temp_files(out: &Path) -> Vec<String> {
    file_names(out)
        .into_iter()
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Steps of the kill test.
const KILL_STEPS: u64 = 40;

#[test]
fn kill_9_at_random_moments_then_resume() {
    let t = TempDir::new("kill");
    let data = t.0.join("data");
    write_dataset(&data, 4, 1);

    // The reference: one uninterrupted run.
    let reference = t.0.join("reference");
    run_ok(train(&data, &reference, KILL_STEPS, 1, false));
    let want = Checkpoint::load(&reference.join("checkpoint.ckpt")).expect("reference checkpoint");
    assert_eq!(want.step, KILL_STEPS);
    // Timing of a whole run: startup (until the first checkpoint appears) and time per step,
    // to aim the kills at the training steps.
    let (startup, per_step) = {
        let out = t.0.join("timing");
        let start = Instant::now();
        let mut child = train(&data, &out, KILL_STEPS, 1, false).spawn().unwrap();
        while !out.join("checkpoint.ckpt").exists() && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let startup = start.elapsed();
        assert!(child.wait().unwrap().success());
        (startup, (start.elapsed() - startup) / KILL_STEPS as u32)
    };

    let seed = std::env::var("UNET_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026u64);
    let mut rng = Rng(seed);
    let out = t.0.join("out");
    let ckpt = out.join("checkpoint.ckpt");
    let (mut kills, mut last_step, mut loads, mut mid_write) = (0, 0u64, 0, 0);
    let mut finished = false;
    for round in 0..60 {
        if last_step == KILL_STEPS {
            break;
        }
        let resume = ckpt.exists();
        let stderr_path = t.0.join("stderr.txt");
        let mut child = train(&data, &out, KILL_STEPS, 1, resume)
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawn unet-train");
        // One kill in eight during startup, the others within the next three steps (anywhere in
        // a step, checkpoint writing included).
        let delay = if rng.below(8) == 0 {
            startup.mul_f64(rng.below(1000) as f64 / 1000.0)
        } else {
            startup + per_step.mul_f64(rng.below(3000) as f64 / 1000.0)
        };
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(
                    status.success(),
                    "round {round}: run failed with {status}:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
                finished = true;
            }
            None => {
                child.kill().expect("SIGKILL"); // kill -9
                child.wait().unwrap();
                kills += 1;
            }
        }
        if ckpt.exists() {
            let ck = Checkpoint::load(&ckpt).unwrap_or_else(|e| {
                panic!("round {round}: checkpoint after kill -9 at {delay:?} does not load: {e}")
            });
            assert!(
                ck.step >= last_step,
                "round {round}: step went back from {last_step} to {}",
                ck.step
            );
            assert!(ck.step <= KILL_STEPS);
            last_step = ck.step;
            loads += 1;
        }
        eprintln!(
            "round {round}: delay {delay:?}, finished {finished}, checkpoint step {last_step}"
        );
        let odd = unexpected_files(&out);
        assert!(odd.is_empty(), "round {round}: unexpected files {odd:?}");
        // A temporary file left behind means the kill hit an atomic write in progress.
        for f in temp_files(&out) {
            mid_write += 1;
            std::fs::remove_file(out.join(f)).unwrap();
        }
        if finished {
            break;
        }
    }
    if !finished {
        run_ok(train(&data, &out, KILL_STEPS, 1, true));
    }
    eprintln!(
        "kill -9 test (seed {seed}): {kills} kills ({mid_write} during an atomic write), \
         {loads} checkpoint loads, last step before the end {last_step}; startup {startup:?}, \
         {per_step:?} per step"
    );
    assert!(kills >= 5, "too few kills ({kills}) to test anything");
    let got = Checkpoint::load(&ckpt).expect("final checkpoint");
    assert_eq!(got.step, KILL_STEPS);
    assert!(
        got.params == want.params,
        "a killed and resumed run differs from the uninterrupted one"
    );
    let model = std::fs::read(out.join("model.safetensors")).expect("model written at the end");
    unet_core::Model::from_safetensors(&model).expect("exported model loads in unet-core");
}

/// Regression (found by the kill test): a run killed after its first checkpoint but before its
/// first log line leaves an empty `log.csv`; the resumed run used to append rows without a
/// header, and then failed with "plot: no panels to draw". Likewise a torn last log line.
#[test]
fn resume_after_a_kill_that_left_a_headerless_or_torn_log() {
    let t = TempDir::new("log");
    let data = t.0.join("data");
    write_dataset(&data, 2, 4);
    for (what, spoil) in [
        ("empty", (|_: &str| String::new()) as fn(&str) -> String),
        ("torn", |log: &str| format!("{log}3,1e-3,0.5")),
        ("header only, torn", |log: &str| {
            format!("{}\n1,1e", log.lines().next().unwrap())
        }),
    ] {
        let out = t.0.join(what.replace([' ', ','], "_"));
        run_ok(train(&data, &out, 2, 1, false));
        let log_path = out.join("log.csv");
        let log = std::fs::read_to_string(&log_path).unwrap();
        std::fs::write(&log_path, spoil(&log)).unwrap();
        run_ok(train(&data, &out, 4, 1, true));
        let (header, rows) = unet_train::plot::read_log_csv(&log_path)
            .unwrap_or_else(|e| panic!("{what}: log unreadable after resume: {e}"));
        assert_eq!(header[..3], ["step", "lr", "train_loss"], "{what}");
        let last = rows.last().expect("rows after resume");
        assert_eq!(last[0], 4.0, "{what}: last row is step 4");
        assert!(
            rows.iter()
                .all(|r| r.len() == header.len() && r[2].is_finite()),
            "{what}"
        );
        assert!(out.join("curves.png").exists(), "{what}");
    }
}

/// Runs `unet-train` with its file-size limit at `limit` bytes and SIGXFSZ ignored, so that a
/// write past the limit fails with EFBIG ("File too large") as on a full disk.
fn train_with_fsize_limit(args: &[String], limit: u64) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("trap '' XFSZ; exec prlimit --fsize=\"$0\" -- \"$@\"")
        .arg(limit.to_string())
        .arg(bin())
        .args(args);
    c.output().expect("spawn sh/prlimit")
}

fn have_prlimit() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn full_disk_keeps_the_previous_checkpoint() {
    if !have_prlimit() {
        eprintln!("SKIPPED: prlimit (util-linux) is missing; the full-disk test did not run");
        return;
    }
    let t = TempDir::new("fsize");
    let data = t.0.join("data");
    write_dataset(&data, 3, 2);
    let out = t.0.join("out");
    let ckpt = out.join("checkpoint.ckpt");
    run_ok(train(&data, &out, 2, 1, false));
    let before = std::fs::read(&ckpt).unwrap();
    let step_before = Checkpoint::from_bytes(&before).unwrap().step;

    // Too small for a checkpoint, large enough for the log: the next checkpoint write fails.
    let limit = before.len() as u64 / 2;
    let o = train_with_fsize_limit(&train_args(&data, &out, 6, 1, true), limit);
    let all = text(&o);
    assert!(
        !o.status.success(),
        "succeeded despite the size limit: {all}"
    );
    assert_ne!(
        o.status.code(),
        None,
        "killed by a signal instead of failing: {all}"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("checkpoint.ckpt") || stderr.contains("model.safetensors"),
        "the error does not name the file: {all}"
    );
    assert!(
        stderr.contains("too large") || stderr.contains("27"),
        "the error does not give the OS reason: {all}"
    );
    assert!(!stderr.contains("panicked"), "{all}");
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        before,
        "previous checkpoint changed"
    );
    assert_eq!(Checkpoint::load(&ckpt).unwrap().step, step_before);
    assert!(
        temp_files(&out).is_empty(),
        "temporary files left: {:?}",
        temp_files(&out)
    );

    // Without the limit, the run resumes from the intact checkpoint and finishes.
    run_ok(train(&data, &out, 6, 1, true));
    assert_eq!(Checkpoint::load(&ckpt).unwrap().step, 6);
}

#[test]
fn corrupt_images_are_named_by_the_cli() {
    let t = TempDir::new("corrupt");
    let data = t.0.join("data");
    write_dataset(&data, 3, 3);
    let victim = data.join("images/s01.png");
    let full = std::fs::read(&victim).unwrap();
    for (what, bytes) in [
        ("truncated", full[..full.len() / 2].to_vec()),
        ("garbage", b"definitely not a PNG file".to_vec()),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&victim, &bytes).unwrap();
        let out = t.0.join(format!("out-{what}"));
        let o = train(&data, &out, 2, 1, false).output().unwrap();
        let all = text(&o);
        assert!(!o.status.success(), "{what} image accepted: {all}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("s01.png"),
            "{what}: error does not name the file: {all}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {all}");
    }
    // A corrupt label file likewise.
    std::fs::write(&victim, &full).unwrap();
    let lab = data.join("labels/s02.png");
    let lab_bytes = std::fs::read(&lab).unwrap();
    std::fs::write(&lab, &lab_bytes[..lab_bytes.len() / 2]).unwrap();
    let o = train(&data, &t.0.join("out-label"), 2, 1, false)
        .output()
        .unwrap();
    let all = text(&o);
    assert!(!o.status.success(), "truncated label accepted: {all}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("s02.png"),
        "{all}"
    );
}
