//! Running one Winograd convolution on an executor's workers, as a [`Spread`] says: the work
//! area is cut into a shared part and one part per worker ([`Layout`]); the jobs are blocks of
//! output tiles ([`SplitBy::Tiles`]) or, per block of tiles, blocks of output channels
//! ([`SplitBy::Channels`]). Every output element is computed by the same arithmetic whatever
//! the split (the transforms are per tile and channel, and the GEMM's depth blocking depends
//! only on `C_in`), so the result is bit-identical for any number of workers.

use core::sync::atomic::{AtomicBool, Ordering};

use super::transforms::{Fast, UPack, VOut, VPack};
use super::{Layout, SplitBy, Spread, LANES, POS, SKEW};
use crate::conv::{Band, ConvInput};
use crate::error::Error;
use crate::exec::{Executor, Shared};
use crate::gemm::{self, Epilogue, Kernel, MatMut};
use crate::tensor::TensorView;

/// The arguments of one convolution, checked by the caller ([`super::check`]).
pub(super) struct Conv<'c, 's> {
    pub kernel: Kernel,
    pub w: &'c TensorView<'s>,
    pub b: &'c TensorView<'s>,
    pub input: &'c ConvInput<'s>,
    /// 0 (valid) or 1 (same).
    pub pad: usize,
    pub relu: bool,
}

/// The output as the transforms see it (a [`Band`]: whole map or a run of its rows).
pub(super) type OutPtr<'a> = Band<'a>;

/// The left operand `U_ξ` stored already packed for the kernel ([`UPack`]): rows
/// `row0..row0 + rows` of the stored matrix. When `row0` is a multiple of the kernel's `mr`
/// and the GEMM asks for the stored K blocks, it reads the panels in place.
struct Panels<'a> {
    data: &'a [f32],
    row0: usize,
    rows: usize,
    up: UPack,
}

