//! Checkpoints: safetensors files of f32 tensors with the model configuration under the
//! metadata key `tinv.config` (docs/FORMAT.md) and the training state under `tinv.train`. The
//! optimizer's moments go to a sidecar (`X.optim.safetensors` beside `X.safetensors`, `Y.optim.
//! safetensors` beside any other name `Y`) so the checkpoint `tinv-fold` reads holds the model
//! only. Writes are atomic (temporary file, synced, then renamed), so an interrupted run always
//! leaves the last good checkpoint in place.

use crate::tensors::HostTensor;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key of the model configuration JSON.
pub const CONFIG_KEY: &str = "tinv.config";
/// Metadata key of the training state JSON.
pub const TRAIN_KEY: &str = "tinv.train";

/// The optimizer sidecar of a checkpoint path (`a/b.safetensors` → `a/b.optim.safetensors`,
/// `a/b.seed1` → `a/b.seed1.optim.safetensors`).
pub fn optim_path(path: &Path) -> PathBuf {
    beside(path, OPTIM_SUFFIX)
}

/// What [`optim_path`] and [`optim_prev_path`] put after a checkpoint's stem.
const OPTIM_SUFFIX: &str = "optim.safetensors";
const OPTIM_PREV_SUFFIX: &str = "optim.prev.safetensors";

/// Whether `path` is named as an optimizer state (the sidecar or the previous one), by
/// [`optim_path`] or [`optim_prev_path`].
pub fn is_optim_name(path: &Path) -> bool {
    let name = path.to_string_lossy();
    [OPTIM_SUFFIX, OPTIM_PREV_SUFFIX]
        .iter()
        .any(|s| name.ends_with(&format!(".{s}")))
}

/// Where a checkpoint's previous optimizer state is kept while the next pair is written
/// (`a/b.safetensors` → `a/b.optim.prev.safetensors`).
pub fn optim_prev_path(path: &Path) -> PathBuf {
    beside(path, OPTIM_PREV_SUFFIX)
}

/// `path`'s file name less a `.safetensors` extension, then `suffix` after a dot, in `path`'s
/// folder. Only that extension goes: with the stem, `run.seed1` and `run.seed2` (or `ck.epoch5`
/// and `ck.epoch10`) shared one sidecar, and the second run's state replaced the first's.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name.strip_suffix(".safetensors").unwrap_or(&name);
    path.with_file_name(format!("{base}.{suffix}"))
}

/// A fingerprint of a checkpoint's tensors (names, shapes and values, in name order), which its
/// optimizer sidecar records: a resume takes only the state written with that very model, not
/// one of another checkpoint at the same step.
pub fn model_fingerprint(tensors: &[HostTensor]) -> u64 {
    let mut sorted: Vec<&HostTensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut h = tinv::format::fnv1a64(b"tinv-train-model-v1");
    for t in sorted {
        h = tinv::format::fnv1a64_continue(h, t.name.as_bytes());
        h = tinv::format::fnv1a64_continue(h, &[0]);
        for &d in &t.shape {
            h = tinv::format::fnv1a64_continue(h, &(d as u64).to_le_bytes());
        }
        for v in &t.data {
            h = tinv::format::fnv1a64_continue(h, &v.to_bits().to_le_bytes());
        }
    }
    h
}

