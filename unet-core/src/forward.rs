//! The forward pass of one tile, entirely inside the caller's scratch.

use crate::arch::ParamId;
use crate::conv::{self, ConvInput, Map, MapMut, Part};
use crate::error::Error;
use crate::exec::{Executor, Sequential, Shared};
use crate::fuse::{DecDims, DecOut, Decoder, EncDims, Encoder, Weights};
use crate::gemm::Kernel;
use crate::model::Model;
use crate::plan::{Kind, Plan, Region};
use crate::tensor::TensorView;
use crate::winograd;

/// Where and how [`Model::forward`] writes its result. Layouts are row-major over the output
/// tile (`out_h × out_w` from [`Plan::output_size`]).
#[derive(Debug)]
pub enum Output<'o> {
    /// Raw class scores, `[num_classes, out_h, out_w]`.
    Logits(&'o mut [f32]),
    /// Soft-max probabilities, `[num_classes, out_h, out_w]`, summing to 1 per pixel.
    Probabilities(&'o mut [f32]),
    /// Arg-max class per pixel, `[out_h, out_w]`; needs `num_classes ≤ 256`. Ties go to the
    /// lowest class index; a pixel whose logits contain NaN gets the first NaN class.
    Labels8(&'o mut [u8]),
    /// Arg-max class per pixel, `[out_h, out_w]`; needs `num_classes ≤ 65536`.
    Labels16(&'o mut [u16]),
}

impl Output<'_> {
    fn len(&self) -> usize {
        match self {
            Output::Logits(o) | Output::Probabilities(o) => o.len(),
            Output::Labels8(o) => o.len(),
            Output::Labels16(o) => o.len(),
        }
    }
}

fn map(data: &[f32], c: usize, h: usize, w: usize) -> Map<'_> {
    Map { data, c, h, w }
}

fn disjoint<const N: usize>(
    scratch: &mut [f32],
    regions: [Region; N],
) -> Result<[&mut [f32]; N], Error> {
    scratch
        .get_disjoint_mut(regions.map(|r| r.range()))
        .map_err(|_| Error::InvalidArgument {
            what: "internal: scratch layout overlaps",
        })
}

impl<'a> Model<'a> {
    /// Plans an `h × w` input tile: checks the size against the geometry and computes the output
    /// size and the exact scratch length. See [`Plan`].
    pub fn plan(&self, h: usize, w: usize) -> Result<Plan, Error> {
        Plan::new(self.config(), h, w)
    }

    /// Plans an `h × w` tile for [`Model::forward_with`] on up to `workers` workers: as
    /// [`Model::plan`], with one GEMM pack buffer per worker in the scratch (see
    /// [`Plan::with_workers`]; the scratch grows by [`Plan::pack_len_per_worker`] per worker).
    pub fn plan_workers(&self, h: usize, w: usize, workers: usize) -> Result<Plan, Error> {
        Plan::with_workers(self.config(), h, w, workers)
    }

    /// [`Model::plan`] with the 3×3 convolutions run as `algo` says (forced direct or
    /// Winograd for tests and benchmarks; [`crate::ConvAlgo::Auto`] is what `plan` uses).
    pub fn plan_with(&self, h: usize, w: usize, algo: crate::ConvAlgo) -> Result<Plan, Error> {
        Plan::with_conv_algo(self.config(), h, w, algo)
    }

    /// Both choices of [`Plan::with_options`]: the 3×3 convolution algorithm and room for
    /// `workers` workers.
    pub fn plan_options(
        &self,
        h: usize,
        w: usize,
        algo: crate::ConvAlgo,
        workers: usize,
    ) -> Result<Plan, Error> {
        Plan::with_options(self.config(), h, w, algo, workers)
    }

    /// Runs the network on one tile.
    ///
    /// - `input`: `[in_channels, h, w]` f32 (already normalised), at least
    ///   [`Plan::input_len`] elements;
    /// - `scratch`: at least [`Plan::scratch_len`] elements, contents irrelevant;
    /// - `output`: see [`Output`]; at least [`Plan::output_len`] (logits, probabilities) or
    ///   [`Plan::label_len`] (labels) elements.
    ///
    /// Never allocates. Every check happens before anything is written: on error, `output` is
    /// untouched. NaN in the input propagates to logits and probabilities.
    pub fn forward(
        &self,
        plan: &Plan,
        input: &[f32],
        scratch: &mut [f32],
        output: Output<'_>,
    ) -> Result<(), Error> {
        self.forward_with(&Sequential, plan, input, scratch, output)
    }

    /// [`Model::forward`] on the workers of `exec`: every convolution is split between them
    /// (direct path: output pixels, [`crate::gemm::gemm_exec`]; Winograd: blocks of tiles or of
    /// channels, [`crate::winograd::conv3x3_winograd_exec`]; pooling and the 1×1 head stay on
    /// the calling thread). The result is bit-identical to [`Model::forward`]'s for any number of workers.
    ///
    /// `plan` must have room for the workers: `exec.workers() ≤` [`Plan::workers`] (make it
    /// with [`Model::plan_workers`]), otherwise [`Error::InvalidArgument`]. Never allocates
    /// (the executor may: `RayonExecutor` boxes its jobs); on error `output` is untouched.
    pub fn forward_with(
        &self,
        exec: &dyn Executor,
        plan: &Plan,
        input: &[f32],
        scratch: &mut [f32],
        output: Output<'_>,
    ) -> Result<(), Error> {
        let cfg = *self.config();
        let workers = exec.workers();
        if workers == 0 || workers > plan.workers() {
            return Err(Error::InvalidArgument {
                what: "executor has more workers than the plan has scratch for",
            });
        }
        if plan.config != cfg {
            return Err(Error::InvalidArgument {
                what: "plan was made for another architecture",
            });
        }
        let check = |buffer, needed: usize, got: usize| {
            if got < needed {
                Err(Error::BufferTooSmall {
                    buffer,
                    needed,
                    got,
                })
            } else {
                Ok(())
            }
        };
        check("input", plan.input_len(), input.len())?;
        check("scratch", plan.scratch_len(), scratch.len())?;
        let needed = match output {
            Output::Logits(_) | Output::Probabilities(_) => plan.output_len(),
            Output::Labels8(_) | Output::Labels16(_) => plan.label_len(),
        };
        check("output", needed, output.len())?;
        match output {
            Output::Labels8(_) if cfg.num_classes > 256 => {
                return Err(Error::InvalidArgument {
                    what: "u8 labels need num_classes <= 256",
                })
            }
            Output::Labels16(_) if cfg.num_classes > 65536 => {
                return Err(Error::InvalidArgument {
                    what: "u16 labels need num_classes <= 65536",
                })
            }
            _ => {}
        }

        // The plan's micro-kernel: the fastest this CPU runs (run-time detection with `std`)
        // unless the plan was made with another.
        let kernel = plan.kernel();
        let (sh, sw) = (plan.sh, plan.sw);
        let l = cfg.levels;
        let pad = cfg.padding;
        let ch = |i: usize| cfg.base_channels << i;
        let w = |p: ParamId| self.param(p).ok_or(Error::MissingTensor { param: p });
        // A layer's weight and bias (`p` names the weight).
        let pair = |p: ParamId| -> Result<_, Error> {
            let bias = match p {
                ParamId::Enc { level, conv, .. } => ParamId::Enc {
                    level,
                    conv,
                    bias: true,
                },
                ParamId::Dec { level, conv, .. } => ParamId::Dec {
                    level,
                    conv,
                    bias: true,
                },
                ParamId::Up { level, .. } => ParamId::Up { level, bias: true },
                ParamId::Head { .. } => ParamId::Head { bias: true },
            };
            Ok((w(p)?, w(bias)?))
        };

        // Encoder.
        for i in 0..l {
            let c = ch(i);
            let e1 = plan.slot(Kind::E1, i);
            let s = plan.slot(Kind::S, i);
            let (wt, bs) = pair(ParamId::Enc {
                level: i as u8,
                conv: 1,
                bias: false,
            })?;
            if plan.enc_bands[i].rows > 0 {
                let (wt2, bs2) = pair(ParamId::Enc {
                    level: i as u8,
                    conv: 2,
                    bias: false,
                })?;
                self.encoder_bands(exec, plan, i, input, scratch, [(&wt, &bs), (&wt2, &bs2)])?;
                continue;
            }
            // Level 0 reads the caller's input; deeper levels the pooled map in scratch.
            let (inp, out, pack) = if i == 0 {
                let [out, pack] = disjoint(scratch, [e1, plan.pack])?;
                (map(input, cfg.in_channels, sh.input, sw.input), out, pack)
            } else {
                let [inp, out, pack] =
                    disjoint(scratch, [plan.slot(Kind::P, i - 1), e1, plan.pack])?;
                (map(inp, ch(i - 1), sh.enc_in[i], sw.enc_in[i]), out, pack)
            };
            let out = MapMut {
                data: out,
                c,
                h: sh.enc_mid[i],
                w: sw.enc_mid[i],
            };
            winograd::conv3x3_by(
                plan.conv_algo,
                kernel,
                exec,
                &wt,
                &bs,
                &ConvInput::single(inp),
                pad,
                true,
                out,
                pack,
            )?;
            let (wt, bs) = pair(ParamId::Enc {
                level: i as u8,
                conv: 2,
                bias: false,
            })?;
            let [inp, out, pack] = disjoint(scratch, [e1, s, plan.pack])?;
            let inp = map(inp, c, sh.enc_mid[i], sw.enc_mid[i]);
            let out = MapMut {
                data: out,
                c,
                h: sh.enc_out[i],
                w: sw.enc_out[i],
            };
            winograd::conv3x3_by(
                plan.conv_algo,
                kernel,
                exec,
                &wt,
                &bs,
                &ConvInput::single(inp),
                pad,
                true,
                out,
                pack,
            )?;
            if i + 1 < l {
                let [inp, out] = disjoint(scratch, [s, plan.slot(Kind::P, i)])?;
                let inp = map(inp, c, sh.enc_out[i], sw.enc_out[i]);
                let out = MapMut {
                    data: out,
                    c,
                    h: sh.enc_out[i] / 2,
                    w: sw.enc_out[i] / 2,
                };
                conv::maxpool2x2_exec(exec, inp, out);
            }
        }

        // Decoder.
        for i in (0..l.saturating_sub(1)).rev() {
            let c = ch(i);
            let lv = i as u8;
            let (below, bh, bw) = if i + 2 < l {
                (
                    plan.slot(Kind::D2, i + 1),
                    sh.dec_out[i + 1],
                    sw.dec_out[i + 1],
                )
            } else {
                (
                    plan.slot(Kind::S, l - 1),
                    sh.enc_out[l - 1],
                    sw.enc_out[l - 1],
                )
            };
            if plan.dec_bands[i].rows > 0 {
                let up = ParamId::Up {
                    level: lv,
                    bias: false,
                };
                let weights = [
                    pair(up)?,
                    pair(ParamId::Dec {
                        level: lv,
                        conv: 1,
                        bias: false,
                    })?,
                    pair(ParamId::Dec {
                        level: lv,
                        conv: 2,
                        bias: false,
                    })?,
                ];
                let below_map = (below, ch(i + 1), bh, bw);
                if i > 0 {
                    self.decoder_bands(exec, plan, i, below_map, scratch, &weights, None)?;
                    continue;
                }
                // The top level hands its rows to the head, which writes the output.
                return self.decoder_bands(
                    exec,
                    plan,
                    i,
                    below_map,
                    scratch,
                    &weights,
                    Some(output),
                );
            }
            let u = plan.slot(Kind::U, i);
            let [inp, out, pack] = disjoint(scratch, [below, u, plan.pack])?;
            let inp = map(inp, ch(i + 1), bh, bw);
            let out = MapMut {
                data: out,
                c,
                h: sh.up[i],
                w: sw.up[i],
            };
            conv::up2x2_exec(
                kernel,
                exec,
                &w(ParamId::Up {
                    level: lv,
                    bias: false,
                })?,
                &w(ParamId::Up {
                    level: lv,
                    bias: true,
                })?,
                inp,
                out,
                pack,
            )?;

            let d1 = plan.slot(Kind::D1, i);
            let [skip, up, out, pack] =
                disjoint(scratch, [plan.slot(Kind::S, i), u, d1, plan.pack])?;
            let input = ConvInput {
                parts: [
                    Some(Part {
                        map: map(skip, c, sh.enc_out[i], sw.enc_out[i]),
                        off_y: sh.crop[i],
                        off_x: sw.crop[i],
                    }),
                    Some(Part {
                        map: map(up, c, sh.up[i], sw.up[i]),
                        off_y: 0,
                        off_x: 0,
                    }),
                ],
                h: sh.up[i],
                w: sw.up[i],
            };
            let out = MapMut {
                data: out,
                c,
                h: sh.dec_mid[i],
                w: sw.dec_mid[i],
            };
            let (wt, bs) = pair(ParamId::Dec {
                level: lv,
                conv: 1,
                bias: false,
            })?;
            winograd::conv3x3_by(
                plan.conv_algo,
                kernel,
                exec,
                &wt,
                &bs,
                &input,
                pad,
                true,
                out,
                pack,
            )?;

            let [inp, out, pack] = disjoint(scratch, [d1, plan.slot(Kind::D2, i), plan.pack])?;
            let inp = map(inp, c, sh.dec_mid[i], sw.dec_mid[i]);
            let out = MapMut {
                data: out,
                c,
                h: sh.dec_out[i],
                w: sw.dec_out[i],
            };
            let (wt, bs) = pair(ParamId::Dec {
                level: lv,
                conv: 2,
                bias: false,
            })?;
            winograd::conv3x3_by(
                plan.conv_algo,
                kernel,
                exec,
                &wt,
                &bs,
                &ConvInput::single(inp),
                pad,
                true,
                out,
                pack,
            )?;
        }

        // Head, row by row, the rows shared out between the workers (each its own row buffer).
        let last = if l == 1 {
            plan.slot(Kind::S, 0)
        } else {
            plan.slot(Kind::D2, 0)
        };
        let [feat, rows] = disjoint(scratch, [last, plan.head_row()])?;
        let feat: &[f32] = feat;
        let (hw, hb) = (
            w(ParamId::Head { bias: false })?,
            w(ParamId::Head { bias: true })?,
        );
        let head = HeadWriter::new(plan, exec, &hw, &hb, rows, output)?;
        let oh = sh.output;
        let per = oh.div_ceil(4 * exec.workers().max(1)).max(1);
        let failed = core::sync::atomic::AtomicBool::new(false);
        let job = |j: usize, wk: usize| {
            for y in j * per..((j + 1) * per).min(oh) {
                // SAFETY: worker `wk` alone uses row buffer `wk` (the `Executor` contract); job
                // `j` alone writes output rows `j·per ..` (jobs are distinct runs of rows).
                if unsafe { head.row(wk, feat, oh, y, y) }.is_err() {
                    failed.store(true, core::sync::atomic::Ordering::Relaxed);
                    return;
                }
            }
        };
        exec.run(oh.div_ceil(per), &job);
        if failed.load(core::sync::atomic::Ordering::Relaxed) {
            return Err(HeadWriter::short());
        }
        Ok(())
    }

    /// Encoder level `i` in bands of rows ([`crate::fuse`]): `S_i` and `P_i` from the caller's
    /// input (level 0) or `P_{i−1}`, with the level's two convolutions `wb`.
    fn encoder_bands(
        &self,
        exec: &dyn Executor,
        plan: &Plan,
        i: usize,
        input: &[f32],
        scratch: &mut [f32],
        wb: [(&TensorView<'_>, &TensorView<'_>); 2],
    ) -> Result<(), Error> {
        let cfg = plan.config;
        let (sh, sw) = (&plan.sh, &plan.sw);
        let dims = EncDims::of(&cfg, sh, sw, i)?;
        let prev = if i == 0 {
            Region::default()
        } else {
            plan.slot(Kind::P, i - 1)
        };
        let pooled = if dims.pool {
            plan.slot(Kind::P, i)
        } else {
            Region::default()
        };
        let [prev, s, p, area] =
            disjoint(scratch, [prev, plan.slot(Kind::S, i), pooled, plan.pack])?;
        let (data, h, w) = if i == 0 {
            (input, sh.input, sw.input)
        } else {
            (&*prev, sh.enc_in[i], sw.enc_in[i])
        };
        let level = Encoder {
            kernel: plan.kernel(),
            algo: plan.conv_algo,
            bands: plan.enc_bands[i],
            dims,
            conv1: Weights {
                w: wb[0].0,
                b: wb[0].1,
            },
            conv2: Weights {
                w: wb[1].0,
                b: wb[1].1,
            },
            input: map(data, dims.conv1.c_in, h, w),
        };
        level.run(exec, s, dims.pool.then_some(p), area)
    }

    /// Decoder level `i` in bands of rows ([`crate::fuse`]) from the map below (`(region,
    /// channels, h, w)`) and the skip `S_i`, with the up-convolution's and the two
    /// convolutions' weights `wb`: into `D2_i`, or, at the top (`output` given), through the
    /// head into the caller's output.
    #[allow(clippy::too_many_arguments)]
    fn decoder_bands(
        &self,
        exec: &dyn Executor,
        plan: &Plan,
        i: usize,
        (below, cb, bh, bw): (Region, usize, usize, usize),
        scratch: &mut [f32],
        wb: &[(TensorView<'_>, TensorView<'_>); 3],
        output: Option<Output<'_>>,
    ) -> Result<(), Error> {
        let cfg = plan.config;
        let (sh, sw) = (&plan.sh, &plan.sw);
        let dims = DecDims::of(&cfg, sh, sw, i)?;
        let c = dims.conv2.c_out;
        let (d2, rows) = if output.is_some() {
            (Region::default(), plan.head_row())
        } else {
            (plan.slot(Kind::D2, i), Region::default())
        };
        let [below, skip, d2, rows, area] =
            disjoint(scratch, [below, plan.slot(Kind::S, i), d2, rows, plan.pack])?;
        let weights = |j: usize| Weights {
            w: &wb[j].0,
            b: &wb[j].1,
        };
        let level = Decoder {
            kernel: plan.kernel(),
            algo: plan.conv_algo,
            bands: plan.dec_bands[i],
            dims,
            up: weights(0),
            conv1: weights(1),
            conv2: weights(2),
            below: map(below, cb, bh, bw),
            skip: Part {
                map: map(skip, c, sh.enc_out[i], sw.enc_out[i]),
                off_y: sh.crop[i],
                off_x: sw.crop[i],
            },
        };
        let Some(output) = output else {
            return level.run(exec, DecOut::Map(d2), area);
        };
        let w = |p: ParamId| self.param(p).ok_or(Error::MissingTensor { param: p });
        let (hw, hb) = (
            w(ParamId::Head { bias: false })?,
            w(ParamId::Head { bias: true })?,
        );
        let head = HeadWriter::new(plan, exec, &hw, &hb, rows, output)?;
        let emit = |wk: usize, ring: Map<'_>, yr: usize, y: usize| {
            // SAFETY: worker `wk` alone uses row buffer `wk`; the band runs are disjoint, so
            // only this call writes output row `y`.
            unsafe { head.row(wk, ring.data, ring.h, yr, y) }
        };
        level.run(exec, DecOut::Head(&emit), area)
    }
}

