//! The model: a validated, memory-mapped `.tinv` file with its configuration, the weight views
//! every backend reads, and the FLOPs of each path. Shared and read-only (`Send + Sync`).

mod bind;
mod config;
pub mod flops;
mod weights;

pub use config::{Config, ControllerConfig, Gelu};
pub use flops::PathCost;
pub use weights::{BlockW, CtrlW, ExitW, StemW, WRef};

use crate::control::{feature_len, FEATURES_V1};
use crate::error::{Error, Result};
use crate::format::{self, Index};
use bind::{check_pages, Binder};
use std::path::{Path, PathBuf};

/// Identifies each model of this process, for [`WRef`]s.
static NEXT_MODEL_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Where a tensor's f32 values live.
struct Slot {
    name: String,
    /// Byte offset in the file.
    offset: usize,
    /// Bytes in the file.
    file_bytes: usize,
    /// Elements.
    len: usize,
    /// Stored as f16 (read through `widened`); f32 tensors are read straight from the mapping.
    f16: bool,
    /// An f16 tensor's f32 copy, made once: at load for the controller, by
    /// [`Model::widen_host`] (a CPU session) or the first [`Model::w`] for the rest.
    widened: std::sync::OnceLock<Box<[f32]>>,
}

/// The values of f16 little-endian bytes.
fn f16_values(raw: &[u8]) -> impl Iterator<Item = f32> + '_ {
    raw.chunks_exact(2)
        .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
}

/// Tensor `name`'s f16 bytes as f32 values, the copy reserved fallibly: a copy the machine
/// cannot hold is [`Error::OutOfMemory`], not an abort.
fn widen_f16(path: &Path, name: &str, raw: &[u8]) -> Result<Box<[f32]>> {
    let mut wide: Vec<f32> = Vec::new();
    wide.try_reserve_exact(raw.len() / 2).map_err(|_| {
        Error::OutOfMemory(format!(
            "{}: tensor '{name}' needs {} bytes as f32",
            path.display(),
            raw.len() * 2
        ))
    })?;
    wide.extend(f16_values(raw));
    Ok(wide.into_boxed_slice())
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Anon(memmap2::MmapMut),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Anon(m) => m,
        }
    }
}

/// Options for opening a model.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Recompute every tensor checksum (reads every page once) and compare each device-section
    /// copy with the f16 rounding of its host tensor (a mismatch is an [`Error::Model`]).
    pub verify: bool,
}

impl OpenOptions {
    /// Sets [`OpenOptions::verify`]: `OpenOptions::default().verify(true)`.
    pub fn verify(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }
}

/// A validated model, shared read-only by every session.
pub struct Model {
    id: u32,
    path: PathBuf,
    bytes: Bytes,
    index: Index,
    config: Config,
    slots: Vec<Slot>,
    stem: StemW,
    blocks: Vec<BlockW>,
    exits: Vec<ExitW>,
    ctrl: Option<CtrlW>,
    costs: Vec<PathCost>,
    /// TensorRT engines opened for this model (weights uploaded once, shared by sessions).
    #[cfg(feature = "tensorrt")]
    trt: std::sync::Mutex<Option<(PathBuf, std::sync::Arc<crate::trt::backend::TrtModel>)>>,
}

