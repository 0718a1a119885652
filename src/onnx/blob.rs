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
    blob_of(model, |_| true)
}

/// The blob of the tensors the TensorRT backend uploads from the host because the file has no
/// device-section copy (`dev.<name>`, `tinv-fold --device`) of them: with a device section only
/// the biases, class token and positions, so that opening the engines neither reads the host
/// copies of the matrices nor holds a second copy of them.
#[cfg(any(feature = "tensorrt", test))]
pub(crate) fn upload_blob(model: &Model) -> WeightBlob {
    blob_of(model, |name| {
        model.raw_tensor(&format!("dev.{name}")).is_none()
    })
}

/// The blob of the exported tensors whose names `keep` accepts, in [`exported_tensors`] order.
fn blob_of(model: &Model, keep: impl Fn(&str) -> bool) -> WeightBlob {
    let align = ALIGNMENT as usize;
    let mut bytes = Vec::new();
    let mut bindings = Vec::new();
    for r in exported_tensors(model) {
        let name = model.w_name(r);
        if !keep(name) {
            continue;
        }
        bytes.resize(bytes.len().div_ceil(align) * align, 0);
        let offset = bytes.len();
        match model.index().tensor(name) {
            // Copied as stored: no f32 copy of the model's f16 tensors is made for this.
            Some(t) if t.dtype == DType::F16 => {
                bytes.extend_from_slice(model.raw_tensor(name).unwrap_or_default())
            }
            _ => {
                let vals = model.w(r);
                bytes.reserve(vals.len() * 2);
                for v in vals {
                    bytes.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
                }
            }
        }
        bindings.push(WeightBinding {
            name: name.to_string(),
            dtype: DType::F16,
            shape: tensor_shape(model, r),
            offset,
            nbytes: bytes.len() - offset,
        });
    }
    bytes.resize(bytes.len().div_ceil(align) * align, 0);
    WeightBlob { bytes, bindings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{parse, TinvWriter, FLAG_DEVICE};
    use crate::{synth, OpenOptions};

    /// An f16 synthetic model, and the same plus a device-section copy of every block matrix (as
    /// `tinv-fold --device` lays it out: after the host tensors, on fresh pages).
    fn models() -> (Model, Model) {
        let cfg = synth::tiny(3, true);
        let host = synth::random_model(&cfg, 11, DType::F16);
        let idx = parse(&host).unwrap();
        let mut w = TinvWriter::new();
        for (k, v) in idx.meta.entries() {
            w.meta(k, v.clone());
        }
        for t in &idx.tensors {
            let fresh_page = t.name.ends_with("qkv.weight")
                || t.name.ends_with("head.weight")
                || t.name == "stem.patch.weight";
            if fresh_page {
                w.page_break();
            }
            let raw = host[t.offset..t.offset + t.nbytes].to_vec();
            w.raw_tensor(&t.name, t.dtype, t.flags, &t.shape, raw);
        }
        w.page_break();
        for t in idx
            .tensors
            .iter()
            .filter(|t| t.name.starts_with("blk.") && t.shape.len() == 2)
        {
            let raw = host[t.offset..t.offset + t.nbytes].to_vec();
            w.raw_tensor(
                &format!("dev.{}", t.name),
                DType::F16,
                FLAG_DEVICE,
                &t.shape,
                raw,
            );
        }
        let open = |b: &[u8]| Model::from_bytes(b, &OpenOptions::default().verify(true)).unwrap();
        (open(&host), open(&w.to_bytes()))
    }

    #[test]
    fn f16_tensors_go_into_the_blob_as_stored_without_an_f32_copy() {
        let (m, _) = models();
        let before = m.host_copy_bytes();
        let blob = weight_blob(&m);
        assert_eq!(m.host_copy_bytes(), before, "the blob widened the backbone");
        let name = "blk.1.fc2.weight";
        assert_eq!(blob.bytes_of(name), m.raw_tensor(name));
        // An f32 tensor (a bias) is rounded to f16.
        let bias = m.raw_tensor("blk.1.fc2.bias").unwrap();
        let want: Vec<u8> = bias
            .chunks_exact(4)
            .flat_map(|c| {
                half::f16::from_f32(f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes()
            })
            .collect();
        assert_eq!(blob.bytes_of("blk.1.fc2.bias"), Some(&want[..]));
    }

    #[test]
    fn the_upload_blob_holds_only_what_the_device_section_lacks() {
        let (plain, with_dev) = models();
        // Without a device section, everything the graphs read.
        assert_eq!(upload_blob(&plain), weight_blob(&plain));
        let full = weight_blob(&with_dev);
        let up = upload_blob(&with_dev);
        for b in &full.bindings {
            let dev = with_dev.raw_tensor(&format!("dev.{}", b.name)).is_some();
            assert_eq!(up.binding(&b.name).is_none(), dev, "{}", b.name);
            if !dev {
                assert_eq!(up.bytes_of(&b.name), full.bytes_of(&b.name), "{}", b.name);
            }
        }
        assert!(up.bindings.len() < full.bindings.len());
        assert!(up.bindings.iter().any(|b| b.name == "blk.0.qkv.bias"));
    }
}
