//! The writer's output, byte for byte, against a file assembled in this test from
//! docs/FORMAT.md alone: header fields, metadata entries of every type, tensor records, the two
//! hashes, alignment, page breaks and zero padding. Whatever the writer gets wrong about the
//! format (a field's order or width, an offset, a hash, padding) shows here even where the
//! reader, written by the same hands, would agree with it.

#[path = "common/fnv_spec.rs"]
mod fnv_spec;

use fnv_spec::{fnv, BASIS};
use tinv::format::{self, DType, MetaValue, TinvWriter};

/// A `u32 length` + UTF-8 string.
fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
}

/// One metadata entry: key, `type: u32`, value.
fn entry(out: &mut Vec<u8>, key: &str, ty: u32, value: &[u8]) {
    string(out, key);
    out.extend(ty.to_le_bytes());
    out.extend(value);
}

struct Tensor {
    name: &'static str,
    dtype: u32,
    flags: u32,
    dims: &'static [u64],
    offset: u64,
    bytes: Vec<u8>,
}

/// The whole file from its parts, every offset computed here.
fn assemble(meta_entries: &[u8], meta_count: u32, tensors: &[Tensor], data_len: u64) -> Vec<u8> {
    let mut table = Vec::new();
    for t in tensors {
        string(&mut table, t.name);
        table.extend(t.dtype.to_le_bytes());
        table.extend(t.flags.to_le_bytes());
        table.extend((t.dims.len() as u32).to_le_bytes());
        t.dims.iter().for_each(|d| table.extend(d.to_le_bytes()));
        table.extend(t.offset.to_le_bytes());
        table.extend((t.bytes.len() as u64).to_le_bytes());
        table.extend(fnv(BASIS, &t.bytes).to_le_bytes());
    }
    let table_offset = 64 + meta_entries.len() as u64;
    let data_offset = (table_offset + table.len() as u64).div_ceil(4096) * 4096;
    let file_len = data_offset + data_len;
    let mut f = Vec::new();
    f.extend([0x89, 0x54, 0x49, 0x4E, 0x56, 0x0D, 0x0A, 0x1A]);
    f.extend(1u32.to_le_bytes());
    f.extend([0x0D, 0x0C, 0x0B, 0x0A]);
    f.extend(256u32.to_le_bytes());
    f.extend(4096u32.to_le_bytes());
    f.extend(meta_count.to_le_bytes());
    f.extend((tensors.len() as u32).to_le_bytes());
    f.extend(64u64.to_le_bytes());
    f.extend(table_offset.to_le_bytes());
    f.extend(data_offset.to_le_bytes());
    f.extend(file_len.to_le_bytes());
    assert_eq!(f.len(), 64);
    f.extend(meta_entries);
    f.extend(&table);
    f.resize(data_offset as usize, 0);
    for t in tensors {
        f.resize((data_offset + t.offset) as usize, 0);
        f.extend(&t.bytes);
    }
    f.resize(file_len as usize, 0);
    f
}

/// The content hash, then the metadata checksum over every entry before it, appended as the last
/// two entries the way FORMAT.md says the writer stores them.
fn finish_meta(mut m: Vec<u8>, tensors: &[Tensor]) -> Vec<u8> {
    let mut content = fnv(BASIS, b"tinv-content-v1");
    for t in tensors {
        content = fnv(content, t.name.as_bytes());
        content = fnv(content, &[0]);
        content = fnv(content, &fnv(BASIS, &t.bytes).to_le_bytes());
    }
    entry(&mut m, "tinv.content_hash", 0, &content.to_le_bytes());
    let meta_sum = fnv(fnv(BASIS, b"tinv-meta-v1"), &m);
    entry(&mut m, "tinv.meta_hash", 0, &meta_sum.to_le_bytes());
    m
}

