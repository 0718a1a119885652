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
}
