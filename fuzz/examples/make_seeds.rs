//! Writes the seed corpora under fuzz/corpus/<target>/ from valid files: small synthetic models
//! (every optional part: controller, f16 storage, one and several paths), IDX image and label
//! files, engine manifests of both layouts, and PNG / PGM images of every supported colour type.
//! Run from fuzz/: `cargo run --example make_seeds`. Deterministic: reruns give the same bytes.

use std::path::Path;
use tinv::format::{DType, MetaValue, TinvWriter};
use tinv::synth;

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed written");
}

fn png(
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    interlaced: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(color);
        e.set_depth(depth);
        if color == png::ColorType::Indexed {
            e.set_palette(vec![0, 0, 0, 255, 255, 255, 128, 64, 32, 10, 200, 90]);
        }
        let mut wr = e.write_header().expect("png header");
        wr.write_image_data(data).expect("png data");
    }
    if interlaced {
        // The png crate's encoder does not interlace; flip the IHDR interlace byte and keep the
        // data as is: the decoder must then refuse or decode it without panicking.
        out[28] = 1;
    }
    out
}

fn main() {
    // .tinv models: smallest (one path, no controller), adaptive with controller, f16 storage.
    let one = synth::config(4, 1, 2, 4, 1, 1, 2, &[1], false);
    put(
        "tinv_parse",
        "one_path.tinv",
        &synth::random_model(&one, 1, DType::F32),
    );
    let ctrl = synth::config(4, 1, 2, 8, 2, 2, 3, &[1, 2], true);
    put(
        "tinv_parse",
        "adaptive.tinv",
        &synth::random_model(&ctrl, 2, DType::F32),
    );
    let rgb = synth::config(4, 3, 2, 8, 2, 2, 3, &[1, 2], false);
    put(
        "tinv_parse",
        "rgb_f16.tinv",
        &synth::random_model(&rgb, 3, DType::F16),
    );
    let mut w = TinvWriter::new();
    w.meta("k", MetaValue::U64(1))
        .meta("s", MetaValue::Str("x".into()));
    w.meta("a", MetaValue::U64s(vec![1, 2]))
        .meta("f", MetaValue::F64s(vec![0.5]));
    w.meta("d", MetaValue::F64(1.5));
    w.tensor("a", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], DType::F32);
    w.page_break();
    w.tensor("b", &[4], &[0.5, -0.5, 1.5, 2.0], DType::F16);
    put("tinv_parse", "plain.tinv", &w.to_bytes());

    // IDX: images [3, 4, 4], labels [3], a rank-4 colour set.
    let img: Vec<u8> = (0..48).map(|i| (i * 5) as u8).collect();
    put("idx", "images.idx", &tinv::idx::encode(&[3, 4, 4], &img).unwrap());
    put("idx", "labels.idx", &tinv::idx::encode(&[3], &[0, 1, 2]).unwrap());
    put(
        "idx",
        "rgb.idx",
        &tinv::idx::encode(&[1, 2, 2, 3], &img[..12]).unwrap(),
    );

    // Engine manifests (docs: src/trt/manifest.rs).
    let per_path = "tinv-trt-manifest 3\nmodel_hash 0x00112233445566ff\nexport 2\ntensorrt 10.3.0\n\
gpu 8.7 16 Orin (nvgpu)\nprecision fp16\nlayout per-path\nweights_bytes 1024\n\
weight blk.0.qkv.weight f16 0 96 4,12\nweight exit.1.head.weight f16 256 40 4,5\n\
engine path1 path1.plan 4194304 0x5b82ceccd4c987ad\nio path1 input f32 1,1,28,28 image\n\
io path1 input f16 4,12 blk.0.qkv.weight\nio path1 input f16 4,5 exit.1.head.weight\n\
io path1 output f32 1,10 logits\nengine path2 path2.plan 8388608 0x5a6a00fc4eac7fd5\nio path2 input f32 1,1,28,28 image\n\
io path2 output f32 1,10 logits\npath 1 path1\npath 2 path2\n";
    put("manifest", "per_path.txt", per_path.as_bytes());
    let segments =
        "# built by tinv-run build\ntinv-trt-manifest 3\nmodel_hash 0xff\nexport 2\ntensorrt 8.5.2\n\
gpu 7.2 8 Xavier\nprecision fp32\nlayout segments\nweights_bytes 0\n\
engine seg1 seg1.plan 1000 0x3c12305a879024e4\nio seg1 input f32 1,1,8,8 image\nio seg1 output f32 1,17,16 x\n\
engine head1 head1.plan 10 0x6c8bcc926e912684\nio head1 input f32 1,17,16 x\nio head1 output f32 1,3 logits\n\
engine seg2 seg2.plan 1000 0x12dc529714424272\nio seg2 input f32 1,17,16 x\nio seg2 output f32 1,17,16 y\n\
path 1 seg1,head1\npath 2 seg1,seg2,head1\n";
    put("manifest", "segments.txt", segments.as_bytes());

    // Images: PNG of each colour type and depth the decoder handles, PGM binary and plain.
    use png::{BitDepth as B, ColorType as C};
    let px: Vec<u8> = (0..64).map(|i| (i * 37 % 256) as u8).collect();
    put(
        "image",
        "grey8.png",
        &png(4, 4, C::Grayscale, B::Eight, &px[..16], false),
    );
    put(
        "image",
        "grey1.png",
        &png(8, 2, C::Grayscale, B::One, &px[..2], false),
    );
    put(
        "image",
        "grey16.png",
        &png(2, 2, C::Grayscale, B::Sixteen, &px[..8], false),
    );
    put(
        "image",
        "grey_alpha.png",
        &png(2, 2, C::GrayscaleAlpha, B::Eight, &px[..8], false),
    );
    put(
        "image",
        "rgb.png",
        &png(2, 2, C::Rgb, B::Eight, &px[..12], false),
    );
    put(
        "image",
        "rgba.png",
        &png(2, 2, C::Rgba, B::Eight, &px[..16], false),
    );
    put(
        "image",
        "indexed.png",
        &png(4, 1, C::Indexed, B::Two, &[0b0001_1011], false),
    );
    put(
        "image",
        "interlaced.png",
        &png(3, 3, C::Grayscale, B::Eight, &px[..9], true),
    );
    let mut p5 = b"P5\n# a comment\n4 2\n255\n".to_vec();
    p5.extend_from_slice(&px[..8]);
    put("image", "p5.pgm", &p5);
    let mut p5w = b"P5 2 1 65535\n".to_vec();
    p5w.extend_from_slice(&[0x12, 0x34, 0xff, 0xff]);
    put("image", "p5_16bit.pgm", &p5w);
    put("image", "p2.pgm", b"P2\n3 2\n15\n0 3 7\n15 1 2\n");
}
