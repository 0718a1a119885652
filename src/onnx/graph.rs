//! A graph builder: appends nodes with unique names, keeps shape/axis constants as deduplicated
//! initializers, and turns the model's weights into either FP16 graph inputs (the graph then
//! computes in FP16: activations are cast once at the graph's edges, never the weights) or baked
//! f32 initializers.

use super::proto::{Attribute, Dim, ElemType, Graph, Node, Tensor, ValueInfo};
use crate::model::{Model, WRef};
use std::collections::HashMap;

/// How a graph receives the model's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightMode {
    /// Every weight is an FP16 graph input named as in the `.tinv` (the same name in every
    /// graph), so one device buffer can feed every engine. The graph computes in FP16 and feeds
    /// the weights straight into MatMul/Add (no Cast or Transpose on a weight input, so that
    /// every engine reads the one device copy as it is); its f32 inputs and outputs are cast at the edges, and LayerNorm runs in f32 between
    /// two Casts (it overflows in FP16; TensorRT 11's strongly typed mode takes the types as
    /// written).
    Fp16Inputs,
    /// Every weight is an f32 initializer: a self-contained graph for ONNX Runtime or trtexec.
    Baked,
}

/// A data input or output of an exported graph (weight inputs are not data): f32.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTensor {
    /// Tensor name.
    pub name: String,
    /// Dimensions, batch first; `None` for the symbolic dimension `batch`.
    pub dims: Vec<Option<usize>>,
}

/// Builds one ONNX graph.
pub(crate) struct GraphBuilder<'m> {
    model: &'m Model,
    mode: WeightMode,
    /// Element type of activations and weights inside the graph.
    act: ElemType,
    graph: Graph,
    /// Prefix of generated value names (e.g. `blk.3`), for readable graphs.
    scope: String,
    counter: usize,
    /// Weight name -> the f32 value that holds it in this graph.
    weights: HashMap<String, String>,
    /// Constant key -> initializer name.
    consts: HashMap<String, String>,
    /// Weight graph inputs, added after the data inputs so those come first.
    weight_inputs: Vec<ValueInfo>,
    /// First dimension of data inputs and outputs: `None` for the symbolic `batch`.
    batch: Option<usize>,
}

impl<'m> GraphBuilder<'m> {
    /// An empty graph named `name`; data inputs and outputs get `batch` as their first
    /// dimension (`None`: the symbolic dimension `batch`).
    pub fn new(model: &'m Model, mode: WeightMode, batch: Option<usize>, name: &str) -> Self {
        let act = match mode {
            WeightMode::Baked => ElemType::Float,
            WeightMode::Fp16Inputs => ElemType::Float16,
        };
        GraphBuilder {
            model,
            mode,
            act,
            graph: Graph {
                name: name.to_string(),
                ..Graph::default()
            },
            scope: String::new(),
            counter: 0,
            weights: HashMap::new(),
            consts: HashMap::new(),
            weight_inputs: Vec::new(),
            batch,
        }
    }

    /// The model the weights come from.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Sets the prefix of generated names.
    pub fn scope(&mut self, s: &str) {
        self.scope = s.to_string();
    }

    /// Appends `/{part}` to the prefix of generated names and returns the previous prefix
    /// (restore it with [`GraphBuilder::scope`]).
    pub fn push_scope(&mut self, part: &str) -> String {
        let prev = self.scope.clone();
        self.scope = if prev.is_empty() {
            part.to_string()
        } else {
            format!("{prev}/{part}")
        };
        prev
    }

    /// Declares a float data input with the batch dimension first.
    pub fn batched_input(&mut self, name: &str, rest: &[usize]) -> String {
        self.graph
            .inputs
            .push(batched_value(name, self.batch, rest));
        name.to_string()
    }

    /// Declares a float output with the batch dimension first (write it with
    /// [`GraphBuilder::op_to`]).
    pub fn batched_output(&mut self, name: &str, rest: &[usize]) {
        self.graph
            .outputs
            .push(batched_value(name, self.batch, rest));
    }

