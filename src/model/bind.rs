//! Binding a parsed `.tinv` to the model: each tensor the configuration implies, found by name
//! and checked for shape, dtype and flags (f16 widened once), and the page rule of FORMAT.md.

use super::{CtrlW, Model, Slot, WRef};
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
        let widened = match t.dtype {
            DType::F32 => None,
            DType::F16 => {
                let raw = &self.bytes[t.offset..t.offset + t.nbytes];
                Some(
                    raw.chunks_exact(2)
                        .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
                        .collect::<Box<[f32]>>(),
                )
            }
        };
        self.slots.push(Slot {
            name: name.to_string(),
            offset: t.offset,
            file_bytes: t.nbytes,
            len,
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
