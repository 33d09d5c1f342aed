//! Plans the tile on the host with unet-core itself, so the firmware's static scratch is exactly
//! `Plan::scratch_len()` f32 — the size is known before the first run, as unet-core promises.

use std::{env, fs, path::PathBuf};

const MODEL: &str = "model/tiny-f16.safetensors";
const TILE: usize = 92;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed={MODEL}");

    let bytes = fs::read(MODEL).unwrap();
    let model = unet_core::Model::from_safetensors(&bytes).unwrap();
    let plan = model.plan(TILE, TILE).unwrap();
    let (oh, ow) = plan.output_size();
    fs::write(
        out.join("sizes.rs"),
        format!(
            "/// Input tile side (pixels).\npub const TILE: usize = {TILE};\n\
             /// Output tile height and width.\npub const OUT_H: usize = {oh};\npub const OUT_W: usize = {ow};\n\
             /// `Plan::scratch_len()` of the tile, f32 elements.\npub const SCRATCH_LEN: usize = {};\n\
             /// Classes.\npub const CLASSES: usize = {};\n",
            plan.scratch_len(),
            model.config().num_classes
        ),
    )
    .unwrap();
}
