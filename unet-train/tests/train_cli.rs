//! The `unet-train` binary: `info` on an exported model and on a checkpoint, `bench` on a tiny
//! config, and clear errors for bad arguments.

use std::process::Command;

use unet_core::{Config, Padding};
use unet_train::export::{write_model, ModelInfo, StoreDtype};
use unet_train::init::he_init;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_unet-train"))
}

#[test]
fn info_prints_metadata_and_tensors() {
    let dir = std::env::temp_dir().join(format!("unet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: 2,
        levels: 2,
        padding: Padding::Same,
    };
    let path = dir.join("m.safetensors");
    let info = ModelInfo {
        provenance: vec![("loss_w0".into(), "10".into())],
        ..ModelInfo::default()
    };
    write_model(&path, &he_init(&cfg, 1).unwrap(), StoreDtype::F16, &info).unwrap();
    let out = bin()
        .args(["info", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("format = unet"), "{s}");
    assert!(s.contains("loss_w0 = 10"), "{s}");
    assert!(s.contains("tensors: 16"), "{s}");
    assert!(s.contains("F16"), "{s}");
    assert!(s.contains("unet-core: valid model; halo 0 px"), "{s}");
    let missing = bin()
        .args(["info", dir.join("nope").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("error:"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_runs_and_rejects_illegal_tiles() {
    let ok = bin()
        .args([
            "--threads",
            "1",
            "bench",
            "--levels",
            "2",
            "--base",
            "2",
            "--tile",
            "28",
            "--batch",
            "1",
            "--steps",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("s/step"));
    let bad = bin()
        .args(["bench", "--levels", "2", "--base", "2", "--tile", "29"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not legal"));
}
