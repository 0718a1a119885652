//! A small protobuf wire-format encoder and the handful of ONNX messages the exporter writes.
//!
//! Only encoding is needed (the exporter never reads ONNX), so this is a few dozen lines instead
//! of a protobuf crate and its code generator. Field numbers follow `onnx/onnx.proto` (a proto2
//! file: repeated scalars are written unpacked, as the reference serializer does). Every message
//! is encoded into its own buffer and then written length-delimited into its parent.

/// Protobuf wire types used by ONNX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum WireType {
    /// int32, int64, enum, bool.
    Varint = 0,
    /// 32-bit little-endian (float).
    Fixed32 = 5,
    /// Length-prefixed bytes: strings, bytes, nested messages, packed arrays.
    Len = 2,
}

/// Appends `v` as a base-128 varint (least significant group first, high bit = more follows).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a field key: `(field << 3) | wire_type`.
pub fn put_key(out: &mut Vec<u8>, field: u32, wt: WireType) {
    put_varint(out, (u64::from(field) << 3) | wt as u64);
}

/// Appends an `int64`/`int32`/enum field. Negative values take ten bytes (two's complement as
/// u64), as protobuf specifies for non-zigzag integer types.
pub fn put_int(out: &mut Vec<u8>, field: u32, v: i64) {
    put_key(out, field, WireType::Varint);
    put_varint(out, v as u64);
}

/// Appends a `float` field (fixed 32-bit little-endian).
pub fn put_float(out: &mut Vec<u8>, field: u32, v: f32) {
    put_key(out, field, WireType::Fixed32);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a length-delimited field (`bytes`, `string` or an encoded message).
pub fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, WireType::Len);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a nested message produced by `encode`.
pub fn put_message(out: &mut Vec<u8>, field: u32, encode: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    encode(&mut inner);
    put_bytes(out, field, &inner);
}

/// ONNX `TensorProto.DataType` values the exporter uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ElemType {
    /// `FLOAT` (f32).
    Float = 1,
    /// `INT64`.
    Int64 = 7,
    /// `FLOAT16`.
    Float16 = 10,
}

/// `TensorProto`: an initializer or attribute tensor, data as little-endian `raw_data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name (the graph value it defines).
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Dimensions, outermost first (empty for a scalar).
    pub dims: Vec<i64>,
    /// Little-endian element bytes.
    pub raw: Vec<u8>,
}

impl Tensor {
    /// An f32 tensor.
    pub fn f32(name: &str, dims: &[i64], data: &[f32]) -> Tensor {
        Tensor {
            name: name.to_string(),
            elem: ElemType::Float,
            dims: dims.to_vec(),
            raw: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// An f16 tensor (values rounded to nearest).
    pub fn f16(name: &str, dims: &[i64], data: &[f32]) -> Tensor {
        Tensor {
            name: name.to_string(),
            elem: ElemType::Float16,
            dims: dims.to_vec(),
            raw: data
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        }
    }

    /// An int64 tensor.
    pub fn i64(name: &str, dims: &[i64], data: &[i64]) -> Tensor {
        Tensor {
            name: name.to_string(),
            elem: ElemType::Int64,
            dims: dims.to_vec(),
            raw: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// Appends the encoded message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for d in &self.dims {
            put_int(out, 1, *d);
        }
        put_int(out, 2, self.elem as i64);
        put_bytes(out, 8, self.name.as_bytes());
        put_bytes(out, 9, &self.raw);
    }
}

/// One dimension of a graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    /// A fixed size.
    Value(i64),
    /// A symbolic size (e.g. `"batch"`), the same symbol meaning the same size.
    Param(String),
}

/// `ValueInfoProto` for a tensor: name, element type, shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// Value name.
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Shape.
    pub dims: Vec<Dim>,
}

impl ValueInfo {
    /// Appends the encoded message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, 1, self.name.as_bytes());
        // TypeProto.tensor_type (1) -> TypeProto.Tensor { elem_type (1), shape (2) }.
        put_message(out, 2, |ty| {
            put_message(ty, 1, |t| {
                put_int(t, 1, self.elem as i64);
                put_message(t, 2, |shape| {
                    for d in &self.dims {
                        // TensorShapeProto.dim (1) -> Dimension { dim_value (1) | dim_param (2) }.
                        put_message(shape, 1, |dim| match d {
                            Dim::Value(v) => put_int(dim, 1, *v),
                            Dim::Param(p) => put_bytes(dim, 2, p.as_bytes()),
                        });
                    }
                });
            });
        });
    }
}

/// The value of a node attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// `FLOAT` (type 1, field `f`).
    Float(f32),
    /// `INT` (type 2, field `i`).
    Int(i64),
    /// `STRING` (type 3, field `s`).
    Str(String),
    /// `INTS` (type 7, field `ints`).
    Ints(Vec<i64>),
}

