//! Tests of the dataset code: IDX files (gzipped, rank-4 HWC read as CHW), the accessors, the shape
//! checks, patch rows in the runtime's order and normalized per channel, the shift augmentation,
//! batches, and a dataset file never written over.

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
    let dir = crate::test_dir("train-idx");
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
    let dir = crate::test_dir("train-over");
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
