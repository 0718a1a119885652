//! Path selection: depth → the engines a path runs, and what an escalation to a deeper path
//! must run. `segments` resumes from the saved hidden state (the shared segment prefix is not
//! rerun); `per-path` reruns the whole deeper engine, and the stats charge it.

use super::manifest::{IoMode, IoTensor, Manifest};
use super::TrtError;

/// The paths of a manifest as engine indices, ascending by depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTable {
    depths: Vec<u32>,
    engines: Vec<Vec<usize>>,
}

impl PathTable {
    /// Resolves every path's engine names to indices into `manifest.engines`.
    pub fn new(manifest: &Manifest) -> Result<PathTable, TrtError> {
        let mut depths = Vec::with_capacity(manifest.paths.len());
        let mut engines = Vec::with_capacity(manifest.paths.len());
        for p in &manifest.paths {
            let idx = p
                .engines
                .iter()
                .map(|n| {
                    manifest
                        .engines
                        .iter()
                        .position(|e| &e.name == n)
                        .ok_or_else(|| {
                            TrtError::Manifest(format!("path {} names unknown engine {n}", p.depth))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if idx.is_empty() {
                return Err(TrtError::Manifest(format!(
                    "path {} runs no engine",
                    p.depth
                )));
            }
            depths.push(p.depth);
            engines.push(idx);
        }
        Ok(PathTable { depths, engines })
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.depths.len()
    }

    /// Whether there are no paths.
    pub fn is_empty(&self) -> bool {
        self.depths.is_empty()
    }

    /// Depth of each path, ascending.
    pub fn depths(&self) -> &[u32] {
        &self.depths
    }

    /// The path index of `depth`; an error lists the depths that exist.
    pub fn index(&self, depth: u32) -> Result<usize, TrtError> {
        self.depths.iter().position(|&d| d == depth).ok_or_else(|| {
            TrtError::Plan(format!(
                "no engine path of depth {depth} (paths: {:?})",
                self.depths
            ))
        })
    }

    /// Engines path `path` runs, in order (empty for an out-of-range index).
    pub fn engines(&self, path: usize) -> &[usize] {
        self.engines.get(path).map_or(&[], Vec::as_slice)
    }

    /// The output of path `path` in `manifest` (the table's own): the first output of the last
    /// engine it runs.
    pub fn output<'m>(
        &self,
        manifest: &'m Manifest,
        path: usize,
    ) -> Result<&'m IoTensor, TrtError> {
        self.engines(path)
            .last()
            .and_then(|&e| manifest.engines.get(e))
            .and_then(|e| e.io.iter().find(|t| t.mode == IoMode::Output))
            .ok_or_else(|| TrtError::Plan(format!("path {path} has no output")))
    }

    /// Engines to run when escalating from path `from` (already run) to the deeper path `to`:
    /// `to`'s engines after the longest prefix it shares with `from` (the prefix's outputs are
    /// still in their I/O buffers). With `per-path` engines nothing is shared, so this is all
    /// of `to`. Errors unless `from < to`.
    pub fn escalation(&self, from: usize, to: usize) -> Result<&[usize], TrtError> {
        if from >= to || to >= self.len() {
            return Err(TrtError::Plan(format!(
                "cannot escalate from path {from} to path {to}"
            )));
        }
        let (a, b) = (self.engines(from), self.engines(to));
        let shared = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        Ok(b.get(shared..).unwrap_or(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::sample;
    use super::super::manifest::PathEngines;
    use super::*;

    #[test]
    fn depths_map_to_engine_indices() {
        let t = PathTable::new(&sample()).unwrap();
        assert_eq!(t.depths(), [1, 2]);
        assert_eq!((t.len(), t.is_empty()), (2, false));
        let mut none = sample();
        none.paths.clear();
        let t0 = PathTable::new(&none).unwrap();
        assert_eq!((t0.len(), t0.is_empty()), (0, true));
        assert_eq!((t.index(1).unwrap(), t.index(2).unwrap()), (0, 1));
        assert_eq!((t.engines(0), t.engines(1)), (&[0usize][..], &[1usize][..]));
        let e = t.index(3).unwrap_err().to_string();
        assert!(e.contains("depth 3") && e.contains("[1, 2]"), "{e}");
        assert!(t.engines(7).is_empty());
    }

    #[test]
    fn per_path_escalation_reruns_the_deeper_engine() {
        let t = PathTable::new(&sample()).unwrap();
        assert_eq!(t.escalation(0, 1).unwrap(), [1]);
        assert!(t.escalation(1, 0).is_err());
        assert!(t.escalation(1, 1).is_err());
        assert!(t.escalation(0, 5).is_err());
    }

    #[test]
    fn segment_escalation_resumes_after_the_shared_prefix() {
        // Engines: 0 seg1, 1 seg2, 2 seg3, 3 head1, 4 head2, 5 head3 (names are irrelevant here).
        let mut m = sample();
        let names = ["seg1", "seg2", "seg3", "head1", "head2", "head3"];
        let proto = m.engines[0].clone();
        m.engines = names
            .iter()
            .map(|n| super::super::manifest::Engine {
                name: (*n).into(),
                ..proto.clone()
            })
            .collect();
        let p = |d, e: &[&str]| PathEngines {
            depth: d,
            engines: e.iter().map(|s| (*s).to_string()).collect(),
        };
        m.paths = vec![
            p(3, &["seg1", "head1"]),
            p(6, &["seg1", "seg2", "head2"]),
            p(9, &["seg1", "seg2", "seg3", "head3"]),
        ];
        let t = PathTable::new(&m).unwrap();
        assert_eq!(t.escalation(0, 1).unwrap(), [1, 4]); // seg2, head2
        assert_eq!(t.escalation(0, 2).unwrap(), [1, 2, 5]); // seg2, seg3, head3
        assert_eq!(t.escalation(1, 2).unwrap(), [2, 5]); // seg3, head3
        m.paths[0].engines.push("nope".into());
        assert!(PathTable::new(&m).is_err());
    }
}
