//! A recording test double of [`ShimApi`] (compiled only for tests and feature `test-double`).
//!
//! It behaves like the shim where the backend's correctness depends on it: plans it was not
//! given are refused, unknown tensor names and misaligned addresses are rejected, device memory
//! smaller than the engine needs is rejected, and `enqueue` fails — as TensorRT does — while any
//! I/O tensor has no address or the context has no device memory. Every call is recorded, and any
//! call kind can be made to fail once, so orchestration code can be tested end to end.

use crate::{
    BuildOptions, ContextHandle, DevicePtr, EngineHandle, IoMode, IoTensor, Progress, RawStream,
    ShimApi, ShimError, TrtVersion,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// What an engine deserialized from a registered plan looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSpec {
    /// Its I/O tensors.
    pub io: Vec<IoTensor>,
    /// Its device-memory size.
    pub device_memory: u64,
}

/// One recorded call, with the arguments that matter to the backend's invariants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `deserialize` returned `engine` (or failed: `None`).
    Deserialize(Option<EngineHandle>),
    /// `engine_free`.
    EngineFree(EngineHandle),
    /// `engine_io`.
    EngineIo(EngineHandle),
    /// `engine_device_memory_size`.
    DeviceMemorySize(EngineHandle),
    /// `context_create` on an engine returned a context (or failed: `None`).
    ContextCreate(EngineHandle, Option<ContextHandle>),
    /// `context_free`.
    ContextFree(ContextHandle),
    /// `set_device_memory(ctx, mem, size)`.
    SetDeviceMemory(ContextHandle, DevicePtr, u64),
    /// `set_tensor_address(ctx, name, addr)`.
    SetTensorAddress(ContextHandle, String, DevicePtr),
    /// `set_input_shape(ctx, name, shape)`.
    SetInputShape(ContextHandle, String, Vec<i64>),
    /// `enqueue(ctx, stream)`.
    Enqueue(ContextHandle, RawStream),
    /// `build_from_onnx_file(path, options)`.
    Build(PathBuf, BuildOptions),
}

/// The kinds of call, for failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// `deserialize`.
    Deserialize,
    /// `engine_io`.
    EngineIo,
    /// `engine_device_memory_size`.
    DeviceMemorySize,
    /// `context_create`.
    ContextCreate,
    /// `set_device_memory`.
    SetDeviceMemory,
    /// `set_tensor_address`.
    SetTensorAddress,
    /// `set_input_shape`.
    SetInputShape,
    /// `enqueue`.
    Enqueue,
    /// `build_from_onnx_file`.
    Build,
}

#[derive(Default)]
struct ContextState {
    engine: usize,
    memory: Option<(DevicePtr, u64)>,
    addresses: BTreeMap<String, DevicePtr>,
}

#[derive(Default)]
struct State {
    plans: Vec<(Vec<u8>, EngineSpec)>,
    builds: HashMap<PathBuf, Vec<u8>>,
    engines: HashMap<usize, EngineSpec>,
    contexts: HashMap<usize, ContextState>,
    next_handle: usize,
    calls: Vec<Call>,
    /// Calls of a kind to let pass before one fails.
    fail: HashMap<CallKind, usize>,
}

/// The recording double. Cheap to create; one per test.
pub struct RecordingShim {
    version: TrtVersion,
    state: Mutex<State>,
}

/// Status codes the double returns (same numbers as `tinv_trt_status`).
const ERR_ARGUMENT: i32 = 1;
const ERR_TENSORRT: i32 = 4;
const ERR_UNKNOWN_TENSOR: i32 = 5;

fn err(function: &'static str, status: i32, message: impl Into<String>) -> ShimError {
    ShimError::Call {
        function,
        status,
        message: message.into(),
    }
}

