//! Drives the C and C++ test programs of libunet (tests/c, tests/cpp, examples/c, examples/cpp):
//! writes test models (with the `safetensors` crate, parameter names and shapes from
//! `unet_core::arch::Config`, random weights) and the Rust API's outputs on the same inputs,
//! compiles the programs with plain gcc/g++ against the `libunet.a` and `libunet.so` that
//! cargo built for this test run (they sit next to this test binary in `target/<profile>/deps`),
//! runs them, and compares what they print with the Rust API. The harness also runs under
//! `valgrind --error-exitcode=1 --leak-check=full` (skipped with a message if valgrind is
//! missing) and built with `gcc -fsanitize=address,undefined` (skipped with a message if the
//! sanitizer runtimes are missing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use safetensors::{serialize, Dtype};
use unet::UNET_DEFAULT_SCRATCH_BUDGET;
use unet_core::{
    Config, FrameInput, FrameOptions, FrameOutput, FrameView, Model, Output, Padding, SampleType,
    Sequential, TileChoice,
};

/// The main test model: 1 input channel, 3 classes, 4 base channels, 2 levels, valid padding.
const MAIN: Config = Config {
    in_channels: 1,
    num_classes: 3,
    base_channels: 4,
    levels: 2,
    padding: Padding::Valid,
};
/// Tile of the expected outputs; must match TILE_H/TILE_W in tests/c/harness.c.
const TILE: (usize, usize) = (28, 36);
const NORMALIZATION: &str = "percentile:1:99.8";

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// How to spoil a model file.
#[derive(Clone, Copy, PartialEq)]
enum Spoil {
    None,
    Version2,
    LevelsNotANumber,
    DropHeadBias,
    WrongShape,
}

