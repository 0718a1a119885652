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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::DType;
    use crate::model::OpenOptions;
    use crate::synth;

    /// 16×16 pixels, 3 channels, patch 4 (16 patches, 17 tokens, 48 floats a patch), dim 32,
    /// 3 blocks, 2 heads (head dim 16), MLP 128, 5 classes, exits after blocks 1 and 3.
    fn model() -> Model {
        open(&synth::config(16, 3, 4, 32, 3, 2, 5, &[1, 3], false))
    }

    /// A random f32 model of `cfg` (weights of seed 3).
    fn open(cfg: &crate::model::Config) -> Model {
        Model::from_bytes(
            &synth::random_model(cfg, 3, DType::F32),
            &OpenOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn plans_are_stem_blocks_exit_and_resume_at_the_next_block() {
        let m = model();
        let plans = compile(&m);
        assert_eq!(plans.len(), 2);
        for (k, (p, depth)) in plans.iter().zip([1, 3]).enumerate() {
            assert_eq!((p.path, p.depth, p.ops.len()), (k, depth, depth + 2));
            assert!(matches!(p.ops[0], Op::Stem));
            for i in 0..depth {
                assert!(matches!(p.ops[1 + i], Op::Block(j, _) if j == i));
            }
            assert!(matches!(p.ops[depth + 1], Op::Exit(j, _) if j == k));
            // After `done` blocks the next op is Block(done), or the exit once all are done.
            for done in 0..depth {
                assert!(matches!(p.ops[p.resume_at(done)], Op::Block(j, _) if j == done));
            }
            assert_eq!(p.resume_at(depth), depth + 1);
            assert_eq!(p.tensors(&m), m.path_tensors(k));
            assert!(!p.tensors(&m).is_empty());
        }
    }

    /// Checks `buffers(model, batch, threads)` against the shapes its field docs give, the
    /// liveness steps `buffers` documents, and the GEMMs of ARCHITECTURE.md's block.
    fn check_buffers(cfg: &crate::model::Config, batch: usize, threads: usize) {
        let m = open(cfg);
        let bf = buffers(&m, batch, threads);
        let g = crate::cpu::gemm::scratch_len;
        let np = (cfg.image_h / cfg.patch) * (cfg.image_w / cfg.patch);
        let (n, cpp) = (np + 1, cfg.channels * cfg.patch * cfg.patch);
        let (d, h, k, hd) = (cfg.dim, cfg.mlp_hidden, cfg.classes, cfg.dim / cfg.heads);
        let rows = batch * n;
        // Scores [N, N], head output [N, hd], and the scratch of the two per-head GEMMs.
        let head_stride = n * n + n * hd + g(n, n, hd, 1).max(g(n, hd, n, 1));
        // Each GEMM the plan runs: patch embedding (one image at a time), qkv, proj, fc1, fc2,
        // exit head; the arena's packing space must hold the largest.
        let gemms = [
            (np, d, cpp),
            (rows, 3 * d, d),
            (rows, d, d),
            (rows, h, d),
            (rows, d, h),
            (batch, k, d),
        ];
        let scratch_len = gemms.map(|(a, b, c)| g(a, b, c, threads)).into_iter().max();
        assert_eq!(bf.head_stride, head_stride);
        assert_eq!(Some(bf.scratch_len), scratch_len);
        assert_eq!(bf.max_batch, batch);
        // (offset, floats, first step, last step).
        let bufs = [
            (bf.patches, batch * np * cpp, 0, 0),
            (bf.x, rows * d, 0, 9),
            (bf.y, rows * d, 1, 6),
            (bf.qkv, rows * 3 * d, 2, 3),
            (bf.att, rows * d, 3, 4),
            (bf.heads, threads * head_stride, 3, 3),
            (bf.mlp, rows * h, 6, 8),
            (bf.cls, batch * d, 9, 9),
            (bf.logits, batch * k, 9, 9),
            (bf.scratch, bf.scratch_len, 0, 9),
        ];
        let up = |v: usize| v.div_ceil(arena::ALIGN) * arena::ALIGN;
        let l = &bf.layout;
        for (i, &(o, len, f, t)) in bufs.iter().enumerate() {
            assert_eq!(o % arena::ALIGN, 0);
            assert!(o + len <= l.total, "buffer {i} ends past the arena");
            for &(o2, len2, f2, t2) in &bufs[i + 1..] {
                let live = f <= t2 && f2 <= t;
                assert!(
                    !(live && o < o2 + len2 && o2 < o + len),
                    "buffer {i} collides"
                );
            }
        }
        let bound = (0..10)
            .map(|s| {
                let live = bufs.iter().filter(|b| b.2 <= s && s <= b.3);
                live.map(|b| up(b.1)).sum::<usize>()
            })
            .max()
            .unwrap();
        assert_eq!(l.lower_bound, bound);
        assert!(l.total >= bound);
    }

    #[test]
    fn buffers_hold_their_documented_shapes_without_collisions() {
        // 16 patches of 48 floats, 17 tokens, dim 32, MLP 128: the attention step is the peak.
        check_buffers(&synth::config(16, 3, 4, 32, 3, 2, 5, &[1, 3], false), 3, 2);
        // 4 patches of 192 floats, dim 16: the stem step (patches, x, scratch) is the peak.
        check_buffers(&synth::config(16, 3, 8, 16, 2, 2, 5, &[1, 2], false), 3, 1);
        // 1000 classes, dim 8: the exit step (x, cls, logits, scratch) is the peak.
        check_buffers(&synth::config(8, 1, 4, 8, 1, 2, 1000, &[1], false), 3, 1);
        // 16 inputs of 17 tokens: 272 GEMM rows, more than one 256-row block, so the packing
        // space grows with the rows. The largest GEMM is qkv (MLP 32 < 3·32), then fc1 (MLP
        // 320 > 256, deeper than one K block), then fc2 (MLP 256 = one K block, dim 40 not a
        // multiple of the 16- or 32-column panel).
        for (dim, mlp) in [(32, 32), (64, 320), (40, 256)] {
            let mut cfg = synth::config(8, 1, 2, dim, 1, 2, 5, &[1], false);
            cfg.mlp_hidden = mlp;
            check_buffers(&cfg, 16, 2);
        }
        // One input of 15 × 17 patches: 256 rows, exactly one block (B + N would be 257).
        let mut cfg = synth::config(60, 1, 4, 64, 1, 2, 5, &[1], false);
        (cfg.image_w, cfg.mlp_hidden) = (68, 64);
        check_buffers(&cfg, 1, 1);
    }
}
