//! Whole-image segmentation and validation metrics over a set of labelled images: what the
//! `train` loop logs per validation, what `eval` prints and what `predict` writes.
//!
//! **Prediction** ([`segment`]): the raw image `[C, H, W]` is normalised as the model says
//! ([`crate::image_norm::normalize`], statistics of the whole image), predicted by overlap-tile
//! ([`crate::predict::predict_logits`]) and turned into class probabilities (soft-max) and a
//! class map (arg-max, ties to the lower class).
//!
//! **Ground truth** of an instance-labelled image is the trainer's own target
//! ([`crate::weight_map::semantic_target_ignoring`]: cells as class 1 with a background border
//! where two instances touch) and the instance ids themselves; of a class-labelled image, the
//! class ids, with instances the connected components of each class. Ignored pixels (the
//! ignore id) are left out of the pixel counts.
//!
//! **Pooling** over images ([`Accumulator`]): pixel error, IoU and Dice are computed from
//! counts summed over all images (micro average: large images weigh more); object TP/FP/FN are
//! summed, then precision/recall/F1 computed; the Rand error is the mean over images. Predicted
//! instances are the 4-connected components of each predicted class.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Zip};
use unet_core::Normalization;

use crate::backend::Backend;
use crate::components::{instances_from_classes, Connectivity};
use crate::data::LabelKind;
use crate::error::{Result, TrainError};
use crate::metrics::{object_scores, rand_error};
use crate::weight_map::semantic_target_ignoring;

/// The segmentation of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentation {
    /// Class probabilities `[num_classes, H, W]`.
    pub probabilities: Array3<f32>,
    /// Arg-max class of every pixel `[H, W]`.
    pub classes: Array2<u8>,
}

/// Segments a raw image `[in_channels, H, W]` (module documentation) with input tiles of
/// `tile × tile` (a legal size for the backend's model), `batch` tiles per forward call.
pub fn segment<B: Backend>(
    backend: &B,
    raw: ArrayView3<'_, f32>,
    normalization: Normalization,
    tile: usize,
    batch: usize,
) -> Result<Segmentation> {
    let num_classes = backend.config().num_classes;
    if num_classes > 256 {
        return Err(TrainError::invalid(format!(
            "{num_classes} classes do not fit an 8-bit class map"
        )));
    }
    let image = crate::image_norm::try_normalize(raw, normalization).map_err(|e| {
        TrainError::invalid(format!("image channel {} holds NaN or infinity", e.channel))
    })?;
    let logits = crate::predict::predict_logits(backend, image.view(), tile, batch)?;
    let probabilities = crate::predict::softmax(&logits);
    let classes = crate::predict::argmax(&probabilities).mapv(|c| c as u8);
    Ok(Segmentation {
        probabilities,
        classes,
    })
}

/// Ground-truth `(classes, instances)` of a label image (module documentation).
pub fn ground_truth(
    labels: ArrayView2<'_, u32>,
    kind: LabelKind,
    ignore: Option<u32>,
) -> (Array2<u8>, Array2<u32>) {
    match kind {
        LabelKind::Instance => {
            let classes = semantic_target_ignoring(labels, ignore);
            let instances = labels.mapv(|id| if Some(id) == ignore { 0 } else { id });
            (classes, instances)
        }
        LabelKind::Class => {
            let classes = labels.mapv(|c| {
                if Some(c) == ignore {
                    0
                } else {
                    c.min(255) as u8
                }
            });
            let (instances, _) = instances_from_classes(classes.view(), Connectivity::Four);
            (classes, instances)
        }
    }
}

/// Metrics pooled over images (module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Images evaluated.
    pub images: usize,
    /// Pixels counted (ignored pixels excluded).
    pub pixels: u64,
    /// Fraction of misclassified pixels.
    pub pixel_error: f64,
    /// IoU per class (`None`: the class occurs in neither prediction nor truth).
    pub iou: Vec<Option<f64>>,
    /// Dice per class.
    pub dice: Vec<Option<f64>>,
    /// Matched objects (IoU > 0.5), summed over images.
    pub tp: usize,
    /// Unmatched predicted objects.
    pub fp: usize,
    /// Unmatched true objects.
    pub fn_: usize,
    /// Mean Rand error over images.
    pub rand_error: f64,
}

impl Summary {
    /// Object precision `TP / (TP + FP)` (1 when nothing was predicted).
    pub fn precision(&self) -> f64 {
        ratio_or_one(self.tp, self.tp + self.fp)
    }