/// The head's side of the output: a row buffer per worker, the caller's output, the head's
/// weights.
struct HeadWriter<'o, 'v, 's> {
    rows: Shared<'o, f32>,
    row_len: usize,
    out: OutRows<'o>,
    w: &'v TensorView<'s>,
    b: &'v TensorView<'s>,
    kernel: Kernel,
    k: usize,
    c0: usize,
    oh: usize,
    ow: usize,
}

impl<'o, 'v, 's> HeadWriter<'o, 'v, 's> {
    /// The writer for `plan`'s output on `exec`'s workers, with the row buffers in `rows`.
    fn new(
        plan: &Plan,
        exec: &dyn Executor,
        w: &'v TensorView<'s>,
        b: &'v TensorView<'s>,
        rows: &'o mut [f32],
        output: Output<'o>,
    ) -> Result<Self, Error> {
        let (k, ow) = (plan.config.num_classes, plan.sw.output);
        let row_len = k * ow;
        // The plan has a row buffer per worker it was made for, and the executor was checked
        // against that count; checked again here, before anything is written.
        let Some(rows) = row_len
            .checked_mul(exec.workers().max(1))
            .and_then(|n| rows.get_mut(..n))
        else {
            return Err(HeadWriter::short());
        };
        Ok(HeadWriter {
            rows: Shared::new(rows),
            row_len,
            out: OutRows::new(output),
            w,
            b,
            kernel: plan.kernel(),
            k,
            c0: plan.config.base_channels,
            oh: plan.sh.output,
            ow,
        })
    }

