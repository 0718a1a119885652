//! Binding a parsed `.tinv` to the model: each tensor the configuration implies, found by name
//! and checked for shape, dtype and flags (f16 controller tensors widened at once, the backbone's
//! when a CPU session first needs them), and the page rule of FORMAT.md.

use super::{widen_f16, CtrlW, Model, Slot, WRef};
use crate::error::{Error, Result};
use crate::format::{self, DType, Index};
use std::path::Path;

/// FORMAT.md "Order and pages": every block and exit head starts on a fresh page, and path k's
/// tensors all end before the first page of the block after it, so a path never touches the
/// pages of deeper blocks (what lets a shallow path keep only its prefix resident).
pub(super) fn check_pages(m: &Model) -> std::result::Result<(), String> {
    let start = |refs: &[WRef]| refs.iter().map(|r| m.w_file_range(*r).start).min();
    let page = format::PAGE as usize;
    let depths = &m.config().depths;
    let heads = m
        .exits()
        .iter()
        .zip(depths)
        .map(|(e, d)| (e.tensors().to_vec(), format!("exit.{d}")));
    let firsts = m
        .blocks()
        .iter()
        .enumerate()
        .map(|(i, b)| (b.tensors().to_vec(), format!("blk.{i}")));
    for (refs, name) in firsts.chain(heads) {
        if start(&refs).is_some_and(|o| !o.is_multiple_of(page)) {
            return Err(format!("{name} does not start on a fresh {page}-byte page"));
        }
    }
    // The device section comes after every host tensor and starts on a page: releasing its
    // pages after the upload (`release_device_section`) drops everything from its first page
    // to the end of the file, which must hold no host tensor.
    let mut device: Option<&str> = None;
    for t in &m.index().tensors {
        match (t.flags & format::FLAG_DEVICE != 0, device) {
            (true, None) => {
                if !t.offset.is_multiple_of(page) {
                    return Err(format!(
                        "the device section does not start on a fresh {page}-byte page \
                         (its first tensor '{}')",
                        t.name
                    ));
                }
                device = Some(&t.name);
            }
            (false, Some(first)) => {
                return Err(format!(
                    "host tensor '{}' lies after the device section's first tensor '{first}' \
                     (the device section comes after every host tensor)",
                    t.name
                ));
            }
            _ => {}
        }
    }
    for (k, &d) in depths.iter().enumerate() {
        let Some(deeper) = m.blocks().get(d).and_then(|b| start(&b.tensors())) else {
            continue;
        };
        if m.path_tensors(k)
            .iter()
            .any(|r| m.w_file_range(*r).end > deeper)
        {
            return Err(format!(
                "the depth-{d} path reads bytes after blk.{d} starts (tensors out of path order)"
            ));
        }
    }
    Ok(())
}

/// Resolves tensor names to slots, checking shape and dtype.
pub(super) struct Binder<'a> {
    /// The file, for errors.
    pub(super) path: &'a Path,
    pub(super) index: &'a Index,
    pub(super) bytes: &'a [u8],
    pub(super) slots: Vec<Slot>,
    /// The model's id, carried by every handle.
    pub(super) model: u32,
}

