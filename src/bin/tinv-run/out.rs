//! Output that never panics. `println!` panics when stdout is gone (`tinv-run … | head -1`);
//! here a closed stdout ends the program quietly with exit status 0, any other failure to write
//! it (a full disk) is one `error:` line and exit status 1. Lines to stderr are best effort: when
//! stderr itself is closed there is nobody left to tell.
//!
//! The one copy for every binary of the workspace: tinv-fold, tinv-bench and tinv-train include
//! this file with `#[path]` as their own `out` module at the crate root (the macros name
//! `$crate::out`).

use std::io::{ErrorKind, Write};

/// Writes `args` to stdout; see the module documentation for what happens when that fails.
pub fn stdout(args: std::fmt::Arguments) {
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        stderr(format_args!("error: writing to stdout: {e}\n"));
        std::process::exit(1);
    }
}

/// Writes `args` to stderr, ignoring failure.
pub fn stderr(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `text` with every control character and line separator written escaped (`\n`, `\u{1b}`):
/// a file name or a string from a file then stays on its line and cannot drive the terminal.
pub fn escaped(text: &str) -> String {
    let mut msg = String::new();
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            msg.extend(c.escape_debug());
        } else {
            msg.push(c);
        }
    }
    msg
}

/// Prints `error: {e}` as one line to stderr, [`escaped`].
pub fn error(e: impl std::fmt::Display) {
    stderr(format_args!("error: {}\n", escaped(&e.to_string())));
}

/// `print!` through [`stdout`].
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {
        $crate::out::stdout(format_args!($($t)*))
    };
}

/// `println!` through [`stdout`].
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::out::stdout(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `eprintln!` through [`stderr`].
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => {
        $crate::out::stderr(format_args!("{}\n", format_args!($($t)*)))
    };
}