    fn short() -> Error {
        Error::InvalidArgument {
            what: "internal: executor has more workers than the head's row buffers",
        }
    }

    /// Output row `y` from row `yf` of `feat` (`[c0, fh, ow]`), through worker `wk`'s row
    /// buffer.
    ///
    /// # Safety
    /// No other thread may use worker `wk`'s row buffer or write output row `y` meanwhile.
    unsafe fn row(
        &self,
        wk: usize,
        feat: &[f32],
        fh: usize,
        yf: usize,
        y: usize,
    ) -> Result<(), Error> {
        // SAFETY: the buffer is this call's alone (the caller's contract).
        let Some(row) = (unsafe { self.rows.range(wk * self.row_len, self.row_len) }) else {
            return Err(HeadWriter::short());
        };
        let head = Head {
            feat,
            w: self.w,
            b: self.b,
            k: self.k,
            c0: self.c0,
            oh: fh,
            ow: self.ow,
        };
        head.logits(self.kernel, row, yf);
        // SAFETY: only this call writes row `y` (the caller's contract).
        unsafe {
            self.out
                .write_row(self.kernel, row, self.k, self.oh, self.ow, y)
        };
        Ok(())
    }
}

/// The head's 1×1 convolution: `k` classes from the `c0` channels of the last feature map
/// (`[c0, oh, ow]`), weights `[k, c0]` (any layout of that many values), bias `[k]`.
struct Head<'a, 's> {
    feat: &'a [f32],
    w: &'a TensorView<'s>,
    b: &'a TensorView<'s>,
    k: usize,
    c0: usize,
    oh: usize,
    ow: usize,
}

