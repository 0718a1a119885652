//! The folded ViT as ONNX operators: input normalization, patch embedding (im2col by
//! Reshape/Transpose, then MatMul), encoder blocks, exit heads, and the level-1 controller.
//! The math is docs/FORMAT.md's: parameter-free LayerNorm, QKV columns `[Q | K | V]` split into
//! heads of hd consecutive columns, 1/√hd already in Q, class token + position pre-added.

use super::graph::GraphBuilder;
use super::proto::Attribute;
use crate::model::Gelu;

/// How LayerNorm is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LnFlavour {
    /// `ReduceMean`, `Sub`, `Pow`, `ReduceMean`, `Add ε`, `Sqrt`, `Div`: parses on TensorRT 8.5.
    Decomposed,
    /// One `LayerNormalization` node (opset 17) with scale 1 and bias 0: TensorRT ≥ 8.6.
    Native,
}

/// Every node of a LayerNorm, in both flavours, has this in its name (and no other node
/// does): the TensorRT builder pins the layers so named to FP32 (LayerNorm overflows in FP16
/// on TensorRT 8.x/10.x; docs/JETSON.md).
pub const LAYER_NORM_SCOPE: &str = "LayerNorm";

/// Parameter-free LayerNorm over the last axis of width `d`, its nodes named under
/// [`LAYER_NORM_SCOPE`]. Always computed in f32: an FP16 graph casts around it (the Casts stay
/// outside the scope, so the builder's FP32 pinning never meets a Cast to FP16).
pub(crate) fn layer_norm(b: &mut GraphBuilder, x: &str, d: usize, flavour: LnFlavour) -> String {
    let x = b.cast_f32(x);
    let outer = b.push_scope(LAYER_NORM_SCOPE);
    let y = layer_norm_nodes(b, &x, d, flavour);
    b.scope(&outer);
    b.cast_act(&y)
}

fn layer_norm_nodes(b: &mut GraphBuilder, x: &str, d: usize, flavour: LnFlavour) -> String {
    let eps = b.model().config().ln_eps;
    match flavour {
        LnFlavour::Native => {
            let scale = b.const_f32(&[d as i64], &vec![1.0; d]);
            let bias = b.const_f32(&[d as i64], &vec![0.0; d]);
            b.op(
                "LayerNormalization",
                &[x, &scale, &bias],
                vec![Attribute::int("axis", -1), Attribute::float("epsilon", eps)],
            )
        }
        LnFlavour::Decomposed => {
            let axes = || {
                vec![
                    Attribute::ints("axes", &[-1]),
                    Attribute::int("keepdims", 1),
                ]
            };
            let mean = b.op("ReduceMean", &[x], axes());
            let centred = b.op("Sub", &[x, &mean], vec![]);
            let two = b.scalar(2.0);
            let sq = b.op("Pow", &[&centred, &two], vec![]);
            let var = b.op("ReduceMean", &[&sq], axes());
            let eps = b.scalar(eps);
            let var_eps = b.op("Add", &[&var, &eps], vec![]);
            let sd = b.op("Sqrt", &[&var_eps], vec![]);
            b.op("Div", &[&centred, &sd], vec![])
        }
    }
}

/// GELU in the variant the model was trained with (the Erf form is the pattern PyTorch exports
/// and TensorRT fuses: `Div √2, Erf, Add 1, Mul x, Mul 0.5`).
fn gelu(b: &mut GraphBuilder, x: &str) -> String {
    let half = b.act_scalar(0.5);
    let one = b.act_scalar(1.0);
    let inner = match b.model().config().gelu {
        Gelu::Erf => {
            let sqrt2 = b.act_scalar(std::f32::consts::SQRT_2);
            let scaled = b.op("Div", &[x, &sqrt2], vec![]);
            b.op("Erf", &[&scaled], vec![])
        }
        Gelu::Tanh => {
            let three = b.act_scalar(3.0);
            let c = b.act_scalar(0.044715);
            let k = b.act_scalar((2.0 / std::f32::consts::PI).sqrt());
            let cube = b.op("Pow", &[x, &three], vec![]);
            let cc = b.op("Mul", &[&cube, &c], vec![]);
            let sum = b.op("Add", &[x, &cc], vec![]);
            let arg = b.op("Mul", &[&sum, &k], vec![]);
            b.op("Tanh", &[&arg], vec![])
        }
    };
    let plus1 = b.op("Add", &[&inner, &one], vec![]);
    let xm = b.op("Mul", &[x, &plus1], vec![]);
    b.op("Mul", &[&xm, &half], vec![])
}

