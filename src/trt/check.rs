//! Checks of a [`Manifest`]: its own consistency ([`Manifest::validate`]) and whether its plans
//! can run here ([`Manifest::check`]). A mismatch names the field and points at `tinv-run build`;
//! nothing rebuilds behind the user's back.

use super::manifest::{Gpu, IoMode, Layout, Manifest, Precision, TrtVersion};
use super::{TrtError, ALIGN};
use std::collections::{HashMap, HashSet};

/// What the plans must match: the model being opened, the TensorRT library loaded, the GPU in
/// use, and (optionally) what the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// [`crate::Model::model_hash`] of the `.tinv` being opened.
    pub model_hash: u64,
    /// [`crate::onnx::EXPORT_VERSION`] of this tinv.
    pub export: u32,
    /// The TensorRT library loaded now.
    pub tensorrt: TrtVersion,
    /// The GPU in use.
    pub gpu: Gpu,
    /// The model's path depths (`paths.depths`).
    pub depths: Vec<u32>,
    /// A layout the caller insists on, if any.
    pub layout: Option<Layout>,
    /// A precision the caller insists on, if any.
    pub precision: Option<Precision>,
}

fn invalid(msg: String) -> TrtError {
    TrtError::Manifest(msg)
}

impl Manifest {
    /// Structural checks: unique names, static positive shapes, a weight table that is aligned,
    /// in bounds and free of overlap, weight inputs that agree with it, and paths that name
    /// existing engines in ascending depth order.
    pub fn validate(&self) -> Result<(), TrtError> {
        let mut names = HashSet::new();
        for e in &self.engines {
            if !names.insert(e.name.as_str()) {
                return Err(invalid(format!("engine {} is listed twice", e.name)));
            }
            if e.io.is_empty() {
                return Err(invalid(format!("engine {} has no I/O tensors", e.name)));
            }
            // A `path` record lists its engines separated by commas: written, `a,b` read back
            // as two unknown engines. Checked here, so the parser refuses what the writer does.
            if e.name.contains(',') {
                return Err(invalid(format!(
                    "engine name {:?} holds a comma, which separates a path's engines",
                    e.name
                )));
            }
            // Plans are read from the manifest's own folder: a path would reach outside it.
            if e.plan.contains(['/', '\\']) || e.plan == "." || e.plan == ".." {
                return Err(invalid(format!(
                    "engine {}'s plan {:?} must be a file name in the manifest's folder",
                    e.name, e.plan
                )));
            }
            let mut io_names = HashSet::new();
            for t in &e.io {
                if !io_names.insert(t.name.as_str()) {
                    return Err(invalid(format!(
                        "engine {} lists tensor {} twice",
                        e.name, t.name
                    )));
                }
                if t.shape.contains(&0) {
                    return Err(invalid(format!(
                        "tensor {} of engine {} has a zero dimension",
                        t.name, e.name
                    )));
                }
            }
        }
        self.validate_weights()?;
        let mut last = 0u32;
        for p in &self.paths {
            if p.depth <= last {
                return Err(invalid(format!(
                    "path depths must ascend from 1 (depth {} after {last})",
                    p.depth
                )));
            }
            last = p.depth;
            // `to_text` would write a record `parse` refuses ("missing engine list").
            if p.engines.is_empty() {
                return Err(invalid(format!("path {} runs no engine", p.depth)));
            }
            if let Some(missing) = p.engines.iter().find(|n| !names.contains(n.as_str())) {
                return Err(invalid(format!(
                    "path {} names unknown engine {missing}",
                    p.depth
                )));
            }
        }
        if self.paths.is_empty() {
            return Err(invalid("no `path` records".into()));
        }
        Ok(())
    }