impl Head<'_, '_> {
    /// The logits of output row `y` into `row` (`[k, ow]`, class-major): `b[cls] + Σ_c
    /// w[cls, c] · feat[c, y, x]`, the channels added in order (the same bits whatever the
    /// instruction set), each feature row read once for all classes. Compiled with the
    /// kernel's vector instructions on x86-64.
    fn logits(&self, kernel: Kernel, row: &mut [f32], y: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            if Kernel::avx512() == Some(kernel) {
                // SAFETY: that kernel exists only on a CPU with AVX-512F.
                return unsafe { head_x86::logits_avx512(self, row, y) };
            }
            if Kernel::avx2_fma() == Some(kernel) {
                // SAFETY: that kernel exists only on a CPU with AVX2 and FMA.
                return unsafe { head_x86::logits_avx2(self, row, y) };
            }
        }
        let _ = kernel;
        self.logits_portable(row, y)
    }

    #[inline(always)]
    fn logits_portable(&self, row: &mut [f32], y: usize) {
        let (k, c0, oh, ow) = (self.k, self.c0, self.oh, self.ow);
        for (cls, acc) in row.chunks_exact_mut(ow).take(k).enumerate() {
            acc.fill(self.b.get(cls));
        }
        for c in 0..c0 {
            let src = &self.feat[(c * oh + y) * ow..(c * oh + y + 1) * ow];
            for (cls, acc) in row.chunks_exact_mut(ow).take(k).enumerate() {
                let wv = self.w.get(cls * c0 + c);
                for (a, &f) in acc.iter_mut().zip(src) {
                    *a += wv * f;
                }
            }
        }
    }
}

