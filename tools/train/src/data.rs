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
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset {
            c: 1,
            h: 4,
            w: 4,
            images: (0..16).collect(),
            labels: vec![3],
        }
    }

    #[test]
    fn shift_moves_pixels_and_fills_zero() {
        let ds = tiny();
        let s = shifted(&ds, 0, 1, 0); // down one row
        assert_eq!(s[0..4], [0.0; 4]);
        assert_eq!(s[4], 0.0 / 255.0);
        assert_eq!(s[5], 1.0 / 255.0);
        let s = shifted(&ds, 0, 0, -1); // left one column
        assert_eq!(s[0], 1.0 / 255.0);
        assert_eq!(s[3], 0.0);
    }

    #[test]
    fn patch_rows_in_runtime_order() {
        let m = cfg(1, vec![0.0], vec![1.0]);
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = vec![0f32; 16];
        patchify(&x, &m, &mut out);
        // Patch 1 is the top-right 2x2: pixels 2, 3, 6, 7.
        assert_eq!(out[4..8], [2.0, 3.0, 6.0, 7.0]);
        // Patch 2 is the bottom-left: 8, 9, 12, 13.
        assert_eq!(out[8..12], [8.0, 9.0, 12.0, 13.0]);
    }

    fn gz_img(dims: &[usize]) -> Vec<u8> {
        use std::io::Write;
        let n: usize = dims.iter().product();
        let data: Vec<u8> = (1..=n as u8).collect();
        let img = tinv::idx::encode(dims, &data).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&img).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn loads_gzip_and_rank4_hwc_as_chw() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("tinv-train-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // One 1x2 image with 3 channels, HWC: pixel 0 = (1, 2, 3), pixel 1 = (4, 5, 6).
        let img = tinv::idx::encode(&[1, 1, 2, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&img).unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(
            dir.join("t10k-labels-idx1-ubyte"),
            tinv::idx::encode(&[1], &[7]).unwrap(),
        )
        .unwrap();
        let ds = load(&dir, "t10k").unwrap();
        assert_eq!((ds.c, ds.h, ds.w), (3, 1, 2));
        assert_eq!(ds.images, vec![1, 4, 2, 5, 3, 6]);
        assert_eq!(ds.labels, vec![7]);
        // Two 2×1 images of 2 channels, HWC: image 0 = rows (1, 2), (3, 4), image 1 = (5, 6),
        // (7, 8): CHW, channel 0 then channel 1 of each.
        let img = tinv::idx::encode(&[2, 2, 1, 2], &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), &img).unwrap();
        std::fs::write(
            dir.join("t10k-labels-idx1-ubyte"),
            tinv::idx::encode(&[2], &[0, 1]).unwrap(),
        )
        .unwrap();
        let ds = load(&dir, "t10k").unwrap();
        assert_eq!((ds.c, ds.h, ds.w), (2, 2, 1));
        assert_eq!(ds.images, vec![1, 3, 2, 4, 5, 7, 6, 8]);
        // Rank 3 is one channel, as stored; rank 2 is refused.
        let img = tinv::idx::encode(&[2, 1, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), &img).unwrap();
        let ds = load(&dir, "t10k").unwrap();
        assert_eq!((ds.c, ds.h, ds.w, ds.len()), (1, 1, 3, 2));
        assert_eq!(ds.images, vec![1, 2, 3, 4, 5, 6]);
        let img = tinv::idx::encode(&[2, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), &img).unwrap();
        assert!(load(&dir, "t10k")
            .unwrap_err()
            .contains("images must have rank 3 or 4, found [2, 3]"));
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gz_img(&[1, 1, 2, 3])).unwrap();
        // A label count that does not match is refused, naming the file.
        std::fs::write(
            dir.join("t10k-labels-idx1-ubyte"),
            tinv::idx::encode(&[2], &[7, 1]).unwrap(),
        )
        .unwrap();
        assert!(load(&dir, "t10k")
            .unwrap_err()
            .contains("t10k-labels-idx1-ubyte"));
        // A zero height, width or channel count (20 bytes of header) panicked splitting pixels.
        std::fs::write(
            dir.join("t10k-labels-idx1-ubyte"),
            tinv::idx::encode(&[1], &[7]).unwrap(),
        )
        .unwrap();
        for dims in [[1, 1, 2, 0], [1, 0, 2, 3]] {
            std::fs::write(
                dir.join("t10k-images-idx3-ubyte.gz"),
                tinv::idx::encode(&dims, &[]).unwrap(),
            )
            .unwrap();
            let e = load(&dir, "t10k").unwrap_err();
            assert!(e.contains("a zero dimension"), "{dims:?}: {e}");
        }
        // A dataset file that is not a regular file is named as such, not as missing.
        std::fs::remove_file(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("t10k-images-idx3-ubyte")).unwrap();
        let e = load(&dir, "t10k").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A 4×4 image of `c` channels in 2×2 patches, with its normalization.
    fn cfg(c: usize, mean: Vec<f64>, std: Vec<f64>) -> ModelConfig {
        ModelConfig {
            image_size: [4, 4],
            channels: c,
            patch: 2,
            dim: 4,
            blocks: 1,
            heads: 1,
            mlp_hidden: 4,
            classes: 4,
            ln_eps: 1e-6,
            gelu: "erf".into(),
            mean,
            std,
            depths: vec![1],
            controller: None,
        }
    }

    #[test]
    fn dataset_accessors() {
        // Three 1×2×2 images, image i = [4i, 4i + 1, 4i + 2, 4i + 3], labels 0, 5, 2.
        let ds = Dataset {
            c: 1,
            h: 2,
            w: 2,
            images: (0..12).collect(),
            labels: vec![0, 5, 2],
        };
        assert_eq!((ds.len(), ds.is_empty(), ds.image_len()), (3, false, 4));
        assert_eq!(ds.image(1), [4, 5, 6, 7]);
        assert_eq!(
            ds.image_f32(2),
            [8.0 / 255.0, 9.0 / 255.0, 10.0 / 255.0, 11.0 / 255.0]
        );
        assert_eq!(ds.classes(), 6);
        let s = ds.slice(1..3);
        assert_eq!((s.images, s.labels), ((4..12).collect(), vec![5, 2]));
        let none = ds.slice(1..1);
        assert!(none.is_empty() && none.images.is_empty());
        assert_eq!(none.classes(), 0);
    }

    #[test]
    fn check_refuses_another_shape_and_labels_from_the_class_count_on() {
        let m = cfg(1, vec![0.0], vec![1.0]);
        let mut ds = Dataset {
            c: 1,
            h: 4,
            w: 4,
            images: vec![0; 48],
            labels: vec![3, 0, 1],
        };
        assert_eq!(check(&ds, &m), Ok(()));
        ds.labels[2] = 4; // 4 classes: labels 0..=3
        assert_eq!(
            check(&ds, &m).unwrap_err(),
            "label 4 (image 2) out of range for 4 classes"
        );
        assert_eq!(check_first(&ds, 2, &m), Ok(()));
        for (c, h, w) in [(2, 4, 4), (1, 2, 8), (1, 8, 2)] {
            let other = Dataset {
                c,
                h,
                w,
                ..ds.clone()
            };
            let e = check_first(&other, 0, &m).unwrap_err();
            assert_eq!(
                e,
                format!("dataset images are {c}x{h}x{w} but the model expects 1x4x4")
            );
        }
    }

    #[test]
    fn patches_are_normalized_per_channel() {
        // Two channels, mean 0.5 / 0.25, std 0.25 / 2: patch 3 (bottom right) of channel 1 is
        // pixels 10, 11, 14, 15 of that channel, (v − 0.25) / 2.
        let m = cfg(2, vec![0.5, 0.25], vec![0.25, 2.0]);
        let x: Vec<f32> = (0..32).map(|v| v as f32 / 32.0).collect();
        let mut out = vec![0f32; 32];
        patchify(&x, &m, &mut out);
        let px = |ch: usize, i: usize, mean: f32, std: f32| (x[ch * 16 + i] - mean) / std;
        assert_eq!(out[24..28], [10, 11, 14, 15].map(|i| px(0, i, 0.5, 0.25)));
        assert_eq!(out[28..32], [10, 11, 14, 15].map(|i| px(1, i, 0.25, 2.0)));
    }

    #[test]
    fn shifts_up_and_right_fill_zero_too() {
        // Two channels of 3×3: channel 0 = 1..=9, channel 1 = 11..=19 (bytes).
        let ds = Dataset {
            c: 2,
            h: 3,
            w: 3,
            images: (1..=9).chain(11..=19).collect(),
            labels: vec![0],
        };
        let f = |v: u8| f32::from(v) / 255.0;
        // Up one row, right one column: out(y, x) = in(y + 1, x − 1).
        let s = shifted(&ds, 0, -1, 1);
        let want: Vec<f32> = [0, 4, 5, 0, 7, 8, 0, 0, 0, 0, 14, 15, 0, 17, 18, 0, 0, 0]
            .map(f)
            .to_vec();
        assert_eq!(s, want);
        assert_eq!(shifted(&ds, 0, 0, 0), ds.image_f32(0));
        assert!(shifted(&ds, 0, 3, 0).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn batch_shifts_each_image_by_at_most_the_shift() {
        // One bright pixel in the middle of a 5×5 image (patch 5, so the whole image is one
        // patch row): its place after the augmentation shows the offset.
        let mut m = cfg(1, vec![0.0], vec![1.0]);
        m.image_size = [5, 5];
        m.patch = 5;
        let mut images = vec![0u8; 25];
        images[12] = 255;
        let ds = Dataset {
            c: 1,
            h: 5,
            w: 5,
            images,
            labels: vec![1],
        };
        let idx = vec![0; 200];
        let plain = batch(&ds, &idx[..1], &m, 2, None);
        assert_eq!(plain.patches, ds.image_f32(0));
        assert_eq!((plain.labels, plain.len), (vec![1], 1));
        let mut rng = Rng::new(1, 0);
        let b = batch(&ds, &idx, &m, 1, Some(&mut rng));
        let mut seen = std::collections::BTreeSet::new();
        for img in b.patches.chunks_exact(25) {
            let at = img.iter().position(|&v| v == 1.0).unwrap();
            seen.insert((at as isize / 5 - 2, at as isize % 5 - 2));
        }
        // Every offset in [-1, 1]² comes up in 200 draws, and no other.
        let all: std::collections::BTreeSet<_> = (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (dy, dx)))
            .collect();
        assert_eq!(seen, all);
        // Shift 2: [-2, 2]², all 25 offsets in 400 draws.
        let idx2 = vec![0; 400];
        let b = batch(&ds, &idx2, &m, 2, Some(&mut rng));
        let seen: std::collections::BTreeSet<_> = b
            .patches
            .chunks_exact(25)
            .map(|img| {
                let at = img.iter().position(|&v| v == 1.0).unwrap() as isize;
                (at / 5 - 2, at % 5 - 2)
            })
            .collect();
        assert_eq!(seen.len(), 25);
        assert!(seen.iter().all(|&(y, x)| y.abs() <= 2 && x.abs() <= 2));
        // Shift 0 with a generator: the images as they are.
        let b = batch(&ds, &idx[..3], &m, 0, Some(&mut rng));
        assert!(b.patches.chunks_exact(25).all(|p| p == ds.image_f32(0)));
    }

    #[test]
    fn batch_rows_are_each_images_patches() {
        // Two channels of 4×4 in 2×2 patches: 4 patches of 8 floats per image.
        let m = cfg(2, vec![0.5, 0.0], vec![0.5, 1.0]);
        let ds = Dataset {
            c: 2,
            h: 4,
            w: 4,
            images: (0..96).map(|v| (v * 5) as u8).collect(),
            labels: vec![0, 3, 1],
        };
        let b = batch(&ds, &[2, 0], &m, 0, None);
        assert_eq!((b.len, b.labels.clone()), (2, vec![1, 0]));
        assert_eq!(b.patches.len(), 2 * 32);
        for (k, &i) in [2, 0].iter().enumerate() {
            let mut want = vec![0f32; 32];
            patchify(&ds.image_f32(i), &m, &mut want);
            assert_eq!(b.patches[k * 32..(k + 1) * 32], want[..]);
        }
    }

    #[test]
    fn refuses_to_write_over_a_dataset_file() {
        let dir = std::env::temp_dir().join(format!("tinv-train-over-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let labels = dir.join("train-labels-idx1-ubyte");
        let images = dir.join("t10k-images-idx3-ubyte.gz");
        std::fs::write(&labels, b"x").unwrap();
        std::fs::write(&images, b"x").unwrap();
        let other = dir.join("ck.safetensors");
        let absent = dir.join("none.safetensors");
        assert_eq!(
            refuse_overwrite(&dir, &[("--out", &other), ("--x", &absent)]),
            Ok(())
        );
        std::fs::write(&other, b"x").unwrap();
        assert_eq!(refuse_overwrite(&dir, &[("--out", &other)]), Ok(()));
        let e = refuse_overwrite(&dir, &[("--out", &other), ("--samples", &images)]).unwrap_err();
        assert_eq!(
            e,
            format!(
                "--samples {}: that is the dataset file {}; write the checkpoint elsewhere",
                images.display(),
                images.display()
            )
        );
        // Through another path to the same file.
        let via = dir.join(".").join("train-labels-idx1-ubyte");
        assert!(refuse_overwrite(&dir, &[("--out", &via)])
            .unwrap_err()
            .starts_with("--out "));
        std::fs::remove_dir_all(&dir).ok();
    }
}
