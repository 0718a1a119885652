//! One execution plan per depth path — the CPU analogue of one TensorRT engine + CUDA graph per
//! path: a fixed sequence of operations over weights resolved at load, running in buffers whose
//! offsets in the one arena are fixed at session open ([`Buffers`]).

use super::arena::{self, Interval, Layout};
use crate::model::{BlockW, ExitW, Model, WRef};

/// One operation of a plan.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Normalize, cut patches, embed, add class token and positions.
    Stem,
    /// Encoder block `index` (0-based) with its weights.
    Block(usize, BlockW),
    /// Exit head of path `index` with its weights.
    Exit(usize, ExitW),
}

/// The plan of one depth path: `Stem, Block(0), …, Block(d−1), Exit(k)`.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Index of the path in `Config::depths`.
    pub path: usize,
    /// Blocks run.
    pub depth: usize,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

impl Plan {
    /// Index in `ops` where a run that already executed `blocks_done` blocks resumes.
    pub fn resume_at(&self, blocks_done: usize) -> usize {
        1 + blocks_done
    }

    /// Every weight the plan reads (controller excluded), in execution order: derived from its
    /// ops, so tests can hold it against [`Model::path_tensors`].
    pub fn tensors(&self, model: &Model) -> Vec<WRef> {
        let mut v = Vec::new();
        for op in &self.ops {
            match op {
                Op::Stem => v.extend(model.stem().tensors()),
                Op::Block(_, b) => v.extend(b.tensors()),
                Op::Exit(_, e) => v.extend(e.tensors()),
            }
        }
        v
    }
}

/// Compiles the plan of every path.
pub fn compile(model: &Model) -> Vec<Plan> {
    let c = model.config();
    c.depths
        .iter()
        .enumerate()
        .map(|(k, &depth)| {
            let mut ops = Vec::with_capacity(depth + 2);
            ops.push(Op::Stem);
            ops.extend(
                model.blocks()[..depth]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| Op::Block(i, *b)),
            );
            ops.push(Op::Exit(k, model.exits()[k]));
            Plan {
                path: k,
                depth,
                ops,
            }
        })
        .collect()
}

/// Offsets (in floats) of every buffer in the arena, sized for `max_batch` inputs.
#[derive(Clone, Debug)]
pub struct Buffers {
    /// Inputs per call the buffers are sized for.
    pub max_batch: usize,
    /// Patch rows `[B·patches, C·p·p]`.
    pub patches: usize,
    /// Residual stream `[B·N, D]`.
    pub x: usize,
    /// LayerNorm output `[B·N, D]`.
    pub y: usize,
    /// `[B·N, 3D]`.
    pub qkv: usize,
    /// Attention output `[B·N, D]`.
    pub att: usize,
    /// Per-thread attention scores `[N, N]` and head output `[N, hd]`.
    pub heads: usize,
    /// Floats of one thread's slice of `heads` (scores, head output, GEMM scratch).
    pub head_stride: usize,
    /// MLP hidden `[B·N, H]`.
    pub mlp: usize,
    /// Normalized class tokens `[B, D]`.
    pub cls: usize,
    /// Exit logits `[B, K]`.
    pub logits: usize,
    /// GEMM packing space.
    pub scratch: usize,
    /// Floats of GEMM packing space.
    pub scratch_len: usize,
    /// Arena size and its liveness lower bound, in floats.
    pub layout: Layout,
}

/// Lays the buffers out by liveness over one block's steps (the pattern every block repeats):
/// 0 stem, 1 ln1, 2 qkv, 3 attention, 4 proj, 5 ln2, 6 fc1, 7 gelu, 8 fc2, 9 exit.
pub fn buffers(model: &Model, max_batch: usize, threads: usize) -> Buffers {
    let c = model.config();
    let (b, n, d, h, k) = (max_batch, c.tokens(), c.dim, c.mlp_hidden, c.classes);
    let (np, cpp, hd) = (c.patches(), c.channels * c.patch * c.patch, c.head_dim());
    let gemm = |m, nn, kk, t| super::gemm::scratch_len(m, nn, kk, t);
    let scratch_len = [
        gemm(np, d, cpp, threads),
        gemm(b * n, 3 * d, d, threads),
        gemm(b * n, d, d, threads),
        gemm(b * n, h, d, threads),
        gemm(b * n, d, h, threads),
        gemm(b, k, d, threads),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let head_stride = n * n + n * hd + gemm(n, n, hd, 1).max(gemm(n, hd, n, 1));
    let iv = |len, first, last| Interval { len, first, last };
    let bufs = [
        iv(b * np * cpp, 0, 0),          // patches
        iv(b * n * d, 0, 9),             // x
        iv(b * n * d, 1, 6),             // y
        iv(b * n * 3 * d, 2, 3),         // qkv
        iv(b * n * d, 3, 4),             // att
        iv(threads * head_stride, 3, 3), // heads
        iv(b * n * h, 6, 8),             // mlp
        iv(b * d, 9, 9),                 // cls
        iv(b * k, 9, 9),                 // logits
        iv(scratch_len, 0, 9),           // scratch
    ];
    let layout = arena::assign(&bufs);
    let o = &layout.offsets;
    Buffers {
        max_batch,
        patches: o[0],
        x: o[1],
        y: o[2],
        qkv: o[3],
        att: o[4],
        heads: o[5],
        head_stride,
        mlp: o[6],
        cls: o[7],
        logits: o[8],
        scratch: o[9],
        scratch_len,
        layout,
    }
}
