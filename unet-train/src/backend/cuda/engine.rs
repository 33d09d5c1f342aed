//! The U-Net on a [`Gpu`]: parameters, gradients and optimiser state as flat device vectors
//! (tensors in file order, as [`Params`]), batched forward pass keeping the activations,
//! loss, backward pass and optimiser updates — the CPU backend's `network.rs`, `loss.rs` and
//! `optim.rs`, operation for operation, with whole batches per launch.
//!
//! Feature maps are `[B, C, H, W]` device tensors. GEMMs are row-major products mapped onto
//! cuBLAS's column-major `sgemm_strided_batched` (`Engine::rm_gemm`); the batch dimension is
//! the GEMM batch where each sample has its own output (forward products, input gradients) and
//! a loop of accumulating GEMMs where all samples add into one weight gradient.

use ndarray::{Array4, ArrayView3, ArrayView4};
use unet_core::geometry::Sizes;
use unet_core::{Config, ParamId};

use super::gpu::{Gemm, Gpu};
use super::kernels::{Arg, REDUCE_BLOCK};
use crate::backend::cpu::network::sizes;
use crate::backend::{dropout, Backend, BatchView, Dropout, Shard, StepStats};
use crate::error::{Result, TrainError};
use crate::optim::{OptimState, Optimizer, OptimizerKind};
use crate::params::Params;

/// Threads per block of the element-wise kernels.
const BLOCK: u32 = 256;
/// Largest im2col block of a batch (f32 elements, 256 MiB); convolutions cut their output rows
/// so that `B · 9·C_in · rows · W_out` stays below it.
pub const COLS_BUDGET: usize = 1 << 26;

/// Types copied byte for byte between host and device.
trait Plain: Copy + Default {}
impl Plain for f32 {}
impl Plain for f64 {}
impl Plain for u8 {}
impl Plain for u64 {}

fn bytes<T: Plain>(s: &[T]) -> &[u8] {
    // SAFETY: `Plain` types have no padding and no invalid bit patterns; the byte view covers
    // exactly the slice's memory and borrows it.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

fn bytes_mut<T: Plain>(s: &mut [T]) -> &mut [u8] {
    // SAFETY: as `bytes`; every byte pattern written is a valid `T`.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

fn ci(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| TrainError::device(format!("size {v} exceeds a kernel's int")))
}

fn cl(v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| TrainError::device(format!("size {v} exceeds i64")))
}

fn grid(n: usize) -> u32 {
    n.div_ceil(BLOCK as usize).clamp(1, 1 << 16) as u32
}

fn mul(a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or(TrainError::Core(Box::new(unet_core::Error::Overflow)))
}

/// A `[b, c, h, w]` f32 device tensor.
struct Tensor<M> {
    _mem: M,
    addr: u64,
    b: usize,
    c: usize,
    h: usize,
    w: usize,
}

impl<M> Tensor<M> {
    fn len(&self) -> usize {
        self.b * self.c * self.h * self.w
    }
    fn plane(&self) -> usize {
        self.h * self.w
    }
    /// Address of sample `s`.
    fn sample(&self, s: usize) -> u64 {
        self.addr + 4 * (s * self.c * self.plane()) as u64
    }
}

/// Activations of a batched forward pass (as the CPU backend's `network::Activations`).
struct Acts<M> {
    input: Tensor<M>,
    sh: Sizes,
    sw: Sizes,
    enc_mid: Vec<Tensor<M>>,
    enc_out: Vec<Tensor<M>>,
    pooled: Vec<(Tensor<M>, M, u64)>,
    mask: Option<Tensor<M>>,
    dropped: Option<Tensor<M>>,
    cat: Vec<Option<Tensor<M>>>,
    dec_mid: Vec<Option<Tensor<M>>>,
    dec_out: Vec<Option<Tensor<M>>>,
    logits: Tensor<M>,
}

fn missing() -> TrainError {
    TrainError::device("internal: missing activation")
}

impl<M> Acts<M> {
    /// The bottom map the decoder (or head) reads: after dropout if any.
    fn bottom(&self) -> &Tensor<M> {
        self.dropped
            .as_ref()
            .unwrap_or(&self.enc_out[self.enc_out.len() - 1])
    }
    /// Input of the head.
    fn feat(&self) -> Result<&Tensor<M>> {
        if self.enc_out.len() == 1 {
            Ok(self.bottom())
        } else {
            self.dec_out[0].as_ref().ok_or_else(missing)
        }
    }
    /// The map decoder level `i` up-samples.
    fn below(&self, i: usize) -> Result<&Tensor<M>> {
        if i + 2 < self.enc_out.len() {
            self.dec_out[i + 1].as_ref().ok_or_else(missing)
        } else {
            Ok(self.bottom())
        }
    }
}