/// A model file for `cfg` with He-uniform random weights, written by the safetensors crate.
fn model_file(cfg: &Config, seed: u64, spoil: Spoil) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for k in 0..cfg.param_count() {
        let p = cfg.param(k).expect("k < param_count");
        let name = p.to_string();
        if spoil == Spoil::DropHeadBias && name == "head.bias" {
            continue;
        }
        let mut dims = cfg.param_shape(p).expect("valid config").dims().to_vec();
        let n: usize = dims.iter().product();
        let bound = if dims.len() == 1 {
            0.1
        } else {
            let fan_in = if name.starts_with("up.") {
                dims[1] * 4
            } else {
                dims[1] * 9
            };
            (6.0 / fan_in as f32).sqrt()
        };
        let data: Vec<u8> = (0..n)
            .flat_map(|_| (rng.sym() * bound).to_le_bytes())
            .collect();
        if spoil == Spoil::WrongShape && name == "enc.0.conv1.weight" {
            dims.swap(0, 1);
        }
        tensors.push((name, dims, data));
    }
    let mut meta: HashMap<String, String> = [
        ("format", "unet".to_string()),
        (
            "format_version",
            if spoil == Spoil::Version2 { "2" } else { "1" }.to_string(),
        ),
        ("in_channels", cfg.in_channels.to_string()),
        ("num_classes", cfg.num_classes.to_string()),
        ("base_channels", cfg.base_channels.to_string()),
        ("levels", cfg.levels.to_string()),
        ("padding", cfg.padding.as_str().to_string()),
        ("normalization", NORMALIZATION.to_string()),
        ("provenance", format!("unet-ffi c_harness seed {seed}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if spoil == Spoil::LevelsNotANumber {
        meta.insert("levels".into(), "x".into());
    }
    let views = tensors.iter().map(|(name, dims, data)| {
        let view = safetensors::tensor::TensorView::new(Dtype::F32, dims.clone(), data)
            .expect("consistent tensor");
        (name.clone(), view)
    });
    serialize(views, Some(meta)).expect("serialize")
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Test data shared by the programs, written once per test run, and the `key=value` lines the
/// harness must print (computed with the Rust API).
struct Data {
    dir: PathBuf,
    report: Vec<String>,
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = scratch_dir("data");
        let bytes = model_file(&MAIN, 1, Spoil::None);
        write(&dir, "model.safetensors", &bytes);
        for (name, spoil) in [
            ("bad_version.safetensors", Spoil::Version2),
            ("bad_metadata.safetensors", Spoil::LevelsNotANumber),
            ("missing_tensor.safetensors", Spoil::DropHeadBias),
            ("wrong_shape.safetensors", Spoil::WrongShape),
        ] {
            write(&dir, name, &model_file(&MAIN, 2, spoil));
        }
        let wide = Config {
            in_channels: 1,
            num_classes: 300,
            base_channels: 1,
            levels: 1,
            padding: Padding::Valid,
        };
        write(&dir, "wide.safetensors", &model_file(&wide, 3, Spoil::None));

        // Expected tile outputs from the Rust API.
        let model = Model::from_safetensors(&bytes).expect("test model loads");
        let plan = model.plan(TILE.0, TILE.1).expect("legal tile");
        let mut rng = Rng(7);
        let input: Vec<f32> = (0..plan.input_len())
            .map(|_| rng.sym() * 0.5 + 0.5)
            .collect();
        let mut scratch = vec![0f32; plan.scratch_len()];
        let mut logits = vec![0f32; plan.output_len()];
        let mut probs = vec![0f32; plan.output_len()];
        let mut l8 = vec![0u8; plan.label_len()];
        let mut l16 = vec![0u16; plan.label_len()];
        model
            .forward(&plan, &input, &mut scratch, Output::Logits(&mut logits))
            .unwrap();
        model
            .forward(
                &plan,
                &input,
                &mut scratch,
                Output::Probabilities(&mut probs),
            )
            .unwrap();
        model
            .forward(&plan, &input, &mut scratch, Output::Labels8(&mut l8))
            .unwrap();
        model
            .forward(&plan, &input, &mut scratch, Output::Labels16(&mut l16))
            .unwrap();
        // The labels must not be constant, or the comparison would prove little.
        assert!(l8.iter().any(|&l| l != l8[0]), "degenerate test model");
        write(&dir, "tile_input.f32", &f32_bytes(&input));
        write(&dir, "tile_logits.f32", &f32_bytes(&logits));
        write(&dir, "tile_probs.f32", &f32_bytes(&probs));
        write(&dir, "tile_labels8.u8", &l8);
        write(
            &dir,
            "tile_labels16.u16",
            &l16.iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>(),
        );

        let g = model.geometry();
        let v = env!("CARGO_PKG_VERSION");
        let mut report = vec![
            format!("version={v}"),
            format!("version_macros={v}"),
            format!("in_channels={}", MAIN.in_channels),
            format!("num_classes={}", MAIN.num_classes),
            format!("base_channels={}", MAIN.base_channels),
            format!("levels={}", MAIN.levels),
            format!("halo={}", g.halo()),
            format!("tile_step={}", g.step()),
            format!("min_tile={}", g.min_input()),
            "padding=0".to_string(),
        ];
        report.extend(
            (0..48)
                .filter(|&n| g.is_legal(n))
                .map(|n| format!("legal={n}")),
        );
        report.extend([
            format!("next_legal_29={}", g.next_legal(29).unwrap()),
            format!("prev_legal_29={}", g.prev_legal(29).unwrap()),
            format!("tile_for_output_13={}", g.input_for_output(13).unwrap()),
            format!(
                "output_size={}x{}",
                plan.output_size().0,
                plan.output_size().1
            ),
            format!("tile_scratch_len={}", plan.scratch_len()),
            format!("normalization={NORMALIZATION}"),
            "threads=ok".to_string(),
        ]);
        report.extend(frame_data(&dir, &model));
        report.push("harness: all checks passed".to_string());
        Data { dir, report }
    })
}

/// Frame size of the frame tests; must match FH/FW in tests/c/frames.c.
const FRAME: (usize, usize) = (50, 70);

