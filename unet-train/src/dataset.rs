//! A training or evaluation set as the command line names it: folders in the layout of
//! [`crate::data`] and/or explicit image/label file pairs (e.g. one multi-page time-lapse TIFF
//! and its label stack), loaded in the order given, optionally split into training and
//! validation samples, and normalised for the network.

use std::path::PathBuf;

use unet_core::Normalization;

use crate::data::{load_folder_checked, load_pair, split, LabelKind, Sample, SplitSpec};
use crate::error::{Result, TrainError};

/// Where samples come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A folder with `images/` and `labels/` (see [`crate::data`]).
    Folder(PathBuf),
    /// One image file and its label file (equal page counts; pages become `STEM#k`).
    Pair {
        /// Image file (TIFF/PNG, 8/16-bit gray, single page or stack).
        image: PathBuf,
        /// Label file of the same size and page count.
        labels: PathBuf,
    },
}

/// Loads every source in order. With [`LabelKind::Class`], label values `≥ num_classes` are an
/// error naming the file.
pub fn load(sources: &[Source], kind: LabelKind, num_classes: usize) -> Result<Vec<Sample>> {
    if sources.is_empty() {
        return Err(TrainError::invalid(
            "no data given (use --data DIR or --image FILE --labels FILE)",
        ));
    }
    let mut out = Vec::new();
    for s in sources {
        let loaded = match s {
            Source::Folder(dir) => load_folder_checked(dir, kind, Some(num_classes))?,
            Source::Pair { image, labels } => load_pair(image, labels, kind, Some(num_classes))?,
        };
        out.extend(loaded);
    }
    Ok(out)
}

/// Parses a list of sample positions: comma-separated indices and half-open ranges
/// `a..b` / inclusive ranges `a..=b`, e.g. `15..20` or `0,3,7..=9`.
pub fn parse_indices(s: &str) -> Result<Vec<usize>> {
    let bad = || TrainError::invalid(format!("'{s}': expected indices like 15..20 or 0,3,7..=9"));
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| t.trim().parse::<usize>().map_err(|_| bad());
        if let Some((a, b)) = part.split_once("..=") {
            out.extend(num(a)?..=num(b)?);
        } else if let Some((a, b)) = part.split_once("..") {
            out.extend(num(a)?..num(b)?);
        } else {
            out.push(num(part)?);
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Keeps the samples at `indices` (in the order loaded); an index past the end is an error.
pub fn select(samples: Vec<Sample>, indices: &[usize]) -> Result<Vec<Sample>> {
    let n = samples.len();
    if let Some(&i) = indices.iter().find(|&&i| i >= n) {
        return Err(TrainError::invalid(format!(
            "sample index {i} is out of range: {n} samples were loaded"
        )));
    }
    Ok(samples
        .into_iter()
        .enumerate()
        .filter(|(i, _)| indices.contains(i))
        .map(|(_, s)| s)
        .collect())
}

/// [`crate::data::split`] that refuses a split leaving either side empty.
pub fn split_checked(samples: Vec<Sample>, val: &SplitSpec) -> Result<(Vec<Sample>, Vec<Sample>)> {
    if let SplitSpec::Indices(ix) = val {
        if let Some(&i) = ix.iter().find(|&&i| i >= samples.len()) {
            return Err(TrainError::invalid(format!(
                "validation index {i} is out of range: {} samples were loaded",
                samples.len()
            )));
        }
    }
    let (train, valid) = split(samples, val);
    if train.is_empty() {
        return Err(TrainError::invalid(
            "the validation split leaves no training samples",
        ));
    }
    Ok((train, valid))
}

/// Normalises every sample's image in place as the model will see it; a NaN or infinite pixel
/// under percentile normalisation is an error naming the sample.
pub fn normalize_all(samples: &mut [Sample], n: Normalization) -> Result<()> {
    for s in samples.iter_mut() {
        s.image = crate::image_norm::try_normalize(s.image.view(), n).map_err(|e| {
            TrainError::invalid(format!(
                "sample {}: channel {} holds NaN or infinity",
                s.name, e.channel
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists() {
        assert_eq!(parse_indices("15..20").unwrap(), vec![15, 16, 17, 18, 19]);
        assert_eq!(parse_indices("0, 3,7..=9").unwrap(), vec![0, 3, 7, 8, 9]);
        assert!(parse_indices("").is_err());
        assert!(parse_indices("a..3").is_err());
        assert!(parse_indices("-1").is_err());
    }

    fn sample(i: usize) -> Sample {
        Sample {
            name: format!("s{i}"),
            image: ndarray::Array3::from_elem((1, 2, 2), i as f32),
            labels: ndarray::Array2::zeros((2, 2)),
        }
    }

    #[test]
    fn selection_and_split_refuse_nonsense() {
        let all: Vec<Sample> = (0..5).map(sample).collect();
        let picked = select(all.clone(), &[1, 3]).unwrap();
        assert_eq!(
            picked.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["s1", "s3"]
        );
        assert!(select(all.clone(), &[5]).is_err());
        let (t, v) = split_checked(all.clone(), &SplitSpec::Indices(vec![3, 4])).unwrap();
        assert_eq!((t.len(), v.len()), (3, 2));
        assert!(split_checked(all.clone(), &SplitSpec::Indices(vec![9])).is_err());
        assert!(split_checked(all, &SplitSpec::LastFraction(1.0)).is_err());
        assert!(load(&[], LabelKind::Instance, 2).is_err());
    }
}