    fn validate_weights(&self) -> Result<(), TrtError> {
        if self.layout == Layout::Segments && !self.weights.is_empty() {
            return Err(invalid(
                "layout segments keeps weights as engine constants; the weight table must be empty"
                    .into(),
            ));
        }
        let mut by_name = HashMap::new();
        for w in &self.weights {
            let expect = w
                .shape
                .iter()
                .try_fold(w.dtype.size(), |a, &d| a.checked_mul(d));
            if expect != Some(w.bytes) || w.shape.contains(&0) {
                return Err(invalid(format!(
                    "weight {}: {} bytes do not match shape {:?} × {}",
                    w.name,
                    w.bytes,
                    w.shape,
                    w.dtype.name()
                )));
            }
            if !w.offset.is_multiple_of(ALIGN) {
                return Err(invalid(format!(
                    "weight {} at offset {} is not 256-byte aligned",
                    w.name, w.offset
                )));
            }
            let end = w
                .offset
                .checked_add(w.bytes)
                .filter(|&end| end <= self.weights_bytes);
            if end.is_none() {
                return Err(invalid(format!(
                    "weight {} ends past weights_bytes {}",
                    w.name, self.weights_bytes
                )));
            }
            if by_name.insert(w.name.as_str(), w).is_some() {
                return Err(invalid(format!("weight {} is listed twice", w.name)));
            }
        }
        let mut sorted: Vec<_> = self.weights.iter().collect();
        sorted.sort_by_key(|w| w.offset);
        for pair in sorted.windows(2) {
            if let [a, b] = pair {
                if a.offset + a.bytes > b.offset {
                    return Err(invalid(format!(
                        "weights {} and {} overlap",
                        a.name, b.name
                    )));
                }
            }
        }
        // Every engine input named like a weight must be exactly that weight.
        for e in &self.engines {
            for t in e.io.iter().filter(|t| t.mode == IoMode::Input) {
                let Some(w) = by_name.get(t.name.as_str()) else {
                    continue;
                };
                if w.dtype != t.dtype || w.shape != t.shape {
                    return Err(TrtError::Plan(format!(
                        "engine {} input {} is {} {:?} but the weight table has {} {:?}",
                        e.name,
                        t.name,
                        t.dtype.name(),
                        t.shape,
                        w.dtype.name(),
                        w.shape
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether these plans can run here. Checks, in order: `model_hash`, `tensorrt` (exact
    /// major.minor.patch: plans are version-locked), `gpu` compute capability, `gpu` name,
    /// `paths` (the model's depths), then `layout` and `precision` when the caller insists.
    pub fn check(&self, here: &Expected) -> Result<(), TrtError> {
        let mismatch =
            |field, built: String, here: String| Err(TrtError::Mismatch { field, built, here });
        if self.model_hash != here.model_hash {
            return mismatch(
                "model_hash",
                format!("{:#018x}", self.model_hash),
                format!("{:#018x}", here.model_hash),
            );
        }
        if self.export != here.export {
            return mismatch(
                "export",
                format!("graphs of export version {}", self.export),
                format!("export version {}", here.export),
            );
        }
        if self.tensorrt != here.tensorrt {
            return mismatch(
                "tensorrt",
                self.tensorrt.to_string(),
                here.tensorrt.to_string(),
            );
        }
        let cc = |g: &Gpu| {
            format!(
                "compute capability {}.{}",
                g.compute_capability.0, g.compute_capability.1
            )
        };
        if self.gpu.compute_capability != here.gpu.compute_capability {
            return mismatch("gpu", cc(&self.gpu), cc(&here.gpu));
        }
        if self.gpu.name != here.gpu.name {
            return mismatch(
                "gpu",
                format!("{:?}", self.gpu.name),
                format!("{:?}", here.gpu.name),
            );
        }
        if self.gpu.sms != here.gpu.sms {
            return mismatch(
                "gpu",
                format!("{} SMs", self.gpu.sms),
                format!("{} SMs", here.gpu.sms),
            );
        }
        let depths: Vec<u32> = self.paths.iter().map(|p| p.depth).collect();
        if depths != here.depths {
            return mismatch("paths", format!("{depths:?}"), format!("{:?}", here.depths));
        }
        if let Some(layout) = here.layout.filter(|&l| l != self.layout) {
            return mismatch("layout", self.layout.name().into(), layout.name().into());
        }
        if let Some(precision) = here.precision.filter(|&p| p != self.precision) {
            return mismatch(
                "precision",
                self.precision.name().into(),
                precision.name().into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::sample;
    use super::super::manifest::DType;
    use super::*;

    fn here() -> Expected {
        let m = sample();
        Expected {
            model_hash: m.model_hash,
            export: m.export,
            tensorrt: m.tensorrt,
            gpu: m.gpu,
            depths: vec![1, 2],
            layout: None,
            precision: None,
        }
    }

    fn field_of(r: Result<(), TrtError>) -> &'static str {
        match r {
            Err(TrtError::Mismatch { field, .. }) => field,
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }

    #[test]
    fn matching_environment_passes() {
        sample().validate().unwrap();
        sample().check(&here()).unwrap();
    }

    #[test]
    fn each_mismatch_names_its_field_and_the_fix() {
        let m = sample();
        let cases: Vec<(&str, Expected)> = vec![
            (
                "model_hash",
                Expected {
                    model_hash: 1,
                    ..here()
                },
            ),
            (
                "tensorrt",
                Expected {
                    tensorrt: TrtVersion {
                        major: 8,
                        minor: 5,
                        patch: 3,
                    },
                    ..here()
                },
            ),
            (
                "gpu",
                Expected {
                    gpu: Gpu {
                        name: "Xavier".into(),
                        compute_capability: (8, 7),
                        sms: 8,
                    },
                    ..here()
                },
            ),
            (
                "gpu",
                Expected {
                    gpu: Gpu {
                        name: "Orin".into(),
                        compute_capability: (7, 2),
                        sms: 8,
                    },
                    ..here()
                },
            ),
            (
                "gpu",
                Expected {
                    gpu: Gpu {
                        sms: 4,
                        ..sample().gpu
                    },
                    ..here()
                },
            ),
            (
                "export",
                Expected {
                    export: 1,
                    ..here()
                },
            ),
            (
                "paths",
                Expected {
                    depths: vec![1, 2, 3],
                    ..here()
                },
            ),
            (
                "layout",
                Expected {
                    layout: Some(Layout::Segments),
                    ..here()
                },
            ),
            (
                "precision",
                Expected {
                    precision: Some(Precision::Fp32),
                    ..here()
                },
            ),
        ];
        for (field, expected) in cases {
            let r = m.check(&expected);
            let text = r
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert_eq!(field_of(r), field);
            assert!(
                text.contains(&format!("`{field}`")) && text.contains("`tinv-run build`"),
                "{text}"
            );
        }
        let t = m.check(&Expected {
            tensorrt: TrtVersion {
                major: 10,
                minor: 3,
                patch: 0,
            },
            ..here()
        });
        assert_eq!(
            t.unwrap_err().to_string(),
            "engine manifest field `tensorrt` is 8.5.2 but here it is 10.3.0: run `tinv-run build` to rebuild the engines"
        );
    }

    #[test]
    fn weight_table_errors_are_caught() {
        let mut m = sample();
        m.weights[1].offset = 8000; // not a multiple of 256
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not 256-byte aligned"));
        let mut m = sample();
        m.weights[1].offset = 7936; // aligned, but 7936 < 0 + 8192: overlaps the matrix
        assert!(m.validate().unwrap_err().to_string().contains("overlap"));
        let mut m = sample();
        m.weights_bytes = 8300; // bias ends at 8320
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ends past weights_bytes"));
        let mut m = sample();
        m.weights[0].bytes = 8190;
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("do not match shape"));
        let mut m = sample();
        m.engines[1].io[2].dtype = DType::F32; // bias input declared f32, table says f16
        assert!(matches!(m.validate(), Err(TrtError::Plan(_))));
        let mut m = sample();
        m.layout = Layout::Segments;
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must be empty"));
    }

    #[test]
    fn path_errors_are_caught() {
        let mut m = sample();
        m.paths[1].engines = vec!["path9".into()];
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown engine path9"));
        let mut m = sample();
        m.paths.swap(0, 1);
        assert!(m.validate().unwrap_err().to_string().contains("ascend"));
        let mut m = sample();
        m.engines[1].name = "path1".into();
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
    }
}
