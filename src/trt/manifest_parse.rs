//! The line parser behind [`Manifest::parse`](super::Manifest::parse): one record per line,
//! each field checked, every required record present exactly once.

use super::super::TrtError;
use super::{
    DType, Engine, Gpu, IoMode, IoTensor, Layout, Manifest, PathEngines, Precision, TrtVersion,
    WeightBinding,
};

/// Accumulates fields while parsing; `finish` checks the required ones.
#[derive(Default)]
pub(super) struct Builder {
    model_hash: Option<u64>,
    export: Option<u32>,
    tensorrt: Option<TrtVersion>,
    gpu: Option<Gpu>,
    precision: Option<Precision>,
    layout: Option<Layout>,
    weights_bytes: Option<u64>,
    weights: Vec<WeightBinding>,
    engines: Vec<Engine>,
    paths: Vec<PathEngines>,
}

fn num(s: Option<&str>, what: &str) -> Result<u64, String> {
    let s = s.ok_or_else(|| format!("missing {what}"))?;
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("{what} {s:?} is not a number"))
}

fn dims(s: Option<&str>) -> Result<Vec<u64>, String> {
    let s = s.ok_or("missing shape")?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',').map(|d| num(Some(d), "dimension")).collect()
}

fn dtype(s: Option<&str>) -> Result<DType, String> {
    let s = s.ok_or("missing dtype")?;
    DType::parse(s).ok_or_else(|| format!("unknown dtype {s:?}"))
}

/// One name: what `to_text` can print back (no whitespace of any kind, no leading `#`).
fn word(s: Option<&str>, what: &str) -> Result<String, String> {
    let w = s
        .filter(|w| !w.is_empty())
        .ok_or_else(|| format!("missing {what}"))?;
    if w.chars().any(|c| c.is_whitespace() || c.is_control()) || w.starts_with('#') {
        return Err(format!(
            "{what} {w:?} contains whitespace or control characters"
        ));
    }
    Ok(w.to_string())
}

fn set<T>(slot: &mut Option<T>, v: T, key: &str) -> Result<(), String> {
    if slot.replace(v).is_some() {
        return Err(format!("duplicate `{key}`"));
    }
    Ok(())
}

impl Builder {
    pub(super) fn line(&mut self, line: &str) -> Result<(), String> {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut f = rest.split(' ');
        match key {
            "model_hash" => set(&mut self.model_hash, num(f.next(), "model_hash")?, key)?,
            "export" => {
                let v = num(f.next(), "export version")?;
                let v = u32::try_from(v).map_err(|_| format!("export version {v} too large"))?;
                set(&mut self.export, v, key)?
            }
            "tensorrt" => {
                let v: Vec<u64> = rest
                    .split('.')
                    .map(|p| num(Some(p), "version part"))
                    .collect::<Result<_, _>>()?;
                let [major, minor, patch] = v.as_slice() else {
                    return Err(format!("version {rest:?} is not M.m.p"));
                };
                let part =
                    |x: u64| u32::try_from(x).map_err(|_| format!("version part {x} too large"));
                let v = TrtVersion {
                    major: part(*major)?,
                    minor: part(*minor)?,
                    patch: part(*patch)?,
                };
                return set(&mut self.tensorrt, v, key);
            }
            "gpu" => {
                let (cc, rest) = rest.split_once(' ').ok_or("gpu needs `M.m SMS NAME`")?;
                let (sms, name) = rest.split_once(' ').ok_or("gpu needs `M.m SMS NAME`")?;
                let sms = u32::try_from(num(Some(sms), "SM count")?)
                    .map_err(|_| format!("SM count {sms} too large"))?;
                if name.is_empty() || name.chars().any(char::is_control) {
                    return Err(format!(
                        "gpu name {name:?} is empty or has control characters"
                    ));
                }
                let (a, b) = cc.split_once('.').ok_or("compute capability must be M.m")?;
                let part = |x: &str| {
                    x.parse::<u32>()
                        .map_err(|_| format!("compute capability {cc:?} is invalid"))
                };
                let gpu = Gpu {
                    name: name.to_string(),
                    compute_capability: (part(a)?, part(b)?),
                    sms,
                };
                return set(&mut self.gpu, gpu, key);
            }
            "precision" => {
                let p = match rest {
                    "fp32" => Precision::Fp32,
                    "fp16" => Precision::Fp16,
                    _ => return Err(format!("unknown precision {rest:?}")),
                };
                return set(&mut self.precision, p, key);
            }
            "layout" => {
                let l = match rest {
                    "per-path" => Layout::PerPath,
                    "segments" => Layout::Segments,
                    _ => return Err(format!("unknown layout {rest:?}")),
                };
                return set(&mut self.layout, l, key);
            }
            "weights_bytes" => set(
                &mut self.weights_bytes,
                num(f.next(), "weights_bytes")?,
                key,
            )?,
            "weight" => {
                let name = word(f.next(), "weight name")?;
                let dtype = dtype(f.next())?;
                let offset = num(f.next(), "offset")?;
                let bytes = num(f.next(), "byte length")?;
                let shape = dims(f.next())?;
                self.weights.push(WeightBinding {
                    name,
                    dtype,
                    offset,
                    bytes,
                    shape,
                });
            }
            "engine" => {
                let name = word(f.next(), "engine name")?;
                let plan = word(f.next(), "plan file")?;
                let device_memory = num(f.next(), "device memory")?;
                let plan_hash = num(f.next(), "plan hash")?;
                self.engines.push(Engine {
                    name,
                    plan,
                    device_memory,
                    plan_hash,
                    io: Vec::new(),
                });
            }
            "io" => {
                let engine = word(f.next(), "engine name")?;
                let mode = match f.next() {
                    Some("input") => IoMode::Input,
                    Some("output") => IoMode::Output,
                    m => return Err(format!("I/O mode {m:?} must be input or output")),
                };
                let dtype = dtype(f.next())?;
                let shape = dims(f.next())?;
                let name = word(f.next(), "tensor name")?;
                let e = self.engines.last_mut().filter(|e| e.name == engine);
                let e = e.ok_or_else(|| {
                    format!("`io` for engine {engine} does not follow its `engine` line")
                })?;
                e.io.push(IoTensor {
                    name,
                    mode,
                    dtype,
                    shape,
                });
            }
            "path" => {
                let depth = num(f.next(), "depth")?;
                let depth = u32::try_from(depth).map_err(|_| format!("depth {depth} too large"))?;
                let engines = word(f.next(), "engine list")?
                    .split(',')
                    .map(str::to_string)
                    .collect();
                self.paths.push(PathEngines { depth, engines });
            }
            _ => return Err(format!("unknown record `{key}`")),
        }
        if f.next().is_some() {
            return Err(format!("trailing fields in `{key}` record"));
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<Manifest, TrtError> {
        let missing = |k: &str| TrtError::Manifest(format!("missing `{k}` record"));
        Ok(Manifest {
            model_hash: self.model_hash.ok_or_else(|| missing("model_hash"))?,
            export: self.export.ok_or_else(|| missing("export"))?,
            tensorrt: self.tensorrt.ok_or_else(|| missing("tensorrt"))?,
            gpu: self.gpu.ok_or_else(|| missing("gpu"))?,
            precision: self.precision.ok_or_else(|| missing("precision"))?,
            layout: self.layout.ok_or_else(|| missing("layout"))?,
            weights_bytes: self.weights_bytes.ok_or_else(|| missing("weights_bytes"))?,
            weights: self.weights,
            engines: self.engines,
            paths: self.paths,
        })
    }
}