/// Writes `tensors` with `meta` to `path` atomically.
pub fn save(
    path: &Path,
    tensors: &[HostTensor],
    meta: &HashMap<String, String>,
) -> Result<(), String> {
    let path = &destination(path)?;
    let tmp = write_temp(path, tensors, meta)?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where [`save`] writes `path`: through a symbolic link; a device or FIFO there is refused (the
/// rename would replace it with a plain file).
fn destination(path: &Path) -> Result<PathBuf, String> {
    tinv::files::write_destination(path).map_err(|e| e.to_string())
}

/// [`save`], first moving the file `path` held to `prev`: a run stopped between this and the
/// next write still has a file of the previous step (the optimizer state that pairs with the
/// checkpoint not yet replaced).
pub fn save_keeping_previous(
    path: &Path,
    prev: &Path,
    tensors: &[HostTensor],
    meta: &HashMap<String, String>,
) -> Result<(), String> {
    let path = &destination(path)?;
    let tmp = write_temp(path, tensors, meta)?;
    if path.is_file() {
        std::fs::rename(path, prev).map_err(|e| format!("{}: {e}", prev.display()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Serializes `tensors` with `meta` into `path`'s temporary file; returns its path.
fn write_temp(
    path: &Path,
    tensors: &[HostTensor],
    meta: &HashMap<String, String>,
) -> Result<PathBuf, String> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for (t, b) in tensors.iter().zip(&bytes) {
        let v = TensorView::new(Dtype::F32, t.shape.clone(), b)
            .map_err(|e| format!("tensor '{}': {e}", t.name))?;
        views.push((t.name.clone(), v));
    }
    let buf = safetensors::serialize(views, Some(meta.clone()))
        .map(sorted_header)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let tmp = temp_of(path);
    create_parent(path).map_err(|(dir, e)| format!("{}: {e}", dir.display()))?;
    // Synced before the rename (a power cut must not leave a renamed but empty file), and
    // removed when the write fails (a full disk left a partial one behind).
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &buf)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", tmp.display()));
    }
    Ok(tmp)
}

/// The file [`save`] writes first and renames onto `path`: its whole name plus `.tmp`
/// (`with_extension` gave `run.seed1` and `run.seed2` one temporary file, `run.tmp`).
fn temp_of(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Creates `path`'s directory, as [`save`] does; the error names the directory.
fn create_parent(path: &Path) -> Result<(), (&Path, std::io::Error)> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| (dir, e)),
        None => Ok(()),
    }
}

/// Checks before any work (the dataset is loaded after) that `--resume path` can be read: a
/// readable safetensors file, with its optimizer state beside it. Whether it fits the run is
/// checked once the data is known.
pub fn check_resume(path: &Path) -> Result<(), String> {
    // Checked before opening: opening a FIFO blocked until a writer came.
    let buf =
        tinv::files::read_regular(path).map_err(|e| format!("--resume {}: {e}", path.display()))?;
    SafeTensors::deserialize(&buf).map_err(|e| {
        format!(
            "--resume {}: not a readable safetensors checkpoint ({e})",
            path.display()
        )
    })?;
    for op in resume_optim(path).map_err(|e| format!("--resume {e}"))? {
        tinv::files::open_regular(&op).map_err(|e| format!("--resume {}: {e}", op.display()))?;
    }
    Ok(())
}

/// The optimizer state a resume of `path` needs, or why it is missing.
pub fn resume_optim(path: &Path) -> Result<Vec<PathBuf>, String> {
    let op = optim_path(path);
    // The previous state too: a run stopped between the sidecar's write and the checkpoint's
    // left the checkpoint's own state there.
    let found: Vec<PathBuf> = [op.clone(), optim_prev_path(path)]
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    if found.is_empty() {
        // Before the sidecar kept the checkpoint's whole name, `run.seed1`'s was
        // `run.optim.safetensors`: said, never taken (it records no fingerprint to check).
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let old = stem.map(|s| path.with_file_name(format!("{s}.{OPTIM_SUFFIX}")));
        let hint = match old.filter(|o| o != &op && o.is_file()) {
            Some(o) => format!(
                "; {} has the name older versions gave it: if it was written with this \
                 checkpoint, rename it to {}",
                o.display(),
                op.display()
            ),
            None => String::new(),
        };
        return Err(format!(
            "{}: optimizer state {} (written beside every checkpoint) not found; \
             --resume needs both files{hint}",
            path.display(),
            op.display()
        ));
    }
    Ok(found)
}

/// Checks before any work that [`save`] can write `path`, so a bad `--out` fails at once rather
/// than after the first epoch: a file is written and removed where the checkpoint's temporary
/// file will go or, when its directory does not exist yet, in the nearest folder that does
/// (where `save` will create it). Nothing is left behind, not even that directory, should the
/// run fail before its first checkpoint.
pub fn check_writable(path: &Path) -> Result<(), String> {
    // Checked before the training they would otherwise end: `--out ""` and `--out dir/` failed
    // only when the first checkpoint was written, leaving stray files behind.
    let text = path.to_string_lossy();
    if text.is_empty() || text.ends_with('/') || path.file_name().is_none() {
        return Err(format!(
            "--out '{}': give a file name such as checkpoint.safetensors",
            path.display()
        ));
    }
    // `x.tmp` is its own temporary file (no atomic write), and `x.optim.safetensors` is the
    // optimizer state another checkpoint's --resume needs.
    if path.extension().is_some_and(|e| e == "tmp") || is_optim_name(path) {
        return Err(format!(
            "--out {}: that name is reserved (.tmp files are written before the rename, \
             .optim.safetensors files hold a checkpoint's optimizer state)",
            path.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "--out {}: is a directory; give a file name such as {}",
            path.display(),
            path.join("checkpoint.safetensors").display()
        ));
    }

    // Where `save` writes: through a link, so the folder probed below is the link target's.
    let dest = tinv::files::write_destination(path).map_err(|e| format!("--out: {e}"))?;
    let path = dest.as_path();
    let here = Path::new(".");
    let parent = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(here);
    let mut existing = parent;
    while !existing.exists() {
        existing = existing
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(here);
    }
    if !existing.is_dir() {
        return Err(format!(
            "--out {}: cannot create {}: {} is not a directory",
            path.display(),
            parent.display(),
            existing.display()
        ));
    }
    let probe = if existing == parent {
        temp_of(path)
    } else {
        existing.join(format!(".tinv-train-probe-{}", std::process::id()))
    };
    if probe != path {
        std::fs::write(&probe, b"")
            .map_err(|e| format!("--out {}: cannot write there: {e}", path.display()))?;
        std::fs::remove_file(&probe).ok();
    }
    Ok(())
}

/// Checks before any work that the optimizer sidecars of a training run's `--out` can be
/// written: a directory or a FIFO under their names used to fail only at the first checkpoint,
/// an epoch later.
pub fn check_sidecars_writable(path: &Path) -> Result<(), String> {
    for side in [optim_path(path), optim_prev_path(path)] {
        tinv::files::write_destination(&side).map_err(|e| {
            format!(
                "--out {}: its optimizer state goes to {}, and {e}",
                path.display(),
                side.display()
            )
        })?;
    }
    Ok(())
}

/// The same file with its JSON header's keys in sorted order. `safetensors::serialize` writes
/// the metadata in `HashMap` order, which changes from run to run, so two runs with the same seed
/// wrote different bytes (and `tinv-fold`'s source hash differed); serde_json's map is sorted.
/// The header is padded with spaces to a multiple of 8 bytes, as the format asks; data offsets
/// are relative to the end of the header and stay valid.
fn sorted_header(buf: Vec<u8>) -> Vec<u8> {
    let n = buf.get(..8).map_or(0, |b| {
        u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize
    });
    let Some(Ok(header)) = buf
        .get(8..8 + n)
        .map(serde_json::from_slice::<serde_json::Value>)
    else {
        return buf;
    };
    let Ok(mut h) = serde_json::to_vec(&header) else {
        return buf;
    };
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + buf.len() - 8 - n);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&buf[8 + n..]);
    out
}