/// `AttributeProto`.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    /// Attribute name, e.g. `"axis"`.
    pub name: String,
    /// Its value.
    pub value: AttrValue,
}

impl Attribute {
    /// An integer attribute.
    pub fn int(name: &str, v: i64) -> Attribute {
        Attribute {
            name: name.into(),
            value: AttrValue::Int(v),
        }
    }
    /// A float attribute.
    pub fn float(name: &str, v: f32) -> Attribute {
        Attribute {
            name: name.into(),
            value: AttrValue::Float(v),
        }
    }
    /// An integer-list attribute.
    pub fn ints(name: &str, v: &[i64]) -> Attribute {
        Attribute {
            name: name.into(),
            value: AttrValue::Ints(v.to_vec()),
        }
    }

    /// Appends the encoded message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, 1, self.name.as_bytes());
        // AttributeProto.type is field 20; values: f 2, i 3, s 4, ints 8.
        match &self.value {
            AttrValue::Float(v) => {
                put_float(out, 2, *v);
                put_int(out, 20, 1);
            }
            AttrValue::Int(v) => {
                put_int(out, 3, *v);
                put_int(out, 20, 2);
            }
            AttrValue::Str(s) => {
                put_bytes(out, 4, s.as_bytes());
                put_int(out, 20, 3);
            }
            AttrValue::Ints(v) => {
                for x in v {
                    put_int(out, 8, *x);
                }
                put_int(out, 20, 7);
            }
        }
    }
}

/// `NodeProto` in the default (`ai.onnx`) domain.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Operator, e.g. `"MatMul"`.
    pub op_type: String,
    /// Node name (unique in the graph; used in error messages of parsers).
    pub name: String,
    /// Input value names.
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
    /// Attributes.
    pub attrs: Vec<Attribute>,
}

impl Node {
    /// Appends the encoded message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for i in &self.inputs {
            put_bytes(out, 1, i.as_bytes());
        }
        for o in &self.outputs {
            put_bytes(out, 2, o.as_bytes());
        }
        put_bytes(out, 3, self.name.as_bytes());
        put_bytes(out, 4, self.op_type.as_bytes());
        for a in &self.attrs {
            put_message(out, 5, |m| a.encode(m));
        }
    }
}

/// `GraphProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Graph name.
    pub name: String,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Constant tensors.
    pub initializers: Vec<Tensor>,
    /// Graph inputs (not including initializers).
    pub inputs: Vec<ValueInfo>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfo>,
}

impl Graph {
    /// Appends the encoded message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for n in &self.nodes {
            put_message(out, 1, |m| n.encode(m));
        }
        put_bytes(out, 2, self.name.as_bytes());
        for t in &self.initializers {
            put_message(out, 5, |m| t.encode(m));
        }
        for v in &self.inputs {
            put_message(out, 11, |m| v.encode(m));
        }
        for v in &self.outputs {
            put_message(out, 12, |m| v.encode(m));
        }
    }
}

/// `ModelProto` with one opset import for the default domain.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelProto {
    /// `ir_version` (8 for ONNX 1.10–1.12, what TensorRT 8.5 reads).
    pub ir_version: i64,
    /// Opset of the default domain.
    pub opset: i64,
    /// `producer_name`.
    pub producer_name: String,
    /// `producer_version`.
    pub producer_version: String,
    /// `doc_string`.
    pub doc: String,
    /// `metadata_props` (key, value).
    pub metadata: Vec<(String, String)>,
    /// The graph.
    pub graph: Graph,
}

impl ModelProto {
    /// The encoded model, ready to be written as a `.onnx` file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, 1, self.ir_version);
        put_bytes(&mut out, 2, self.producer_name.as_bytes());
        put_bytes(&mut out, 3, self.producer_version.as_bytes());
        if !self.doc.is_empty() {
            put_bytes(&mut out, 6, self.doc.as_bytes());
        }
        put_message(&mut out, 7, |m| self.graph.encode(m));
        // OperatorSetIdProto { domain (1) = "" (default domain), version (2) }.
        put_message(&mut out, 8, |m| {
            put_bytes(m, 1, b"");
            put_int(m, 2, self.opset);
        });
        for (k, v) in &self.metadata {
            put_message(&mut out, 14, |m| {
                put_bytes(m, 1, k.as_bytes());
                put_bytes(m, 2, v.as_bytes());
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_protobuf_spec_examples() {
        let enc = |v| {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            b
        };
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        // 300 = 0b10_0101100 -> 0xAC 0x02 (the example in the protobuf encoding guide).
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(
            enc(u64::MAX),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn negative_int64_takes_ten_bytes() {
        let mut b = Vec::new();
        put_int(&mut b, 3, -1);
        assert_eq!(
            b,
            [0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }
}