    /// Object recall `TP / (TP + FN)` (1 when there was nothing to find).
    pub fn recall(&self) -> f64 {
        ratio_or_one(self.tp, self.tp + self.fn_)
    }

    /// Object F1 `2TP / (2TP + FP + FN)`.
    pub fn f1(&self) -> f64 {
        ratio_or_one(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// Foreground IoU: class 1's IoU for two classes, else the mean over classes `1..` that
    /// occur (NaN if none does).
    pub fn foreground_iou(&self) -> f64 {
        mean_present(&self.iou[1.min(self.iou.len())..])
    }

    /// Foreground Dice, as [`Summary::foreground_iou`].
    pub fn foreground_dice(&self) -> f64 {
        mean_present(&self.dice[1.min(self.dice.len())..])
    }

    /// `(name, value)` pairs for logs, all prefixed `val_`: pixel error, foreground IoU/Dice,
    /// per-class IoU for more than two classes, object precision/recall/F1, Rand error.
    pub fn named(&self) -> Vec<(String, f64)> {
        let mut v = vec![
            ("val_pixel_error".to_string(), self.pixel_error),
            ("val_iou_fg".to_string(), self.foreground_iou()),
            ("val_dice_fg".to_string(), self.foreground_dice()),
        ];
        if self.iou.len() > 2 {
            for (c, i) in self.iou.iter().enumerate().skip(1) {
                v.push((format!("val_iou_c{c}"), i.unwrap_or(f64::NAN)));
            }
        }
        v.push(("val_precision".into(), self.precision()));
        v.push(("val_recall".into(), self.recall()));
        v.push(("val_f1".into(), self.f1()));
        v.push(("val_rand_error".into(), self.rand_error));
        v
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IoU {:.4}  Dice {:.4}  object F1 {:.4} (P {:.4} R {:.4}; TP {} FP {} FN {})  pixel error {:.4}  Rand error {:.4}  [{} images]",
            self.foreground_iou(),
            self.foreground_dice(),
            self.f1(),
            self.precision(),
            self.recall(),
            self.tp,
            self.fp,
            self.fn_,
            self.pixel_error,
            self.rand_error,
            self.images
        )
    }
}

fn ratio_or_one(num: usize, den: usize) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

fn mean_present(v: &[Option<f64>]) -> f64 {
    let p: Vec<f64> = v.iter().flatten().copied().collect();
    if p.is_empty() {
        f64::NAN
    } else {
        p.iter().sum::<f64>() / p.len() as f64
    }
}

/// Sums per-image counts into a [`Summary`].
#[derive(Debug, Clone)]
pub struct Accumulator {
    num_classes: usize,
    /// Per class: `|P ∩ G|`, `|P|`, `|G|`.
    counts: Vec<[u64; 3]>,
    wrong: u64,
    pixels: u64,
    tp: usize,
    fp: usize,
    fn_: usize,
    rand_sum: f64,
    images: usize,
}

impl Accumulator {
    /// An empty accumulator for classes `0..num_classes`.
    pub fn new(num_classes: usize) -> Self {
        Accumulator {
            num_classes,
            counts: vec![[0; 3]; num_classes],
            wrong: 0,
            pixels: 0,
            tp: 0,
            fp: 0,
            fn_: 0,
            rand_sum: 0.0,
            images: 0,
        }
    }

    /// Adds one image: predicted class map against its label image (same shape). Pixels with
    /// the `ignore` id are not counted.
    pub fn add(
        &mut self,
        pred: ArrayView2<'_, u8>,
        labels: ArrayView2<'_, u32>,
        kind: LabelKind,
        ignore: Option<u32>,
    ) -> Result<()> {
        if pred.dim() != labels.dim() {
            return Err(TrainError::invalid(format!(
                "prediction is {:?} but the labels are {:?}",
                pred.dim(),
                labels.dim()
            )));
        }
        let (gt_classes, gt_instances) = ground_truth(labels, kind, ignore);
        let mut pred = pred.to_owned();
        Zip::from(&mut pred).and(&labels).for_each(|p, &l| {
            if Some(l) == ignore {
                *p = 0;
            }
        });
        let k = self.num_classes;
        Zip::from(&pred)
            .and(&gt_classes)
            .and(&labels)
            .for_each(|&p, &g, &l| {
                if Some(l) == ignore {
                    return;
                }
                self.pixels += 1;
                self.wrong += u64::from(p != g);
                let (p, g) = (p as usize, g as usize);
                if p < k {
                    self.counts[p][1] += 1;
                }
                if g < k {
                    self.counts[g][2] += 1;
                }
                if p == g && p < k {
                    self.counts[p][0] += 1;
                }
            });
        let (pred_instances, _) = instances_from_classes(pred.view(), Connectivity::Four);
        let o = object_scores(pred_instances.view(), gt_instances.view());
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.rand_sum += rand_error(pred_instances.view(), gt_instances.view());
        self.images += 1;
        Ok(())
    }

