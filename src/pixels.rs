//! Camera pixels to a model's input: interleaved 8-bit images (grey, RGB, BGR, with or without
//! alpha) of the model's size become CHW floats in [0, 1], converted as `tinv-run classify`
//! converts its image files, so that a frame and the same frame saved as a PNG give the same
//! input. No resizing: a camera pipeline scales (and crops) better than a fixed rule here would.

use crate::error::{Error, Result};
use crate::model::Config;

/// ITU-R BT.601 luma weights of R, G and B: a colour image feeding a grey model.
pub const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// How the bytes of one pixel are laid out (8 bits per channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PixelFormat {
    /// One byte: grey.
    Gray8,
    /// Red, green, blue.
    Rgb8,
    /// Blue, green, red (OpenCV's order).
    Bgr8,
    /// Red, green, blue, alpha (dropped).
    Rgba8,
    /// Blue, green, red, alpha (dropped).
    Bgra8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => 3,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => 4,
        }
    }

    /// Offsets of R, G and B in a pixel (`None` for grey).
    fn rgb(self) -> Option<[usize; 3]> {
        match self {
            PixelFormat::Gray8 => None,
            PixelFormat::Rgb8 | PixelFormat::Rgba8 => Some([0, 1, 2]),
            PixelFormat::Bgr8 | PixelFormat::Bgra8 => Some([2, 1, 0]),
        }
    }
}

/// The bytes an image of `width` × `height` pixels of `format`, rows `stride` bytes apart,
/// spans: `stride` × (`height` − 1) + one row. [`Error::InvalidArgument`] when the size differs
/// from the model's, the stride is shorter than a row, or the span exceeds `isize::MAX` (no
/// buffer can hold it): what [`to_input`] checks, and what the C ABI checks before it forms a
/// slice from a caller's pointer.
pub fn image_bytes(
    cfg: &Config,
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
) -> Result<usize> {
    if (width, height) != (cfg.image_w, cfg.image_h) {
        return Err(Error::arg(format!(
            "image is {width}x{height}, the model takes {}x{}",
            cfg.image_w, cfg.image_h
        )));
    }
    let row = width.saturating_mul(format.bytes());
    if stride < row {
        return Err(Error::arg(format!(
            "stride {stride} is shorter than a row of {width} {format:?} pixels ({row} bytes)"
        )));
    }
    stride
        .checked_mul(height.saturating_sub(1))
        .and_then(|b| b.checked_add(row))
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| {
            Error::arg(format!(
                "a {width}x{height} image at stride {stride} spans more bytes than memory holds"
            ))
        })
}