/// The file and its shape, not the bytes.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("dim", &c.dim)
            .field("blocks", &c.blocks)
            .field("depths", &c.depths)
            .field("classes", &c.classes)
            .field("controller", &self.ctrl.is_some())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Memory-maps and validates `path`.
    ///
    /// Contract: the file must not be modified or truncated while the model is alive (the
    /// mapping would change under the runtime; truncation raises SIGBUS). Replace model files by
    /// writing a new file and renaming it, as `tinv-fold` does; where that cannot be ensured,
    /// read the file and use [`Model::from_bytes`], which keeps its own copy.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Model> {
        let path = path.as_ref().to_path_buf();
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        // Checked before opening (opening a device may have effects of its own), and again on
        // the opened file, which a rename may have swapped in between.
        let file = crate::files::open_checked(&path, not_a_model).map_err(io)?;
        // SAFETY: sound only while nothing modifies or truncates the file during the model's
        // life, which no type here can enforce: another process writing it would change bytes
        // behind a `&[u8]`, truncating it raises SIGBUS. That is the contract documented on
        // this function (the trade every mmap loader makes, safetensors' and llama.cpp's too);
        // `from_bytes` is the copying alternative. Within it, the mapping is read-only and every
        // read goes through the validated index.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| {
            // A file the kernel serves but cannot map (/proc, some network file systems) said
            // only "No such device".
            io(std::io::Error::new(
                e.kind(),
                format!("cannot be memory-mapped ({e}); copy it to a local file system"),
            ))
        })?;
        Self::from_storage(path, Bytes::Mapped(map), opts)
    }

    /// Validates a model held in memory (copied into a page-aligned buffer).
    pub fn from_bytes(bytes: &[u8], opts: &OpenOptions) -> Result<Model> {
        let path = PathBuf::from("<memory>");
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut anon = memmap2::MmapMut::map_anon(bytes.len().max(1)).map_err(io)?;
        anon[..bytes.len()].copy_from_slice(bytes);
        let anon = if bytes.is_empty() {
            memmap2::MmapMut::map_anon(0).map_err(io)?
        } else {
            anon
        };
        Self::from_storage(path, Bytes::Anon(anon), opts)
    }

    fn from_storage(path: PathBuf, bytes: Bytes, opts: &OpenOptions) -> Result<Model> {
        let ferr = |error| Error::Format {
            path: path.clone(),
            error,
        };
        let merr = |detail: String| Error::Model {
            path: path.clone(),
            detail,
        };
        let index = format::parse(&bytes).map_err(ferr)?;
        if opts.verify {
            index.verify(&bytes).map_err(ferr)?;
        }
        // Mappings are page-aligned and tensor offsets 256-aligned, so f32 views are aligned.
        if !(bytes.as_ptr() as usize).is_multiple_of(format::ALIGNMENT as usize) {
            return Err(merr(
                "model bytes are not 256-byte aligned in memory".into(),
            ));
        }
        let config = Config::from_meta(&index.meta).map_err(merr)?;
        let id = NEXT_MODEL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut b = Binder {
            path: &path,
            index: &index,
            bytes: &bytes,
            slots: Vec::new(),
            model: id,
        };
        let c = &config;
        let (d, k, p) = (c.dim, c.classes, c.patch);
        let stem = StemW {
            patch_w: b.bind("stem.patch.weight", &[c.channels * p * p, d])?,
            patch_b: b.bind("stem.patch.bias", &[d])?,
            cls: b.bind("stem.cls", &[d])?,
            pos: b.bind("stem.pos", &[c.patches(), d])?,
        };
        let mut blocks = Vec::with_capacity(c.blocks);
        for i in 0..c.blocks {
            let n = |s: &str| format!("blk.{i}.{s}");
            blocks.push(BlockW {
                qkv_w: b.bind(&n("qkv.weight"), &[d, 3 * d])?,
                qkv_b: b.bind(&n("qkv.bias"), &[3 * d])?,
                proj_w: b.bind(&n("proj.weight"), &[d, d])?,
                proj_b: b.bind(&n("proj.bias"), &[d])?,
                fc1_w: b.bind(&n("fc1.weight"), &[d, c.mlp_hidden])?,
                fc1_b: b.bind(&n("fc1.bias"), &[c.mlp_hidden])?,
                fc2_w: b.bind(&n("fc2.weight"), &[c.mlp_hidden, d])?,
                fc2_b: b.bind(&n("fc2.bias"), &[d])?,
            });
        }
        let mut exits = Vec::with_capacity(c.depths.len());
        for depth in &c.depths {
            exits.push(ExitW {
                w: b.bind(&format!("exit.{depth}.head.weight"), &[d, k])?,
                b: b.bind(&format!("exit.{depth}.head.bias"), &[k])?,
            });
        }
        let ctrl = match &c.controller {
            None => None,
            Some(cc) => {
                if cc.features != FEATURES_V1 {
                    return Err(merr(format!(
                        "ctrl.features '{}' is not supported (this build knows '{FEATURES_V1}')",
                        cc.features
                    )));
                }
                Some(b.bind_ctrl(feature_len(c.channels), c.depths.len())?)
            }
        };
        let slots = b.slots;
        bind::check_unbound(&index, &bytes, &slots, ctrl.is_some(), opts.verify).map_err(merr)?;
        let costs = flops::path_costs(&config);
        let model = Model {
            id,
            path,
            bytes,
            index,
            config,
            slots,
            stem,
            blocks,
            exits,
            ctrl,
            costs,
            #[cfg(feature = "tensorrt")]
            trt: std::sync::Mutex::new(None),
        };
        check_pages(&model).map_err(|detail| Error::Model {
            path: model.path.clone(),
            detail,
        })?;
        Ok(model)
    }

    /// The TensorRT engines of `dir` for this model, opened (and the weights uploaded) once and
    /// shared by every session.
    #[cfg(feature = "tensorrt")]
    pub(crate) fn trt_model(
        &self,
        dir: &Path,
        open: impl FnOnce() -> Result<std::sync::Arc<crate::trt::backend::TrtModel>>,
    ) -> Result<std::sync::Arc<crate::trt::backend::TrtModel>> {
        let mut slot = self.trt.lock().map_err(|_| {
            Error::Backend("a thread panicked while opening TensorRT engines".into())
        })?;
        // Keyed by the absolute folder: the C ABI decides the backend with the folder as the
        // model's path gives it (relative, perhaps) and opens sessions with it made absolute;
        // compared as given, every session reopened the engines and uploaded the weights again.
        let key = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        if let Some((d, m)) = slot.as_ref() {
            if *d == key {
                return Ok(m.clone());
            }
        }
        let m = open()?;
        *slot = Some((key, m.clone()));
        Ok(m)
    }

    /// The file this model was opened from (`<memory>` for in-memory models).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The validated file index (metadata and tensor table).
    pub fn index(&self) -> &Index {
        &self.index
    }
    /// Content hash of the tensors (docs/FORMAT.md): the stored `tinv.content_hash`, which the
    /// parser checked against the table, or the table's own when the file has no such key.
    pub fn content_hash(&self) -> u64 {
        self.index.content_hash()
    }

    /// What TensorRT engines and exported ONNX graphs are matched on: the content hash and the
    /// configuration the graphs bake in (normalization, ε, GELU, heads, image size, paths), so a
    /// file re-folded with another `--std` or `--gelu` over the same tensors does not reuse
    /// engines built for the old one. FNV-1a over `tinv-model-v1`, the content hash (8 bytes
    /// LE), then the configuration's metadata entries (`Config::to_meta`) encoded as the file
    /// stores metadata.
    pub fn model_hash(&self) -> u64 {
        let mut m = format::Metadata::new();
        self.config.to_meta(&mut m);
        let h = format::fnv1a64_continue(
            format::fnv1a64(b"tinv-model-v1"),
            &self.content_hash().to_le_bytes(),
        );
        format::fnv1a64_continue(h, &format::encode_meta(&m))
    }
    /// The stem's weights.
    pub fn stem(&self) -> &StemW {
        &self.stem
    }
    /// Block `i`'s weights (0-based).
    pub fn blocks(&self) -> &[BlockW] {
        &self.blocks
    }
    /// Exit heads, one per path.
    pub fn exits(&self) -> &[ExitW] {
        &self.exits
    }
    /// Controller weights, if any.
    pub fn ctrl(&self) -> Option<&CtrlW> {
        self.ctrl.as_ref()
    }
    /// Cost of each path (FLOPs, weight bytes).
    pub fn costs(&self) -> &[PathCost] {
        &self.costs
    }

    /// The slot of `r`, if `r` is one of this model's handles.
    #[inline]
    fn slot(&self, r: WRef) -> Option<&Slot> {
        if r.model == self.id {
            self.slots.get(r.slot as usize)
        } else {
            None
        }
    }

    /// The f32 values of a tensor (empty for a handle of another model). An f16 tensor not yet
    /// widened is widened here, once, with an allocation that aborts the process if refused:
    /// call [`Model::widen_host`] first to get [`Error::OutOfMemory`] instead (CPU sessions
    /// do).
    #[inline]
    pub fn w(&self, r: WRef) -> &[f32] {
        match self.slot(r) {
            Some(s) if s.f16 => s.widened.get_or_init(|| {
                f16_values(&self.bytes[s.offset..s.offset + s.file_bytes]).collect()
            }),
            // Offsets and lengths were validated at open; the base is 256-byte aligned.
            Some(s) => bytemuck::cast_slice(&self.bytes[s.offset..s.offset + s.file_bytes]),
            None => &[],
        }
    }

    /// Widens every f16 tensor to its f32 copy on the host, once (later calls return at once):
    /// what the CPU backend reads. A model opened for TensorRT never needs it, since the engines
    /// read the device section, so opening does not do it. Sessions on the CPU call it when they
    /// open; an allocation the machine refuses is [`Error::OutOfMemory`], and the tensors widened
    /// before it stay widened. Threads that call it at once may each widen a tensor; one copy
    /// is kept, the others dropped.
    pub fn widen_host(&self) -> Result<()> {
        for s in self.slots.iter().filter(|s| s.f16) {
            if s.widened.get().is_some() {
                continue;
            }
            let raw = &self.bytes[s.offset..s.offset + s.file_bytes];
            let wide = widen_f16(&self.path, &s.name, raw)?;
            // Another thread may have widened it meanwhile: then its copy stays, the same values.
            let _ = s.widened.set(wide);
        }
        Ok(())
    }

    /// Bytes of host memory the f32 copies of f16 tensors hold now (0 for an f32 model, and
    /// for an f16 one until the backbone is widened: see [`Model::widen_host`]).
    pub fn host_copy_bytes(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.widened.get())
            .map(|w| w.len() * 4)
            .sum()
    }

    /// The stored bytes of any tensor of the file by name (e.g. the device section's
    /// `dev.<name>` f16 copies the TensorRT backend uploads), or `None` if absent.
    pub fn raw_tensor(&self, name: &str) -> Option<&[u8]> {
        let t = self.index.tensor(name)?;
        self.bytes.get(t.offset..t.offset + t.nbytes)
    }

    /// Whether the model maps a file ([`Model::open`]) rather than holding a copy of bytes
    /// ([`Model::from_bytes`], whose path is `<memory>`).
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped(_))
    }

    /// Releases the resident host pages of the device section (FORMAT.md, flag bit 0) once the
    /// TensorRT backend has uploaded it: on a Jetson, CPU and GPU share memory, so otherwise the
    /// weights would be there twice. Returns the bytes advised away (0 when there is no device
    /// section, or for a model read with [`Model::from_bytes`], whose private copy cannot be
    /// refilled). A later read refaults the same bytes from the file.
    pub fn release_device_section(&self) -> usize {
        let dev = self
            .index
            .tensors
            .iter()
            .filter(|t| t.flags & format::FLAG_DEVICE != 0);
        let Some(start) = dev.map(|t| t.offset).min() else {
            return 0;
        };
        let Bytes::Mapped(map) = &self.bytes else {
            return 0;
        };
        // The section starts on a fresh page after every host tensor (checked at open,
        // `bind::check_pages`), so no host tensor shares its pages; checked again here because
        // madvise works on whole pages and a mistake would drop host pages.
        if !start.is_multiple_of(format::PAGE as usize) || start >= map.len() {
            return 0;
        }
        let len = map.len() - start;
        // SAFETY: `map` is a shared, read-only mapping of the model file, so MADV_DONTNEED only
        // drops this process's copies of the pages and any later access refills them from the
        // file: the same bytes, under the contract of `Model::open` (the file is not modified
        // while mapped). Nothing is written through the mapping. The range lies inside it.
        let advised =
            unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
        if advised.is_ok() {
            len
        } else {
            0
        }
    }

    /// Name of a tensor (empty for a handle of another model).
    pub fn w_name(&self, r: WRef) -> &str {
        self.slot(r).map_or("", |s| &s.name)
    }

    /// Byte range of a tensor in the file (empty for a handle of another model).
    pub fn w_file_range(&self, r: WRef) -> std::ops::Range<usize> {
        self.slot(r)
            .map_or(0..0, |s| s.offset..s.offset + s.file_bytes)
    }

    /// Number of elements of a tensor (0 for a handle of another model).
    pub fn w_len(&self, r: WRef) -> usize {
        self.slot(r).map_or(0, |s| s.len)
    }

    /// Every backbone tensor path `k` (index into `depths`) reads, in execution order: stem,
    /// blocks, exit head. Empty when `k` is not a path. What the controller reads on top depends
    /// on the mode: [`CtrlW::tensors`].
    pub fn path_tensors(&self, k: usize) -> Vec<WRef> {
        let (Some(&depth), Some(exit)) = (self.config.depths.get(k), self.exits.get(k)) else {
            return Vec::new();
        };
        let mut v = self.stem.tensors().to_vec();
        for b in self.blocks.iter().take(depth) {
            v.extend(b.tensors());
        }
        v.extend(exit.tensors());
        v
    }
}

/// Only regular files are models: opening a FIFO blocks until a writer comes, and mapping a
/// directory fails with ENODEV ("No such device"), which sends users looking for a missing
/// device.
fn not_a_model(kind: std::fs::FileType) -> std::io::Result<()> {
    if kind.is_file() {
        return Ok(());
    }
    let why = if kind.is_dir() {
        "is a directory, not a .tinv file"
    } else {
        "is not a regular file (a device, FIFO or socket), not a .tinv file"
    };
    Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why))
}

#[cfg(test)]
mod tests;