/// `x·W + bias` for weights `w`, `bias` (values of the activations' type).
fn linear(b: &mut GraphBuilder, x: &str, w: &str, bias: &str) -> String {
    let y = b.op("MatMul", &[x, w], vec![]);
    b.op("Add", &[&y, bias], vec![])
}

/// Raw pixels `[B, C, H, W]` in [0, 1] to the token sequence `[B, N, D]`.
pub(crate) fn stem(b: &mut GraphBuilder, pixels: &str) -> String {
    let m = b.model();
    let c = m.config();
    let s = *m.stem();
    let (ch, p, d) = (c.channels as i64, c.patch as i64, c.dim as i64);
    let (gh, gw) = ((c.image_h / c.patch) as i64, (c.image_w / c.patch) as i64);
    b.scope("stem");
    let mean = b.const_f32(&[1, ch, 1, 1], &c.mean);
    let std = b.const_f32(&[1, ch, 1, 1], &c.std);
    let centred = b.op("Sub", &[pixels, &mean], vec![]);
    let x = b.op("Div", &[&centred, &std], vec![]);
    let x = b.cast_act(&x);
    // im2col: [B, C, gh, p, gw, p] -> [B, gh, gw, C, p, p] -> [B, patches, C·p·p]; the row
    // order c·p·p + ky·p + kx is that of `stem.patch.weight`. A 0 in a Reshape shape keeps the
    // input's size (the batch).
    let split = b.ints(&[0, ch, gh, p, gw, p]);
    let x = b.op("Reshape", &[&x, &split], vec![]);
    let x = b.op(
        "Transpose",
        &[&x],
        vec![Attribute::ints("perm", &[0, 2, 4, 1, 3, 5])],
    );
    let rows = b.ints(&[0, gh * gw, ch * p * p]);
    let x = b.op("Reshape", &[&x, &rows], vec![]);
    let (pw, pb, pos) = (b.weight(s.patch_w), b.weight(s.patch_b), b.weight(s.pos));
    let x = linear(b, &x, &pw, &pb);
    let tokens = b.op("Add", &[&x, &pos], vec![]);
    // Class token broadcast to [B, 1, D]: Shape -> batch -> Expand.
    let shape = b.op("Shape", &[pixels], vec![]);
    let first = b.ints(&[0]);
    let batch = b.op("Gather", &[&shape, &first], vec![Attribute::int("axis", 0)]);
    let tail = b.ints(&[1, d]);
    let target = b.op("Concat", &[&batch, &tail], vec![Attribute::int("axis", 0)]);
    let cls = b.weight(s.cls);
    let cls = b.op("Expand", &[&cls, &target], vec![]);
    b.op("Concat", &[&cls, &tokens], vec![Attribute::int("axis", 1)])
}