fn le32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn the_writer_writes_the_documented_format_byte_for_byte() {
    let mut w = TinvWriter::new();
    w.meta("a.u64", MetaValue::U64(0x0102_0304_0506_0708))
        .meta("b.f64", MetaValue::F64(-1.5))
        .meta("c.str", MetaValue::Str("héllo".into()))
        .meta("d.u64s", MetaValue::U64s(vec![3, 1 << 40]))
        .meta("e.f64s", MetaValue::F64s(vec![0.25, -0.0, 1e-6]));
    w.tensor("t0", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], DType::F32);
    w.page_break();
    w.tensor("t1", &[3], &[1.0, -2.0, 0.5], DType::F16);
    w.raw_tensor("t2", DType::F32, 1, &[1, 1], 3f32.to_le_bytes().to_vec());

    let mut m = Vec::new();
    entry(&mut m, "a.u64", 0, &[8, 7, 6, 5, 4, 3, 2, 1]);
    entry(&mut m, "b.f64", 1, &(-1.5f64).to_le_bytes());
    let mut s = Vec::new();
    string(&mut s, "héllo"); // 6 bytes of UTF-8
    assert_eq!(&s[..4], &[6, 0, 0, 0]);
    entry(&mut m, "c.str", 2, &s);
    let mut a = 2u32.to_le_bytes().to_vec();
    a.extend(3u64.to_le_bytes());
    a.extend((1u64 << 40).to_le_bytes());
    entry(&mut m, "d.u64s", 3, &a);
    let mut a = 3u32.to_le_bytes().to_vec();
    [0.25f64, -0.0, 1e-6]
        .iter()
        .for_each(|v| a.extend(v.to_le_bytes()));
    entry(&mut m, "e.f64s", 4, &a);
    let tensors = [
        // 24 bytes at 0; the page break puts t1 at 4096; t2 at the next multiple of 256 after
        // t1's 6 bytes; the data section ends at the next multiple of 256 after t2's 4 bytes.
        Tensor {
            name: "t0",
            dtype: 0,
            flags: 0,
            dims: &[2, 3],
            offset: 0,
            bytes: le32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        },
        Tensor {
            name: "t1",
            dtype: 1,
            flags: 0,
            dims: &[3],
            offset: 4096,
            // IEEE half: 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800.
            bytes: vec![0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38],
        },
        Tensor {
            name: "t2",
            dtype: 0,
            flags: 1,
            dims: &[1, 1],
            offset: 4352,
            bytes: le32(&[3.0]),
        },
    ];
    let m = finish_meta(m, &tensors);
    let expected = assemble(&m, 7, &tensors, 4608);

    let written = w.to_bytes();
    assert_eq!(written.len(), expected.len(), "file length");
    if let Some(i) = (0..written.len()).find(|&i| written[i] != expected[i]) {
        panic!(
            "first difference at byte {i}: writer {:#04x}, FORMAT.md {:#04x}",
            written[i], expected[i]
        );
    }
    // The reader accepts the file as FORMAT.md describes it and checks its metadata checksum.
    let idx = format::parse(&expected).expect("the documented file parses");
    idx.verify(&expected).expect("its checksums hold");
    assert_eq!(idx.meta.f64s("e.f64s"), Some(&[0.25, -0.0, 1e-6][..]));
}

#[test]
fn hashes_given_by_the_caller_are_replaced_and_moved_to_the_end() {
    // A caller that copies the metadata of another file brings that file's hashes along, in
    // their old places; the writer stores its own instead, after everything else.
    let mut w = TinvWriter::new();
    w.meta("tinv.meta_hash", MetaValue::U64(1))
        .meta("tinv.content_hash", MetaValue::U64(2))
        .meta("k", MetaValue::Str("v".into()));
    w.tensor("x", &[1], &[0.5], DType::F32);
    let mut m = Vec::new();
    let mut s = Vec::new();
    string(&mut s, "v");
    entry(&mut m, "k", 2, &s);
    let tensors = [Tensor {
        name: "x",
        dtype: 0,
        flags: 0,
        dims: &[1],
        offset: 0,
        bytes: le32(&[0.5]),
    }];
    let m = finish_meta(m, &tensors);
    assert_eq!(w.to_bytes(), assemble(&m, 3, &tensors, 256));
}

#[test]
fn an_empty_writer_is_a_header_two_hashes_and_an_empty_data_section() {
    let m = finish_meta(Vec::new(), &[]);
    let expected = assemble(&m, 2, &[], 0);
    assert_eq!(
        expected.len(),
        4096,
        "the data section starts on the first page"
    );
    assert_eq!(TinvWriter::new().to_bytes(), expected);
}
