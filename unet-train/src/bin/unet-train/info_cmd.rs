//! `unet-train info FILE`: metadata, tensor summary and whether unet-core accepts the file.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `info`.
#[derive(Args)]
pub struct InfoArgs {
    /// The .safetensors model file or .ckpt checkpoint.
    pub file: PathBuf,
}

/// Prints what the file holds.
pub fn run(a: &InfoArgs) -> Result<(), String> {
    let path = &a.file;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!("file: {} ({} bytes)", path.display(), bytes.len());
    let mut keys: Vec<_> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    keys.sort();
    println!("metadata:");
    for (k, v) in &keys {
        println!("  {k} = {v}");
    }
    let mut numel = 0usize;
    let mut dtypes = std::collections::BTreeMap::new();
    for (_, t) in st.tensors() {
        numel += t.shape().iter().product::<usize>();
        *dtypes.entry(format!("{:?}", t.dtype())).or_insert(0usize) += 1;
    }
    println!("tensors: {} ({numel} values; {dtypes:?})", st.len());
    match unet_core::Model::from_safetensors(&bytes) {
        Ok(m) => {
            let g = m.geometry();
            println!(
                "unet-core: valid model; halo {} px, smallest tile {}, tile step {}",
                g.halo(),
                g.min_input(),
                g.step()
            );
        }
        Err(e) => println!("unet-core: not loadable as a model: {e}"),
    }
    Ok(())
}