impl RecordingShim {
    /// A double reporting TensorRT `version`.
    pub fn new(version: TrtVersion) -> RecordingShim {
        RecordingShim {
            version,
            state: Mutex::new(State {
                next_handle: 0x1000,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not hide this double's records.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `deserialize(plan)` will yield an engine described by `spec`.
    pub fn register_plan(&self, plan: &[u8], spec: EngineSpec) {
        self.state().plans.push((plan.to_vec(), spec));
    }

    /// `build_from_onnx_file(path, ..)` will return `plan`.
    pub fn register_build(&self, onnx: &Path, plan: &[u8]) {
        self.state()
            .builds
            .insert(onnx.to_path_buf(), plan.to_vec());
    }

    /// The next call of `kind` fails with a TensorRT error (once).
    pub fn fail_next(&self, kind: CallKind) {
        self.fail_nth(kind, 0);
    }

    /// After `skip` more successful calls of `kind`, the following one fails (once).
    pub fn fail_nth(&self, kind: CallKind, skip: usize) {
        self.state().fail.insert(kind, skip);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Engines deserialized and not yet freed.
    pub fn live_engines(&self) -> usize {
        self.state().engines.len()
    }

    /// Contexts created and not yet freed.
    pub fn live_contexts(&self) -> usize {
        self.state().contexts.len()
    }

    fn injected(st: &mut State, kind: CallKind, function: &'static str) -> Result<(), ShimError> {
        match st.fail.get_mut(&kind) {
            Some(0) => {
                st.fail.remove(&kind);
                Err(err(function, ERR_TENSORRT, "injected failure"))
            }
            Some(skip) => {
                *skip -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn engine_spec<'a>(
        st: &'a State,
        e: EngineHandle,
        function: &'static str,
    ) -> Result<&'a EngineSpec, ShimError> {
        st.engines.get(&e.0).ok_or_else(|| {
            err(
                function,
                ERR_ARGUMENT,
                format!("engine {:#x} is not live", e.0),
            )
        })
    }
}

impl ShimApi for RecordingShim {
    fn version(&self) -> TrtVersion {
        self.version
    }

    fn deserialize(&self, plan: &[u8]) -> Result<EngineHandle, ShimError> {
        let st = &mut *self.state();
        let found = st
            .plans
            .iter()
            .find(|(p, _)| p == plan)
            .map(|(_, s)| s.clone());
        let result = Self::injected(st, CallKind::Deserialize, "tinv_trt_engine_deserialize")
            .and_then(|()| {
                let spec = found.ok_or_else(|| {
                    err(
                        "tinv_trt_engine_deserialize",
                        ERR_TENSORRT,
                        "TensorRT could not deserialize the plan",
                    )
                })?;
                st.next_handle += 0x10;
                st.engines.insert(st.next_handle, spec);
                Ok(EngineHandle(st.next_handle))
            });
        st.calls
            .push(Call::Deserialize(result.as_ref().ok().copied()));
        result
    }

    fn engine_free(&self, engine: EngineHandle) {
        let st = &mut *self.state();
        st.calls.push(Call::EngineFree(engine));
        st.engines.remove(&engine.0);
    }

    fn engine_io(&self, engine: EngineHandle) -> Result<Vec<IoTensor>, ShimError> {
        let st = &mut *self.state();
        st.calls.push(Call::EngineIo(engine));
        Self::injected(st, CallKind::EngineIo, "tinv_trt_engine_io_info")?;
        Ok(Self::engine_spec(st, engine, "tinv_trt_engine_io_info")?
            .io
            .clone())
    }

    fn engine_device_memory_size(&self, engine: EngineHandle) -> Result<u64, ShimError> {
        let st = &mut *self.state();
        st.calls.push(Call::DeviceMemorySize(engine));
        Self::injected(
            st,
            CallKind::DeviceMemorySize,
            "tinv_trt_engine_device_memory_size",
        )?;
        Ok(Self::engine_spec(st, engine, "tinv_trt_engine_device_memory_size")?.device_memory)
    }

    fn context_create(&self, engine: EngineHandle) -> Result<ContextHandle, ShimError> {
        let st = &mut *self.state();
        let result = Self::injected(st, CallKind::ContextCreate, "tinv_trt_context_create")
            .and_then(|()| {
                Self::engine_spec(st, engine, "tinv_trt_context_create")?;
                st.next_handle += 0x10;
                st.contexts.insert(
                    st.next_handle,
                    ContextState {
                        engine: engine.0,
                        ..ContextState::default()
                    },
                );
                Ok(ContextHandle(st.next_handle))
            });
        st.calls
            .push(Call::ContextCreate(engine, result.as_ref().ok().copied()));
        result
    }

    fn context_free(&self, ctx: ContextHandle) {
        let st = &mut *self.state();
        st.calls.push(Call::ContextFree(ctx));
        st.contexts.remove(&ctx.0);
    }

    fn set_device_memory(
        &self,
        ctx: ContextHandle,
        mem: DevicePtr,
        size: u64,
    ) -> Result<(), ShimError> {
        const F: &str = "tinv_trt_context_set_device_memory";
        let st = &mut *self.state();
        st.calls.push(Call::SetDeviceMemory(ctx, mem, size));
        Self::injected(st, CallKind::SetDeviceMemory, F)?;
        let engine = st
            .contexts
            .get(&ctx.0)
            .ok_or_else(|| err(F, ERR_ARGUMENT, "context is not live"))?
            .engine;
        let needed = Self::engine_spec(st, EngineHandle(engine), F)?.device_memory;
        if mem == 0 || !mem.is_multiple_of(256) {
            return Err(err(
                F,
                ERR_ARGUMENT,
                "device memory is not 256-byte aligned",
            ));
        }
        if size < needed {
            return Err(err(
                F,
                ERR_ARGUMENT,
                format!("device memory of {size} bytes is smaller than the engine's {needed}"),
            ));
        }
        if let Some(c) = st.contexts.get_mut(&ctx.0) {
            c.memory = Some((mem, size));
        }
        Ok(())
    }

    fn set_tensor_address(
        &self,
        ctx: ContextHandle,
        name: &str,
        addr: DevicePtr,
    ) -> Result<(), ShimError> {
        const F: &str = "tinv_trt_context_set_tensor_address";
        let st = &mut *self.state();
        st.calls
            .push(Call::SetTensorAddress(ctx, name.to_string(), addr));
        Self::injected(st, CallKind::SetTensorAddress, F)?;
        let engine = st
            .contexts
            .get(&ctx.0)
            .ok_or_else(|| err(F, ERR_ARGUMENT, "context is not live"))?
            .engine;
        if !Self::engine_spec(st, EngineHandle(engine), F)?
            .io
            .iter()
            .any(|t| t.name == name)
        {
            return Err(err(
                F,
                ERR_UNKNOWN_TENSOR,
                format!("engine has no I/O tensor named {name}"),
            ));
        }
        if addr == 0 || !addr.is_multiple_of(256) {
            return Err(err(
                F,
                ERR_ARGUMENT,
                format!("address of tensor {name} is not 256-byte aligned"),
            ));
        }
        if let Some(c) = st.contexts.get_mut(&ctx.0) {
            c.addresses.insert(name.to_string(), addr);
        }
        Ok(())
    }

    fn set_input_shape(
        &self,
        ctx: ContextHandle,
        name: &str,
        shape: &[i64],
    ) -> Result<(), ShimError> {
        const F: &str = "tinv_trt_context_set_input_shape";
        let st = &mut *self.state();
        st.calls
            .push(Call::SetInputShape(ctx, name.to_string(), shape.to_vec()));
        Self::injected(st, CallKind::SetInputShape, F)?;
        let engine = st
            .contexts
            .get(&ctx.0)
            .ok_or_else(|| err(F, ERR_ARGUMENT, "context is not live"))?
            .engine;
        let spec = Self::engine_spec(st, EngineHandle(engine), F)?;
        let t = spec
            .io
            .iter()
            .find(|t| t.name == name && t.mode == IoMode::Input)
            .ok_or_else(|| {
                err(
                    F,
                    ERR_UNKNOWN_TENSOR,
                    format!("engine has no input tensor named {name}"),
                )
            })?;
        let fits = t.shape.len() == shape.len()
            && t.shape
                .iter()
                .zip(shape)
                .all(|(&d, &s)| s >= 0 && (d == -1 || d == s));
        if !fits {
            return Err(err(
                F,
                ERR_TENSORRT,
                format!("shape {shape:?} does not match {name}'s {:?}", t.shape),
            ));
        }
        Ok(())
    }

    fn enqueue(&self, ctx: ContextHandle, stream: RawStream) -> Result<(), ShimError> {
        const F: &str = "tinv_trt_context_enqueue";
        let st = &mut *self.state();
        st.calls.push(Call::Enqueue(ctx, stream));
        Self::injected(st, CallKind::Enqueue, F)?;
        if stream == 0 {
            return Err(err(F, ERR_ARGUMENT, "NULL context or default stream"));
        }
        let c = st
            .contexts
            .get(&ctx.0)
            .ok_or_else(|| err(F, ERR_ARGUMENT, "context is not live"))?;
        let spec = Self::engine_spec(st, EngineHandle(c.engine), F)?;
        if c.memory.is_none() {
            return Err(err(
                F,
                ERR_TENSORRT,
                "enqueueV3 failed: no device memory set",
            ));
        }
        if let Some(t) = spec.io.iter().find(|t| !c.addresses.contains_key(&t.name)) {
            return Err(err(
                F,
                ERR_TENSORRT,
                format!("enqueueV3 failed: Address is not set for tensor {}", t.name),
            ));
        }
        Ok(())
    }

    fn build_from_onnx_file(
        &self,
        onnx: &Path,
        opts: &BuildOptions,
        progress: Option<Progress<'_>>,
    ) -> Result<Vec<u8>, ShimError> {
        const F: &str = "tinv_trt_build_from_onnx_file";
        let plan = {
            let st = &mut *self.state();
            st.calls.push(Call::Build(onnx.to_path_buf(), opts.clone()));
            Self::injected(st, CallKind::Build, F)?;
            st.builds
                .get(onnx)
                .cloned()
                .ok_or_else(|| err(F, 9, format!("ONNX parser: cannot open {}", onnx.display())))?
        };
        // Report the same coarse phases the 8.x shim reports.
        if let Some(p) = progress {
            for phase in ["parse", "build"] {
                if !p(phase, -1, 1) || !p(phase, 1, 1) {
                    return Err(err(
                        F,
                        ERR_TENSORRT,
                        "build cancelled by the progress callback",
                    ));
                }
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
#[path = "double_tests.rs"]
mod tests;