impl Binder<'_> {
    pub(super) fn bind(&mut self, name: &str, shape: &[usize]) -> Result<WRef> {
        let merr = |detail: String| Error::Model {
            path: self.path.to_path_buf(),
            detail,
        };
        let t = self
            .index
            .tensor(name)
            .ok_or_else(|| merr(format!("tensor '{name}' is missing")))?;
        if t.shape != shape {
            return Err(merr(format!(
                "tensor '{name}' has shape {:?}, the configuration needs {shape:?}",
                t.shape
            )));
        }
        if t.flags & format::FLAG_DEVICE != 0 {
            return Err(merr(format!("tensor '{name}' is marked as device-section")));
        }
        let len = t.numel();
        let f16 = t.dtype == DType::F16;
        let widened = std::sync::OnceLock::new();
        // The controller runs on the host whatever the backend: its (few) f16 tensors are
        // widened now. The backbone's wait for a CPU session (`Model::widen_host`), so that a
        // TensorRT session, which reads the device section, never holds f32 copies.
        if f16 && name.starts_with("ctrl.") {
            let raw = &self.bytes[t.offset..t.offset + t.nbytes];
            let _ = widened.set(widen_f16(self.path, name, raw)?);
        }
        self.slots.push(Slot {
            name: name.to_string(),
            offset: t.offset,
            file_bytes: t.nbytes,
            len,
            f16,
            widened,
        });
        Ok(WRef {
            slot: (self.slots.len() - 1) as u32,
            model: self.model,
        })
    }

    /// Binds the controller; hidden sizes come from the tensors and are cross-checked.
    pub(super) fn bind_ctrl(&mut self, f: usize, p: usize) -> Result<CtrlW> {
        let dim = |name: &str, axis: usize| -> Result<usize> {
            self.index
                .tensor(name)
                .and_then(|t| t.shape.get(axis).copied())
                .ok_or_else(|| Error::Model {
                    path: self.path.to_path_buf(),
                    detail: format!("controller tensor '{name}' is missing or not 2-D"),
                })
        };
        let hp = dim("ctrl.pred.fc1.weight", 1)?;
        let hq = dim("ctrl.policy.fc1.weight", 1)?;
        let hr = dim("ctrl.exit.wh", 0)?;
        // The graph policy is optional, but all or nothing: one of its tensors present means the
        // others must be too.
        let has_graph = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
            .iter()
            .any(|t| self.index.tensor(&format!("ctrl.graph.{t}")).is_some());
        let (graph, hg) = if has_graph {
            let hg = dim("ctrl.graph.fc1.weight", 1)?;
            let g = [
                self.bind("ctrl.graph.fc1.weight", &[f + p + 1, hg])?,
                self.bind("ctrl.graph.fc1.bias", &[hg])?,
                self.bind("ctrl.graph.fc2.weight", &[hg, p])?,
                self.bind("ctrl.graph.fc2.bias", &[p])?,
            ];
            (Some(g), hg)
        } else {
            (None, 0)
        };
        Ok(CtrlW {
            pred: [
                self.bind("ctrl.pred.fc1.weight", &[f, hp])?,
                self.bind("ctrl.pred.fc1.bias", &[hp])?,
                self.bind("ctrl.pred.fc2.weight", &[hp, p])?,
                self.bind("ctrl.pred.fc2.bias", &[p])?,
            ],
            policy: [
                self.bind("ctrl.policy.fc1.weight", &[f + p + 1, hq])?,
                self.bind("ctrl.policy.fc1.bias", &[hq])?,
                self.bind("ctrl.policy.fc2.weight", &[hq, p])?,
                self.bind("ctrl.policy.fc2.bias", &[p])?,
            ],
            wx: self.bind("ctrl.exit.wx", &[crate::control::EXIT_FEATURES, hr])?,
            wh: self.bind("ctrl.exit.wh", &[hr, hr])?,
            b: self.bind("ctrl.exit.b", &[hr])?,
            out_w: self.bind("ctrl.exit.out.weight", &[hr, 1])?,
            out_b: self.bind("ctrl.exit.out.bias", &[1])?,
            graph,
            hp,
            hq,
            hg,
            hr,
        })
    }
}

/// Every tensor of the file that binding did not claim must be a valid device-section copy
/// (FORMAT.md: flag bit 0, `dev.<name>` of a bound host tensor, f16, the same shape); anything
/// else is refused rather than ignored. An ignored tensor means a model computed without part of
/// itself: a LayerScale, an exit head for a depth that is not a path, or a controller whose
/// metadata key was dropped (the model then ran every input at full depth). With `verify`, each
/// device copy must also hold exactly the f16 rounding of its host tensor, as `tinv-fold --device`
/// writes it: the TensorRT backend uploads it instead of the host weights.
pub(super) fn check_unbound(
    index: &Index,
    bytes: &[u8],
    slots: &[Slot],
    has_controller: bool,
    verify: bool,
) -> std::result::Result<(), String> {
    let bound = |name: &str| slots.iter().any(|s| s.name == name);
    for t in &index.tensors {
        if bound(&t.name) {
            continue;
        }
        let device = t.flags & format::FLAG_DEVICE != 0;
        let Some(host) = t.name.strip_prefix("dev.").filter(|_| device) else {
            if !has_controller && t.name.starts_with("ctrl.") {
                return Err(format!(
                    "tensor '{}' belongs to a controller, but the metadata has no \
                     'ctrl.features' (refusing to run without the controller)",
                    t.name
                ));
            }
            return Err(format!(
                "tensor '{}' is not part of this model's configuration (unknown, or a device \
                 copy without the device flag): refusing to ignore it",
                t.name
            ));
        };
        if host.starts_with("ctrl.") {
            return Err(format!(
                "device tensor '{}' copies a controller tensor; the device section holds only \
                 the stem's, blocks' and exit heads' weights (the controller runs on the host)",
                t.name
            ));
        }
        let h = index
            .tensor(host)
            .filter(|_| bound(host))
            .ok_or_else(|| format!("device tensor '{}' has no host tensor '{host}'", t.name))?;
        if t.dtype != DType::F16 || t.shape != h.shape {
            return Err(format!(
                "device tensor '{}' is {} {:?}, not an f16 copy of the host's shape {:?}",
                t.name,
                t.dtype.name(),
                t.shape,
                h.shape
            ));
        }
        if verify && !device_copy_matches(&bytes[h.offset..h.offset + h.nbytes], h.dtype, t, bytes)
        {
            return Err(format!(
                "device tensor '{}' is not the f16 rounding of '{host}'",
                t.name
            ));
        }
    }
    Ok(())
}

/// Whether the f16 tensor `dev` holds, bit for bit, the round-to-nearest f16 of each value of
/// `host` (stored as `dtype`).
fn device_copy_matches(host: &[u8], dtype: DType, dev: &format::TensorInfo, bytes: &[u8]) -> bool {
    let dev = &bytes[dev.offset..dev.offset + dev.nbytes];
    match dtype {
        DType::F16 => host == dev,
        DType::F32 => host.chunks_exact(4).zip(dev.chunks_exact(2)).all(|(h, d)| {
            let v = f32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            half::f16::from_f32(v).to_le_bytes() == [d[0], d[1]]
        }),
    }
}
