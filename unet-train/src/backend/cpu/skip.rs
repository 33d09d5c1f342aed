//! The skip connection of a decoder level: centre-crop the encoder map and concatenate it
//! channel-wise with the up-sampled map, skip first (the same order as unet-core and the
//! PyTorch reference), and the adjoint that splits a gradient back.

use ndarray::{s, Array3, ArrayView3, ArrayViewMut3, Axis};

/// `[crop(skip), up]`: `skip` is `[C_s, H_s, W_s]`, `up` is `[C_u, h, w]`; the crop is the
/// `h × w` window at `(off_y, off_x)`. Returns `[C_s + C_u, h, w]`.
pub fn crop_concat(
    skip: ArrayView3<'_, f32>,
    off_y: usize,
    off_x: usize,
    up: ArrayView3<'_, f32>,
) -> Array3<f32> {
    let (cs, _, _) = skip.dim();
    let (cu, h, w) = up.dim();
    let mut out = Array3::<f32>::zeros((cs + cu, h, w));
    out.slice_mut(s![..cs, .., ..])
        .assign(&skip.slice(s![.., off_y..off_y + h, off_x..off_x + w]));
    out.slice_mut(s![cs.., .., ..]).assign(&up);
    out
}

/// Adjoint of [`crop_concat`]: adds the first `C_s` channels of `dcat` into the crop window of
/// `dskip` and returns the remaining channels (the gradient of the up-sampled map).
pub fn split_crop_concat(
    dcat: &Array3<f32>,
    off_y: usize,
    off_x: usize,
    mut dskip: ArrayViewMut3<'_, f32>,
) -> Array3<f32> {
    let cs = dskip.dim().0;
    let (_, h, w) = dcat.dim();
    let mut win = dskip.slice_mut(s![.., off_y..off_y + h, off_x..off_x + w]);
    win += &dcat.slice(s![..cs, .., ..]);
    dcat.slice_axis(Axis(0), (cs..).into()).to_owned()
}