/// Encoder block `i` on `x` `[B, N, D]`. Callers pass `i < depth ≤ blocks` (depths are
/// validated against `vit.blocks` at open), so `blocks()[i]` exists.
pub(crate) fn block(b: &mut GraphBuilder, i: usize, x: &str, ln: LnFlavour) -> String {
    let m = b.model();
    let c = m.config();
    let w = m.blocks()[i];
    let (d, heads, hd, n) = (
        c.dim as i64,
        c.heads as i64,
        c.head_dim() as i64,
        c.tokens() as i64,
    );
    b.scope(&format!("blk.{i}"));
    let h = layer_norm(b, x, c.dim, ln);
    let (qw, qb) = (b.weight(w.qkv_w), b.weight(w.qkv_b));
    let qkv = linear(b, &h, &qw, &qb);
    // [B, N, 3D] -> [B, N, 3, heads, hd] -> [3, B, heads, N, hd]. Only the batch is copied
    // with 0 (tract 0.21 cannot translate a Reshape that copies two axes).
    let split = b.ints(&[0, n, 3, heads, hd]);
    let qkv = b.op("Reshape", &[&qkv, &split], vec![]);
    let qkv = b.op(
        "Transpose",
        &[&qkv],
        vec![Attribute::ints("perm", &[2, 0, 3, 1, 4])],
    );
    let mut pick = |j: i64| {
        let idx = b.const_i64(&[], &[j]);
        b.op("Gather", &[&qkv, &idx], vec![Attribute::int("axis", 0)])
    };
    let (q, k, v) = (pick(0), pick(1), pick(2));
    let kt = b.op(
        "Transpose",
        &[&k],
        vec![Attribute::ints("perm", &[0, 1, 3, 2])],
    );
    let scores = b.op("MatMul", &[&q, &kt], vec![]);
    let attn = b.op("Softmax", &[&scores], vec![Attribute::int("axis", -1)]);
    let ctx = b.op("MatMul", &[&attn, &v], vec![]);
    let ctx = b.op(
        "Transpose",
        &[&ctx],
        vec![Attribute::ints("perm", &[0, 2, 1, 3])],
    );
    let merge = b.ints(&[0, n, d]);
    let ctx = b.op("Reshape", &[&ctx, &merge], vec![]);
    let (pw, pb) = (b.weight(w.proj_w), b.weight(w.proj_b));
    let o = linear(b, &ctx, &pw, &pb);
    let x = b.op("Add", &[x, &o], vec![]);
    let h = layer_norm(b, &x, c.dim, ln);
    let (w1, b1) = (b.weight(w.fc1_w), b.weight(w.fc1_b));
    let f = linear(b, &h, &w1, &b1);
    let g = gelu(b, &f);
    let (w2, b2) = (b.weight(w.fc2_w), b.weight(w.fc2_b));
    let f = linear(b, &g, &w2, &b2);
    b.op("Add", &[&x, &f], vec![])
}

/// Exit head of path `k` on `x` `[B, N, D]` (activations): LayerNorm of the class token, then
/// the head, written to the f32 value `out` `[B, K]`. `k` is a path index from `Config::path_index`, and
/// `Model` binds one exit head per path, so `exits()[k]` and `depths[k]` exist.
pub(crate) fn exit_head(b: &mut GraphBuilder, k: usize, x: &str, ln: LnFlavour, out: &str) {
    let m = b.model();
    let c = m.config();
    let e = m.exits()[k];
    b.scope(&format!("exit.{}", c.depths[k]));
    let zero = b.const_i64(&[], &[0]);
    let cls = b.op("Gather", &[x, &zero], vec![Attribute::int("axis", 1)]);
    let h = layer_norm(b, &cls, c.dim, ln);
    let (w, bias) = (b.weight(e.w), b.weight(e.b));
    let y = b.op("MatMul", &[&h, &w], vec![]);
    b.op_out("Add", &[&y, &bias], vec![], out);
}

/// The level-1 controller on `features` `[B, F]` and `budget` `[B, 1]`: writes the predictor's
/// probabilities to `pred_out` and the policy's scores (path = argmax) to `scores_out`; the
/// policy is `graph` mode's own when `graph` and the model has one, else the start policy.
pub(crate) fn controller(
    b: &mut GraphBuilder,
    features: &str,
    budget: &str,
    pred_out: &str,
    scores_out: &str,
    graph: bool,
) -> bool {
    let Some(w) = b.model().ctrl().copied() else {
        return false;
    };
    b.scope("ctrl.pred");
    let (features, budget) = (b.cast_act(features), b.cast_act(budget));
    let [w1, b1, w2, b2] = w.pred.map(|r| b.weight(r));
    let h = linear(b, &features, &w1, &b1);
    let h = b.op("Relu", &[&h], vec![]);
    let q = linear(b, &h, &w2, &b2);
    let softmax = vec![Attribute::int("axis", -1)];
    let pred = b.op_out("Softmax", &[&q], softmax, pred_out);
    let own = graph && w.graph.is_some();
    b.scope(if own { "ctrl.graph" } else { "ctrl.policy" });
    let z = b.op(
        "Concat",
        &[&features, &pred, &budget],
        vec![Attribute::int("axis", 1)],
    );
    let [w1, b1, w2, b2] = w.up_front(graph).0.map(|r| b.weight(r));
    let h = linear(b, &z, &w1, &b1);
    let h = b.op("Relu", &[&h], vec![]);
    let s = b.op("MatMul", &[&h, &w2], vec![]);
    b.op_out("Add", &[&s, &b2], vec![], scores_out);
    true
}
