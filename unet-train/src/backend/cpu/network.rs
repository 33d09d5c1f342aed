//! The whole U-Net on one sample: forward pass keeping every activation the backward pass needs,
//! and the backward pass that accumulates parameter gradients. Wiring as [`unet_core::arch`]:
//! encoder levels (conv, ReLU, conv, ReLU, pool), dropout on the bottom output, decoder levels
//! (up-conv, `[crop(skip), up]`, conv, ReLU, conv, ReLU), 1×1 head.

use ndarray::{Array3, ArrayView3};
use unet_core::geometry::Sizes;
use unet_core::{Config, Geometry, ParamId};

use super::conv::{
    conv1x1_backward, conv1x1_forward, conv3x3_backward, conv3x3_forward, relu_backward,
};
use super::pool::{maxpool_backward, maxpool_forward};
use super::skip::{crop_concat, split_crop_concat};
use super::upconv::{up2x2_backward, up2x2_forward};
use crate::error::{Result, TrainError};
use crate::params::Params;

/// Activations of one forward pass (one sample), as the backward pass needs them.
#[derive(Debug, Clone)]
pub struct Activations {
    input: Array3<f32>,
    sh: Sizes,
    sw: Sizes,
    /// After conv1 + ReLU of each encoder level.
    enc_mid: Vec<Array3<f32>>,
    /// After conv2 + ReLU of each encoder level (the skips; the last is the bottom).
    enc_out: Vec<Array3<f32>>,
    /// Pooled maps (inputs of levels 1..L) and their arg-max indices.
    pooled: Vec<(Array3<f32>, Vec<u8>)>,
    /// The bottom after dropout (`None` without dropout: then it is `enc_out[L−1]`).
    dropped: Option<Array3<f32>>,
    /// Per decoder level `i` (index `i`): concatenated input of conv1, conv1 output, conv2 output.
    cat: Vec<Array3<f32>>,
    dec_mid: Vec<Array3<f32>>,
    dec_out: Vec<Array3<f32>>,
}

fn param(p: &Params, id: ParamId) -> Result<&[f32]> {
    p.get(id).ok_or_else(|| {
        TrainError::invalid(format!("parameter {id} is not part of this architecture"))
    })
}

fn index(c: &Config, id: ParamId) -> Result<usize> {
    c.param_index(id).ok_or_else(|| {
        TrainError::invalid(format!("parameter {id} is not part of this architecture"))
    })
}

fn enc(level: usize, conv: u8, bias: bool) -> ParamId {
    ParamId::Enc {
        level: level as u8,
        conv,
        bias,
    }
}

fn dec(level: usize, conv: u8, bias: bool) -> ParamId {
    ParamId::Dec {
        level: level as u8,
        conv,
        bias,
    }
}

/// Feature-map sizes for an `h × w` input, or [`unet_core::Error::TileSize`].
pub fn sizes(config: &Config, h: usize, w: usize) -> Result<(Sizes, Sizes)> {
    let g = Geometry::new(config.levels, config.padding)?;
    let sh = g
        .sizes(h)
        .map_err(|what| unet_core::Error::TileSize { h, w, what })?;
    let sw = g
        .sizes(w)
        .map_err(|what| unet_core::Error::TileSize { h, w, what })?;
    Ok((sh, sw))
}

/// Forward pass of one sample `x` (`[in_channels, H, W]`, a legal tile size). `mask`, if given,
/// multiplies the bottom output element-wise (an inverted-dropout mask: 0 or `1/(1−p)`, shape of
/// the bottom map). Returns the logits `[num_classes, H_out, W_out]` and the activations.
pub fn forward(
    params: &Params,
    x: ArrayView3<'_, f32>,
    mask: Option<&Array3<f32>>,
) -> Result<(Array3<f32>, Activations)> {
    forward_impl(params, x, mask, true)
}

/// Evaluation-mode forward pass (no dropout) that frees every activation as soon as no later
/// layer reads it (peak memory: the skips plus a few maps). Same logits as [`forward`].
pub fn forward_eval(params: &Params, x: ArrayView3<'_, f32>) -> Result<Array3<f32>> {
    forward_impl(params, x, None, false).map(|(l, _)| l)
}

fn empty() -> Array3<f32> {
    Array3::zeros((0, 0, 0))
}

