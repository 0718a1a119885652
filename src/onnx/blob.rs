//! The FP16 weight blob that feeds the weight inputs of the default graphs: every tensor the
//! backbone and controller graphs read, as f16, each at a 256-byte aligned offset, with a binding
//! table (name, dtype, shape, offset). The TensorRT backend uploads the blob once and binds each
//! engine's weight inputs to `base + offset`: one weight copy for every path.

use crate::format::{DType, ALIGNMENT};
use crate::model::{Model, WRef};

/// Where one weight input lives in the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightBinding {
    /// Tensor name: the `.tinv` name and the graph input's name.
    pub name: String,
    /// Element type in the blob (always [`DType::F16`] today).
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Byte offset from the start of the blob (a multiple of 256).
    pub offset: usize,
    /// Byte length (`2 × elements`).
    pub nbytes: usize,
}

/// The weights of every exported graph as one buffer plus its binding table.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightBlob {
    /// Little-endian f16 values, zero padding between tensors; length a multiple of 256.
    pub bytes: Vec<u8>,
    /// One entry per tensor, in blob order.
    pub bindings: Vec<WeightBinding>,
}

impl WeightBlob {
    /// The entry for `name`.
    pub fn binding(&self, name: &str) -> Option<&WeightBinding> {
        self.bindings.iter().find(|b| b.name == name)
    }

    /// The f16 bytes of weight `name` (what its graph input is fed with).
    pub fn bytes_of(&self, name: &str) -> Option<&[u8]> {
        let b = self.binding(name)?;
        self.bytes.get(b.offset..b.offset + b.nbytes)
    }

    /// The binding table as text, one tensor per line:
    /// `name<TAB>dtype<TAB>dimxdim…<TAB>offset<TAB>nbytes` (dimensions joined by an ASCII `x`, e.g.
    /// `96x288`), preceded by a `#` header line.
    pub fn table_text(&self) -> String {
        let mut s = String::from("# name\tdtype\tshape\toffset\tnbytes\n");
        for b in &self.bindings {
            let shape: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
            s.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                b.name,
                b.dtype.name(),
                shape.join("x"),
                b.offset,
                b.nbytes
            ));
        }
        s
    }
}

/// Every tensor a weight input of an exported graph can name: level-1 controller, stem, blocks
/// and exit heads in the order a path runs them, then `graph` mode's own policy when the model
/// has one (last, so that its arrival moved no other tensor of the blob).
pub(crate) fn exported_tensors(model: &Model) -> Vec<WRef> {
    let mut v = Vec::new();
    if let Some(c) = model.ctrl() {
        v.extend(c.pred);
        v.extend(c.policy);
    }
    let s = model.stem();
    v.extend([s.patch_w, s.patch_b, s.cls, s.pos]);
    let depths = &model.config().depths;
    for (i, b) in model.blocks().iter().enumerate() {
        v.extend([
            b.qkv_w, b.qkv_b, b.proj_w, b.proj_b, b.fc1_w, b.fc1_b, b.fc2_w, b.fc2_b,
        ]);
        if let Some(k) = depths.iter().position(|&d| d == i + 1) {
            // `Model` binds one exit per entry of `depths`, so `k` indexes `exits()`.
            v.extend([model.exits()[k].w, model.exits()[k].b]);
        }
    }
    if let Some(g) = model.ctrl().and_then(|c| c.graph) {
        v.extend(g);
    }
    v
}

/// The shape of tensor `r` as recorded in the file.
pub(crate) fn tensor_shape(model: &Model, r: WRef) -> Vec<usize> {
    model
        .index()
        .tensor(model.w_name(r))
        .map(|t| t.shape.clone())
        .unwrap_or_else(|| vec![model.w_len(r)])
}

/// Builds the FP16 weight blob (values rounded to nearest f16; f16 tensors of the file come
/// back bit-exact).
pub fn weight_blob(model: &Model) -> WeightBlob {
    let align = ALIGNMENT as usize;
    let mut bytes = Vec::new();
    let mut bindings = Vec::new();
    for r in exported_tensors(model) {
        bytes.resize(bytes.len().div_ceil(align) * align, 0);
        let offset = bytes.len();
        let vals = model.w(r);
        bytes.reserve(vals.len() * 2);
        for v in vals {
            bytes.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
        }
        bindings.push(WeightBinding {
            name: model.w_name(r).to_string(),
            dtype: DType::F16,
            shape: tensor_shape(model, r),
            offset,
            nbytes: vals.len() * 2,
        });
    }
    bytes.resize(bytes.len().div_ceil(align) * align, 0);
    WeightBlob { bytes, bindings }
}