/// Writes the model input for an image of `width` × `height` pixels of `format`, rows `stride`
/// bytes apart, into `out` (`cfg.input_len()` floats, CHW): value / 255; grey feeds every
/// channel; colour feeds a 3-channel model as R, G, B and a 1-channel model through [`LUMA`].
///
/// Errors: [`Error::InvalidArgument`] when the size differs from the model's, the stride is
/// shorter than a row, `pixels` is shorter than `stride` × (`height` − 1) + one row, or a colour
/// image meets a model of other than 1 or 3 channels; [`Error::BufferTooSmall`] when `out` holds
/// fewer than `cfg.input_len()` floats.
pub fn to_input(
    cfg: &Config,
    pixels: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
    out: &mut [f32],
) -> Result<()> {
    let need = image_bytes(cfg, width, height, stride, format)?;
    let bpp = format.bytes();
    if pixels.len() < need {
        return Err(Error::arg(format!(
            "{} pixel bytes, a {width}x{height} image at stride {stride} needs {need}",
            pixels.len()
        )));
    }
    let c = cfg.channels;
    if format.rgb().is_some() && c != 1 && c != 3 {
        return Err(Error::arg(format!(
            "a colour image feeds a 1- or 3-channel model, this one has {c} channels"
        )));
    }
    let (hw, have) = (width * height, out.len());
    let out = out.get_mut(..c * hw).ok_or_else(|| {
        Error::BufferTooSmall(format!(
            "output holds {have} floats, the input is {}",
            c * hw
        ))
    })?;
    for y in 0..height {
        for x in 0..width {
            let px = &pixels[y * stride + x * bpp..][..bpp];
            let i = y * width + x;
            match (format.rgb(), c) {
                (None, _) => (0..c).for_each(|ch| out[ch * hw + i] = f32::from(px[0]) / 255.0),
                // Scaled first, then weighed and summed in R, G, B order: the operations of
                // tinv-run's image loader, so that both give the same bits.
                (Some(o), 1) => {
                    out[i] = (0..3)
                        .map(|k| LUMA[k] * (f32::from(px[o[k]]) / 255.0))
                        .sum::<f32>()
                }
                (Some(o), _) => (0..3).for_each(|k| out[k * hw + i] = f32::from(px[o[k]]) / 255.0),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    fn cfg(channels: usize) -> Config {
        let mut c = synth::config(2, channels, 2, 8, 2, 1, 3, &[1], false);
        c.mean = vec![0.5; channels];
        c.std = vec![0.5; channels];
        c
    }

    #[test]
    fn hand_computed_pixels() {
        // 2×2 RGB, rows padded to 8 bytes.
        #[rustfmt::skip]
        let rgb = [
            255, 0, 0,   0, 255, 0,   9, 9,
            0, 0, 255,   51, 102, 153, 9, 9,
        ];
        let mut out = vec![-1f32; 4];
        to_input(&cfg(1), &rgb, 2, 2, 8, PixelFormat::Rgb8, &mut out).unwrap();
        let want = [
            0.299,
            0.587,
            0.114,
            (0.299 * 51.0 + 0.587 * 102.0 + 0.114 * 153.0) / 255.0,
        ];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
        // The same pixels as BGRA into a colour model: planes R, G, B; alpha dropped.
        let bgra: Vec<u8> = rgb
            .chunks(8)
            .flat_map(|r| {
                r[..6]
                    .chunks(3)
                    .flat_map(|p| [p[2], p[1], p[0], 7])
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut out = vec![-1f32; 12];
        to_input(&cfg(3), &bgra, 2, 2, 8, PixelFormat::Bgra8, &mut out).unwrap();
        let r = [1.0, 0.0, 0.0, 0.2];
        let g = [0.0, 1.0, 0.0, 0.4];
        let b = [0.0, 0.0, 1.0, 0.6];
        let want: Vec<f32> = r.iter().chain(&g).chain(&b).copied().collect();
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
        // Grey feeds every channel.
        let mut out = vec![-1f32; 12];
        to_input(
            &cfg(3),
            &[0, 51, 102, 255],
            2,
            2,
            2,
            PixelFormat::Gray8,
            &mut out,
        )
        .unwrap();
        assert_eq!(out[..4], out[4..8]);
        assert_eq!(out[..4], out[8..]);
        assert_eq!(out[..4], [0.0, 0.2, 0.4, 1.0]);
    }

    #[test]
    fn bad_images_and_buffers_are_errors() {
        let c = cfg(1);
        let mut out = vec![0f32; 4];
        let px = [0u8; 16];
        let e = |r: Result<()>| r.unwrap_err().to_string();
        assert!(e(to_input(&c, &px, 3, 2, 3, PixelFormat::Gray8, &mut out)).contains("3x2"));
        assert!(e(to_input(&c, &px, 2, 2, 5, PixelFormat::Rgb8, &mut out)).contains("stride 5"));
        assert!(
            e(to_input(&c, &px[..9], 2, 2, 6, PixelFormat::Rgb8, &mut out)).contains("needs 12")
        );
        assert!(matches!(
            to_input(&c, &px, 2, 2, 2, PixelFormat::Gray8, &mut out[..3]),
            Err(Error::BufferTooSmall(_))
        ));
        // Exactly the last row's bytes suffice (no stride padding after it).
        to_input(&c, &px[..14], 2, 2, 8, PixelFormat::Rgb8, &mut out).unwrap();
        let four = cfg(4);
        let mut out4 = vec![0f32; 16];
        assert!(
            e(to_input(&four, &px, 2, 2, 6, PixelFormat::Rgb8, &mut out4)).contains("4 channels")
        );
        to_input(&four, &px, 2, 2, 2, PixelFormat::Gray8, &mut out4).unwrap();
    }
}
