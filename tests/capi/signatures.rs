//! Function signatures on both sides of the ABI: the prototypes in include/tinv.h and the
//! `extern "C" fn`s in src/capi/, the Rust types mapped to their C spelling, so a parameter
//! added, dropped, reordered or retyped on one side only fails a test.

use std::collections::BTreeMap;

/// Return type and parameter types of each function, types in normalized C spelling.
pub type Signatures = BTreeMap<String, (String, Vec<String>)>;

/// `const  float *` → `const float*`.
fn norm(t: &str) -> String {
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    t.replace(" *", "*")
}

fn strip_comments(mut rest: &str) -> String {
    let mut code = String::new();
    while let Some(i) = rest.find("/*") {
        code.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    code.push_str(rest);
    code.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prototypes of `tinv_*` functions in a C header.
pub fn header(text: &str) -> Signatures {
    let mut out = Signatures::new();
    for decl in strip_comments(text).split([';', '{', '}']) {
        let Some(open) = decl.find('(') else { continue };
        let head = decl[..open].trim();
        let name_at = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &head[name_at..];
        if !name.starts_with("tinv_") || head.contains("typedef") {
            continue;
        }
        let ret = norm(&head[..name_at]);
        let inner = &decl[open + 1..decl.rfind(')').unwrap_or(decl.len())];
        let params = if inner.trim() == "void" {
            Vec::new()
        } else {
            inner
                .split(',')
                .map(|p| {
                    let p = p.trim();
                    let cut = p
                        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .map_or(0, |i| i + 1);
                    norm(&p[..cut])
                })
                .collect()
        };
        out.insert(name.to_string(), (ret, params));
    }
    out
}

/// The C spelling of a Rust FFI type (enums travel as `u32`; the header may name the enum).
fn c_type(rust: &str) -> String {
    let t: String = rust.split_whitespace().collect::<Vec<_>>().join(" ");
    let (prefix, base) = match t.strip_prefix("*const ") {
        Some(b) => ("const ", b),
        None => ("", t.strip_prefix("*mut ").unwrap_or(&t)),
    };
    let stars = usize::from(t.starts_with('*'));
    let (inner_stars, base) = match base.strip_prefix("*mut ") {
        Some(b) => (1, b),
        None => (0, base),
    };
    let c = match base {
        "c_char" => "char",
        "c_void" => "void",
        "usize" => "size_t",
        "u8" => "uint8_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "i32" => "int32_t",
        "f32" => "float",
        "Status" => "tinv_status",
        "TinvModel" => "tinv_model",
        "TinvSession" => "tinv_session",
        "ModelOptions" => "tinv_model_options",
        "SessionOptionsC" => "tinv_session_options",
        "StatsC" => "tinv_stats",
        "LogCallback" => "tinv_log_callback",
        other => panic!("no C spelling for Rust type {other}"),
    };
    format!("{prefix}{c}{}", "*".repeat(stars + inner_stars))
}

/// `extern "C" fn`s in Rust source files, types mapped to C.
pub fn rust(sources: &[String]) -> Signatures {
    let mut out = Signatures::new();
    for src in sources {
        for (at, _) in src.match_indices("extern \"C\" fn ") {
            let rest = &src[at + "extern \"C\" fn ".len()..];
            let open = rest.find('(').expect("fn name then (");
            let name = rest[..open].trim().to_string();
            let close = rest.find(')').expect("parameter list closes");
            let params = rest[open + 1..close]
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| c_type(p.split_once(':').expect("name: Type").1))
                .collect();
            let after = &rest[close + 1..rest.find('{').expect("fn body")];
            let ret = after
                .trim()
                .strip_prefix("->")
                .map_or("void".into(), |r| c_type(r.trim()));
            out.insert(name, (ret, params));
        }
    }
    out
}

/// Whether a header type is an acceptable spelling of the Rust-mapped one: a `uint32_t`
/// parameter may be declared as one of the header's enums.
pub fn compatible(header: &str, rust: &str) -> bool {
    header == rust
        || (rust == "uint32_t" && ["tinv_status", "tinv_mode", "tinv_backend"].contains(&header))
}