/// Runs the Rust frame API (one worker) on `input` with `tile` (None: automatic).
fn segment(
    model: &Model<'_>,
    input: FrameInput<'_>,
    sample: SampleType,
    tile: TileChoice,
    output: FrameOutput<'_>,
) {
    let (h, w) = FRAME;
    let plan = model
        .frame_plan(
            h,
            w,
            1,
            FrameOptions {
                tile,
                workers: 1,
                sample,
            },
        )
        .expect("frame plan");
    let mut scratch = vec![0f32; plan.scratch_len()];
    model
        .segment(&plan, input, &mut scratch, output, &Sequential)
        .expect("segment");
}

/// Frames (u16, u8, f32) and the Rust frame API's outputs on them; returns the report lines of
/// tests/c/frames.c.
fn frame_data(dir: &Path, model: &Model<'_>) -> Vec<String> {
    let (h, w) = FRAME;
    let n = h * w;
    let mut rng = Rng(11);
    // Bright blobs on a dark, noisy background.
    let px: Vec<u16> = (0..n)
        .map(|i| {
            let (y, x) = ((i / w) as f32, (i % w) as f32);
            let blob = ((x / 5.0).sin() * (y / 7.0).cos() > 0.3) as u32 as f32;
            (1000.0 + 20000.0 * blob + 500.0 * (rng.sym() + 1.0)) as u16
        })
        .collect();
    let px8: Vec<u8> = px.iter().map(|&v| (v >> 8) as u8).collect();
    let pxf: Vec<f32> = px.iter().map(|&v| v as f32 * 1e-3).collect();
    write(
        dir,
        "frame_u16.raw",
        &px.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    );
    write(dir, "frame_u8.raw", &px8);
    write(dir, "frame_f32.raw", &f32_bytes(&pxf));

    let explicit = TileChoice::Explicit(TILE.0, TILE.1);
    let auto = TileChoice::Budget(UNET_DEFAULT_SCRATCH_BUDGET);
    let u16_view = || FrameInput::U16(FrameView::packed(&px, 1, h, w).unwrap());
    let mut l8 = vec![0u8; n];
    segment(
        model,
        u16_view(),
        SampleType::U16,
        explicit,
        FrameOutput::Labels8(&mut l8),
    );
    assert!(l8.iter().any(|&l| l != l8[0]), "degenerate frame labels");
    write(dir, "frame_labels8.u8", &l8);
    segment(
        model,
        u16_view(),
        SampleType::U16,
        auto,
        FrameOutput::Labels8(&mut l8),
    );
    write(dir, "frame_labels8_auto.u8", &l8);
    let mut probs = vec![0f32; MAIN.num_classes * n];
    segment(
        model,
        u16_view(),
        SampleType::U16,
        explicit,
        FrameOutput::Probabilities(&mut probs),
    );
    write(dir, "frame_probs.f32", &f32_bytes(&probs));
    let mut l16 = vec![0u16; n];
    segment(
        model,
        FrameInput::U8(FrameView::packed(&px8, 1, h, w).unwrap()),
        SampleType::U8,
        explicit,
        FrameOutput::Labels16(&mut l16),
    );
    write(
        dir,
        "frame_u8_labels16.u16",
        &l16.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    segment(
        model,
        FrameInput::F32(FrameView::packed(&pxf, 1, h, w).unwrap()),
        SampleType::F32,
        explicit,
        FrameOutput::Labels16(&mut l16),
    );
    write(
        dir,
        "frame_f32_labels16.u16",
        &l16.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );

    let opts = |tile, workers| FrameOptions {
        tile,
        workers,
        sample: SampleType::U16,
    };
    let auto_plan = model.frame_plan(h, w, 1, opts(auto, 1)).unwrap();
    let (th, tw) = auto_plan.tile_input_size();
    vec![
        format!("frame_tile_auto={th}x{tw}"),
        format!(
            "frame_scratch_len_explicit={}",
            model
                .frame_plan(h, w, 1, opts(explicit, 1))
                .unwrap()
                .scratch_len()
        ),
        format!(
            "frame_scratch_len_explicit_2_threads={}",
            model
                .frame_plan(h, w, 1, opts(explicit, 2))
                .unwrap()
                .scratch_len()
        ),
        "frames=ok".to_string(),
    ]
}

/// A fresh directory under cargo's per-target temporary directory.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("unet-ffi")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The directory holding the libunet.a / libunet.so cargo built for this test run.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().expect("deps dir").to_path_buf();
    for lib in ["libunet.a", "libunet.so"] {
        assert!(
            dir.join(lib).exists(),
            "{lib} not found next to the test binary in {}",
            dir.display()
        );
    }
    dir
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Static,
    Shared,
}

