//! Every CUDA kernel source compiles with NVRTC (through cudarc, as the backend does at run
//! time) for `compute_80` and `compute_90`, and `ptxas -v` assembles the PTX for `sm_80` and
//! `sm_90` without register spills; the register count of every kernel is printed.
//!
//! NVRTC comes from the `nvidia-cuda-nvrtc-cu12` wheel, ptxas from `nvidia-cuda-nvcc-cu12`:
//! their directories are taken from `UNET_NVRTC_LIB_DIR` / `UNET_PTXAS`, else found through
//! `python3` (the wheels' `nvidia.cuda_nvrtc` / `nvidia.cuda_nvcc` packages). Without them the
//! tests print `skipped: …`, unless `UNET_REQUIRE_NVRTC=1` (set by `.ci/cuda.sh`), which makes
//! a missing tool a failure.
#![cfg(feature = "cuda")]

use std::path::{Path, PathBuf};
use std::process::Command;

use unet_train::backend::cuda::kernels::{compile, preload_nvrtc, SOURCES};

fn required() -> bool {
    std::env::var("UNET_REQUIRE_NVRTC").is_ok_and(|v| v == "1")
}

fn skip(what: &str) {
    assert!(!required(), "UNET_REQUIRE_NVRTC=1 but {what}");
    println!("skipped: {what}");
}

/// `<site-packages>/nvidia/<pkg>` of an installed wheel, via python3.
fn wheel_dir(pkg: &str) -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import nvidia.{pkg} as m; print(list(m.__path__)[0])"),
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn nvrtc_dir() -> Option<PathBuf> {
    std::env::var_os("UNET_NVRTC_LIB_DIR")
        .map(PathBuf::from)
        .or_else(|| wheel_dir("cuda_nvrtc").map(|d| d.join("lib")))
        .filter(|d| d.join("libnvrtc.so.12").exists() || d.join("libnvrtc.so").exists())
}

fn ptxas() -> Option<PathBuf> {
    std::env::var_os("UNET_PTXAS")
        .map(PathBuf::from)
        .or_else(|| wheel_dir("cuda_nvcc").map(|d| d.join("bin/ptxas")))
        .filter(|p| p.exists())
}

/// PTX of every source for `arch`, or `None` (skipped) without NVRTC.
fn all_ptx(arch: &'static str) -> Option<Vec<(&'static str, String)>> {
    let Some(dir) = nvrtc_dir() else {
        skip("NVRTC library not found (pip install nvidia-cuda-nvrtc-cu12)");
        return None;
    };
    preload_nvrtc(&dir).unwrap();
    Some(
        SOURCES
            .iter()
            .map(|s| {
                let ptx = compile(s, Some(arch)).unwrap_or_else(|e| panic!("{}: {e}", s.file));
                (s.file, ptx.to_src())
            })
            .collect(),
    )
}

#[test]
fn every_kernel_compiles_with_nvrtc() {
    for arch in ["compute_80", "compute_90"] {
        let Some(ptxs) = all_ptx(arch) else { return };
        for ((file, ptx), src) in ptxs.iter().zip(SOURCES) {
            assert_eq!(*file, src.file);
            for k in src.kernels {
                assert!(
                    ptx.contains(&format!(".entry {k}(")),
                    "{file} ({arch}): no entry {k}"
                );
            }
            println!(
                "{file} ({arch}): {} kernels, {} bytes of PTX",
                src.kernels.len(),
                ptx.len()
            );
        }
    }
}

/// Parses `ptxas -v` output: per kernel, (registers, spill line).
fn parse_ptxas(log: &str) -> Vec<(String, u32, String)> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut spill = String::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            current = rest.split('\'').next().map(str::to_string);
        } else if line.contains("spill stores") {
            spill = line.trim().to_string();
        } else if let Some(rest) = line.split("Used ").nth(1) {
            let regs: u32 = rest
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad ptxas line: {line}"));
            let name = current.take().expect("Used line before a function");
            out.push((name, regs, std::mem::take(&mut spill)));
        }
    }
    out
}

#[test]
fn ptxas_assembles_without_spills() {
    for (arch, sm) in [("compute_80", "sm_80"), ("compute_90", "sm_90")] {
        let Some(ptxas) = ptxas() else {
            skip("ptxas not found (pip install nvidia-cuda-nvcc-cu12)");
            return;
        };
        let Some(ptxs) = all_ptx(arch) else { return };
        let dir = std::env::temp_dir().join(format!("unet-ptx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for ((file, ptx), src) in ptxs.iter().zip(SOURCES) {
            let path = dir.join(format!("{file}.{sm}.ptx"));
            std::fs::write(&path, ptx).unwrap();
            let out = Command::new(&ptxas)
                .args([&format!("-arch={sm}"), "-v", "-O3"])
                .arg(&path)
                .arg("-o")
                .arg(Path::new("/dev/null"))
                .output()
                .unwrap();
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "ptxas {file} {sm}:\n{log}");
            let parsed = parse_ptxas(&log);
            for k in src.kernels {
                let (_, regs, spill) = parsed
                    .iter()
                    .find(|(n, _, _)| n == k)
                    .unwrap_or_else(|| panic!("{file} {sm}: no ptxas report for {k}:\n{log}"));
                assert!(
                    spill.contains("0 bytes spill stores, 0 bytes spill loads"),
                    "{k} ({sm}) spills: {spill}"
                );
                println!("{sm} {k:<18} {regs:>3} registers  ({spill})");
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
