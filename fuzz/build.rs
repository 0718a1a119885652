//! Makes the CLI's image decoding (src/bin/tinv-run/images.rs) includable by the `image` fuzz
//! target: the same source with its inner `//!` doc lines dropped (`include!` takes items only).

use std::path::PathBuf;

fn main() {
    let src = "../src/bin/tinv-run/images.rs";
    println!("cargo:rerun-if-changed={src}");
    let text = std::fs::read_to_string(src).expect("src/bin/tinv-run/images.rs is readable");
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("images.rs"), body).expect("OUT_DIR is writable");
}
