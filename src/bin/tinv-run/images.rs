//! Image and dataset input: PNG / PGM files for `classify`, IDX files (gzip or plain) for `eval`.

use std::path::Path;
use tinv::pixels::LUMA;
use tinv::Config;

/// An 8-bit image, `channels` interleaved per pixel.
struct Image {
    w: usize,
    h: usize,
    channels: usize,
    data: Vec<f32>,
}

/// Loads `path` and converts it to the model's input: CHW floats in [0, 1]. Grey images feed
/// every channel of an RGB model; colour images feed a grey model through ITU-R BT.601 luma.
/// The size must equal the model's input size; it is checked from the header, before any pixel
/// is decoded, so a small file that declares a huge image costs nothing.
pub fn load_image(path: &Path, cfg: &Config) -> Result<Vec<f32>, String> {
    let bytes = read_image_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let img = decode_checked(&bytes, cfg).map_err(|e| format!("{}: {e}", path.display()))?;
    let (hw, c) = (img.w * img.h, cfg.channels);
    let mut out = vec![0f32; c * hw];
    for i in 0..hw {
        let px = &img.data[i * img.channels..(i + 1) * img.channels];
        match (img.channels, c) {
            (ic, oc) if ic == oc => (0..oc).for_each(|ch| out[ch * hw + i] = px[ch]),
            (1, oc) => (0..oc).for_each(|ch| out[ch * hw + i] = px[0]),
            // (3, 1), the only other pair `decode_checked` lets through.
            _ => out[i] = (0..3).map(|k| LUMA[k] * px[k]).sum::<f32>(),
        }
    }
    Ok(out)
}

/// The largest image file `classify` reads: far beyond any model input (a 1024² RGBA16 PNG
/// stored raw is 8 MiB), small enough that `/dev/zero` or a mistyped video file is refused.
const MAX_IMAGE_FILE: u64 = 64 << 20;

/// Reads a regular file of at most [`MAX_IMAGE_FILE`] bytes. Devices, FIFOs and directories are
/// refused before opening (reading `/dev/zero` would never end; opening a FIFO blocks).
fn read_image_file(path: &Path) -> Result<Vec<u8>, String> {
    tinv::files::read_regular_capped(path, MAX_IMAGE_FILE).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => format!("{e}, not an image tinv-run reads"),
        _ => e.to_string(),
    })
}

/// A header read, the pixels not yet decoded.
enum Header<'a> {
    /// The reader past the header, channels and whether alpha follows ([`png_reader`]).
    Png(Box<PngReader<'a>>, usize, bool),
    /// `[width, height, maxval]` and where the pixels start ([`pgm_header`]).
    Pgm([usize; 3], usize),
}

/// Decodes a PNG or PGM after checking its header against the model's input: the declared size
/// must be the model's and the channels convertible to the model's (equal, grey, or RGB to grey).
fn decode_checked(bytes: &[u8], cfg: &Config) -> Result<Image, String> {
    let header = if bytes.starts_with(b"\x89PNG") {
        let (reader, channels, alpha) = png_reader(bytes)?;
        Header::Png(Box::new(reader), channels, alpha)
    } else if bytes.starts_with(b"P5") || bytes.starts_with(b"P2") {
        let (dims, pos) = pgm_header(bytes)?;
        Header::Pgm(dims, pos)
    } else {
        return Err("not a PNG or PGM image".into());
    };
    let (w, h, channels) = match &header {
        Header::Png(r, c, _) => (r.info().width as usize, r.info().height as usize, *c),
        Header::Pgm([w, h, _], _) => (*w, *h, 1),
    };
    if (w, h) != (cfg.image_w, cfg.image_h) {
        return Err(format!(
            "image is {h}x{w} (height x width), the model takes {}x{}",
            cfg.image_h, cfg.image_w
        ));
    }
    let oc = cfg.channels;
    if !(channels == oc || channels == 1 || (channels, oc) == (3, 1)) {
        // Name the file's own colour type: alpha is dropped before this count.
        let kind = match &header {
            Header::Png(_, _, true) => "an RGBA (alpha dropped: RGB)",
            Header::Png(..) => "an RGB",
            Header::Pgm(..) => "a grey",
        };
        return Err(format!(
            "cannot convert {kind} image to the model's {oc} channels (a model with other than \
             1 or 3 channels takes grey images only)"
        ));
    }
    match header {
        Header::Png(reader, channels, alpha) => png_pixels(*reader, channels, alpha),
        Header::Pgm(dims, pos) => pgm_pixels(bytes, dims, pos),
    }
}