fn forward_impl(
    params: &Params,
    x: ArrayView3<'_, f32>,
    mask: Option<&Array3<f32>>,
    keep: bool,
) -> Result<(Array3<f32>, Activations)> {
    let cfg = *params.config();
    let (cin, h, w) = x.dim();
    if cin != cfg.in_channels {
        return Err(TrainError::invalid(format!(
            "input has {cin} channels, the model takes {}",
            cfg.in_channels
        )));
    }
    let (sh, sw) = sizes(&cfg, h, w)?;
    let l = cfg.levels;
    let pad = cfg.padding;
    let mut a = Activations {
        input: x.to_owned(),
        sh,
        sw,
        enc_mid: Vec::with_capacity(l),
        enc_out: Vec::with_capacity(l),
        pooled: Vec::with_capacity(l),
        dropped: None,
        cat: vec![Array3::zeros((0, 0, 0)); l - 1],
        dec_mid: vec![Array3::zeros((0, 0, 0)); l - 1],
        dec_out: vec![Array3::zeros((0, 0, 0)); l - 1],
    };
    for i in 0..l {
        let inp = if i == 0 {
            a.input.view()
        } else {
            a.pooled[i - 1].0.view()
        };
        let m = conv3x3_forward(
            inp,
            param(params, enc(i, 1, false))?,
            param(params, enc(i, 1, true))?,
            pad,
            true,
        );
        let o = conv3x3_forward(
            m.view(),
            param(params, enc(i, 2, false))?,
            param(params, enc(i, 2, true))?,
            pad,
            true,
        );
        a.enc_mid.push(if keep { m } else { empty() });
        if !keep && i > 0 {
            a.pooled[i - 1] = (empty(), Vec::new());
        }
        if i + 1 < l {
            a.pooled.push(maxpool_forward(o.view()));
        }
        a.enc_out.push(o);
    }
    if let Some(mask) = mask {
        let bottom = &a.enc_out[l - 1];
        if mask.dim() != bottom.dim() {
            return Err(TrainError::invalid(format!(
                "dropout mask {:?} vs bottom map {:?}",
                mask.dim(),
                bottom.dim()
            )));
        }
        a.dropped = Some(bottom * mask);
    }
    for i in (0..l - 1).rev() {
        let below = if i + 2 < l {
            a.dec_out[i + 1].view()
        } else {
            a.dropped.as_ref().unwrap_or(&a.enc_out[l - 1]).view()
        };
        let lv = i as u8;
        let up = up2x2_forward(
            below,
            param(
                params,
                ParamId::Up {
                    level: lv,
                    bias: false,
                },
            )?,
            param(
                params,
                ParamId::Up {
                    level: lv,
                    bias: true,
                },
            )?,
        );
        if !keep {
            // The map below has been up-sampled; the bottom (l − 1) or dec_out[i + 1] is done.
            if i + 2 < l {
                a.dec_out[i + 1] = empty();
            } else {
                a.enc_out[l - 1] = empty();
            }
        }
        let cat = crop_concat(a.enc_out[i].view(), sh.crop[i], sw.crop[i], up.view());
        drop(up);
        if !keep {
            a.enc_out[i] = empty();
        }
        let m = conv3x3_forward(
            cat.view(),
            param(params, dec(i, 1, false))?,
            param(params, dec(i, 1, true))?,
            pad,
            true,
        );
        let o = conv3x3_forward(
            m.view(),
            param(params, dec(i, 2, false))?,
            param(params, dec(i, 2, true))?,
            pad,
            true,
        );
        if keep {
            a.cat[i] = cat;
            a.dec_mid[i] = m;
        }
        a.dec_out[i] = o;
    }
    let feat = if l == 1 {
        a.dropped.as_ref().unwrap_or(&a.enc_out[0])
    } else {
        &a.dec_out[0]
    };
    let logits = conv1x1_forward(
        feat.view(),
        param(params, ParamId::Head { bias: false })?,
        param(params, ParamId::Head { bias: true })?,
    );
    Ok((logits, a))
}