/// A U-Net trainer on device `G` (see the module docs); with [`super::gpu::CudaGpu`] this is
/// [`super::CudaBackend`].
pub struct Engine<G: Gpu> {
    gpu: G,
    template: Params,
    offsets: Vec<usize>,
    numel: usize,
    params: G::Mem,
    grads: G::Mem,
    buffers: Vec<G::Mem>,
    kind: OptimizerKind,
    weight_decay: f32,
    step: u64,
}

impl<G: Gpu> std::fmt::Debug for Engine<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("device", &self.gpu.name())
            .field("config", self.template.config())
            .field("numel", &self.numel)
            .field("optimizer", &self.kind)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl<G: Gpu> Engine<G> {
    /// Uploads `params` and `optimizer`'s state (made for the same shapes) to `gpu`.
    pub fn new(gpu: G, params: Params, optimizer: Optimizer) -> Result<Self> {
        let template = params.zeros_like();
        let mut offsets = Vec::with_capacity(params.len());
        let mut numel = 0usize;
        for k in 0..params.len() {
            offsets.push(numel);
            numel = numel
                .checked_add(params.data(k).len())
                .ok_or(unet_core::Error::Overflow)?;
        }
        let nbytes = mul(numel, 4)?;
        let p = gpu.alloc(nbytes)?;
        let g = gpu.alloc(nbytes)?;
        let mut e = Engine {
            template,
            offsets,
            numel,
            params: p,
            grads: g,
            buffers: Vec::new(),
            kind: optimizer.kind(),
            weight_decay: optimizer.weight_decay(),
            step: 0,
            gpu,
        };
        e.upload_params(e.gpu.addr(&e.params), &params)?;
        for _ in 0..optimizer.kind().buffers() {
            let m = e.gpu.alloc(nbytes)?;
            e.buffers.push(m);
        }
        e.set_optimizer_state(optimizer.state().clone())?;
        Ok(e)
    }

    /// The device.
    pub fn gpu(&self) -> &G {
        &self.gpu
    }

    fn cfg(&self) -> Config {
        *self.template.config()
    }

    fn upload_params(&self, dst: u64, p: &Params) -> Result<()> {
        self.template.check_same(p)?;
        let mut flat = Vec::with_capacity(self.numel);
        for k in 0..p.len() {
            flat.extend_from_slice(p.data(k));
        }
        self.gpu.upload(dst, bytes(&flat))
    }

    fn download_params(&self, src: u64) -> Result<Params> {
        let mut flat = vec![0f32; self.numel];
        self.gpu.download(src, bytes_mut(&mut flat))?;
        let mut p = self.template.clone();
        for k in 0..p.len() {
            let n = p.data(k).len();
            let o = self.offsets[k];
            p.data_mut(k).copy_from_slice(&flat[o..o + n]);
        }
        Ok(p)
    }

    /// Device address of parameter `id` in the flat vector at `base`.
    fn at(&self, base: u64, id: ParamId) -> Result<u64> {
        let k = self.cfg().param_index(id).ok_or_else(|| {
            TrainError::invalid(format!("parameter {id} is not part of this architecture"))
        })?;
        Ok(base + 4 * self.offsets[k] as u64)
    }

    fn w(&self, id: ParamId) -> Result<u64> {
        self.at(self.gpu.addr(&self.params), id)
    }

    fn dw(&self, id: ParamId) -> Result<u64> {
        self.at(self.gpu.addr(&self.grads), id)
    }

    fn tensor(&self, b: usize, c: usize, h: usize, w: usize) -> Result<Tensor<G::Mem>> {
        let n = mul(mul(mul(b, c)?, h)?, w)?;
        let mem = self.gpu.alloc(mul(n, 4)?)?;
        let addr = self.gpu.addr(&mem);
        Ok(Tensor {
            _mem: mem,
            addr,
            b,
            c,
            h,
            w,
        })
    }

    fn upload_tensor(
        &self,
        data: &[f32],
        b: usize,
        c: usize,
        h: usize,
        w: usize,
    ) -> Result<Tensor<G::Mem>> {
        let t = self.tensor(b, c, h, w)?;
        self.gpu.upload(t.addr, bytes(data))?;
        Ok(t)
    }

    fn launch(&self, name: &'static str, n: usize, args: &[Arg]) -> Result<()> {
        self.gpu.launch(name, grid(n), BLOCK, args)
    }

    /// Row-major `C (m×n, ldc) = α·op(A)·op(B) + β·C` for `batch` products, where `A` is stored
    /// row-major `m×k` (`ta = false`) or `k×m` (`ta = true`) with row stride `lda`, likewise `B`
    /// (`k×n` or `n×k`); strides between batch members in elements. Mapped onto the
    /// column-major [`Gemm`] as `Cᵀ = op(B)ᵀ·op(A)ᵀ`.
    #[allow(clippy::too_many_arguments)]
    fn rm_gemm(
        &self,
        (ta, tb): (bool, bool),
        (m, n, k): (usize, usize, usize),
        (a, lda, sa): (u64, usize, usize),
        (b, ldb, sb): (u64, usize, usize),
        beta: f32,
        (c, ldc, sc): (u64, usize, usize),
        batch: usize,
    ) -> Result<()> {
        self.gpu.gemm(&Gemm {
            ta: tb,
            tb: ta,
            m: n,
            n: m,
            k,
            alpha: 1.0,
            a: b,
            lda: ldb,
            stride_a: sb,
            b: a,
            ldb: lda,
            stride_b: sa,
            beta,
            c,
            ldc,
            stride_c: sc,
            batch,
        })
    }

    fn bias_act(&self, y: &Tensor<G::Mem>, bias: u64, relu: bool) -> Result<()> {
        self.launch(
            "bias_act_fwd",
            y.len(),
            &[
                Arg::Ptr(y.addr),
                Arg::Ptr(bias),
                Arg::I64(cl(y.len())?),
                Arg::I32(ci(y.c)?),
                Arg::I64(cl(y.plane())?),
                Arg::I32(relu as i32),
            ],
        )
    }

    fn channel_sum_add(&self, dy: &Tensor<G::Mem>, db: u64) -> Result<()> {
        self.gpu.launch(
            "channel_sum_add",
            ci(dy.c)? as u32,
            REDUCE_BLOCK,
            &[
                Arg::Ptr(dy.addr),
                Arg::Ptr(db),
                Arg::I32(ci(dy.b)?),
                Arg::I32(ci(dy.c)?),
                Arg::I64(cl(dy.plane())?),
            ],
        )
    }

    fn relu_bwd(&self, d: &Tensor<G::Mem>, y: &Tensor<G::Mem>) -> Result<()> {
        self.launch(
            "relu_bwd",
            d.len(),
            &[Arg::Ptr(d.addr), Arg::Ptr(y.addr), Arg::I64(cl(d.len())?)],
        )
    }

    fn mul_elem(&self, out: u64, x: u64, m: u64, n: usize) -> Result<()> {
        self.launch(
            "mul_elem",
            n,
            &[Arg::Ptr(out), Arg::Ptr(x), Arg::Ptr(m), Arg::I64(cl(n)?)],
        )
    }

    /// Output rows per im2col block for a batch.
    fn block_rows(b: usize, cin: usize, ow: usize, oh: usize) -> usize {
        (COLS_BUDGET / (b * cin * 9 * ow).max(1)).clamp(1, oh.max(1))
    }

    fn im2col(
        &self,
        x: &Tensor<G::Mem>,
        cols: u64,
        ow: usize,
        p: usize,
        y0: usize,
        rows: usize,
    ) -> Result<()> {
        let name = "im2col3x3";
        self.launch(
            name,
            x.b * 9 * x.c * rows * ow,
            &[
                Arg::Ptr(x.addr),
                Arg::Ptr(cols),
                Arg::I32(ci(x.b)?),
                Arg::I32(ci(x.c)?),
                Arg::I32(ci(x.h)?),
                Arg::I32(ci(x.w)?),
                Arg::I32(ci(ow)?),
                Arg::I32(ci(p)?),
                Arg::I32(ci(y0)?),
                Arg::I32(ci(rows)?),
            ],
        )
    }

    /// 3×3 convolution of `x` with parameters `(wid, bias)`, then ReLU if `relu`.
    fn conv3x3_fwd(
        &self,
        x: &Tensor<G::Mem>,
        wid: ParamId,
        bid: ParamId,
        cout: usize,
        relu: bool,
    ) -> Result<Tensor<G::Mem>> {
        let p = crate::backend::cpu::conv::pad_of(self.cfg().padding);
        let (oh, ow) = (
            (x.h + 2 * p).checked_sub(2).ok_or_else(missing)?,
            (x.w + 2 * p).checked_sub(2).ok_or_else(missing)?,
        );
        let y = self.tensor(x.b, cout, oh, ow)?;
        let plane = oh * ow;
        let kk = 9 * x.c;
        let rb = Self::block_rows(x.b, x.c, ow, oh);
        let cols = self.gpu.alloc(mul(mul(mul(x.b, kk)?, rb * ow)?, 4)?)?;
        let ca = self.gpu.addr(&cols);
        let wa = self.w(wid)?;
        let mut y0 = 0;
        while y0 < oh {
            let rows = rb.min(oh - y0);
            let nb = rows * ow;
            self.im2col(x, ca, ow, p, y0, rows)?;
            self.rm_gemm(
                (false, false),
                (cout, nb, kk),
                (wa, kk, 0),
                (ca, nb, kk * nb),
                0.0,
                (y.addr + 4 * (y0 * ow) as u64, plane, cout * plane),
                x.b,
            )?;
            y0 += rows;
        }
        self.bias_act(&y, self.w(bid)?, relu)?;
        Ok(y)
    }

    /// Backward of [`Self::conv3x3_fwd`] (ReLU already applied to `dy`): accumulates the
    /// weight and bias gradients, returns `∂E/∂x` if `need_dx`.
    fn conv3x3_bwd(
        &self,
        x: &Tensor<G::Mem>,
        wid: ParamId,
        bid: ParamId,
        dy: &Tensor<G::Mem>,
        need_dx: bool,
    ) -> Result<Option<Tensor<G::Mem>>> {
        let p = crate::backend::cpu::conv::pad_of(self.cfg().padding);
        let (cout, oh, ow) = (dy.c, dy.h, dy.w);
        let plane = oh * ow;
        let kk = 9 * x.c;
        self.channel_sum_add(dy, self.dw(bid)?)?;
        let dx = if need_dx {
            Some(self.tensor(x.b, x.c, x.h, x.w)?)
        } else {
            None
        };
        let rb = Self::block_rows(x.b, x.c, ow, oh);
        let col_bytes = mul(mul(mul(x.b, kk)?, rb * ow)?, 4)?;
        let cols = self.gpu.alloc(col_bytes)?;
        let ca = self.gpu.addr(&cols);
        let dcols = if need_dx {
            Some(self.gpu.alloc(col_bytes)?)
        } else {
            None
        };
        let (wa, dwa) = (self.w(wid)?, self.dw(wid)?);
        let mut y0 = 0;
        while y0 < oh {
            let rows = rb.min(oh - y0);
            let nb = rows * ow;
            self.im2col(x, ca, ow, p, y0, rows)?;
            for s in 0..x.b {
                self.rm_gemm(
                    (false, true),
                    (cout, kk, nb),
                    (dy.sample(s) + 4 * (y0 * ow) as u64, plane, 0),
                    (ca + 4 * (s * kk * nb) as u64, nb, 0),
                    1.0,
                    (dwa, kk, 0),
                    1,
                )?;
            }
            if let (Some(dx), Some(dc)) = (dx.as_ref(), dcols.as_ref()) {
                let da = self.gpu.addr(dc);
                self.rm_gemm(
                    (true, false),
                    (kk, nb, cout),
                    (wa, kk, 0),
                    (dy.addr + 4 * (y0 * ow) as u64, plane, cout * plane),
                    0.0,
                    (da, nb, kk * nb),
                    x.b,
                )?;
                self.launch(
                    "col2im3x3_add",
                    dx.len(),
                    &[
                        Arg::Ptr(da),
                        Arg::Ptr(dx.addr),
                        Arg::I32(ci(x.b)?),
                        Arg::I32(ci(x.c)?),
                        Arg::I32(ci(x.h)?),
                        Arg::I32(ci(x.w)?),
                        Arg::I32(ci(ow)?),
                        Arg::I32(ci(p)?),
                        Arg::I32(ci(y0)?),
                        Arg::I32(ci(rows)?),
                    ],
                )?;
            }
            y0 += rows;
        }
        Ok(dx)
    }

    fn head_fwd(&self, feat: &Tensor<G::Mem>) -> Result<Tensor<G::Mem>> {
        let k = self.cfg().num_classes;
        let (c, n) = (feat.c, feat.plane());
        let y = self.tensor(feat.b, k, feat.h, feat.w)?;
        self.rm_gemm(
            (false, false),
            (k, n, c),
            (self.w(ParamId::Head { bias: false })?, c, 0),
            (feat.addr, n, c * n),
            0.0,
            (y.addr, n, k * n),
            feat.b,
        )?;
        self.bias_act(&y, self.w(ParamId::Head { bias: true })?, false)?;
        Ok(y)
    }

    fn head_bwd(&self, feat: &Tensor<G::Mem>, dl: &Tensor<G::Mem>) -> Result<Tensor<G::Mem>> {
        let (k, c, n) = (dl.c, feat.c, feat.plane());
        self.channel_sum_add(dl, self.dw(ParamId::Head { bias: true })?)?;
        let dwa = self.dw(ParamId::Head { bias: false })?;
        for s in 0..feat.b {
            self.rm_gemm(
                (false, true),
                (k, c, n),
                (dl.sample(s), n, 0),
                (feat.sample(s), n, 0),
                1.0,
                (dwa, c, 0),
                1,
            )?;
        }
        let dx = self.tensor(feat.b, c, feat.h, feat.w)?;
        self.rm_gemm(
            (true, false),
            (c, n, k),
            (self.w(ParamId::Head { bias: false })?, c, 0),
            (dl.addr, n, k * n),
            0.0,
            (dx.addr, n, c * n),
            feat.b,
        )?;
        Ok(dx)
    }

    fn up_fwd(&self, x: &Tensor<G::Mem>, level: usize) -> Result<Tensor<G::Mem>> {
        let (cin, n) = (x.c, x.plane());
        let cout = self
            .cfg()
            .channels(level)
            .ok_or(unet_core::Error::Overflow)?;
        let lv = level as u8;
        let cols = self.gpu.alloc(mul(mul(mul(x.b, 4 * cout)?, n)?, 4)?)?;
        let ca = self.gpu.addr(&cols);
        self.rm_gemm(
            (true, false),
            (4 * cout, n, cin),
            (
                self.w(ParamId::Up {
                    level: lv,
                    bias: false,
                })?,
                4 * cout,
                0,
            ),
            (x.addr, n, cin * n),
            0.0,
            (ca, n, 4 * cout * n),
            x.b,
        )?;
        let y = self.tensor(x.b, cout, 2 * x.h, 2 * x.w)?;
        self.launch(
            "up_scatter",
            y.len(),
            &[
                Arg::Ptr(ca),
                Arg::Ptr(self.w(ParamId::Up {
                    level: lv,
                    bias: true,
                })?),
                Arg::Ptr(y.addr),
                Arg::I32(ci(x.b)?),
                Arg::I32(ci(cout)?),
                Arg::I32(ci(x.h)?),
                Arg::I32(ci(x.w)?),
            ],
        )?;
        Ok(y)
    }

    fn up_bwd(
        &self,
        x: &Tensor<G::Mem>,
        level: usize,
        dy: &Tensor<G::Mem>,
    ) -> Result<Tensor<G::Mem>> {
        let (cin, n, cout) = (x.c, x.plane(), dy.c);
        let lv = level as u8;
        let dcols = self.gpu.alloc(mul(mul(mul(x.b, 4 * cout)?, n)?, 4)?)?;
        let da = self.gpu.addr(&dcols);
        self.launch(
            "up_gather",
            dy.len(),
            &[
                Arg::Ptr(dy.addr),
                Arg::Ptr(da),
                Arg::I32(ci(x.b)?),
                Arg::I32(ci(cout)?),
                Arg::I32(ci(x.h)?),
                Arg::I32(ci(x.w)?),
            ],
        )?;
        self.channel_sum_add(
            dy,
            self.dw(ParamId::Up {
                level: lv,
                bias: true,
            })?,
        )?;
        let dwa = self.dw(ParamId::Up {
            level: lv,
            bias: false,
        })?;
        for s in 0..x.b {
            self.rm_gemm(
                (false, true),
                (cin, 4 * cout, n),
                (x.sample(s), n, 0),
                (da + 4 * (s * 4 * cout * n) as u64, n, 0),
                1.0,
                (dwa, 4 * cout, 0),
                1,
            )?;
        }
        let dx = self.tensor(x.b, cin, x.h, x.w)?;
        self.rm_gemm(
            (false, false),
            (cin, n, 4 * cout),
            (
                self.w(ParamId::Up {
                    level: lv,
                    bias: false,
                })?,
                4 * cout,
                0,
            ),
            (da, n, 4 * cout * n),
            0.0,
            (dx.addr, n, cin * n),
            x.b,
        )?;
        Ok(dx)
    }

    fn pool_fwd(&self, x: &Tensor<G::Mem>) -> Result<(Tensor<G::Mem>, G::Mem, u64)> {
        let y = self.tensor(x.b, x.c, x.h / 2, x.w / 2)?;
        let idx = self.gpu.alloc(y.len())?;
        let ia = self.gpu.addr(&idx);
        self.launch(
            "maxpool_fwd",
            y.len(),
            &[
                Arg::Ptr(x.addr),
                Arg::Ptr(y.addr),
                Arg::Ptr(ia),
                Arg::I64(cl(x.b * x.c)?),
                Arg::I32(ci(x.h)?),
                Arg::I32(ci(x.w)?),
            ],
        )?;
        Ok((y, idx, ia))
    }

    fn crop_args(
        skip: &Tensor<G::Mem>,
        up_c: usize,
        h: usize,
        w: usize,
        oy: usize,
        ox: usize,
    ) -> Result<[Arg; 9]> {
        Ok([
            Arg::I32(ci(skip.b)?),
            Arg::I32(ci(skip.c)?),
            Arg::I32(ci(skip.h)?),
            Arg::I32(ci(skip.w)?),
            Arg::I32(ci(up_c)?),
            Arg::I32(ci(h)?),
            Arg::I32(ci(w)?),
            Arg::I32(ci(oy)?),
            Arg::I32(ci(ox)?),
        ])
    }

    /// Batched forward pass keeping every activation; `mask` is the concatenated dropout
    /// masks of the batch (shape of the bottom map per sample).
    fn forward_acts(
        &self,
        input: ArrayView4<'_, f32>,
        mask: Option<&[f32]>,
    ) -> Result<Acts<G::Mem>> {
        let cfg = self.cfg();
        let (b, cin, h, w) = input.dim();
        if b == 0 {
            return Err(TrainError::invalid("empty batch"));
        }
        if cin != cfg.in_channels {
            return Err(TrainError::invalid(format!(
                "input has {cin} channels, the model takes {}",
                cfg.in_channels
            )));
        }
        let (sh, sw) = sizes(&cfg, h, w)?;
        let l = cfg.levels;
        let data = input.as_standard_layout();
        let x = self.upload_tensor(data.as_slice().ok_or_else(missing)?, b, cin, h, w)?;
        let mut a = Acts {
            input: x,
            sh,
            sw,
            enc_mid: Vec::with_capacity(l),
            enc_out: Vec::with_capacity(l),
            pooled: Vec::with_capacity(l),
            mask: None,
            dropped: None,
            cat: (0..l - 1).map(|_| None).collect(),
            dec_mid: (0..l - 1).map(|_| None).collect(),
            dec_out: (0..l - 1).map(|_| None).collect(),
            logits: self.tensor(0, 0, 0, 0)?,
        };
        for i in 0..l {
            let c = cfg.channels(i).ok_or(unet_core::Error::Overflow)?;
            let inp = if i == 0 { &a.input } else { &a.pooled[i - 1].0 };
            let m = self.conv3x3_fwd(inp, enc(i, 1, false), enc(i, 1, true), c, true)?;
            let o = self.conv3x3_fwd(&m, enc(i, 2, false), enc(i, 2, true), c, true)?;
            if i + 1 < l {
                let p = self.pool_fwd(&o)?;
                a.pooled.push(p);
            }
            a.enc_mid.push(m);
            a.enc_out.push(o);
        }
        if let Some(mask) = mask {
            let bottom = &a.enc_out[l - 1];
            if mask.len() != bottom.len() {
                return Err(TrainError::invalid(format!(
                    "dropout masks hold {} values, the bottom maps {}",
                    mask.len(),
                    bottom.len()
                )));
            }
            let m = self.upload_tensor(mask, bottom.b, bottom.c, bottom.h, bottom.w)?;
            let d = self.tensor(bottom.b, bottom.c, bottom.h, bottom.w)?;
            self.mul_elem(d.addr, bottom.addr, m.addr, d.len())?;
            a.mask = Some(m);
            a.dropped = Some(d);
        }
        for i in (0..l - 1).rev() {
            let c = cfg.channels(i).ok_or(unet_core::Error::Overflow)?;
            let up = self.up_fwd(a.below(i)?, i)?;
            let skip = &a.enc_out[i];
            let cat = self.tensor(b, skip.c + up.c, up.h, up.w)?;
            let mut args = vec![Arg::Ptr(skip.addr), Arg::Ptr(up.addr), Arg::Ptr(cat.addr)];
            args.extend(Self::crop_args(
                skip, up.c, up.h, up.w, sh.crop[i], sw.crop[i],
            )?);
            self.launch("crop_concat", cat.len(), &args)?;
            let m = self.conv3x3_fwd(&cat, dec(i, 1, false), dec(i, 1, true), c, true)?;
            let o = self.conv3x3_fwd(&m, dec(i, 2, false), dec(i, 2, true), c, true)?;
            a.cat[i] = Some(cat);
            a.dec_mid[i] = Some(m);
            a.dec_out[i] = Some(o);
        }
        a.logits = self.head_fwd(a.feat()?)?;
        Ok(a)
    }

    /// Backward pass: accumulates `∂E/∂θ` into the gradient vector for `dlogits`.
    fn backward(&self, a: &Acts<G::Mem>, dlogits: &Tensor<G::Mem>) -> Result<()> {
        let l = self.cfg().levels;
        let mut d = self.head_bwd(a.feat()?, dlogits)?;
        let dskip = a.enc_out[..l - 1]
            .iter()
            .map(|s| self.tensor(s.b, s.c, s.h, s.w))
            .collect::<Result<Vec<_>>>()?;
        #[allow(clippy::needless_range_loop)] // `i` indexes five per-level arrays
        for i in 0..l - 1 {
            let (dout, dmid, cat) = (
                a.dec_out[i].as_ref().ok_or_else(missing)?,
                a.dec_mid[i].as_ref().ok_or_else(missing)?,
                a.cat[i].as_ref().ok_or_else(missing)?,
            );
            self.relu_bwd(&d, dout)?;
            let dm = self
                .conv3x3_bwd(dmid, dec(i, 2, false), dec(i, 2, true), &d, true)?
                .ok_or_else(missing)?;
            self.relu_bwd(&dm, dmid)?;
            let dcat = self
                .conv3x3_bwd(cat, dec(i, 1, false), dec(i, 1, true), &dm, true)?
                .ok_or_else(missing)?;
            let below = a.below(i)?;
            let cu = dcat.c - dskip[i].c;
            let dup = self.tensor(dcat.b, cu, dcat.h, dcat.w)?;
            let mut args = vec![
                Arg::Ptr(dcat.addr),
                Arg::Ptr(dskip[i].addr),
                Arg::Ptr(dup.addr),
            ];
            args.extend(Self::crop_args(
                &dskip[i],
                cu,
                dcat.h,
                dcat.w,
                a.sh.crop[i],
                a.sw.crop[i],
            )?);
            self.launch("split_crop_concat", dcat.len(), &args)?;
            d = self.up_bwd(below, i, &dup)?;
        }
        if let Some(m) = a.mask.as_ref() {
            self.mul_elem(d.addr, d.addr, m.addr, d.len())?;
        }
        for i in (0..l).rev() {
            self.relu_bwd(&d, &a.enc_out[i])?;
            let dm = self
                .conv3x3_bwd(&a.enc_mid[i], enc(i, 2, false), enc(i, 2, true), &d, true)?
                .ok_or_else(missing)?;
            self.relu_bwd(&dm, &a.enc_mid[i])?;
            let inp = if i == 0 { &a.input } else { &a.pooled[i - 1].0 };
            let dinp = self.conv3x3_bwd(inp, enc(i, 1, false), enc(i, 1, true), &dm, i > 0)?;
            if i > 0 {
                let dp = dinp.ok_or_else(missing)?;
                let skip = &a.enc_out[i - 1];
                let dx = self.tensor(skip.b, skip.c, skip.h, skip.w)?;
                self.launch(
                    "maxpool_bwd",
                    dp.len(),
                    &[
                        Arg::Ptr(dp.addr),
                        Arg::Ptr(a.pooled[i - 1].2),
                        Arg::Ptr(dskip[i - 1].addr),
                        Arg::Ptr(dx.addr),
                        Arg::I64(cl(skip.b * skip.c)?),
                        Arg::I32(ci(skip.h)?),
                        Arg::I32(ci(skip.w)?),
                    ],
                )?;
                d = dx;
            }
        }
        Ok(())
    }

    /// Weighted soft-max cross-entropy of the batch: `(Σ w·NLL in f64, ∂(scale·E)/∂logits)`.
    fn loss(
        &self,
        logits: &Tensor<G::Mem>,
        target: ArrayView3<'_, u8>,
        weight: ArrayView3<'_, f32>,
        scale: f64,
    ) -> Result<(f64, Tensor<G::Mem>)> {
        let (b, k, npix) = (logits.b, logits.c, logits.plane());
        let t = target.as_standard_layout();
        let wt = weight.as_standard_layout();
        let (t, wt) = (
            t.as_slice().ok_or_else(missing)?,
            wt.as_slice().ok_or_else(missing)?,
        );
        let n = b * npix;
        let tm = self.gpu.alloc(n)?;
        self.gpu.upload(self.gpu.addr(&tm), t)?;
        let wm = self.upload_tensor(wt, b, 1, logits.h, logits.w)?;
        let grad = self.tensor(b, k, logits.h, logits.w)?;
        let contrib = self.gpu.alloc(mul(n, 8)?)?;
        let bad = self.gpu.alloc(8)?;
        self.gpu.upload(self.gpu.addr(&bad), bytes(&[u64::MAX]))?;
        let out = self.gpu.alloc(8)?;
        self.launch(
            "softmax_xent",
            n,
            &[
                Arg::Ptr(logits.addr),
                Arg::Ptr(self.gpu.addr(&tm)),
                Arg::Ptr(wm.addr),
                Arg::Ptr(grad.addr),
                Arg::Ptr(self.gpu.addr(&contrib)),
                Arg::I32(ci(b)?),
                Arg::I32(ci(k)?),
                Arg::I64(cl(npix)?),
                Arg::F64(scale),
                Arg::Ptr(self.gpu.addr(&bad)),
            ],
        )?;
        self.gpu.launch(
            "sum_f64",
            1,
            REDUCE_BLOCK,
            &[
                Arg::Ptr(self.gpu.addr(&contrib)),
                Arg::I64(cl(n)?),
                Arg::Ptr(self.gpu.addr(&out)),
            ],
        )?;
        let mut flag = [0u64];
        self.gpu
            .download(self.gpu.addr(&bad), bytes_mut(&mut flag))?;
        if flag[0] != u64::MAX {
            let i = (flag[0] - 1) as usize;
            let (px, w) = (i % npix, logits.w);
            return Err(TrainError::invalid(format!(
                "target class {} at ({}, {}) but the model has {k} classes",
                t[i],
                px / w,
                px % w
            )));
        }
        let mut sum = [0f64];
        self.gpu
            .download(self.gpu.addr(&out), bytes_mut(&mut sum))?;
        Ok((sum[0], grad))
    }
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

impl<G: Gpu> Backend for Engine<G> {
    fn name(&self) -> &'static str {
        self.gpu.name()
    }

    fn config(&self) -> Config {
        self.cfg()
    }

    fn params(&self) -> Result<Params> {
        self.download_params(self.gpu.addr(&self.params))
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        self.upload_params(self.gpu.addr(&self.params), params)
    }

    fn forward(&self, input: ArrayView4<'_, f32>) -> Result<Array4<f32>> {
        let a = self.forward_acts(input, None)?;
        let l = &a.logits;
        let mut out = Array4::<f32>::zeros((l.b, l.c, l.h, l.w));
        let o = out.as_slice_mut().ok_or_else(missing)?;
        self.gpu.download(l.addr, bytes_mut(o))?;
        Ok(out)
    }

    fn compute_shard_gradients(
        &mut self,
        batch: &BatchView<'_>,
        shard: Shard,
        dropout: Option<Dropout>,
    ) -> Result<StepStats> {
        let cfg = self.cfg();
        batch.validate(&cfg)?;
        let (b, _, h, w) = batch.input.dim();
        let denom = shard.denominator;
        if !(denom.is_finite() && denom >= 0.0) {
            return Err(TrainError::invalid(format!(
                "loss denominator {denom} must be finite and >= 0"
            )));
        }
        let scale = if denom > 0.0 { 1.0 / denom } else { 0.0 };
        let masks = match dropout {
            Some(d) => {
                let (sh, sw) = sizes(&cfg, h, w)?;
                let l = cfg.levels - 1;
                let c = cfg.channels(l).ok_or(unet_core::Error::Overflow)?;
                dropout::masks(&d, shard.first_sample, b, (c, sh.enc_out[l], sw.enc_out[l]))?.map(
                    |ms| {
                        ms.iter()
                            .flat_map(|m| m.iter().copied())
                            .collect::<Vec<f32>>()
                    },
                )
            }
            None => None,
        };
        let acts = self.forward_acts(batch.input, masks.as_deref())?;
        let (sum, dl) = self.loss(&acts.logits, batch.target, batch.weight, scale)?;
        self.gpu
            .zero(self.gpu.addr(&self.grads), mul(self.numel, 4)?)?;
        self.backward(&acts, &dl)?;
        Ok(StepStats {
            loss: sum * scale,
            denominator: denom,
            tiles: b,
        })
    }

    fn gradients(&self) -> Result<Params> {
        self.download_params(self.gpu.addr(&self.grads))
    }

    fn set_gradients(&mut self, grads: &Params) -> Result<()> {
        self.upload_params(self.gpu.addr(&self.grads), grads)
    }

    fn apply_gradients(&mut self, lr: f32) -> Result<()> {
        let t = self.step + 1;
        let wd = self.weight_decay;
        let n = cl(self.numel)?;
        let (p, g) = (self.gpu.addr(&self.params), self.gpu.addr(&self.grads));
        match self.kind {
            OptimizerKind::Sgd { momentum: 0.0, .. } => self.launch(
                "sgd_plain",
                self.numel,
                &[
                    Arg::Ptr(p),
                    Arg::Ptr(g),
                    Arg::I64(n),
                    Arg::F32(lr),
                    Arg::F32(wd),
                ],
            )?,
            OptimizerKind::Sgd {
                momentum,
                dampening,
                nesterov,
            } => self.launch(
                "sgd_momentum",
                self.numel,
                &[
                    Arg::Ptr(p),
                    Arg::Ptr(g),
                    Arg::Ptr(self.gpu.addr(&self.buffers[0])),
                    Arg::I64(n),
                    Arg::F32(lr),
                    Arg::F32(wd),
                    Arg::F32(momentum),
                    Arg::F32(dampening),
                    Arg::I32(nesterov as i32),
                    Arg::I32((t == 1) as i32),
                ],
            )?,
            OptimizerKind::Adam { beta1, beta2, eps } => {
                let bc1 = 1.0 - (beta1 as f64).powi(t.min(i32::MAX as u64) as i32);
                let bc2 = 1.0 - (beta2 as f64).powi(t.min(i32::MAX as u64) as i32);
                let step_size = (lr as f64 / bc1) as f32;
                let bc2_sqrt = bc2.sqrt() as f32;
                self.launch(
                    "adam",
                    self.numel,
                    &[
                        Arg::Ptr(p),
                        Arg::Ptr(g),
                        Arg::Ptr(self.gpu.addr(&self.buffers[0])),
                        Arg::Ptr(self.gpu.addr(&self.buffers[1])),
                        Arg::I64(n),
                        Arg::F32(step_size),
                        Arg::F32(bc2_sqrt),
                        Arg::F32(beta1),
                        Arg::F32(beta2),
                        Arg::F32(eps),
                        Arg::F32(wd),
                    ],
                )?
            }
        }
        self.step = t;
        Ok(())
    }

    fn optimizer_state(&self) -> Result<OptimState> {
        Ok(OptimState {
            step: self.step,
            buffers: self
                .buffers
                .iter()
                .map(|b| self.download_params(self.gpu.addr(b)))
                .collect::<Result<_>>()?,
        })
    }

    fn set_optimizer_state(&mut self, state: OptimState) -> Result<()> {
        if state.buffers.len() != self.buffers.len() {
            return Err(TrainError::invalid(format!(
                "optimizer state has {} buffers, {} needs {}",
                state.buffers.len(),
                self.kind.describe(),
                self.buffers.len()
            )));
        }
        for b in &state.buffers {
            self.template.check_same(b)?;
        }
        for (m, b) in self.buffers.iter().zip(&state.buffers) {
            self.upload_params(self.gpu.addr(m), b)?;
        }
        self.step = state.step;
        Ok(())
    }
}