impl gemm::PackA for Panels<'_> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.up.depth)
    }

    fn pack_a(&self, m0: usize, mc: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        let panels = dst.chunks_exact_mut(kc * mr).take(mc.div_ceil(mr));
        let up = &self.up;
        // Whole stored panels (rows past the operand's last one in the last panel are either
        // the stored zeros or the next rows of `U`: the kernel computes them, the store drops
        // them).
        let first = self.row0 + m0;
        if mr == up.panel && first.is_multiple_of(mr) && up.block(k0) == (k0, kc) {
            for (s, panel) in panels.enumerate() {
                let at = up.at(k0, first + s * mr);
                panel.copy_from_slice(&self.data[at..at + kc * mr]);
            }
            return;
        }
        // Unaligned rows, another panel height or another blocking: element by element.
        for (s, panel) in panels.enumerate() {
            for (p, d) in panel.chunks_exact_mut(mr).enumerate() {
                for (r, x) in d.iter_mut().enumerate() {
                    let i = m0 + s * mr + r;
                    *x = if i < (m0 + mc).min(self.rows) {
                        self.data[up.at(k0 + p, self.row0 + i)]
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    fn packed(&self, m0: usize, mc: usize, k0: usize, kc: usize, mr: usize) -> Option<&[f32]> {
        let up = &self.up;
        let first = self.row0 + m0;
        if mr != up.panel || !first.is_multiple_of(mr) || up.block(k0) != (k0, kc) {
            return None;
        }
        let at = up.at(k0, first);
        self.data.get(at..at + mc.div_ceil(mr) * mr * kc)
    }
}

/// `V_ξ` as the GEMM's right operand, stored packed ([`VPack`]).
struct PackedV<'a> {
    data: &'a [f32],
    vp: VPack,
}

impl gemm::PackB for PackedV<'_> {
    fn dims(&self) -> (usize, usize) {
        (self.vp.cin, self.vp.tb)
    }

    fn pack_b(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        // Another blocking than the stored one (not used by `products`): element by element.
        for (s, panel) in dst
            .chunks_exact_mut(kc * nr)
            .take(nc.div_ceil(nr))
            .enumerate()
        {
            for (p, d) in panel.chunks_exact_mut(nr).enumerate() {
                for (c, x) in d.iter_mut().enumerate() {
                    let j = n0 + s * nr + c;
                    *x = if j < n0 + nc {
                        self.data[self.vp.at(k0 + p, j)]
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    fn packed(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize) -> Option<&[f32]> {
        let vp = &self.vp;
        if nr != vp.nr || !n0.is_multiple_of(nr) || vp.block(k0) != (k0, kc) {
            return None;
        }
        let at = k0 * vp.tbp + n0 / nr * kc * nr;
        self.data.get(at..at + nc.div_ceil(nr) * nr * kc)
    }
}

/// `f32` elements between the starts of two `U_ξ` holding `rows` rows packed for `mr`.
fn u_stride(rows: usize, mr: usize, cin: usize) -> usize {
    rows.div_ceil(mr) * mr * cin + SKEW
}

/// One worker's buffers.
struct Own<'w> {
    u: &'w mut [f32],
    v: &'w mut [f32],
    m: &'w mut [f32],
    strip: &'w mut [f32],
    pack: &'w mut [f32],
}

/// Cuts one worker's part (`lay.each()` elements) into its buffers.
fn own<'w>(lay: &Layout, part: &'w mut [f32]) -> Own<'w> {
    let (u, rest) = part.split_at_mut(lay.u_each);
    let (v, rest) = rest.split_at_mut(lay.v_each);
    let (m, rest) = rest.split_at_mut(lay.m_each);
    let (strip, pack) = rest.split_at_mut(lay.strip_each);
    Own {
        u,
        v,
        m,
        strip,
        pack,
    }
}

/// The 36 products of one block, `M_ξ = U_ξ · V_ξ` for output channels `co0..co0 + rows`
/// (rows `row0..` of `u`, whose `U_ξ` are `su` apart, packed as `up` says) and `vp.tb` tiles (`V_ξ` `sv` apart,
/// packed as `vp` says), into `m` (`M_ξ` `rows·tb + SKEW` apart).
#[allow(clippy::too_many_arguments)]
fn products(
    kernel: Kernel,
    u: &[f32],
    su: usize,
    up: &UPack,
    row0: usize,
    rows: usize,
    v: &[f32],
    sv: usize,
    vp: &VPack,
    m: &mut [f32],
    pack: &mut [f32],
) -> Result<(), Error> {
    let tb = vp.tb;
    let sm = rows * tb + SKEW;
    let internal = Error::InvalidArgument {
        what: "internal: winograd operand sizes",
    };
    for xi in 0..POS {
        let a = Panels {
            data: u.get(xi * su..xi * su + up.len()).ok_or(internal)?,
            row0,
            rows,
            up: *up,
        };
        let bm = PackedV {
            data: v.get(xi * sv..xi * sv + vp.len()).ok_or(internal)?,
            vp: *vp,
        };
        let dst = m.get_mut(xi * sm..xi * sm + rows * tb).ok_or(internal)?;
        let Some(mut d) = MatMut::new(dst, rows, tb, tb, Epilogue::NONE) else {
            return Err(internal);
        };
        gemm::gemm(kernel, &a, &bm, &mut d, 0..tb, pack)?;
    }
    Ok(())
}

/// Most micro-panels of output channels [`fused`] multiplies by one panel of `V_ξ` before
/// moving to the next position (so that the panel is read from L1 by all of them); bounds the
/// buffer of products to `36 · GROUP` micro-tiles (288 KiB with 8×32 tiles).
const GROUP: usize = 8;

/// Layout of [`fused`]'s buffer for `g` micro-panels of a kernel with `mr × nr` tiles: the
/// elements between the 36 positions (`g` tiles of `mr·nr` one after the other, so that row `r`
/// of the group is at `r·nr`, plus room for the last tile's full [`gemm::MAX_TILE`] window and
/// the output transform's reads past the last row, in whole cache lines).
fn group_stride(g: usize, mr: usize, nr: usize) -> usize {
    let tiles = g.saturating_sub(1) * mr * nr + gemm::MAX_TILE.max(mr * nr);
    (tiles + LANES).div_ceil(gemm::ALIGN) * gemm::ALIGN
}

/// Whether [`fused`] can run a block of `cin` input channels whose `U` rows start at `row0`
/// (`mr`-row panels) with `m_len` elements of `M`: `U` and `V` are one K block each (`C_in` at
/// most the GEMM's block depth), `row0` starts a panel and the products of one micro-panel
/// fit `M`.
fn fuses(cin: usize, row0: usize, (mr, nr): (usize, usize), m_len: usize) -> bool {
    gemm::k_step(cin) >= cin && row0.is_multiple_of(mr) && m_len >= POS * group_stride(1, mr, nr)
}

/// [`products`] and the output transform of one block, a micro-panel of tiles at a time: for
/// each micro-panel of `nr` tiles and each group of up to [`GROUP`] micro-panels of `mr` output
/// channels, the 36 positions' products (one kernel call per channel panel over the whole
/// depth, all of a position's calls on the same `V_ξ` panel, into `buf`), then their output
/// transform. `M` stays in L1/L2 instead of streaming through L2/L3, and the GEMM's copy of
/// every tile into `M` is gone. The kernel runs over the same panels as in [`products`] (K is
/// one block, see [`fuses`]): the same bits. Writes channels `co0..co0 + rows` of tiles
/// `t0..t0 + vp.tb`.
///
/// # Safety
/// As the output transform: no other thread may access those pixels during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn fused(
    cv: &Conv<'_, '_>,
    fast: Fast,
    (u, su, up, row0): (&[f32], usize, &UPack, usize),
    rows: usize,
    (v, sv, vp): (&[f32], usize, &VPack),
    buf: &mut [f32],
    (co0, t0, tw): (usize, usize, usize),
    out: &OutPtr<'_>,
) -> Result<(), Error> {
    let internal = Error::InvalidArgument {
        what: "internal: winograd operand sizes",
    };
    let (mr, nr) = cv.kernel.tile();
    let cin = vp.cin;
    // As many channel panels per group as the buffer holds, at most `GROUP`.
    let panels = rows.div_ceil(mr);
    let mut group = GROUP.min(panels).max(1);
    while group > 1 && POS * group_stride(group, mr, nr) > buf.len() {
        group -= 1;
    }
    let sm = group_stride(group, mr, nr);
    let buf = buf.get_mut(..POS * sm).ok_or(internal)?;
    let mut j0 = 0;
    while j0 < vp.tb {
        let tn = nr.min(vp.tb - j0);
        // Start of the `V` micro-panel of tiles `j0..j0 + nr` (all `C_in` channels follow).
        let v_at = vp.at(0, j0);
        let mut p0 = 0;
        while p0 < panels {
            let here = group.min(panels - p0);
            for (xi, plane) in buf.chunks_exact_mut(sm).enumerate() {
                let b = v.get(xi * sv + v_at..).ok_or(internal)?;
                for g in 0..here {
                    let u_at = up.at(0, row0 + (p0 + g) * mr);
                    let a = u.get(xi * su + u_at..).ok_or(internal)?;
                    let at = g * mr * nr;
                    let tile: &mut [f32; gemm::MAX_TILE] = plane
                        .get_mut(at..at + gemm::MAX_TILE)
                        .and_then(|t| t.try_into().ok())
                        .ok_or(internal)?;
                    cv.kernel.tile_product(cin, a, b, tile);
                }
            }
            let r0 = p0 * mr;
            let rn = (here * mr).min(rows - r0);
            // SAFETY: the caller reserves these tiles and channels for this call.
            unsafe {
                fast.output_transform(
                    buf,
                    sm,
                    nr,
                    rn,
                    tn,
                    co0 + r0,
                    t0 + j0,
                    tw,
                    cv.b,
                    cv.relu,
                    out,
                )
            };
            p0 += here;
        }
        j0 += nr;
    }
    Ok(())
}

/// `U` of all `c_out` output channels (`dims = (c_out, c_in)`) into `u` (at least
/// `Layout::u_shared` elements of a `u_once` split), shared by the workers of `exec`: a run of
/// whole micro-panels each.
fn transform_u(
    fast: Fast,
    exec: &dyn Executor,
    w: &TensorView<'_>,
    (cout, cin): (usize, usize),
    mr: usize,
    u: &mut [f32],
) {
    let su = u_stride(cout, mr, cin);
    let panels = cout.div_ceil(mr);
    let jobs = exec.workers().max(1) * crate::exec::JOBS_PER_WORKER;
    let per = panels.div_ceil(jobs).max(1);
    let u_out = Shared::new(u);
    let job = |j: usize, _wk: usize| {
        let p0 = j * per;
        // SAFETY: jobs write distinct panels of `U`.
        unsafe { fast.filter_transform(w, (0, cout), p0..p0 + per, cin, mr, su, &u_out) };
    };
    exec.run(panels.div_ceil(per), &job);
}

/// [`transform_u`] for a caller that runs several convolutions with the same weights
/// ([`run`] with `u_ready`): `u` needs [`super::u_len`]`(c_out, c_in)` elements (checked).
pub(super) fn prepare_u(
    kernel: Kernel,
    exec: &dyn Executor,
    w: &TensorView<'_>,
    (cout, cin): (usize, usize),
    u: &mut [f32],
) -> Result<(), Error> {
    let need = super::u_len(cout, cin);
    let Some(u) = u.get_mut(..need) else {
        return Err(Error::BufferTooSmall {
            buffer: "winograd U",
            needed: need,
            got: u.len(),
        });
    };
    if cout.checked_mul(cin).and_then(|v| v.checked_mul(9)) != Some(w.len()) {
        return Err(Error::InvalidArgument {
            what: "winograd conv3x3: weights are not [c_out, c_in, 3, 3]",
        });
    }
    transform_u(Fast::new(kernel), exec, w, (cout, cin), kernel.tile().0, u);
    Ok(())
}

/// Runs the convolution `cv` into `out` on `exec` as `sp` says, with `work` of at least
/// `Layout::new(sp, out.c, cin).total()` elements (checked by the caller, as are `sp`'s fields
/// being at least 1 and `exec.workers() ≤ sp.workers`).
pub(super) fn run(
    cv: &Conv<'_, '_>,
    exec: &dyn Executor,
    sp: &Spread,
    out: Band<'_>,
    u_ready: Option<&[f32]>,
    work: &mut [f32],
) -> Result<(), Error> {
    let (tw, total) = (out.w.div_ceil(super::TILE), super::tile_count(out.h, out.w));
    let cin = cv.input.channels();
    let cout = out.c;
    let lay = Layout::new(sp, cout, cin);
    // Every part starts on a cache line (`Layout` sizes are whole lines).
    let skip = gemm::align_skip(work.as_ptr()).min(work.len());
    let work = &mut work[skip..];
    // A `U` transformed beforehand takes no room here.
    let u_len = if u_ready.is_some() { 0 } else { lay.u_shared };
    let (shared, parts) = work.split_at_mut(u_len + lay.v_shared);
    let (u_own, v_all) = shared.split_at_mut(u_len);
    let parts = Shared::new(&mut parts[..lay.each().saturating_mul(exec.workers())]);
    let fast = Fast::new(cv.kernel);
    let (mr, nr) = cv.kernel.tile();
    let su_all = u_stride(cout, mr, cin);
    if u_ready.is_some_and(|u| !sp.u_once || u.len() < lay.u_shared) {
        return Err(Error::InvalidArgument {
            what: "internal: winograd U given for a split that transforms its own",
        });
    }
    if sp.u_once && u_ready.is_none() {
        transform_u(fast, exec, cv.w, (cout, cin), mr, u_own);
    }
    let u_all: &[f32] = match u_ready {
        Some(u) => u,
        None => u_own,
    };
    let failed = AtomicBool::new(false);
    // Worker `wk`'s buffers.
    let part = |wk: usize| {
        // SAFETY: worker `wk` owns elements `wk·each .. (wk+1)·each` of `parts`, and the
        // `Executor` contract says no two concurrent jobs share `wk`.
        unsafe { parts.range(wk.saturating_mul(lay.each()), lay.each()) }.map(|p| own(&lay, p))
    };
    let rows_step = sp.bl.rows.min(cout);
    // One block of work: output channels `co0..co0 + rows` of the tiles `t0..t0 + vp.tb`, from
    // `v` (`V_ξ` `sv` apart), with a worker's own `U` rows (unless `U` is shared), `M` and
    // packing. Every job below calls it for tiles or channels no other job touches.
    let block = |u_own: &mut [f32],
                 m: &mut [f32],
                 pack: &mut [f32],
                 v: &[f32],
                 sv: usize,
                 vp: &VPack,
                 t0: usize,
                 co0: usize,
                 rows: usize| {
        let (u, su, up, row0): (&[f32], usize, UPack, usize) = if sp.u_once {
            (u_all, su_all, UPack::new(cout, cin, mr), co0)
        } else {
            let su = u_stride(rows, mr, cin);
            let panels = 0..rows.div_ceil(mr);
            // SAFETY: the worker's own `U`, on this thread only.
            unsafe {
                fast.filter_transform(
                    cv.w,
                    (co0, rows),
                    panels,
                    cin,
                    mr,
                    su,
                    &Shared::new(&mut *u_own),
                )
            };
            (u_own, su, UPack::new(rows, cin, mr), 0)
        };
        if fuses(cin, row0, (mr, nr), m.len()) {
            // SAFETY: as for the output transform below.
            let done = unsafe {
                fused(
                    cv,
                    fast,
                    (u, su, &up, row0),
                    rows,
                    (v, sv, vp),
                    m,
                    (co0, t0, tw),
                    &out,
                )
            };
            if done.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            return;
        }
        if products(cv.kernel, u, su, &up, row0, rows, v, sv, vp, m, pack).is_err() {
            failed.store(true, Ordering::Relaxed);
            return;
        }
        // SAFETY: the jobs below hand each call distinct tiles (blocks of tiles) or distinct
        // channels (blocks of channels), so no other thread touches these pixels meanwhile.
        unsafe {
            fast.output_transform(
                m,
                rows * vp.tb + SKEW,
                vp.tb,
                rows,
                vp.tb,
                co0,
                t0,
                tw,
                cv.b,
                cv.relu,
                &out,
            )
        };
    };
    match sp.by {
        SplitBy::Tiles => {
            let tiles = sp.bl.tiles.min(total);
            let job = |j: usize, wk: usize| {
                let Some(o) = part(wk) else {
                    failed.store(true, Ordering::Relaxed);
                    return;
                };
                let t0 = j * tiles;
                let vp = VPack::new(cin, tiles.min(total - t0), nr);
                let sv = vp.len() + SKEW;
                // SAFETY: the worker's own `V`, on this thread only.
                unsafe {
                    fast.input_transform(
                        cv.input,
                        cv.pad,
                        tw,
                        t0,
                        (0, vp.tb),
                        &vp,
                        sv,
                        &VOut::new(o.v),
                        o.strip,
                    )
                };
                let mut co0 = 0;
                while co0 < cout {
                    let rows = rows_step.min(cout - co0);
                    block(o.u, o.m, o.pack, o.v, sv, &vp, t0, co0, rows);
                    co0 += rows;
                }
            };
            exec.run(total.div_ceil(tiles), &job);
        }
        SplitBy::Channels => {
            // Equal blocks of channels, a multiple of the panel height where they fit, as
            // many as a multiple of the workers (not more: every job streams all of `V`;
            // 8 jobs instead of 4 made 256 → 128 at 54² 1.4× slower on 2 workers).
            let workers = exec.workers().max(1);
            let jobs = cout.div_ceil(rows_step).div_ceil(workers) * workers;
            let chunk = cout.div_ceil(jobs).div_ceil(mr) * mr;
            let chunk = chunk.min(rows_step);
            let mut t0 = 0;
            while t0 < total {
                let vp = VPack::new(cin, sp.bl.tiles.min(total - t0), nr);
                let sv = vp.len() + SKEW;
                // The shared `V`, its tiles split between the workers in whole panels.
                let piece = vp
                    .tb
                    .div_ceil(workers * crate::exec::JOBS_PER_WORKER)
                    .div_ceil(nr)
                    .max(1)
                    * nr;
                {
                    let vout = VOut::new(&mut v_all[..]);
                    let transform = |j: usize, wk: usize| {
                        let Some(o) = part(wk) else {
                            failed.store(true, Ordering::Relaxed);
                            return;
                        };
                        let s0 = j * piece;
                        let sub = (s0, (s0 + piece).min(vp.tb));
                        // SAFETY: jobs own distinct runs of whole panels of tiles (`piece` is a
                        // multiple of `nr`; the last one also the padding tiles).
                        unsafe {
                            fast.input_transform(
                                cv.input, cv.pad, tw, t0, sub, &vp, sv, &vout, o.strip,
                            )
                        };
                    };
                    exec.run(vp.tb.div_ceil(piece), &transform);
                }
                let v_all: &[f32] = v_all;
                let job = |j: usize, wk: usize| {
                    let Some(o) = part(wk) else {
                        failed.store(true, Ordering::Relaxed);
                        return;
                    };
                    let co0 = j * chunk;
                    block(
                        o.u,
                        o.m,
                        o.pack,
                        v_all,
                        sv,
                        &vp,
                        t0,
                        co0,
                        chunk.min(cout - co0),
                    );
                };
                exec.run(cout.div_ceil(chunk), &job);
                t0 += vp.tb;
            }
        }
    }
    if failed.load(Ordering::Relaxed) {
        return Err(Error::InvalidArgument {
            what: "internal: winograd work area or executor out of contract",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::{PackA, PackB};

    /// What `PackB::pack_b` must produce, straight from its definition.
    fn want_b(
        f: impl Fn(usize, usize) -> f32,
        k0: usize,
        kc: usize,
        n: usize,
        nr: usize,
    ) -> Vec<f32> {
        let mut out = vec![0.0; n.div_ceil(nr) * nr * kc];
        for s in 0..n.div_ceil(nr) {
            for p in 0..kc {
                for c in 0..nr {
                    let j = s * nr + c;
                    if j < n {
                        out[(s * kc + p) * nr + c] = f(k0 + p, j);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn packed_v_in_place_equals_its_packing_and_the_definition() {
        // Two K blocks (300 = 2 × 150) and a last panel with padding (45 = 2·16 + 13).
        let (cin, tb, nr) = (300, 45, 16);
        let vp = VPack::new(cin, tb, nr);
        assert_eq!(vp.tbp, 48);
        let f = |ci: usize, t: usize| (ci * 1000 + t) as f32;
        let mut data = vec![f32::NAN; vp.len()];
        for ci in 0..cin {
            for t in 0..vp.tbp {
                data[vp.at(ci, t)] = if t < tb { f(ci, t) } else { 0.0 };
            }
        }
        let v = PackedV { data: &data, vp };
        let step = gemm::k_step(cin);
        let mut k0 = 0;
        while k0 < cin {
            let kc = step.min(cin - k0);
            let want = want_b(f, k0, kc, tb, nr);
            let mut packed = vec![f32::NAN; want.len()];
            v.pack_b(k0, kc, 0, tb, nr, &mut packed);
            assert_eq!(packed, want, "pack_b, block at {k0}");
            let inplace = v.packed(k0, kc, 0, tb, nr).expect("stored blocking");
            assert_eq!(&inplace[..want.len()], &want[..], "packed, block at {k0}");
            k0 += kc;
        }
        // Another panel width or blocking: no in-place slice.
        assert!(v.packed(0, step, 0, tb, 8).is_none());
        assert!(v.packed(1, step - 1, 0, tb, nr).is_none());
    }

    #[test]
    fn panels_in_place_equal_their_packing_and_the_definition() {
        // One K block (depth 7) and two (depth 300 = 2 × 150).
        for depth in [7usize, 300] {
            panels_case(depth);
        }
    }

    fn panels_case(depth: usize) {
        let (rows_all, mr): (usize, usize) = (20, 8);
        let up = UPack::new(rows_all, depth, mr);
        let f = |i: usize, p: usize| (i * 1000 + p + 1) as f32;
        let mut data = vec![0.0f32; up.len()];
        for i in 0..rows_all {
            for p in 0..depth {
                data[up.at(p, i)] = f(i, p);
            }
        }
        let step = gemm::k_step(depth);
        for (row0, rows) in [(0, 20), (8, 12), (8, 5), (3, 9)] {
            let a = Panels {
                data: &data,
                row0,
                rows,
                up,
            };
            for (m0, mc) in [
                (0, rows),
                (0, rows.min(8)),
                (rows.min(8), rows - rows.min(8)),
            ] {
                if mc == 0 {
                    continue;
                }
                // The stored K blocks, and one that is not (in place never, packed still exact).
                let mut blocks = std::vec::Vec::new();
                let mut k0 = 0;
                while k0 < depth {
                    blocks.push((k0, step.min(depth - k0), true));
                    k0 += step;
                }
                blocks.push((1, depth - 1, false));
                for (k0, kc, stored) in blocks {
                    let len = mc.div_ceil(mr) * mr * kc;
                    let mut packed = vec![f32::NAN; len];
                    a.pack_a(m0, mc, k0, kc, mr, &mut packed);
                    for s in 0..mc.div_ceil(mr) {
                        for p in 0..kc {
                            for r in 0..mr {
                                let i = m0 + s * mr + r;
                                let got = packed[(s * kc + p) * mr + r];
                                // Rows past the block may hold the next rows of `U` (dropped by
                                // the GEMM) or zeros; rows inside must be exact.
                                if i < m0 + mc {
                                    assert_eq!(
                                        got,
                                        f(row0 + i, k0 + p),
                                        "row0 {row0} m0 {m0} i {i} k {}",
                                        k0 + p
                                    );
                                }
                            }
                        }
                    }
                    if let Some(inplace) = a.packed(m0, mc, k0, kc, mr) {
                        assert!((row0 + m0) % mr == 0 && stored);
                        for (k, (&x, &y)) in inplace[..len].iter().zip(&packed).enumerate() {
                            let (s, r) = (k / (kc * mr), k % mr);
                            if m0 + s * mr + r < m0 + mc {
                                assert_eq!(x, y, "in place vs packed at {k}");
                            }
                        }
                    } else {
                        assert!(
                            (row0 + m0) % mr != 0 || !stored,
                            "aligned stored blocks are read in place"
                        );
                    }
                }
            }
        }
    }
}
