//! Shared by the frame_*/tile_*/normalize_* tests: tiny random models written with the
//! `safetensors` crate, a single-tile reference, executors, and fixture loading.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use safetensors::tensor::TensorView as StView;
use safetensors::{Dtype, SafeTensors};
use unet_core::mirror::symmetric_index;
use unet_core::{Config, ConvAlgo, Executor, Model, Output, Padding};

/// Deterministic xorshift64* stream of uniforms in [-1, 1).
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Safetensors bytes of a model of `cfg` with He-uniform random weights (seeded), small random
/// biases and the given `normalization` metadata.
pub fn model_bytes(cfg: &Config, normalization: &str, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for k in 0..cfg.param_count() {
        let p = cfg.param(k).unwrap();
        let shape = cfg.param_shape(p).unwrap().dims().to_vec();
        let n: usize = shape.iter().product();
        let fan_in: usize = if shape.len() == 4 {
            shape[1] * shape[2] * shape[3]
        } else {
            1
        };
        let is_bias = shape.len() == 1;
        let a = if is_bias {
            0.1
        } else {
            (6.0 / fan_in as f32).sqrt()
        };
        let data: Vec<u8> = (0..n)
            .flat_map(|_| (rng.uniform() * a).to_le_bytes())
            .collect();
        tensors.push((p.to_string(), shape, data));
    }
    let views: Vec<(String, StView<'_>)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            (
                name.clone(),
                StView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let meta: HashMap<String, String> = [
        ("format", "unet".to_string()),
        ("format_version", "1".to_string()),
        ("in_channels", cfg.in_channels.to_string()),
        ("num_classes", cfg.num_classes.to_string()),
        ("base_channels", cfg.base_channels.to_string()),
        ("levels", cfg.levels.to_string()),
        ("padding", cfg.padding.as_str().to_string()),
        ("normalization", normalization.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

pub fn config(
    in_channels: usize,
    num_classes: usize,
    base: usize,
    levels: usize,
    padding: Padding,
) -> Config {
    Config {
        in_channels,
        num_classes,
        base_channels: base,
        levels,
        padding,
    }
}

/// Logits `[K, H, W]` of one single tile over the mirror-extended, normalised frame `norm`
/// (`[C, H, W]` f32, already normalised), anchored so that its input starts at frame
/// coordinate `−margin` on both axes: the reference the stitched frame must equal. Runs the
/// direct convolutions (the exact reference; see `unet_core::frame`).
pub fn single_tile_logits(model: &Model<'_>, norm: &[f32], h: usize, w: usize) -> Vec<f32> {
    let g = model.geometry();
    let cfg = model.config();
    let m = unet_core::tile::margin(g);
    let nh = g.next_legal(h + 2 * m).unwrap();
    let nw = g.next_legal(w + 2 * m).unwrap();
    let c = cfg.in_channels;
    let mut input = vec![0f32; c * nh * nw];
    for ch in 0..c {
        for y in 0..nh {
            let fy = symmetric_index(y as isize - m as isize, h);
            for x in 0..nw {
                let fx = symmetric_index(x as isize - m as isize, w);
                input[(ch * nh + y) * nw + x] = norm[(ch * h + fy) * w + fx];
            }
        }
    }
    let plan = model.plan_with(nh, nw, ConvAlgo::Direct).unwrap();
    let mut scratch = vec![0f32; plan.scratch_len()];
    let mut out = vec![0f32; plan.output_len()];
    model
        .forward(&plan, &input, &mut scratch, Output::Logits(&mut out))
        .unwrap();
    let (oh, ow) = plan.output_size();
    let shift = match cfg.padding {
        Padding::Valid => 0,
        Padding::Same => m,
    };
    let k = cfg.num_classes;
    let mut res = vec![0f32; k * h * w];
    for cls in 0..k {
        for y in 0..h {
            for x in 0..w {
                res[(cls * h + y) * w + x] = out[(cls * oh + y + shift) * ow + x + shift];
            }
        }
    }
    res
}

/// Runs jobs on `n` scoped std threads pulling from a shared counter (worker = thread number).
pub struct Threads(pub usize);

// SAFETY: worker indices are the thread numbers 0..n, one per thread, each running its jobs one
// after another; `fetch_add` hands each job out once; `thread::scope` joins before returning.
unsafe impl Executor for Threads {
    fn workers(&self) -> usize {
        self.0
    }
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for w in 0..self.0 {
                let next = &next;
                s.spawn(move || loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= jobs {
                        break;
                    }
                    job(j, w);
                });
            }
        });
    }
}

/// Bytes of a committed fixture under tests/fixtures/frame/.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/frame/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run tests/reference/make_frame_fixtures.py)"))
}

/// A tensor of a fixture as f64 values (I64, F64, F32, U8 and U16 tensors).
pub fn tensor_f64(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture tensor {name}"));
    let d = t.data();
    let v: Vec<f64> = match t.dtype() {
        Dtype::I64 => d
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        Dtype::U16 => d
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        Dtype::U8 => d.iter().map(|&b| b as f64).collect(),
        other => panic!("unexpected dtype {other:?}"),
    };
    (t.shape().to_vec(), v)
}