type PngReader<'a> = png::Reader<std::io::Cursor<&'a [u8]>>;

/// A PNG reader past the header, with the channels each pixel decodes to (after EXPAND: palette
/// → RGB, low bit depths → 8 bits; and STRIP_16) and whether an alpha sample follows them.
fn png_reader(bytes: &[u8]) -> Result<(PngReader<'_>, usize, bool), String> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let reader = dec.read_info().map_err(|e| format!("bad PNG: {e}"))?;
    let (w, h) = (reader.info().width, reader.info().height);
    if w == 0 || h == 0 || w > 1 << 14 || h > 1 << 14 {
        return Err(format!("PNG size {w}x{h} not supported"));
    }
    // The png crate panics expanding a palette that is not whole RGB triples; PNG forbids it.
    if let Some(plte) = &reader.info().palette {
        if plte.len() % 3 != 0 || plte.is_empty() {
            return Err(format!(
                "bad PNG: PLTE chunk of {} bytes is not whole RGB entries",
                plte.len()
            ));
        }
    }
    let (channels, alpha) = match reader.output_color_type().0 {
        png::ColorType::Grayscale => (1, false),
        png::ColorType::GrayscaleAlpha => (1, true),
        png::ColorType::Rgb => (3, false),
        png::ColorType::Rgba => (3, true),
        other => return Err(format!("PNG colour type {other:?} not supported")),
    };
    Ok((reader, channels, alpha))
}

/// PNG, any size up to 16384² (`decode_checked` bounds it by the model's first).
#[allow(dead_code)] // the `image` fuzz target's entry point (fuzz/fuzz_targets/image.rs)
fn decode_png(bytes: &[u8]) -> Result<Image, String> {
    let (reader, channels, alpha) = png_reader(bytes)?;
    png_pixels(reader, channels, alpha)
}

/// The pixels of a PNG whose header `png_reader` read.
fn png_pixels(mut reader: PngReader<'_>, channels: usize, alpha: bool) -> Result<Image, String> {
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("bad PNG: {e}"))?;
    let stride = channels + usize::from(alpha);
    let data = buf[..frame.buffer_size()]
        .chunks_exact(stride)
        .flat_map(|px| px[..channels].iter().map(|&v| f32::from(v) / 255.0))
        .collect();
    Ok(Image {
        w,
        h,
        channels,
        data,
    })
}

/// A PGM header: `[width, height, maxval]` and the offset of the whitespace before the pixels.
fn pgm_header(bytes: &[u8]) -> Result<([usize; 3], usize), String> {
    let mut pos = 2;
    let mut header = [0usize; 3];
    for v in header.iter_mut() {
        loop {
            while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if bytes.get(pos) == Some(&b'#') {
                while pos < bytes.len() && bytes[pos] != b'\n' {
                    pos += 1;
                }
            } else {
                break;
            }
        }
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        *v = std::str::from_utf8(&bytes[start..pos])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad PGM header")?;
    }
    let [w, h, max] = header;
    if w == 0 || h == 0 || w > 1 << 14 || h > 1 << 14 || max == 0 || max > 65535 {
        return Err(format!("PGM {w}x{h} maxval {max} not supported"));
    }
    Ok((header, pos))
}

/// PGM, binary (P5) or plain (P2), maxval up to 65535.
#[allow(dead_code)] // the `image` fuzz target's entry point (fuzz/fuzz_targets/image.rs)
fn decode_pgm(bytes: &[u8]) -> Result<Image, String> {
    let (dims, pos) = pgm_header(bytes)?;
    pgm_pixels(bytes, dims, pos)
}

