//! Handles to a model's weight tensors, grouped as the forward pass reads them: the stem, each
//! block, each exit head and the controller. [`Model::w`](super::Model::w) resolves a handle.

/// Handle to one weight tensor of a [`Model`](super::Model), resolved to a slice by
/// [`Model::w`](super::Model::w). It names its model: another model resolves it to nothing (an
/// empty slice), never to one of its own tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WRef {
    pub(crate) slot: u32,
    pub(crate) model: u32,
}

/// The stem's weights.
#[derive(Clone, Copy, Debug)]
pub struct StemW {
    /// Patch embedding `[C·p·p, D]`.
    pub patch_w: WRef,
    /// `[D]`.
    pub patch_b: WRef,
    /// Class token + its position embedding `[D]`.
    pub cls: WRef,
    /// Patch position embeddings `[patches, D]`.
    pub pos: WRef,
}

/// One encoder block's folded weights.
#[derive(Clone, Copy, Debug)]
pub struct BlockW {
    /// `[D, 3D]`, norm1 and 1/√hd folded.
    pub qkv_w: WRef,
    /// `[3D]`.
    pub qkv_b: WRef,
    /// `[D, D]`.
    pub proj_w: WRef,
    /// `[D]`.
    pub proj_b: WRef,
    /// `[D, H]`, norm2 folded.
    pub fc1_w: WRef,
    /// `[H]`.
    pub fc1_b: WRef,
    /// `[H, D]`.
    pub fc2_w: WRef,
    /// `[D]`.
    pub fc2_b: WRef,
}

/// One exit head (norm folded): `[D, K]` and `[K]`.
#[derive(Clone, Copy, Debug)]
pub struct ExitW {
    /// `[D, K]`.
    pub w: WRef,
    /// `[K]`.
    pub b: WRef,
}

/// Controller weights and their hidden sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtrlW {
    /// Predictor `fc1.weight, fc1.bias, fc2.weight, fc2.bias`.
    pub pred: [WRef; 4],
    /// Level-1 policy of `adaptive` mode, `fc1.weight, fc1.bias, fc2.weight, fc2.bias`.
    pub policy: [WRef; 4],
    /// Up-front policy of `graph` mode (`ctrl.graph.*`, same layout); `None` in files from
    /// before it existed, where `graph` mode uses `policy`.
    pub graph: Option<[WRef; 4]>,
    /// Exit RNN `wx [5, Hr]`.
    pub wx: WRef,
    /// `wh [Hr, Hr]`.
    pub wh: WRef,
    /// `b [Hr]`.
    pub b: WRef,
    /// `out.weight [Hr, 1]`.
    pub out_w: WRef,
    /// `out.bias [1]`.
    pub out_b: WRef,
    /// Predictor hidden width.
    pub hp: usize,
    /// Policy hidden width.
    pub hq: usize,
    /// Graph-policy hidden width (0 without one).
    pub hg: usize,
    /// Exit RNN hidden width.
    pub hr: usize,
}

impl StemW {
    /// Every tensor, in execution order.
    pub fn tensors(&self) -> [WRef; 4] {
        [self.patch_w, self.patch_b, self.cls, self.pos]
    }
}

impl BlockW {
    /// Every tensor, in execution order.
    pub fn tensors(&self) -> [WRef; 8] {
        [
            self.qkv_w,
            self.qkv_b,
            self.proj_w,
            self.proj_b,
            self.fc1_w,
            self.fc1_b,
            self.fc2_w,
            self.fc2_b,
        ]
    }
}

impl ExitW {
    /// Both tensors.
    pub fn tensors(&self) -> [WRef; 2] {
        [self.w, self.b]
    }
}

impl CtrlW {
    /// The up-front policy a mode runs, with its hidden width: `graph` mode's own when the file
    /// has one, else the level-1 policy.
    pub fn up_front(&self, graph: bool) -> ([WRef; 4], usize) {
        match self.graph {
            Some(g) if graph => (g, self.hg),
            _ => (self.policy, self.hq),
        }
    }

    /// The exit RNN's tensors.
    pub fn exit_rnn(&self) -> [WRef; 5] {
        [self.wx, self.wh, self.b, self.out_w, self.out_b]
    }

    /// Every tensor a mode reads: the predictor and its up-front policy, and for `adaptive`
    /// (`graph` false) the exit RNN.
    pub fn tensors(&self, graph: bool) -> Vec<WRef> {
        let mut v: Vec<WRef> = self
            .pred
            .into_iter()
            .chain(self.up_front(graph).0)
            .collect();
        if !graph {
            v.extend(self.exit_rnn());
        }
        v
    }
}