/// Compiles and links `sources` into `out` with `compiler` and `flags`, against libunet.
fn compile(compiler: &str, flags: &[&str], sources: &[PathBuf], link: Link, out: &Path) {
    let lib = lib_dir();
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(repo().join("include"))
        .arg("-I")
        .arg(repo().join("tests/c"))
        .args(sources)
        .arg("-o")
        .arg(out);
    match link {
        // The system libraries are those of `cargo rustc -- --print native-static-libs`.
        Link::Static => {
            cmd.arg(lib.join("libunet.a"))
                .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"])
        }
        Link::Shared => cmd
            .arg(format!("-L{}", lib.display()))
            .arg("-lunet")
            // DT_RPATH (not RUNPATH): found before LD_LIBRARY_PATH.
            .arg("-Wl,--disable-new-dtags")
            .arg(format!("-Wl,-rpath,{}", lib.display())),
    };
    let res = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        res.status.success(),
        "{compiler} failed:\n{}\n{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
}

const C_FLAGS: &[&str] = &[
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-O1",
    "-g",
    "-pthread",
];
const CXX_FLAGS: &[&str] = &[
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-O1",
    "-g",
    "-pthread",
];

fn harness_sources() -> Vec<PathBuf> {
    ["harness.c", "frames.c", "check.c"]
        .iter()
        .map(|f| repo().join("tests/c").join(f))
        .collect()
}

