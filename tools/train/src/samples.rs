//! Sample images for `tinv-run classify`: the first test image of each class, written as 8-bit
//! grayscale PNG (`<index>-<class name>.png`; Fashion-MNIST class names when there are 10
//! classes of 28×28 images, `class<k>` otherwise).

use crate::data::Dataset;
use std::path::{Path, PathBuf};

/// Fashion-MNIST class names, file-name friendly.
pub const FASHION: [&str; 10] = [
    "tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
];

/// Encodes one single-channel image as PNG bytes.
pub fn encode_gray(w: usize, h: usize, pixels: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(|e| e.to_string())?;
        wr.write_image_data(pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Refuses an output directory `dir` that exists as something else (a file): creating it said
/// only "File exists (os error 17)".
pub fn check_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{} exists and is not a directory", dir.display()));
    }
    Ok(())
}

/// Writes the first test image of each class (cycling through classes until `count` images) to
/// `dir`; returns the paths.
pub fn write(ds: &Dataset, dir: &Path, count: usize) -> Result<Vec<PathBuf>, String> {
    if ds.c != 1 {
        return Err(format!(
            "samples: {} channels; only grayscale datasets are written",
            ds.c
        ));
    }
    check_dir(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let classes = ds.classes().max(1);
    let named = classes == 10 && ds.h == 28 && ds.w == 28;
    let mut used = vec![false; ds.len()];
    let mut out = Vec::new();
    let mut class = 0;
    while out.len() < count.min(ds.len()) {
        let Some(i) =
            (0..ds.len()).find(|&i| !used[i] && usize::from(ds.labels[i]) == class % classes)
        else {
            class += 1;
            if class > count * classes {
                break;
            }
            continue;
        };
        used[i] = true;
        let label = usize::from(ds.labels[i]);
        let name = if named {
            FASHION[label].to_string()
        } else {
            format!("class{label}")
        };
        let path = dir.join(format!("{label}-{name}.png"));
        let path = if path.exists() && out.contains(&path) {
            dir.join(format!("{label}-{name}-{i}.png"))
        } else {
            path
        };
        let path = tinv::files::write_destination(&path).map_err(|e| e.to_string())?;
        std::fs::write(&path, encode_gray(ds.w, ds.h, ds.image(i))?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        out.push(path);
        class += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_decodes_back() {
        let px: Vec<u8> = (0..12).map(|v| v * 20).collect();
        let bytes = encode_gray(4, 3, &px).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4, 3));
        assert_eq!(&buf[..12], &px[..]);
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn writes_the_first_image_of_each_class_in_turn() {
        let dir = crate::test_dir("train-samples");
        // Five 2×3 images, image i all of value 10·i, labels 2, 0, 1, 0, 2 (3 classes): class 0
        // takes image 1, class 1 image 2, class 2 image 0, then class 0 again image 3 (its
        // name taken: the index is added), class 1 has none left, class 2 takes image 4.
        let ds = Dataset {
            c: 1,
            h: 2,
            w: 3,
            images: (0..5u8).flat_map(|i| [10 * i; 6]).collect(),
            labels: vec![2, 0, 1, 0, 2],
        };
        let out = write(&ds, &dir.join("a"), 5).unwrap();
        assert_eq!(
            names(&out),
            [
                "0-class0.png",
                "1-class1.png",
                "2-class2.png",
                "0-class0-3.png",
                "2-class2-4.png"
            ]
        );
        let dec = png::Decoder::new(std::io::Cursor::new(std::fs::read(&out[3]).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&buf[..6], &[30; 6]);
        // Fewer asked than there are: the first of each class; one image of the only class
        // present, 2, is found after two classes with none.
        assert_eq!(
            names(&write(&ds, &dir.join("b"), 2).unwrap()),
            ["0-class0.png", "1-class1.png"]
        );
        let one = ds.slice(0..1);
        assert_eq!(
            names(&write(&one, &dir.join("c"), 1).unwrap()),
            ["2-class2.png"]
        );
        // Written again into the same folder: the same names (the files are replaced).
        let again = write(&ds, &dir.join("a"), 5).unwrap();
        assert_eq!(again, out);
        // Two images of class 9 out of 10: the second is found on the second round through
        // the classes, after 10 classes without one.
        let nines = Dataset {
            labels: vec![9, 9],
            ..ds.slice(0..2)
        };
        assert_eq!(
            names(&write(&nines, &dir.join("n"), 2).unwrap()),
            ["9-class9.png", "9-class9-1.png"]
        );
        // Ten classes of 28×28 images: Fashion-MNIST names; another size keeps `class<k>`.
        let fashion = |h: usize| Dataset {
            c: 1,
            h,
            w: 28,
            images: vec![0; 10 * h * 28],
            labels: (0..10).collect(),
        };
        assert_eq!(
            names(&write(&fashion(28), &dir.join("d"), 2).unwrap()),
            ["0-tshirt.png", "1-trouser.png"]
        );
        assert_eq!(
            names(&write(&fashion(27), &dir.join("e"), 1).unwrap()),
            ["0-class0.png"]
        );
        // Only grayscale is written; a file where the folder goes is named.
        let rgb = Dataset {
            c: 3,
            images: vec![0; 5 * 18],
            ..ds.clone()
        };
        assert!(write(&rgb, &dir.join("f"), 1)
            .unwrap_err()
            .contains("3 channels"));
        std::fs::write(dir.join("g"), b"").unwrap();
        let e = write(&ds, &dir.join("g"), 1).unwrap_err();
        assert!(e.ends_with("exists and is not a directory"), "{e}");
        assert!(!dir.join("f").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
