//! The weight-binding plan: every weight gets ONE 256-byte-aligned slot in one device buffer,
//! and every engine binds each of its weight inputs to that slot. So N engines read the same
//! bytes, and the device holds each weight once (layout `per-path`, docs/JETSON.md).

use super::manifest::{DType, IoMode, Manifest, WeightBinding};
use super::{align_up, TrtError};
use std::collections::HashSet;

/// One weight to place: its name, device dtype and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightSpec {
    /// Tensor name (engine input name).
    pub name: String,
    /// Element type on the device.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
}

/// Packs `weights` in the given order into one buffer: each at the next multiple of 256 after
/// the previous one ends. Returns the table and the buffer size (a multiple of 256).
pub fn pack_weights(weights: &[WeightSpec]) -> Result<(Vec<WeightBinding>, u64), TrtError> {
    let mut seen = HashSet::new();
    let mut table = Vec::with_capacity(weights.len());
    let mut end = 0u64;
    let overflow = || TrtError::Plan("weight buffer size overflows u64".into());
    for w in weights {
        if !seen.insert(w.name.as_str()) {
            return Err(TrtError::Plan(format!("weight {} is given twice", w.name)));
        }
        if w.shape.contains(&0) {
            return Err(TrtError::Plan(format!(
                "weight {} has a zero dimension",
                w.name
            )));
        }
        let bytes = w
            .shape
            .iter()
            .try_fold(w.dtype.size(), |a, &d| a.checked_mul(d))
            .ok_or_else(overflow)?;
        let offset = align_up(end).ok_or_else(overflow)?;
        end = offset.checked_add(bytes).ok_or_else(overflow)?;
        table.push(WeightBinding {
            name: w.name.clone(),
            dtype: w.dtype,
            offset,
            bytes,
            shape: w.shape.clone(),
        });
    }
    Ok((table, align_up(end).ok_or_else(overflow)?))
}

/// One `setTensorAddress` an engine needs for a weight: the input and its offset in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Engine input name.
    pub tensor: String,
    /// Byte offset in the device weight buffer.
    pub offset: u64,
}

/// The weight bindings of engine `engine` (index into `manifest.engines`): one per input whose
/// name is in the weight table, in the engine's I/O order. The manifest must be validated (so
/// each such input agrees with the table in dtype and shape).
pub fn engine_bindings(manifest: &Manifest, engine: usize) -> Result<Vec<Bind>, TrtError> {
    let e = manifest
        .engines
        .get(engine)
        .ok_or_else(|| TrtError::Plan(format!("engine index {engine} out of range")))?;
    Ok(e.io
        .iter()
        .filter(|t| t.mode == IoMode::Input)
        .filter_map(|t| {
            let w = manifest.weights.iter().find(|w| w.name == t.name)?;
            Some(Bind {
                tensor: t.name.clone(),
                offset: w.offset,
            })
        })
        .collect())
}

/// Bytes of weights engine `engine` reads (for memory accounting: what it would embed alone).
pub fn engine_weight_bytes(manifest: &Manifest, engine: usize) -> u64 {
    let Some(e) = manifest.engines.get(engine) else {
        return 0;
    };
    e.io.iter()
        .filter(|t| t.mode == IoMode::Input)
        .filter_map(|t| manifest.weights.iter().find(|w| w.name == t.name))
        .map(|w| w.bytes)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::sample;
    use super::*;

    fn spec(name: &str, dtype: DType, shape: &[u64]) -> WeightSpec {
        WeightSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn packing_aligns_each_weight_and_never_overlaps() {
        // 3 bytes·…: a 10-element f16 (20 B), a 64×64 f16 (8192 B), a 1-element f32 (4 B), a 300-elem f16 (600 B).
        let ws = [
            spec("a", DType::F16, &[10]),
            spec("b", DType::F16, &[64, 64]),
            spec("c", DType::F32, &[1]),
            spec("d", DType::F16, &[300]),
        ];
        let (table, total) = pack_weights(&ws).unwrap();
        let offsets: Vec<u64> = table.iter().map(|w| w.offset).collect();
        // Hand-computed: a at 0 (ends 20) → b at 256 (ends 8448) → c at 8448 (ends 8452) → d at 8704 (ends 9304).
        assert_eq!(offsets, [0, 256, 8448, 8704]);
        assert_eq!(
            table.iter().map(|w| w.bytes).collect::<Vec<_>>(),
            [20, 8192, 4, 600]
        );
        assert_eq!(total, 9472); // 9304 rounded up to 256
        for pair in table.windows(2) {
            assert!(pair[0].offset + pair[0].bytes <= pair[1].offset);
        }
        assert!(table.iter().all(|w| w.offset.is_multiple_of(256)));
    }

    #[test]
    fn packing_rejects_duplicates_and_empty_shapes() {
        let dup = [spec("a", DType::F16, &[4]), spec("a", DType::F16, &[4])];
        assert!(pack_weights(&dup)
            .unwrap_err()
            .to_string()
            .contains("given twice"));
        assert!(pack_weights(&[spec("z", DType::F32, &[3, 0])]).is_err());
        let huge = [spec("h", DType::F32, &[u64::MAX / 2, 4])];
        assert!(pack_weights(&huge)
            .unwrap_err()
            .to_string()
            .contains("overflows"));
    }

    #[test]
    fn every_engine_binds_a_weight_to_the_same_offset() {
        let m = sample();
        m.validate().unwrap();
        let b1 = engine_bindings(&m, 0).unwrap();
        let b2 = engine_bindings(&m, 1).unwrap();
        // path1 reads only the matrix; path2 the matrix and the bias.
        assert_eq!(
            b1,
            [Bind {
                tensor: "blk.0.fc.weight".into(),
                offset: 0
            }]
        );
        assert_eq!(
            b2,
            [
                Bind {
                    tensor: "blk.0.fc.weight".into(),
                    offset: 0
                },
                Bind {
                    tensor: "blk.0.fc.bias".into(),
                    offset: 8192
                }
            ]
        );
        // The non-weight input (image) and the output are not weight bindings.
        assert!(b2
            .iter()
            .all(|b| b.tensor != "image" && b.tensor != "logits"));
        assert_eq!(engine_weight_bytes(&m, 0), 8192);
        assert_eq!(engine_weight_bytes(&m, 1), 8192 + 128);
        assert!(engine_bindings(&m, 2).is_err());
    }

    #[test]
    fn a_packed_table_validates_in_a_manifest() {
        let mut m = sample();
        let (table, total) = pack_weights(&[
            spec("blk.0.fc.weight", DType::F16, &[64, 64]),
            spec("blk.0.fc.bias", DType::F16, &[64]),
        ])
        .unwrap();
        m.weights = table;
        m.weights_bytes = total;
        m.validate().unwrap();
        assert_eq!((m.weights[1].offset, total), (8192, 8448));
    }
}
