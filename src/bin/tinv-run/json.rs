//! A minimal JSON writer for `--json` output (objects, arrays, numbers, strings).

use std::fmt::Write;

/// A JSON value under construction.
pub enum Json {
    /// `null`.
    Null,
    /// A number (non-finite values are written as `null`).
    Num(f64),
    /// An integer.
    Int(u64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object with keys in insertion order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn obj() -> Json {
        Json::Obj(Vec::new())
    }

    /// An `f32` in its shortest decimal form (`0.1`, not `0.10000000149011612`).
    pub fn f32(v: f32) -> Json {
        Json::Num(v.to_string().parse().unwrap_or(f64::NAN))
    }

    /// Adds `key: value` to an object (no-op on other values).
    pub fn set(mut self, key: &str, value: Json) -> Json {
        if let Json::Obj(v) = &mut self {
            v.push((key.to_string(), value));
        }
        self
    }

    /// Serializes compactly.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    fn write(&self, s: &mut String) {
        match self {
            Json::Num(v) if v.is_finite() => {
                let _ = write!(s, "{v}");
            }
            Json::Num(_) | Json::Null => s.push_str("null"),
            Json::Int(v) => {
                let _ = write!(s, "{v}");
            }
            Json::Str(v) => {
                s.push('"');
                for c in v.chars() {
                    match c {
                        '"' => s.push_str("\\\""),
                        '\\' => s.push_str("\\\\"),
                        '\n' => s.push_str("\\n"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(s, "\\u{:04x}", c as u32);
                        }
                        c => s.push(c),
                    }
                }
                s.push('"');
            }
            Json::Arr(a) => {
                s.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    v.write(s);
                }
                s.push(']');
            }
            Json::Obj(o) => {
                s.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    Json::Str(k.clone()).write(s);
                    s.push(':');
                    v.write(s);
                }
                s.push('}');
            }
        }
    }
}
