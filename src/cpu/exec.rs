//! The operations of a plan, executed on the arena. Every buffer is a fixed range of the arena
//! (see [`super::plan::Buffers`]); nothing here allocates.

use super::gemm::{sgemm, sgemm_bt, MIN_PARALLEL_MACS};
use super::kernels::{gelu_erf, gelu_tanh, layernorm_rows, patchify, softmax_rows};
use super::plan::Buffers;
use super::pool::Pool;
use crate::error::{Error, Result};
use crate::model::{BlockW, ExitW, Gelu, Model};
use std::ops::Range;

/// What the operations need besides the arena.
pub struct Ctx<'a> {
    /// The model (weights, config).
    pub model: &'a Model,
    /// Buffer offsets.
    pub buf: &'a Buffers,
    /// Worker pool for GEMMs and attention heads.
    pub pool: &'a Pool,
    /// A one-thread pool for GEMMs issued from inside a pool job.
    pub serial: &'a Pool,
}

/// Disjoint mutable views of `N` arena ranges. The layout never gives co-live buffers
/// overlapping ranges; should that invariant break, this returns an error instead of aliasing.
fn views<const N: usize>(arena: &mut [f32], r: [Range<usize>; N]) -> Result<[&mut [f32]; N]> {
    arena
        .get_disjoint_mut(r)
        .map_err(|e| Error::Internal(format!("arena views overlap or overflow ({e})")))
}

/// Stem: for each slot j, raw input `order[j]` is normalized, cut into patches and embedded
/// into residual-stream slot j, with the class token and positions.
pub fn stem(ctx: &Ctx, arena: &mut [f32], input: &[f32], order: &[usize]) -> Result<()> {
    let b = order.len();
    let m = ctx.model;
    let c = m.config();
    let (n, d, np) = (c.tokens(), c.dim, c.patches());
    let cpp = c.channels * c.patch * c.patch;
    let s = m.stem();
    let buf = ctx.buf;
    let [patches, x, scratch] = views(
        arena,
        [
            buf.patches..buf.patches + b * np * cpp,
            buf.x..buf.x + b * n * d,
            buf.scratch..buf.scratch + buf.scratch_len,
        ],
    )?;
    let (cls, pos) = (m.w(s.cls), m.w(s.pos));
    let len = c.input_len();
    for (i, &sample) in order.iter().enumerate() {
        let img = input
            .get(sample * len..(sample + 1) * len)
            .ok_or_else(|| Error::Internal("input slot out of range".into()))?;
        let pt = &mut patches[i * np * cpp..(i + 1) * np * cpp];
        patchify(
            img, c.channels, c.image_h, c.image_w, c.patch, &c.mean, &c.std, pt,
        );
        let xs = &mut x[i * n * d..(i + 1) * n * d];
        xs[..d].copy_from_slice(cls);
        xs[d..].copy_from_slice(pos);
    }
    for i in 0..b {
        // x[token 1..] = pos + patches·W + bias
        let pt = &patches[i * np * cpp..(i + 1) * np * cpp];
        let xs = &mut x[i * n * d + d..(i + 1) * n * d];
        sgemm(
            np,
            d,
            cpp,
            pt,
            cpp,
            m.w(s.patch_w),
            d,
            xs,
            d,
            Some(m.w(s.patch_b)),
            true,
            scratch,
            ctx.pool,
        );
    }
    Ok(())
}

/// Raw pointer that may cross to pool threads; each thread touches a disjoint part.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used inside `attention`, where each (sample, head) job writes a disjoint column
// block of `att` and each thread uses its own slice of the `heads` buffer; `run_chunks` returns
// only after every job finished, so the pointers never outlive the borrows they came from.
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not the field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// One encoder block on the first `b` inputs of the residual stream.
pub fn block(ctx: &Ctx, arena: &mut [f32], w: &BlockW, b: usize) -> Result<()> {
    let m = ctx.model;
    let c = m.config();
    let (rows, d, h) = (b * c.tokens(), c.dim, c.mlp_hidden);
    let buf = ctx.buf;
    let sr = buf.scratch..buf.scratch + buf.scratch_len;
    {
        let [x, y, qkv, scratch] = views(
            arena,
            [
                buf.x..buf.x + rows * d,
                buf.y..buf.y + rows * d,
                buf.qkv..buf.qkv + rows * 3 * d,
                sr.clone(),
            ],
        )?;
        ctx.pool
            .rows_map(x, d, y, d, |x, y| layernorm_rows(x, y, d, c.ln_eps));
        sgemm(
            rows,
            3 * d,
            d,
            y,
            d,
            m.w(w.qkv_w),
            3 * d,
            qkv,
            3 * d,
            Some(m.w(w.qkv_b)),
            false,
            scratch,
            ctx.pool,
        );
    }
    attention(ctx, arena, b)?;
    {
        let [x, att, scratch] = views(
            arena,
            [
                buf.x..buf.x + rows * d,
                buf.att..buf.att + rows * d,
                sr.clone(),
            ],
        )?;
        sgemm(
            rows,
            d,
            d,
            att,
            d,
            m.w(w.proj_w),
            d,
            x,
            d,
            Some(m.w(w.proj_b)),
            true,
            scratch,
            ctx.pool,
        );
    }
    let [x, y, mlp, scratch] = views(
        arena,
        [
            buf.x..buf.x + rows * d,
            buf.y..buf.y + rows * d,
            buf.mlp..buf.mlp + rows * h,
            sr,
        ],
    )?;
    ctx.pool
        .rows_map(x, d, y, d, |x, y| layernorm_rows(x, y, d, c.ln_eps));
    sgemm(
        rows,
        h,
        d,
        y,
        d,
        m.w(w.fc1_w),
        h,
        mlp,
        h,
        Some(m.w(w.fc1_b)),
        false,
        scratch,
        ctx.pool,
    );
    match c.gelu {
        Gelu::Erf => ctx.pool.rows_mut(mlp, h, gelu_erf),
        Gelu::Tanh => ctx.pool.rows_mut(mlp, h, gelu_tanh),
    }
    sgemm(
        rows,
        d,
        h,
        mlp,
        h,
        m.w(w.fc2_w),
        d,
        x,
        d,
        Some(m.w(w.fc2_b)),
        true,
        scratch,
        ctx.pool,
    );
    Ok(())
}