    /// Appends a node with one output and returns that output's name.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<Attribute>) -> String {
        self.counter += 1;
        let out = if self.scope.is_empty() {
            format!("{op_type}_{}", self.counter)
        } else {
            format!("{}/{op_type}_{}", self.scope, self.counter)
        };
        self.op_to(op_type, inputs, attrs, &out);
        out
    }

    /// Appends a node whose one output is named `out` (a graph output).
    pub fn op_to(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<Attribute>, out: &str) {
        self.graph.nodes.push(Node {
            op_type: op_type.to_string(),
            name: out.to_string(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![out.to_string()],
            attrs,
        });
    }

    /// A constant initializer, deduplicated by type, shape and bytes: `t` (its name is set
    /// here) or the equal one added before.
    fn constant(&mut self, mut t: Tensor) -> String {
        let key = format!("{:?}{:?}{:?}", t.elem, t.dims, t.raw);
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let ty = match t.elem {
            ElemType::Float => "f32",
            ElemType::Float16 => "f16",
            ElemType::Int64 => "i64",
        };
        t.name = format!("const.{ty}.{}", self.consts.len());
        let name = t.name.clone();
        self.graph.initializers.push(t);
        self.consts.insert(key, name.clone());
        name
    }

    /// An int64 constant.
    pub fn const_i64(&mut self, dims: &[i64], data: &[i64]) -> String {
        self.constant(Tensor::i64("", dims, data))
    }

    /// A 1-D int64 constant.
    pub fn ints(&mut self, data: &[i64]) -> String {
        self.const_i64(&[data.len() as i64], data)
    }

    /// An f32 constant.
    pub fn const_f32(&mut self, dims: &[i64], data: &[f32]) -> String {
        self.constant(Tensor::f32("", dims, data))
    }

    /// A scalar f32 constant.
    pub fn scalar(&mut self, v: f32) -> String {
        self.const_f32(&[], &[v])
    }

    /// A scalar constant of the activations' type (f32, or f16 in an FP16 graph).
    pub fn act_scalar(&mut self, v: f32) -> String {
        match self.act {
            ElemType::Float16 => self.constant(Tensor::f16("", &[], &[v])),
            _ => self.scalar(v),
        }
    }

    /// `x` (an f32 value) in the activations' type: itself, or a Cast to FP16.
    pub fn cast_act(&mut self, x: &str) -> String {
        self.cast(x, self.act)
    }

    /// `x` (an activation) as f32: itself, or a Cast from FP16.
    pub fn cast_f32(&mut self, x: &str) -> String {
        self.cast(x, ElemType::Float)
    }

    fn cast(&mut self, x: &str, to: ElemType) -> String {
        if self.act == ElemType::Float {
            return x.to_string();
        }
        self.op("Cast", &[x], vec![Attribute::int("to", to as i64)])
    }

    /// Appends `op_type` whose result is the f32 graph output `out`, and returns the value to
    /// use inside the graph: `out` itself, or (in an FP16 graph) the FP16 result that a Cast
    /// turns into `out`.
    pub fn op_out(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attrs: Vec<Attribute>,
        out: &str,
    ) -> String {
        if self.act == ElemType::Float {
            self.op_to(op_type, inputs, attrs, out);
            return out.to_string();
        }
        let y = self.op(op_type, inputs, attrs);
        let to = vec![Attribute::int("to", ElemType::Float as i64)];
        self.op_to("Cast", &[&y], to, out);
        y
    }

    /// The value holding weight `r` in the activations' type: a baked f32 initializer, or an
    /// FP16 graph input used as is. Each weight enters a graph once however often it is used.
    pub fn weight(&mut self, r: WRef) -> String {
        let model = self.model;
        let name = model.w_name(r).to_string();
        if let Some(v) = self.weights.get(&name) {
            return v.clone();
        }
        let dims: Vec<i64> = super::blob::tensor_shape(model, r)
            .iter()
            .map(|d| *d as i64)
            .collect();
        match self.mode {
            WeightMode::Baked => {
                self.graph
                    .initializers
                    .push(Tensor::f32(&name, &dims, model.w(r)))
            }
            WeightMode::Fp16Inputs => self.weight_inputs.push(ValueInfo {
                name: name.clone(),
                elem: ElemType::Float16,
                dims: dims.iter().map(|d| Dim::Value(*d)).collect(),
            }),
        }
        let value = name.clone();
        self.weights.insert(name, value.clone());
        value
    }

    /// The data inputs and outputs declared so far (weight inputs are kept apart until
    /// [`GraphBuilder::finish`]).
    pub fn data_io(&self) -> (Vec<DataTensor>, Vec<DataTensor>) {
        let conv = |v: &[ValueInfo]| -> Vec<DataTensor> {
            v.iter()
                .map(|t| DataTensor {
                    name: t.name.clone(),
                    dims: t
                        .dims
                        .iter()
                        .map(|d| match d {
                            Dim::Value(n) => usize::try_from(*n).ok(),
                            Dim::Param(_) => None,
                        })
                        .collect(),
                })
                .collect()
        };
        (conv(&self.graph.inputs), conv(&self.graph.outputs))
    }

    /// The finished graph: data inputs first, then weight inputs in the order first used.
    pub fn finish(mut self) -> Graph {
        self.graph.inputs.append(&mut self.weight_inputs);
        self.graph
    }
}

fn batched_value(name: &str, batch: Option<usize>, rest: &[usize]) -> ValueInfo {
    let mut dims = vec![batch.map_or(Dim::Param("batch".into()), |n| Dim::Value(n as i64))];
    dims.extend(rest.iter().map(|d| Dim::Value(*d as i64)));
    ValueInfo {
        name: name.to_string(),
        elem: ElemType::Float,
        dims,
    }
}