    /// The pooled metrics so far.
    pub fn summary(&self) -> Summary {
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        Summary {
            images: self.images,
            pixels: self.pixels,
            pixel_error: if self.pixels == 0 {
                0.0
            } else {
                self.wrong as f64 / self.pixels as f64
            },
            iou: self
                .counts
                .iter()
                .map(|&[i, p, g]| ratio(i, p + g - i))
                .collect(),
            dice: self
                .counts
                .iter()
                .map(|&[i, p, g]| ratio(2 * i, p + g))
                .collect(),
            tp: self.tp,
            fp: self.fp,
            fn_: self.fn_,
            rand_error: if self.images == 0 {
                0.0
            } else {
                self.rand_sum / self.images as f64
            },
        }
    }
}

/// Segments every sample and pools the metrics against its labels.
pub fn evaluate_samples<B: Backend>(
    backend: &B,
    samples: &[crate::data::Sample],
    kind: LabelKind,
    ignore: Option<u32>,
    normalization: Normalization,
    tile: usize,
    batch: usize,
) -> Result<Summary> {
    let mut acc = Accumulator::new(backend.config().num_classes);
    for s in samples {
        let seg = segment(backend, s.image.view(), normalization, tile, batch)?;
        acc.add(seg.classes.view(), s.labels.view(), kind, ignore)?;
    }
    Ok(acc.summary())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn pooled_counts_over_two_images() {
        let mut acc = Accumulator::new(2);
        // Image 1: one cell (id 7) of 4 px, predicted exactly.
        let labels1 = array![[0u32, 0, 0], [0, 7, 7], [0, 7, 7]];
        let pred1 = labels1.mapv(|l| u8::from(l > 0));
        acc.add(pred1.view(), labels1.view(), LabelKind::Instance, None)
            .unwrap();
        // Image 2: one 2 px cell, predicted as 1 px plus a false 1 px blob elsewhere.
        let labels2 = array![[3u32, 3, 0], [0, 0, 0], [0, 0, 0]];
        let pred2 = array![[1u8, 0, 0], [0, 0, 0], [0, 0, 1]];
        acc.add(pred2.view(), labels2.view(), LabelKind::Instance, None)
            .unwrap();
        let s = acc.summary();
        assert_eq!(s.images, 2);
        assert_eq!(s.pixels, 18);
        // Foreground: |P∩G| = 4 + 1, |P| = 4 + 2, |G| = 4 + 2 → IoU 5/7, Dice 10/12.
        assert!((s.foreground_iou() - 5.0 / 7.0).abs() < 1e-12);
        assert!((s.foreground_dice() - 10.0 / 12.0).abs() < 1e-12);
        assert!((s.pixel_error - 2.0 / 18.0).abs() < 1e-12);
        // Objects: image 1 TP; image 2: the 1 px prediction has IoU 0.5 with the 2 px cell
        // (not > 0.5) → FN 1, FP 2.
        assert_eq!((s.tp, s.fp, s.fn_), (1, 2, 1));
        assert!((s.f1() - 2.0 / 5.0).abs() < 1e-12);
        let named = s.named();
        assert_eq!(named[0].0, "val_pixel_error");
        assert!(named
            .iter()
            .any(|(k, v)| k == "val_f1" && (*v - 0.4).abs() < 1e-12));
    }

    #[test]
    fn touching_cells_get_a_border_in_the_truth_and_ignore_is_skipped() {
        let labels = array![[1u32, 2, 2, 9], [1, 2, 2, 9]];
        let (classes, instances) = ground_truth(labels.view(), LabelKind::Instance, Some(9));
        // Touching pixels of different instances become background in the target.
        assert_eq!(classes[[0, 0]], 0);
        assert_eq!(instances[[0, 3]], 0);
        let mut acc = Accumulator::new(2);
        let pred = Array2::<u8>::ones((2, 4));
        acc.add(pred.view(), labels.view(), LabelKind::Instance, Some(9))
            .unwrap();
        assert_eq!(acc.summary().pixels, 6);
        let bad = Array2::<u8>::zeros((3, 3));
        assert!(acc
            .add(bad.view(), labels.view(), LabelKind::Instance, None)
            .is_err());
    }
}