/// Runs a program; returns stdout lines. Panics with its output on failure.
///
/// `cargo test` puts `target/<profile>` on `LD_LIBRARY_PATH`, where a `libunet.so` from an
/// earlier `cargo build` may lie stale, and `LD_LIBRARY_PATH` outranks a RUNPATH: so unless the
/// caller chose one, the library directory of this test run is put there.
fn run(cmd: &mut Command) -> Vec<String> {
    if !cmd.get_envs().any(|(k, _)| k == "LD_LIBRARY_PATH") {
        cmd.env("LD_LIBRARY_PATH", lib_dir());
    }
    let res = cmd.output().expect("spawn test program");
    let stdout = String::from_utf8_lossy(&res.stdout).to_string();
    assert!(
        res.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

fn check_harness(link: Link) {
    let d = data();
    let dir = scratch_dir(&format!("harness-{link:?}"));
    let exe = dir.join("harness");
    compile("gcc", C_FLAGS, &harness_sources(), link, &exe);
    let lines = run(Command::new(&exe).arg(&d.dir));
    assert_eq!(
        lines, d.report,
        "the C harness's report differs from the Rust API"
    );
}

#[test]
fn c_harness_static() {
    check_harness(Link::Static);
}

#[test]
fn c_harness_shared() {
    check_harness(Link::Shared);
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn c_harness_under_valgrind() {
    if !have("valgrind") {
        eprintln!("SKIPPED: valgrind is not installed; the C harness did not run under valgrind");
        return;
    }
    let d = data();
    for link in [Link::Shared, Link::Static] {
        let dir = scratch_dir(&format!("valgrind-{link:?}"));
        let exe = dir.join("harness");
        compile("gcc", C_FLAGS, &harness_sources(), link, &exe);
        let lines = run(Command::new("valgrind")
            .args([
                "--error-exitcode=1",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,possible",
                "-q",
            ])
            .arg(format!(
                "--suppressions={}",
                repo().join("tests/c/valgrind.supp").display()
            ))
            .arg(&exe)
            .arg(&d.dir));
        assert_eq!(lines, d.report, "under valgrind ({link:?})");
    }
}

/// Flags of the sanitizer build of the C harness.
const SANITIZE: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
];

/// Whether `gcc -fsanitize=address,undefined` can build and run a program here.
fn have_sanitizers() -> bool {
    let dir = scratch_dir("sanitizer-probe");
    let src = dir.join("probe.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").expect("write probe");
    let exe = dir.join("probe");
    Command::new("gcc")
        .args(SANITIZE)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(&exe).status().is_ok_and(|s| s.success())
}

/// The C harness built with `gcc -fsanitize=address,undefined` (every error fatal) and run with
/// LeakSanitizer, against libunet.a (static) and libunet.so (shared). The Rust side is the
/// normal build unless `UNET_ASAN_LIBUNET` names a `libunet.a` built with
/// `-Zsanitizer=address` (`.ci/sanitizers.sh` does that with nightly and `-Zbuild-std`); then
/// that archive is linked instead, and only statically. Skipped (with a message) if gcc's
/// sanitizer runtimes are missing, unless `UNET_REQUIRE_SANITIZERS` is set.
#[test]
fn c_harness_under_asan_ubsan() {
    if !have_sanitizers() {
        assert!(
            std::env::var_os("UNET_REQUIRE_SANITIZERS").is_none(),
            "UNET_REQUIRE_SANITIZERS is set but gcc -fsanitize=address,undefined does not work"
        );
        eprintln!(
            "SKIPPED: gcc -fsanitize=address,undefined does not work here (libasan/libubsan \
             missing?); the C harness did not run under ASan/UBSan"
        );
        return;
    }
    let d = data();
    let asan_lib = std::env::var_os("UNET_ASAN_LIBUNET").map(PathBuf::from);
    let links: &[Link] = if asan_lib.is_some() {
        &[Link::Static]
    } else {
        &[Link::Static, Link::Shared]
    };
    let flags: Vec<&str> = C_FLAGS.iter().chain(SANITIZE).copied().collect();
    for &link in links {
        let dir = scratch_dir(&format!("asan-{link:?}"));
        let exe = dir.join("harness");
        match &asan_lib {
            None => compile("gcc", &flags, &harness_sources(), link, &exe),
            Some(lib) => {
                assert!(
                    lib.exists(),
                    "UNET_ASAN_LIBUNET={} does not exist",
                    lib.display()
                );
                let res = Command::new("gcc")
                    .args(&flags)
                    .arg("-I")
                    .arg(repo().join("include"))
                    .arg("-I")
                    .arg(repo().join("tests/c"))
                    .args(harness_sources())
                    .arg("-o")
                    .arg(&exe)
                    .arg(lib)
                    .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"])
                    .output()
                    .expect("run gcc");
                assert!(
                    res.status.success(),
                    "gcc (sanitized libunet) failed:\n{}",
                    String::from_utf8_lossy(&res.stderr)
                );
            }
        }
        let lines = run(Command::new(&exe)
            .arg(&d.dir)
            .env(
                "ASAN_OPTIONS",
                "detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1",
            )
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"));
        assert_eq!(lines, d.report, "under ASan/UBSan ({link:?})");
    }
}

#[test]
fn cpp_wrapper() {
    let d = data();
    let dir = scratch_dir("cpp");
    let exe = dir.join("wrapper_test");
    compile(
        "g++",
        CXX_FLAGS,
        &[repo().join("tests/cpp/wrapper_test.cpp")],
        Link::Shared,
        &exe,
    );
    let lines = run(Command::new(&exe).arg(&d.dir));
    assert_eq!(lines, ["wrapper_test: all checks passed"]);
}

#[test]
fn header_included_twice_from_c_and_cpp() {
    let dir = scratch_dir("include");
    let src = repo().join("tests/c/include_twice.c");
    for (compiler, flags, name) in [
        ("gcc", C_FLAGS, "twice_c"),
        (
            "g++",
            &[
                "-x",
                "c++",
                "-std=c++17",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
            ][..],
            "twice_cpp",
        ),
    ] {
        let exe = dir.join(name);
        compile(
            compiler,
            flags,
            std::slice::from_ref(&src),
            Link::Shared,
            &exe,
        );
        run(&mut Command::new(&exe));
    }
}

/// Installs libunet into a temporary prefix with unet-ffi/install.sh (libraries from this test
/// run).
fn install_prefix(name: &str) -> PathBuf {
    let prefix = scratch_dir(name);
    run(Command::new("sh")
        .arg(repo().join("unet-ffi/install.sh"))
        .arg(&prefix)
        .arg(lib_dir()));
    prefix
}

/// Runs an example binary on the u16 test frame (automatic tile, 2 threads) and returns the
/// label file it wrote.
fn run_example(exe: &Path, prefix: &Path, out: &Path) -> Vec<u8> {
    let d = data();
    let (h, w) = FRAME;
    let lines = run(Command::new(exe)
        .env("LD_LIBRARY_PATH", prefix.join("lib"))
        .arg(d.dir.join("model.safetensors"))
        .arg(d.dir.join("frame_u16.raw"))
        .arg(w.to_string())
        .arg(h.to_string())
        .arg(out)
        .arg("2"));
    assert!(lines[0].contains(&format!("{w}x{h} frame")), "{lines:?}");
    std::fs::read(out).expect("example output")
}

#[test]
fn examples_build_with_pkg_config_and_match_rust() {
    if !have("pkg-config") || !have("make") {
        eprintln!("SKIPPED: pkg-config or make missing; examples not built");
        return;
    }
    let d = data();
    let prefix = install_prefix("prefix-pkgconfig");
    let pc = prefix.join("lib/pkgconfig");
    let want8 = std::fs::read(d.dir.join("frame_labels8_auto.u8")).unwrap();
    let want16: Vec<u8> = want8
        .iter()
        .flat_map(|&l| (l as u16).to_le_bytes())
        .collect();
    for (lang, want) in [("c", &want8), ("cpp", &want16)] {
        let exe = prefix.join(format!("segment_raw_{lang}"));
        run(Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(repo().join("examples").join(lang))
            .arg(format!("OUT={}", exe.display()))
            .env("PKG_CONFIG_PATH", &pc)
            .env_remove("UNET_ROOT")
            .env("CFLAGS", "-std=c99 -O2 -Wall -Wextra -Werror -pedantic")
            .env("CXXFLAGS", "-std=c++17 -O2 -Wall -Wextra -Werror -pedantic"));
        let got = run_example(&exe, &prefix, &prefix.join(format!("labels_{lang}.raw")));
        assert!(
            &got == want,
            "{lang} example's labels differ from the Rust API"
        );
    }
    // The static library through `pkg-config --static`.
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "--static", "unet"])
        .env("PKG_CONFIG_PATH", &pc)
        .output()
        .unwrap();
    let flags = String::from_utf8(flags.stdout).unwrap();
    let exe = prefix.join("segment_raw_static");
    let mut cmd = Command::new("gcc");
    cmd.args(C_FLAGS)
        .arg(repo().join("examples/c/segment_raw.c"))
        .arg("-o")
        .arg(&exe);
    cmd.arg("-Wl,-Bstatic").arg("-lunet").arg("-Wl,-Bdynamic");
    cmd.args(flags.split_whitespace().filter(|f| *f != "-lunet"));
    run(&mut cmd);
    assert_eq!(
        run_example(
            &exe,
            Path::new("/nonexistent"),
            &prefix.join("labels_static.raw")
        ),
        want8
    );
}

#[test]
fn cmake_package_config() {
    if !have("cmake") {
        eprintln!("SKIPPED: cmake is not installed; unetConfig.cmake not exercised");
        return;
    }
    let d = data();
    let prefix = install_prefix("prefix-cmake");
    let build = prefix.join("build");
    run(Command::new("cmake")
        .arg("-S")
        .arg(repo().join("tests/cmake"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg(format!(
            "-DEXAMPLE_SOURCE={}",
            repo().join("examples/c/segment_raw.c").display()
        )));
    run(Command::new("cmake").arg("--build").arg(&build));
    let want8 = std::fs::read(d.dir.join("frame_labels8_auto.u8")).unwrap();
    for exe in ["segment_raw_shared", "segment_raw_static"] {
        let got = run_example(&build.join(exe), &prefix, &build.join(format!("{exe}.raw")));
        assert!(got == want8, "{exe}: labels differ from the Rust API");
    }
}