/// [`Head::logits`] compiled with x86-64 target features (the same code, wider vectors).
#[cfg(target_arch = "x86_64")]
mod head_x86 {
    use super::Head;

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn logits_avx2(head: &Head<'_, '_>, row: &mut [f32], y: usize) {
        head.logits_portable(row, y)
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn logits_avx512(head: &Head<'_, '_>, row: &mut [f32], y: usize) {
        head.logits_portable(row, y)
    }
}

/// The caller's output, shared by the workers of the head, each writing whole output rows.
enum OutRows<'o> {
    Logits(Shared<'o, f32>),
    Probabilities(Shared<'o, f32>),
    Labels8(Shared<'o, u8>),
    Labels16(Shared<'o, u16>),
}

impl<'o> OutRows<'o> {
    fn new(output: Output<'o>) -> Self {
        match output {
            Output::Logits(o) => OutRows::Logits(Shared::new(o)),
            Output::Probabilities(o) => OutRows::Probabilities(Shared::new(o)),
            Output::Labels8(o) => OutRows::Labels8(Shared::new(o)),
            Output::Labels16(o) => OutRows::Labels16(Shared::new(o)),
        }
    }

    /// Writes output row `y` from the class-major row buffer `row` (`[k, ow]` logits; turned
    /// into probabilities in place for [`Output::Probabilities`], by [`crate::softmax`] with
    /// `kernel`'s vector instructions). Rows outside the output
    /// (checked by the caller's sizes) are skipped.
    ///
    /// # Safety
    /// No other thread may write row `y` meanwhile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn write_row(
        &self,
        kernel: Kernel,
        row: &mut [f32],
        k: usize,
        oh: usize,
        ow: usize,
        y: usize,
    ) {
        match self {
            OutRows::Logits(o) | OutRows::Probabilities(o) => {
                if let OutRows::Probabilities(_) = self {
                    crate::softmax::columns(kernel, row, k, ow);
                }
                for cls in 0..k {
                    // SAFETY: row `y` of class `cls`, this call's alone (the caller's contract).
                    if let Some(d) = unsafe { o.range((cls * oh + y) * ow, ow) } {
                        d.copy_from_slice(&row[cls * ow..(cls + 1) * ow]);
                    }
                }
            }
            OutRows::Labels8(o) => {
                // SAFETY: as above.
                if let Some(d) = unsafe { o.range(y * ow, ow) } {
                    for (x, d) in d.iter_mut().enumerate() {
                        *d = argmax(row, k, ow, x) as u8;
                    }
                }
            }
            OutRows::Labels16(o) => {
                // SAFETY: as above.
                if let Some(d) = unsafe { o.range(y * ow, ow) } {
                    for (x, d) in d.iter_mut().enumerate() {
                        *d = argmax(row, k, ow, x) as u16;
                    }
                }
            }
        }
    }
}

/// Index of the largest of `row[cls·ow + x]` over classes; ties → lowest index; NaN wins.
fn argmax(row: &[f32], k: usize, ow: usize, x: usize) -> usize {
    let mut best = 0;
    let mut bv = row[x];
    if bv.is_nan() {
        return 0;
    }
    for cls in 1..k {
        let v = row[cls * ow + x];
        if v.is_nan() {
            return cls;
        }
        if v > bv {
            best = cls;
            bv = v;
        }
    }
    best
}
