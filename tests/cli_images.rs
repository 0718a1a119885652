//! The images `tinv-run classify` reads: every PGM and PNG kind gives the input computed by hand
//! (the logits printed are the library's for it), and headers at their bounds or of a kind the
//! model cannot take are one-line errors.

#[path = "common/cli.rs"]
#[allow(dead_code)] // `field` is for the JSON reports of the other files
mod cli_support;
#[path = "common/cli_fixtures.rs"]
mod fixtures;

use cli_support::{assert_failed_with, assert_one_line_error, tmp};
use fixtures::{classify_json, fixture, library_logits, run_limited};
use std::path::Path;
use std::sync::Arc;
use tinv::format::DType;
use tinv::{synth, Model, OpenOptions, Session, SessionOptions};

/// A PNG chunk: length, type, data, CRC-32 of type and data.
fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A PNG of `w` × `h` pixels of the given bit depth and colour type (IHDR's two bytes), its
/// IDAT the zlib stream of `scanlines` (each row led by its filter byte).
fn png(w: u32, h: u32, depth_and_type: [u8; 2], scanlines: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = [w.to_be_bytes(), h.to_be_bytes()].concat();
    // Deflate, no filter, no interlace.
    ihdr.extend_from_slice(&[depth_and_type[0], depth_and_type[1], 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(scanlines).unwrap();
    png_chunk(&mut png, b"IDAT", &z.finish().unwrap());
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A colour PNG classified by `tinv-run` and the same pixels converted by the library
/// (`tinv::pixels::to_input`, what `tinv_model_image_input` and camera code use) give the same
/// input bit for bit: the logits printed are the library's.
#[test]
fn a_colour_png_and_its_pixels_through_the_library_give_the_same_logits() {
    let dir = tmp("rgbpng");
    let (model_path, cfg) = fixture(&dir);
    let rgb: Vec<u8> = (0..8 * 8 * 3).map(|i| (i * 89 % 256) as u8).collect();
    let raw: Vec<u8> = rgb
        .chunks(24)
        .flat_map(|row| [&[0u8][..], row].concat())
        .collect();
    let img = dir.join("rgb.png");
    std::fs::write(&img, png(8, 8, [8, 2], &raw)).unwrap(); // 8-bit RGB
    let out = classify_json(&model_path, &img);
    let mut x = vec![0f32; cfg.input_len()];
    tinv::pixels::to_input(
        &cfg,
        &rgb,
        8,
        8,
        24,
        tinv::pixels::PixelFormat::Rgb8,
        &mut x,
    )
    .unwrap();
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    let mut logits = vec![0f32; cfg.classes];
    s.infer_depth(&x, 1, 2, &mut logits).unwrap();
    assert_eq!(printed_logits(&out), logits, "{out}");
}

/// The logits of the first `"logits":[…]` in `classify --json` output.
fn printed_logits(out: &str) -> Vec<f32> {
    let printed = out.split("\"logits\":[").nth(1).unwrap().split(']');
    let printed = printed.clone().next().unwrap();
    printed.split(',').map(|v| v.parse().unwrap()).collect()
}

/// `tinv-run classify` of the image file `bytes` on `model` runs the library on exactly `x`:
/// the logits it prints are the library's of `x`, bit for bit.
fn assert_input(dir: &Path, model: &Path, name: &str, bytes: &[u8], x: &[f32]) {
    let img = dir.join(name);
    std::fs::write(&img, bytes).unwrap();
    let want = library_logits(model, x);
    assert_eq!(printed_logits(&classify_json(model, &img)), want, "{name}");
}

/// Rows of `w`-byte scanlines, each led by filter byte 0 (none).
fn unfiltered(rows: &[u8], w: usize) -> Vec<u8> {
    rows.chunks(w)
        .flat_map(|r| [&[0u8][..], r].concat())
        .collect()
}

/// Every image kind `classify` reads, for a grey and a colour model, against the input written
/// out by hand: PGM samples over their maxval (8 and 16 bits, binary and plain, comments in the
/// header), PNG grey, grey+alpha, RGBA, 16-bit, 1-bit and palette; alpha dropped, grey copied to
/// every channel, colour through BT.601 luma (0.299 R + 0.587 G + 0.114 B) for a grey model.
#[test]
fn every_image_kind_gives_the_input_computed_by_hand() {
    let dir = tmp("kinds");
    let (grey, _) = fixture(&dir);
    let colour = dir.join("rgb.tinv");
    let cfg3 = synth::config(8, 3, 4, 16, 2, 2, 3, &[1, 2], false);
    std::fs::write(&colour, synth::random_model(&cfg3, 5, DType::F32)).unwrap();
    let v: Vec<u8> = (0..64).map(|i| (i * 53 % 256) as u8).collect();
    let a: Vec<u8> = (0..64).map(|i| (i * 29 % 256) as u8).collect();
    let rgb: Vec<u8> = (0..192).map(|i| (i * 71 % 256) as u8).collect();
    let by255 = |v: &[u8]| v.iter().map(|&p| p as f32 / 255.0).collect::<Vec<f32>>();
    // BT.601 luma of pixel i of 3-byte RGB pixels, in the order R, G, B.
    let luma = |rgb: &[u8], i: usize| {
        let c = |k: usize| rgb[i * 3 + k] as f32 / 255.0;
        0.299f32 * c(0) + 0.587f32 * c(1) + 0.114f32 * c(2)
    };
    let grey_luma: Vec<f32> = (0..64).map(|i| luma(&rgb, i)).collect();
    let planes: Vec<f32> = (0..3)
        .flat_map(|ch| (0..64).map(move |i| (ch, i)))
        .map(|(ch, i)| rgb[i * 3 + ch] as f32 / 255.0)
        .collect();
    let thrice = |x: Vec<f32>| x.repeat(3);
    let rgba: Vec<u8> = (0..64)
        .flat_map(|i| [rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2], a[i]])
        .collect();
    let ga: Vec<u8> = (0..64).flat_map(|i| [v[i], a[i]]).collect();

    // PGM, 8 bits: maxval 255 is one byte a sample; comments and odd whitespace in the header.
    let mut p5 = b"P5 # a comment\n\t8\r\n# another\n8 # width, height\n255\n".to_vec();
    p5.extend_from_slice(&v);
    assert_input(&dir, &grey, "p5.pgm", &p5, &by255(&v));
    assert_input(&dir, &colour, "p5.pgm", &p5, &thrice(by255(&v)));
    // PGM, 16 bits big-endian over maxval 1000; and maxval 65535, the largest.
    for max in [1000u32, 65535] {
        let s: Vec<u32> = (0..64).map(|i| (i * 997 + 3) % (max + 1)).collect();
        let mut p5 = format!("P5\n8 8\n{max}\n").into_bytes();
        s.iter()
            .for_each(|&x| p5.extend_from_slice(&(x as u16).to_be_bytes()));
        let x: Vec<f32> = s.iter().map(|&x| x as f32 / max as f32).collect();
        assert_input(&dir, &grey, "p5-16.pgm", &p5, &x);
    }
    // Plain PGM over maxval 15, samples split by any whitespace.
    let s: Vec<u32> = (0..64).map(|i| i * 7 % 16).collect();
    let body: Vec<String> = s.iter().map(|x| x.to_string()).collect();
    let p2 = format!("P2\n# plain\n8 8\n15\n{}\n", body.join(" \n\t"));
    let x: Vec<f32> = s.iter().map(|&x| x as f32 / 15.0).collect();
    assert_input(&dir, &grey, "p2.pgm", p2.as_bytes(), &x);

    // PNG: grey; grey+alpha (alpha dropped); RGBA to a grey model (luma) and a colour one.
    assert_input(
        &dir,
        &grey,
        "g.png",
        &png(8, 8, [8, 0], &unfiltered(&v, 8)),
        &by255(&v),
    );
    let ga_png = png(8, 8, [8, 4], &unfiltered(&ga, 16));
    assert_input(&dir, &grey, "ga.png", &ga_png, &by255(&v));
    assert_input(&dir, &colour, "ga.png", &ga_png, &thrice(by255(&v)));
    let rgba_png = png(8, 8, [8, 6], &unfiltered(&rgba, 32));
    assert_input(&dir, &grey, "rgba.png", &rgba_png, &grey_luma);
    assert_input(&dir, &colour, "rgba.png", &rgba_png, &planes);
    let rgb_png = png(8, 8, [8, 2], &unfiltered(&rgb, 24));
    assert_input(&dir, &colour, "rgb.png", &rgb_png, &planes);
    // 16 bits a sample: the high byte is kept.
    let g16: Vec<u8> = v.iter().flat_map(|&p| [p, 255 - p]).collect();
    let g16_png = png(8, 8, [16, 0], &unfiltered(&g16, 16));
    assert_input(&dir, &grey, "g16.png", &g16_png, &by255(&v));
    // 1 bit a pixel, the most significant bit first: 0 is black, 1 white.
    let bits: Vec<u8> = (0..8).map(|r| 0b1011_0001u8.rotate_left(r)).collect();
    let x: Vec<f32> = (0..64)
        .map(|i| ((bits[i / 8] >> (7 - i % 8)) & 1) as f32)
        .collect();
    assert_input(
        &dir,
        &grey,
        "g1.png",
        &png(8, 8, [1, 0], &unfiltered(&bits, 1)),
        &x,
    );
    // A palette of 4 colours, indices 0..4: each pixel the luma of its entry.
    let plte = [10u8, 200, 30, 255, 0, 128, 7, 7, 7, 90, 180, 250];
    let idx: Vec<u8> = (0..64).map(|i| (i * 3 % 4) as u8).collect();
    let mut pal = png(8, 8, [8, 3], &unfiltered(&idx, 8));
    let mut plte_chunk = Vec::new();
    png_chunk(&mut plte_chunk, b"PLTE", &plte);
    pal.splice(33..33, plte_chunk); // after the signature (8) and IHDR (25)
    let x: Vec<f32> = idx.iter().map(|&k| luma(&plte, k as usize)).collect();
    assert_input(&dir, &grey, "pal.png", &pal, &x);
}

/// Image headers at and past their bounds, and images a model cannot take: each refused with a
/// one-line error that says why (sizes up to 16384, PGM maxval 1 to 65535, colour only into 1 or
/// 3 channels), the bounds themselves read as far as the size check.
#[test]
fn image_headers_at_their_bounds_and_channels_a_model_cannot_take() {
    let dir = tmp("bounds");
    let (grey, _) = fixture(&dir);
    let two = dir.join("two.tinv");
    let cfg2 = synth::config(8, 2, 4, 16, 2, 2, 3, &[1, 2], false);
    std::fs::write(&two, synth::random_model(&cfg2, 6, DType::F32)).unwrap();
    let fails = |model: &Path, name: &str, bytes: &[u8], needle: &str| {
        let img = dir.join(name);
        std::fs::write(&img, bytes).unwrap();
        let args = [
            "classify",
            "--model",
            model.to_str().unwrap(),
            img.to_str().unwrap(),
        ];
        assert_one_line_error(&args, needle);
    };
    for (head, needle) in [
        ("P5 16385 8 255\n", "PGM 16385x8 maxval 255 not supported"),
        ("P5 8 16385 255\n", "PGM 8x16385 maxval 255 not supported"),
        ("P5 0 8 255\n", "PGM 0x8 maxval 255 not supported"),
        ("P5 8 0 255\n", "PGM 8x0 maxval 255 not supported"),
        ("P5 8 8 0\n", "PGM 8x8 maxval 0 not supported"),
        ("P5 8 8 65536\n", "PGM 8x8 maxval 65536 not supported"),
        (
            "P5 16384 8 255\n",
            "image is 8x16384 (height x width), the model takes 8x8",
        ),
        ("P5 8 16384 255\n", "image is 16384x8 (height x width)"),
        ("P5 8 8 x\n", "bad PGM header"),
        // Headers cut short in whitespace, a comment, a number: read to their last byte only.
        ("P5 8\n", "bad PGM header"),
        ("P5 8 # no end", "bad PGM header"),
        ("P5 8 8 255", "PGM pixel data truncated"),
    ] {
        fails(&grey, "head.pgm", head.as_bytes(), needle);
    }
    let mut short = b"P5 8 8 255\n".to_vec();
    short.extend_from_slice(&[0; 63]);
    fails(&grey, "short.pgm", &short, "PGM pixel data truncated");
    let mut short16 = b"P5 8 8 256\n".to_vec();
    short16.extend_from_slice(&[0; 127]);
    fails(&grey, "short16.pgm", &short16, "PGM pixel data truncated");
    let p2 = |body: &str| format!("P2 8 8 15\n{body}").into_bytes();
    fails(
        &grey,
        "p2.pgm",
        &p2(&"1 ".repeat(63)),
        "PGM pixel data truncated",
    );
    let bad = format!("{}16", "1 ".repeat(63));
    fails(
        &grey,
        "p2.pgm",
        &p2(&bad),
        "bad PGM sample '16' (need an integer 0..=15)",
    );
    fails(&grey, "p2.pgm", &p2("x"), "bad PGM sample 'x'");
    // PNG: width and height past 16384 refused from the header, 16384 itself read on.
    for (w, h, needle) in [
        (16385, 8, "PNG size 16385x8 not supported"),
        (8, 16385, "PNG size 8x16385 not supported"),
        (16384, 8, "image is 8x16384"),
        (8, 16384, "image is 16384x8"),
        (0, 8, "bad PNG"), // the png crate refuses a zero size itself
        (8, 0, "bad PNG"),
    ] {
        fails(&grey, "big.png", &png(w, h, [8, 0], &[]), needle);
    }
    // Colour into a 2-channel model is refused, naming the file's colour type; grey feeds both
    // channels.
    let rgb: Vec<u8> = (0..192).map(|i| (i * 7 % 256) as u8).collect();
    let rgb_png = png(8, 8, [8, 2], &unfiltered(&rgb, 24));
    let want = "cannot convert an RGB image to the model's 2 channels";
    fails(&two, "rgb.png", &rgb_png, want);
    let rgba: Vec<u8> = (0..256).map(|i| (i * 7 % 256) as u8).collect();
    let rgba_png = png(8, 8, [8, 6], &unfiltered(&rgba, 32));
    let want = "cannot convert an RGBA (alpha dropped: RGB) image to the model's 2 channels";
    fails(&two, "rgba.png", &rgba_png, want);
    let v: Vec<u8> = (0..64).map(|i| (i * 41 % 256) as u8).collect();
    let mut p5 = b"P5 8 8 255\n".to_vec();
    p5.extend_from_slice(&v);
    let x: Vec<f32> = v.iter().map(|&p| p as f32 / 255.0).collect();
    assert_input(&dir, &two, "g.pgm", &p5, &x.repeat(2));
}

/// A 68-byte PNG whose header declares 16384×16384 RGBA at 16 bits is refused from its header.
/// The decoder used to allocate the decoded frame (1 GiB) first and abort under a memory limit;
/// here the address space is capped at 512 MiB, so that allocation cannot succeed.
#[cfg(unix)]
#[test]
fn png_declaring_a_huge_image_is_refused_before_decoding() {
    let dir = tmp("hugepng");
    let (model_path, _) = fixture(&dir);
    let png = png(16384, 16384, [16, 6], &[0; 8]); // 16-bit RGBA
    let img = dir.join("huge.png");
    std::fs::write(&img, &png).unwrap();
    let (code, err) = run_limited(
        524_288,
        &[
            "classify".as_ref(),
            "--model".as_ref(),
            model_path.as_os_str(),
            img.as_os_str(),
        ],
    );
    assert_failed_with(
        code,
        &err,
        "huge.png: image is 16384x16384 (height x width), the model takes 8x8",
        &"classify huge.png",
    );
}