/// Reads every tensor of `path` (f32 only) and its metadata.
pub fn load(path: &Path) -> Result<(Vec<HostTensor>, HashMap<String, String>), String> {
    // A regular file only: a FIFO blocked forever, /dev/zero read until memory ran out.
    let buf = tinv::files::read_regular(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&buf).map_err(|e| {
        format!(
            "{}: not a readable safetensors checkpoint ({e})",
            path.display()
        )
    })?;
    let (_, header) =
        SafeTensors::read_metadata(&buf).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "{}: tensor '{name}' is {:?}, need F32",
                path.display(),
                view.dtype()
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(HostTensor {
            name,
            shape: view.shape().to_vec(),
            data,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((out, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_tensors_and_metadata() {
        let dir = crate::test_dir("train-ckpt");
        let path = dir.join("c.safetensors");
        let ts = vec![
            HostTensor {
                name: "a".into(),
                shape: vec![2, 3],
                data: vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 7.0],
            },
            HostTensor {
                name: "b".into(),
                shape: vec![1],
                data: vec![0.25],
            },
        ];
        let meta = HashMap::from([(CONFIG_KEY.to_string(), "{\"dim\":4}".to_string())]);
        save(&path, &ts, &meta).unwrap();
        let (back, m) = load(&path).unwrap();
        assert_eq!(back, ts);
        assert_eq!(m.get(CONFIG_KEY).map(String::as_str), Some("{\"dim\":4}"));
        assert_eq!(optim_path(&path), dir.join("c.optim.safetensors"));
        // Only `.safetensors` is dropped: other names that share a stem keep apart.
        for (a, b) in [("run.seed1", "run.seed2"), ("ck.epoch5", "ck.epoch10")] {
            assert_ne!(optim_path(&dir.join(a)), optim_path(&dir.join(b)));
        }
        assert_eq!(
            optim_prev_path(&dir.join("run.seed1")),
            dir.join("run.seed1.optim.prev.safetensors")
        );
        // The fingerprint follows names, shapes and values, not the order given.
        let fp = model_fingerprint(&ts);
        let mut rev = ts.clone();
        rev.reverse();
        assert_eq!(model_fingerprint(&rev), fp);
        let mut changed = ts.clone();
        changed[1].data[0] = 0.5;
        assert_ne!(model_fingerprint(&changed), fp);
        let mut reshaped = ts.clone();
        reshaped[0].shape = vec![3, 2];
        assert_ne!(model_fingerprint(&reshaped), fp);
        // Same tensors and metadata, maps built in another order: the same bytes.
        let keys = ["z", "tinv.train", "a", CONFIG_KEY, "m"];
        let first = HashMap::from(keys.map(|k| (k.to_string(), format!("v-{k}"))));
        let mut second = HashMap::new();
        for k in keys.iter().rev() {
            second.insert(k.to_string(), format!("v-{k}"));
        }
        let other = dir.join("d.safetensors");
        save(&path, &ts, &first).unwrap();
        save(&other, &ts, &second).unwrap();
        let (a, b) = (
            std::fs::read(&path).unwrap(),
            std::fs::read(&other).unwrap(),
        );
        assert_eq!(a, b);
        let (back, m) = load(&other).unwrap();
        assert_eq!((back, m), (ts, first));
        std::fs::remove_dir_all(&dir).ok();
    }

    fn one() -> Vec<HostTensor> {
        vec![HostTensor {
            name: "w".into(),
            shape: vec![2],
            data: vec![1.0, 2.0],
        }]
    }

    #[test]
    fn optimizer_state_names() {
        for (name, is) in [
            ("a.optim.safetensors", true),
            ("a.optim.prev.safetensors", true),
            ("optim.safetensors", false),
            ("a.safetensors", false),
            ("a.optim.safetensors.tmp", false),
        ] {
            assert_eq!(is_optim_name(Path::new(name)), is, "{name}");
        }
    }

    #[test]
    fn the_header_is_sorted_and_padded_to_eight_bytes() {
        let dir = crate::test_dir("train-hdr");
        let path = dir.join("h.safetensors");
        let meta = HashMap::from([
            ("b".to_string(), "1".to_string()),
            ("a".into(), "22".into()),
        ]);
        save(&path, &one(), &meta).unwrap();
        let buf = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(buf[..8].try_into().unwrap()) as usize;
        // safetensors: 8-byte length, the JSON header (padded with spaces to a multiple of 8),
        // then the data: here 8 bytes, the two f32s.
        assert_eq!(n % 8, 0);
        assert_eq!(buf.len(), 8 + n + 8);
        assert_eq!(&buf[8 + n..], [1f32, 2.0].map(f32::to_le_bytes).concat());
        let text = std::str::from_utf8(&buf[8..8 + n]).unwrap();
        let json = text.trim_end_matches(' ');
        assert!(
            json.ends_with('}') && !json.contains(char::is_whitespace),
            "{text:?}"
        );
        let pos = |k: &str| json.find(k).unwrap();
        assert!(pos("__metadata__") < pos("\"w\""));
        assert!(pos("\"a\"") < pos("\"b\""));
        // A tensor of another type is refused by name.
        let f64_file = dir.join("f64.safetensors");
        let bytes = 1f64.to_le_bytes();
        let view = TensorView::new(Dtype::F64, vec![1], &bytes).unwrap();
        std::fs::write(
            &f64_file,
            safetensors::serialize([("x", view)], None).unwrap(),
        )
        .unwrap();
        assert_eq!(
            load(&f64_file).unwrap_err(),
            format!("{}: tensor 'x' is F64, need F32", f64_file.display())
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_previous_file_is_kept_aside() {
        let dir = crate::test_dir("train-prev");
        let (path, prev) = (dir.join("s.optim.safetensors"), dir.join("s.prev"));
        let meta = HashMap::new();
        save_keeping_previous(&path, &prev, &one(), &meta).unwrap();
        assert!(path.is_file() && !prev.exists());
        let first = std::fs::read(&path).unwrap();
        let mut two = one();
        two[0].data[0] = 5.0;
        save_keeping_previous(&path, &prev, &two, &meta).unwrap();
        assert_eq!(std::fs::read(&prev).unwrap(), first);
        assert_eq!(load(&path).unwrap().0, two);
        assert!(!dir.join("s.optim.safetensors.tmp").exists());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn resume_needs_the_state_and_names_an_old_one() {
        let dir = crate::test_dir("train-res");
        std::fs::create_dir_all(&dir).unwrap();
        let ck = dir.join("run.seed1");
        assert!(check_resume(&ck).unwrap_err().starts_with("--resume "));
        std::fs::write(&ck, b"not safetensors").unwrap();
        assert!(check_resume(&ck)
            .unwrap_err()
            .contains("not a readable safetensors checkpoint"));
        save(&ck, &one(), &HashMap::new()).unwrap();
        let e = check_resume(&ck).unwrap_err();
        assert!(
            e.contains("run.seed1.optim.safetensors (written beside every checkpoint) not found")
        );
        assert!(!e.contains("older versions"), "{e}");
        // The name older versions gave it (the stem's): said, not taken.
        let old = dir.join("run.optim.safetensors");
        std::fs::write(&old, b"").unwrap();
        let e = resume_optim(&ck).unwrap_err();
        assert!(
            e.ends_with(&format!(
                "; {} has the name older versions gave it: if it was written with this \
                 checkpoint, rename it to {}",
                old.display(),
                optim_path(&ck).display()
            )),
            "{e}"
        );
        // The previous state alone is found; with the sidecar, the sidecar first.
        std::fs::write(optim_prev_path(&ck), b"").unwrap();
        assert_eq!(resume_optim(&ck).unwrap(), [optim_prev_path(&ck)]);
        std::fs::write(optim_path(&ck), b"").unwrap();
        assert_eq!(
            resume_optim(&ck).unwrap(),
            [optim_path(&ck), optim_prev_path(&ck)]
        );
        assert_eq!(check_resume(&ck), Ok(()));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn out_is_checked_writable_before_training() {
        let dir = crate::test_dir("train-out");
        std::fs::create_dir_all(&dir).unwrap();
        let err = |p: &Path| check_writable(p).unwrap_err();
        assert!(err(Path::new("")).contains("give a file name"));
        assert!(err(Path::new("a/")).contains("give a file name"));
        assert!(err(&dir.join("x.tmp")).contains("that name is reserved"));
        assert!(err(&dir.join("x.optim.safetensors")).contains("that name is reserved"));
        assert!(err(&dir).contains("is a directory"));
        let file = dir.join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(err(&file.join("sub").join("ck.safetensors")).contains("Not a directory"));
        // Folders that do not exist yet: probed in the nearest that does, and not created.
        let deep = dir.join("n1").join("n2").join("ck.safetensors");
        assert_eq!(check_writable(&deep), Ok(()));
        assert_eq!(check_writable(&dir.join("ck.safetensors")), Ok(()));
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["f"]);
        // The probe goes where the checkpoint will: /proc takes no new file, even from root.
        let e = err(Path::new("/proc/tinv-train-ck.safetensors"));
        assert!(e.contains(": cannot write there: "), "{e}");
        // And a folder still to be made under /proc is probed in /proc, the nearest that is.
        let e = err(Path::new("/proc/tinv-train-none/ck.safetensors"));
        assert!(e.contains(": cannot write there: "), "{e}");
        // A folder where a sidecar goes.
        let ck = dir.join("c.safetensors");
        assert_eq!(check_sidecars_writable(&ck), Ok(()));
        std::fs::create_dir(optim_prev_path(&ck)).unwrap();
        let e = check_sidecars_writable(&ck).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "--out {}: its optimizer state goes to {}, and ",
                ck.display(),
                optim_prev_path(&ck).display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