/// Multi-head self-attention: `att = softmax(Q·Kᵀ)·V` per input and head (1/√hd is folded
/// into Q). Jobs (input, head, block of query rows) are the pool's chunks; the
/// query rows are cut into one block per thread only when the (input, head) pairs would not
/// share out evenly (ViT-Tiny's 3 heads on 2 threads), since each block re-reads all of K and V.
/// Public for the benchmark's block profile.
pub fn attention(ctx: &Ctx, arena: &mut [f32], b: usize) -> Result<()> {
    let c = ctx.model.config();
    let (n, d, hd, heads) = (c.tokens(), c.dim, c.head_dim(), c.heads);
    let buf = ctx.buf;
    // Small attention (Fashion-MNIST: 17 tokens, head width 16) costs less than a hand-off to
    // the pool: run it on the caller, with the same threshold as a GEMM.
    let macs = b * heads * n * n * hd;
    let pool = if macs < MIN_PARALLEL_MACS {
        ctx.serial
    } else {
        ctx.pool
    };
    let threads = pool.threads();
    let [qkv, att, hs] = views(
        arena,
        [
            buf.qkv..buf.qkv + b * n * 3 * d,
            buf.att..buf.att + b * n * d,
            buf.heads..buf.heads + threads * buf.head_stride,
        ],
    )?;
    let qkv: &[f32] = qkv;
    let stride = buf.head_stride;
    // The jobs below write through raw pointers, to slots t < threads of `hs` and to rows of
    // inputs s < b of `att`: checked once here, not per job.
    assert!(
        hs.len() >= threads * stride && att.len() >= b * n * d,
        "attention: the heads or att view is shorter than the jobs' writes"
    );
    let att = SharedMut(att.as_mut_ptr());
    let hs = SharedMut(hs.as_mut_ptr());
    let pairs = b * heads;
    let blocks = if pairs.is_multiple_of(threads) {
        1
    } else {
        threads.min(n)
    };
    let jobs = pairs * blocks;
    pool.run_chunks(jobs, |t, job| {
        // SAFETY: the thread in slot t owns floats [t·stride, (t+1)·stride) of the heads
        // buffer (t < threads: inside the view, checked before the jobs), which `views` proved
        // is in the arena and disjoint from qkv and att.
        let mine = unsafe { std::slice::from_raw_parts_mut(hs.ptr().add(t * stride), stride) };
        let (scores, rest) = mine.split_at_mut(n * n);
        let (out, scratch) = rest.split_at_mut(n * hd);
        let (pair, blk) = (job / blocks, job % blocks);
        let (s, h) = (pair / heads, pair % heads);
        let rows = n * blk / blocks..n * (blk + 1) / blocks;
        let nq = rows.len();
        let base = s * n * 3 * d;
        let q = &qkv[base + rows.start * 3 * d + h * hd..];
        let k = &qkv[base + d + h * hd..];
        let v = &qkv[base + 2 * d + h * hd..];
        sgemm_bt(
            nq,
            n,
            hd,
            q,
            3 * d,
            k,
            3 * d,
            scores,
            n,
            scratch,
            ctx.serial,
        );
        softmax_rows(scores, nq, n, n);
        sgemm(
            nq,
            hd,
            n,
            scores,
            n,
            v,
            3 * d,
            out,
            hd,
            None,
            false,
            scratch,
            ctx.serial,
        );
        for (r, row) in out.chunks_exact(hd).take(nq).enumerate() {
            // SAFETY: row rows.start + r of input s, columns [h·hd, (h+1)·hd) of att: inside
            // the att view (s < b, rows ⊆ 0..n: checked before the jobs), written by this job
            // only.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    row.as_ptr(),
                    att.ptr().add((s * n + rows.start + r) * d + h * hd),
                    hd,
                );
            }
        }
    });
    Ok(())
}

/// Exit head on the class tokens of the residual-stream slots `slots`; logits land in the
/// logits buffer, one row per entry of `slots`, in that order.
pub fn exit(ctx: &Ctx, arena: &mut [f32], w: &ExitW, slots: &[usize]) -> Result<()> {
    let m = ctx.model;
    let c = m.config();
    let (n, d, k) = (c.tokens(), c.dim, c.classes);
    let buf = ctx.buf;
    let rows = slots.len();
    let [x, cls, logits, scratch] = views(
        arena,
        [
            buf.x..buf.x + buf.max_batch * n * d,
            buf.cls..buf.cls + rows * d,
            buf.logits..buf.logits + rows * k,
            buf.scratch..buf.scratch + buf.scratch_len,
        ],
    )?;
    for (j, &s) in slots.iter().enumerate() {
        let row = x
            .get(s * n * d..s * n * d + d)
            .ok_or_else(|| Error::Internal("exit slot out of range".into()))?;
        layernorm_rows(row, &mut cls[j * d..(j + 1) * d], d, c.ln_eps);
    }
    sgemm(
        rows,
        k,
        d,
        cls,
        d,
        m.w(w.w),
        k,
        logits,
        k,
        Some(m.w(w.b)),
        false,
        scratch,
        ctx.pool,
    );
    Ok(())
}
