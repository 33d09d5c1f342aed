//! Argument pieces shared by the subcommands: where labelled data comes from, parsers, and
//! loading a model file into the CPU backend.

use std::path::{Path, PathBuf};

use clap::Args;
use unet_core::{Geometry, Normalization, Padding};
use unet_train::backend::cpu::CpuBackend;
use unet_train::data::LabelKind;
use unet_train::dataset::Source;
use unet_train::optim::{Optimizer, OptimizerKind};
use unet_train::params::Params;

/// Labelled images: folders and/or image/label file pairs.
#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// Folder with images/NAME.{tif,png} and labels/NAME.{tif,png} (repeatable).
    #[arg(long = "data", value_name = "DIR")]
    pub folders: Vec<PathBuf>,
    /// An image file or multi-page stack (repeatable; pairs with the --labels of the same
    /// position).
    #[arg(long = "image", value_name = "FILE")]
    pub images: Vec<PathBuf>,
    /// The label file of the --image at the same position.
    #[arg(long = "labels", value_name = "FILE")]
    pub labels: Vec<PathBuf>,
    /// What label values are: `instance` (one id per cell, 0 = background) or `class`.
    #[arg(long, default_value = "instance", value_parser = parse_label_kind)]
    pub labels_are: LabelKind,
    /// Label id of unannotated pixels (no loss, not counted in metrics).
    #[arg(long)]
    pub ignore: Option<u32>,
}

impl DataArgs {
    /// The sources in order: folders first, then file pairs.
    pub fn sources(&self) -> Result<Vec<Source>, String> {
        if self.images.len() != self.labels.len() {
            return Err(format!(
                "{} --image but {} --labels: give one label file per image",
                self.images.len(),
                self.labels.len()
            ));
        }
        let mut v: Vec<Source> = self.folders.iter().cloned().map(Source::Folder).collect();
        v.extend(
            self.images
                .iter()
                .zip(&self.labels)
                .map(|(i, l)| Source::Pair {
                    image: i.clone(),
                    labels: l.clone(),
                }),
        );
        if v.is_empty() {
            return Err("no data: give --data DIR or --image FILE --labels FILE".into());
        }
        Ok(v)
    }
}

/// `valid` or `same`.
pub fn parse_padding(s: &str) -> Result<Padding, String> {
    match s {
        "valid" => Ok(Padding::Valid),
        "same" => Ok(Padding::Same),
        _ => Err(format!("padding '{s}': expected valid or same")),
    }
}

/// The spelling [`parse_padding`] reads.
pub fn padding_str(p: Padding) -> &'static str {
    match p {
        Padding::Valid => "valid",
        Padding::Same => "same",
    }
}

/// `instance` or `class`.
pub fn parse_label_kind(s: &str) -> Result<LabelKind, String> {
    match s {
        "instance" => Ok(LabelKind::Instance),
        "class" => Ok(LabelKind::Class),
        _ => Err(format!("labels '{s}': expected instance or class")),
    }
}

/// A normalisation spelled as in model files (`percentile:1:99.8`, `none`, …).
pub fn parse_normalization(s: &str) -> Result<Normalization, String> {
    Normalization::parse(s).map_err(|e| e.to_string())
}

/// `tile` if it is a legal input size, else an error naming the nearest legal sizes.
pub fn check_tile(g: &Geometry, tile: usize) -> Result<usize, String> {
    if g.is_legal(tile) {
        return Ok(tile);
    }
    let near: Vec<String> = [g.prev_legal(tile), g.next_legal(tile)]
        .into_iter()
        .flatten()
        .map(|n| n.to_string())
        .collect();
    Err(format!(
        "tile {tile} is not a legal input size for this network (nearest: {})",
        near.join(" or ")
    ))
}

/// The largest legal tile `≤ want`, but at least the smallest legal tile.
pub fn legal_tile_at_most(g: &Geometry, want: usize) -> usize {
    g.prev_legal(want).unwrap_or_else(|| g.min_input())
}

/// A model file loaded for inference on the CPU backend.
pub struct LoadedModel {
    /// The backend holding the model's parameters.
    pub backend: CpuBackend,
    /// The normalisation the file asks for.
    pub normalization: Normalization,
    /// Class names from the file (may be empty).
    pub class_names: Vec<String>,
}

/// Reads and validates `path` with unet-core, then copies its parameters into a CPU backend.
pub fn load_model(path: &Path) -> Result<LoadedModel, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let model = unet_core::Model::from_safetensors(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let params = Params::from_model(&model).map_err(|e| format!("{}: {e}", path.display()))?;
    let class_names = model
        .metadata("class_names")
        .map(|j| {
            j.chars()
                .collect::<String>()
                .split(',')
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let normalization = model.normalization();
    let optimizer = Optimizer::new(OptimizerKind::adam(), 0.0, &params);
    Ok(LoadedModel {
        backend: CpuBackend::new(params, optimizer),
        normalization,
        class_names,
    })
}