/// The pixels of a PGM whose header `pgm_header` read.
fn pgm_pixels(bytes: &[u8], [w, h, max]: [usize; 3], mut pos: usize) -> Result<Image, String> {
    pos += 1; // the single whitespace after maxval
    let n = w * h;
    let data: Vec<f32> = if bytes.starts_with(b"P5") {
        let bpp = if max > 255 { 2 } else { 1 };
        let body = bytes
            .get(pos..pos + n * bpp)
            .ok_or("PGM pixel data truncated")?;
        body.chunks_exact(bpp)
            .map(|b| {
                let v = if bpp == 2 {
                    usize::from(u16::from_be_bytes([b[0], b[1]]))
                } else {
                    usize::from(b[0])
                };
                if v > max {
                    return Err(format!("PGM sample {v} above maxval {max}"));
                }
                Ok(v as f32 / max as f32)
            })
            .collect::<Result<_, _>>()?
    } else {
        let text = std::str::from_utf8(bytes.get(pos..).unwrap_or_default())
            .map_err(|_| "bad PGM text")?;
        let vals: Vec<f32> = text
            .split_ascii_whitespace()
            .take(n)
            .map(|t| match t.parse::<usize>() {
                Ok(v) if v <= max => Ok(v as f32 / max as f32),
                _ => Err(format!("bad PGM sample '{t}' (need an integer 0..={max})")),
            })
            .collect::<Result<_, _>>()?;
        if vals.len() != n {
            return Err("PGM pixel data truncated".into());
        }
        vals
    };
    Ok(Image {
        w,
        h,
        channels: 1,
        data,
    })
}

/// Reads an IDX file, gzipped or not (`tinv::idx::open`); a missing Fashion-MNIST file says
/// which package installs it.
pub fn read_idx(path: &Path) -> Result<tinv::idx::Idx, String> {
    tinv::idx::open(path).map_err(|e| {
        let hint = if !path.exists() && path.starts_with("/usr/share/datasets") {
            " (install it with: apt-get install dataset-fashion-mnist)"
        } else {
            ""
        };
        format!("{}: {e}{hint}", path.display())
    })
}

/// Images and labels of an IDX pair, checked against each other and the model: images
/// `[n, H, W]` (or `[n, H, W, C]`), labels `[n]` below the model's class count. Only samples
/// `skip..` are kept, at most `limit` of them (`--skip`, `--limit`); none is an error.
pub fn load_dataset(
    images: &Path,
    labels: &Path,
    cfg: &Config,
    skip: usize,
    limit: Option<usize>,
) -> Result<(Vec<f32>, Vec<usize>), String> {
    let im = read_idx(images)?;
    let lb = read_idx(labels)?;
    let (n, h, w, c) = match im.dims[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] => (n, h, w, c),
        _ => {
            return Err(format!(
                "{}: images must be [n, H, W] or [n, H, W, C], found {:?}",
                images.display(),
                im.dims
            ))
        }
    };
    match lb.dims[..] {
        [m] if m == n => {}
        [m] => {
            return Err(format!(
                "{}: {m} labels for {n} images in {}",
                labels.display(),
                images.display()
            ))
        }
        _ => {
            return Err(format!(
                "{}: labels must be [n], found {:?} (is it an image file?)",
                labels.display(),
                lb.dims
            ))
        }
    }
    if h != cfg.image_h || w != cfg.image_w || c != cfg.channels {
        return Err(format!(
            "{}: images are {h}x{w}x{c}, the model takes {}x{}x{}",
            images.display(),
            cfg.image_h,
            cfg.image_w,
            cfg.channels
        ));
    }
    if n == 0 {
        return Err(format!("{}: the data set is empty", images.display()));
    }
    if skip >= n {
        return Err(format!(
            "--skip {skip} leaves none of the {n} samples of {}",
            images.display()
        ));
    }
    let n = limit.map_or(n - skip, |l| l.min(n - skip));
    let hw = h * w;
    // The IDX bytes may be up to 4 GiB, four times that as f32: fail with a message, not an
    // abort, when the machine (a Jetson's shared memory) cannot hold them.
    let mut x = Vec::new();
    x.try_reserve_exact(n * c * hw).map_err(|_| {
        format!(
            "{}: out of memory for {n} images as f32 ({} MiB); use --limit",
            images.display(),
            (n * c * hw * 4) >> 20
        )
    })?;
    x.resize(n * c * hw, 0f32);
    for i in 0..n {
        for p in 0..hw {
            for ch in 0..c {
                x[i * c * hw + ch * hw + p] =
                    f32::from(im.data[((skip + i) * hw + p) * c + ch]) / 255.0;
            }
        }
    }
    let y: Vec<usize> = lb.data[skip..skip + n]
        .iter()
        .map(|&v| v as usize)
        .collect();
    if let Some(bad) = y.iter().find(|&&v| v >= cfg.classes) {
        return Err(format!(
            "{}: label {bad} is not below the model's {} classes",
            labels.display(),
            cfg.classes
        ));
    }
    Ok((x, y))
}
