//! IDX image datasets (MNIST family): loading (gzip or plain, via `tinv::idx`), the train /
//! validation split, augmentation (random shifts) and batching into patch rows.

use crate::config::ModelConfig;
use crate::rng::Rng;
use std::path::{Path, PathBuf};

/// Images and labels of one split, u8 as stored.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// `n × c × h × w` bytes, CHW per image.
    pub images: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Image `i` as bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }
    /// Image `i` as CHW floats in [0, 1] (the raw input the runtime takes).
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image(i)
            .iter()
            .map(|&v| f32::from(v) / 255.0)
            .collect()
    }
    /// Number of classes (largest label + 1).
    pub fn classes(&self) -> usize {
        self.labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| m as usize + 1)
    }
    /// The images `range` as a new dataset.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        let n = self.image_len();
        Dataset {
            c: self.c,
            h: self.h,
            w: self.w,
            images: self.images[range.start * n..range.end * n].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }
}

fn read_idx(path: &Path) -> Result<tinv::idx::Idx, String> {
    tinv::idx::open(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `dir/<stem>` with `.gz` if that exists, else plain; error names the file and the package.
fn find(dir: &Path, stem: &str) -> Result<PathBuf, String> {
    let gz = dir.join(format!("{stem}.gz"));
    let plain = dir.join(stem);
    // A regular file first; else anything of that name (a FIFO, a device, a folder), which the
    // reader then refuses for what it is.
    let candidates = [&gz, &plain];
    if let Some(p) =
        (candidates.iter().find(|p| p.is_file())).or_else(|| candidates.iter().find(|p| p.exists()))
    {
        Ok(p.to_path_buf())
    } else {
        Err(format!(
            "dataset file {} (or {}) not found; for Fashion-MNIST run `apt-get install dataset-fashion-mnist` \
             (files go to /usr/share/datasets/fashion-mnist/) or pass --data DIR",
            gz.display(),
            plain.display()
        ))
    }
}

/// Refuses output paths (`(flag, path)`) that are one of the dataset files in `dir`: `fit --out
/// DIR/train-labels-idx1-ubyte` overwrote the labels it had just read, without a word.
pub fn refuse_overwrite(dir: &Path, outs: &[(&str, &Path)]) -> Result<(), String> {
    let mut inputs = Vec::new();
    for prefix in ["train", "t10k"] {
        for kind in ["images-idx3-ubyte", "labels-idx1-ubyte"] {
            for ext in ["", ".gz"] {
                let p = dir.join(format!("{prefix}-{kind}{ext}"));
                if let Ok(c) = std::fs::canonicalize(&p) {
                    inputs.push((p, c));
                }
            }
        }
    }
    for (flag, out) in outs {
        // A path that does not exist yet is no dataset file (a dangling link neither).
        let Ok(c) = std::fs::canonicalize(out) else {
            continue;
        };
        if let Some((p, _)) = inputs.iter().find(|(_, i)| *i == c) {
            return Err(format!(
                "{flag} {}: that is the dataset file {}; write the checkpoint elsewhere",
                out.display(),
                p.display()
            ));
        }
    }
    Ok(())
}

/// Loads `{prefix}-images-idx3-ubyte[.gz]` and `{prefix}-labels-idx1-ubyte[.gz]` from `dir`
/// (`prefix` is `train` or `t10k`). Rank-3 images are one channel; rank-4 are `[n, h, w, c]`
/// (as `tinv-run` reads them) and are stored CHW here.
pub fn load(dir: &Path, prefix: &str) -> Result<Dataset, String> {
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&ip)?;
    let labels = read_idx(&lp)?;
    let (n, c, h, w) = match images.dims[..] {
        [n, h, w] => (n, 1, h, w),
        [n, h, w, c] => (n, c, h, w),
        _ => {
            return Err(format!(
                "{}: images must have rank 3 or 4, found {:?}",
                ip.display(),
                images.dims
            ))
        }
    };
    if c == 0 || h == 0 || w == 0 {
        return Err(format!(
            "{}: images of {h}x{w}x{c} (height x width x channels): a zero dimension",
            ip.display()
        ));
    }
    if labels.dims.len() != 1 {
        return Err(format!(
            "{}: labels must be a rank-1 file (one per image), found dimensions {:?}",
            lp.display(),
            labels.dims
        ));
    }
    if labels.dims != [n] {
        return Err(format!(
            "{}: {} labels for {n} images in {}",
            lp.display(),
            labels.dims[0],
            ip.display()
        ));
    }
    if let [_, h, _, c] = images.dims[..] {
        if h <= 4 && c > 4 {
            crate::errln!(
                "tinv-train: warning: {} is [n, {}, {}, {}]: that looks channels-first, but a \
                 rank-4 IDX file is read as [n, height, width, channels]",
                ip.display(),
                images.dims[1],
                images.dims[2],
                images.dims[3]
            );
        }
    }
    if n == 0 {
        return Err(format!("{}: no images", ip.display()));
    }
    let images = if c == 1 {
        images.data
    } else {
        // HWC (as stored) to CHW (as the model reads it).
        let mut chw = vec![0u8; images.data.len()];
        for (src, dst) in images
            .data
            .chunks_exact(h * w * c)
            .zip(chw.chunks_exact_mut(h * w * c))
        {
            for (px, v) in src.chunks_exact(c).enumerate() {
                for (ch, &b) in v.iter().enumerate() {
                    dst[ch * h * w + px] = b;
                }
            }
        }
        chw
    };
    Ok(Dataset {
        c,
        h,
        w,
        images,
        labels: labels.data,
    })
}

/// Checks a dataset against a model configuration.
pub fn check(ds: &Dataset, m: &ModelConfig) -> Result<(), String> {
    check_first(ds, ds.len(), m)
}

/// [`check`] of the first `n` images only (without copying them out).
pub fn check_first(ds: &Dataset, n: usize, m: &ModelConfig) -> Result<(), String> {
    if (ds.c, ds.h, ds.w) != (m.channels, m.image_size[0], m.image_size[1]) {
        return Err(format!(
            "dataset images are {}x{}x{} but the model expects {}x{}x{}",
            ds.c, ds.h, ds.w, m.channels, m.image_size[0], m.image_size[1]
        ));
    }
    if let Some((i, &bad)) = ds
        .labels
        .iter()
        .take(n)
        .enumerate()
        .find(|(_, &l)| l as usize >= m.classes)
    {
        return Err(format!(
            "label {bad} (image {i}) out of range for {} classes",
            m.classes
        ));
    }
    Ok(())
}

/// One batch ready for the forward: normalized patch rows and labels.
pub struct Batch {
    /// `[b, patches, c·p·p]` row-major; row index inside a patch is `c·p·p + ky·p + kx`.
    pub patches: Vec<f32>,
    /// Labels as u32.
    pub labels: Vec<u32>,
    /// Number of images.
    pub len: usize,
}

/// Writes the normalized patch rows of one CHW image (values in [0, 1]) into `out`
/// (`patches × c·p·p` floats). This is the patch convolution's im2col, in the runtime's order.
pub fn patchify(x: &[f32], m: &ModelConfig, out: &mut [f32]) {
    let (c, h, w, p) = (m.channels, m.image_size[0], m.image_size[1], m.patch);
    let (gw, row) = (w / p, c * p * p);
    for (pi, dst) in out.chunks_exact_mut(row).enumerate() {
        let (py, px) = (pi / gw, pi % gw);
        for ch in 0..c {
            let (mean, std) = (m.mean[ch] as f32, m.std[ch] as f32);
            for ky in 0..p {
                for kx in 0..p {
                    let v = x[ch * h * w + (py * p + ky) * w + px * p + kx];
                    dst[ch * p * p + ky * p + kx] = (v - mean) / std;
                }
            }
        }
    }
}

/// Image `i` shifted by `(dy, dx)` pixels with zero fill, as floats in [0, 1].
pub fn shifted(ds: &Dataset, i: usize, dy: isize, dx: isize) -> Vec<f32> {
    let (h, w) = (ds.h as isize, ds.w as isize);
    let src = ds.image(i);
    let mut out = vec![0f32; ds.image_len()];
    for ch in 0..ds.c {
        let base = ch * ds.h * ds.w;
        for y in 0..h {
            let sy = y - dy;
            if sy < 0 || sy >= h {
                continue;
            }
            for x in 0..w {
                let sx = x - dx;
                if sx >= 0 && sx < w {
                    out[base + (y * w + x) as usize] =
                        f32::from(src[base + (sy * w + sx) as usize]) / 255.0;
                }
            }
        }
    }
    out
}

/// Builds the batch of images `idx`; with `rng`, each image is shifted by a random offset in
/// `[-shift, shift]²` (the augmentation), otherwise used as is.
pub fn batch(
    ds: &Dataset,
    idx: &[usize],
    m: &ModelConfig,
    shift: usize,
    rng: Option<&mut Rng>,
) -> Batch {
    let row = m.patches() * m.channels * m.patch * m.patch;
    let mut patches = vec![0f32; idx.len() * row];
    let mut rng = rng;
    for (&i, dst) in idx.iter().zip(patches.chunks_exact_mut(row)) {
        let x = match rng.as_deref_mut() {
            Some(r) if shift > 0 => {
                let span = 2 * shift + 1;
                let dy = r.below(span) as isize - shift as isize;
                let dx = r.below(span) as isize - shift as isize;
                shifted(ds, i, dy, dx)
            }
            _ => ds.image_f32(i),
        };
        patchify(&x, m, dst);
    }
    Batch {
        patches,
        labels: idx.iter().map(|&i| u32::from(ds.labels[i])).collect(),
        len: idx.len(),
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