/// Backward pass of one sample: given `∂E/∂logits` (`[num_classes, H_out, W_out]`), the
/// activations of [`forward`] and the same `mask`, accumulates `∂E/∂θ` into `grads`
/// (same config as `params`). The input gradient is not computed.
pub fn backward(
    params: &Params,
    acts: &Activations,
    mask: Option<&Array3<f32>>,
    dlogits: ArrayView3<'_, f32>,
    grads: &mut Params,
) -> Result<()> {
    let cfg = *params.config();
    params.check_same(grads)?;
    let l = cfg.levels;
    let pad = cfg.padding;
    let a = acts;

    // Head.
    let feat = if l == 1 {
        a.dropped.as_ref().unwrap_or(&a.enc_out[0])
    } else {
        &a.dec_out[0]
    };
    let kh = index(&cfg, ParamId::Head { bias: false })?;
    let (dw, db) = grads.weight_bias_mut(kh);
    let mut d = conv1x1_backward(feat.view(), params.data(kh), dlogits, dw, db);

    // Gradients of the skips, filled by the decoder and consumed by the encoder.
    let mut dskip: Vec<Array3<f32>> = a.enc_out[..l - 1]
        .iter()
        .map(|s| Array3::zeros(s.raw_dim()))
        .collect();

    // Decoder, from level 0 (fed by the head) down to level L−2; `d` is ∂E/∂dec_out[i].
    #[allow(clippy::needless_range_loop)] // `i` indexes five per-level arrays
    for i in 0..l - 1 {
        relu_backward(&mut d, &a.dec_out[i]);
        let k2 = index(&cfg, dec(i, 2, false))?;
        let (dw, db) = grads.weight_bias_mut(k2);
        let mut dm = conv3x3_backward(
            a.dec_mid[i].view(),
            params.data(k2),
            d.view(),
            pad,
            dw,
            db,
            true,
        )
        .ok_or_else(|| TrainError::invalid("internal: missing input gradient"))?;
        relu_backward(&mut dm, &a.dec_mid[i]);
        let k1 = index(&cfg, dec(i, 1, false))?;
        let (dw, db) = grads.weight_bias_mut(k1);
        let dcat = conv3x3_backward(
            a.cat[i].view(),
            params.data(k1),
            dm.view(),
            pad,
            dw,
            db,
            true,
        )
        .ok_or_else(|| TrainError::invalid("internal: missing input gradient"))?;
        let dup = split_crop_concat(&dcat, a.sh.crop[i], a.sw.crop[i], dskip[i].view_mut());
        let below = if i + 2 < l {
            &a.dec_out[i + 1]
        } else {
            a.dropped.as_ref().unwrap_or(&a.enc_out[l - 1])
        };
        let ku = index(
            &cfg,
            ParamId::Up {
                level: i as u8,
                bias: false,
            },
        )?;
        let (dw, db) = grads.weight_bias_mut(ku);
        d = up2x2_backward(below.view(), params.data(ku), dup.view(), dw, db);
    }

    // `d` is now ∂E/∂(dropped bottom) (or ∂E/∂enc_out[0] when l == 1, through the head).
    if let Some(mask) = mask {
        d *= mask;
    }
    // Encoder, bottom first; `d` is ∂E/∂enc_out[i].
    for i in (0..l).rev() {
        relu_backward(&mut d, &a.enc_out[i]);
        let k2 = index(&cfg, enc(i, 2, false))?;
        let (dw, db) = grads.weight_bias_mut(k2);
        let mut dm = conv3x3_backward(
            a.enc_mid[i].view(),
            params.data(k2),
            d.view(),
            pad,
            dw,
            db,
            true,
        )
        .ok_or_else(|| TrainError::invalid("internal: missing input gradient"))?;
        relu_backward(&mut dm, &a.enc_mid[i]);
        let k1 = index(&cfg, enc(i, 1, false))?;
        let inp = if i == 0 {
            a.input.view()
        } else {
            a.pooled[i - 1].0.view()
        };
        let (dw, db) = grads.weight_bias_mut(k1);
        let dinp = conv3x3_backward(inp, params.data(k1), dm.view(), pad, dw, db, i > 0);
        if i > 0 {
            let dp = dinp.ok_or_else(|| TrainError::invalid("internal: missing input gradient"))?;
            let (_, hh, ww) = a.enc_out[i - 1].dim();
            d = maxpool_backward(dp.view(), &a.pooled[i - 1].1, hh, ww);
            d += &dskip[i - 1];
        }
    }
    Ok(())
}
