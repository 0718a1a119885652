//! A small command-line parser: `--flag value`, `--flag=value`, `--switch`, positionals, `--`.
//! Arguments are `OsString`s: a path need not be UTF-8 (Linux file names are bytes).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;

/// Options whose value is a path, the only ones that may be other than UTF-8.
const PATH_OPTIONS: &[&str] = &["model", "images", "labels", "out", "engines"];

/// Parsed arguments of one subcommand.
pub struct Args {
    values: HashMap<String, OsString>,
    switches: Vec<String>,
    /// Positional arguments, in order (paths: images, a model).
    pub positional: Vec<OsString>,
}

impl Args {
    /// Parses `raw`: flags listed in `takes_value` consume the next argument (never empty);
    /// other `--x` are switches; anything not listed in either is an error naming the flag, as
    /// is a flag or switch given twice, and an empty positional argument. After `--` every
    /// argument is positional (a file named `-x.png`).
    pub fn parse(
        raw: &[OsString],
        takes_value: &[&str],
        switches: &[&str],
    ) -> Result<Args, String> {
        let mut a = Args {
            values: HashMap::new(),
            switches: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = raw.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                a.positional.extend(it.by_ref().cloned());
                break;
            }
            let text = arg.to_string_lossy();
            if let Some(flag) = text.strip_prefix("--") {
                let (name, inline) = match flag.split_once('=') {
                    Some((n, _)) => (n, Some(value_after_eq(arg))),
                    None => (flag, None),
                };
                if takes_value.contains(&name) {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .cloned()
                            .ok_or_else(|| format!("--{name} needs a value"))?,
                    };
                    // An empty value is never meant: `--out ""` wrote into the current folder.
                    if v.is_empty() {
                        return Err(format!("--{name} needs a value, not an empty string"));
                    }
                    if v.to_str().is_none() && !PATH_OPTIONS.contains(&name) {
                        return Err(format!("--{name} {}: not valid UTF-8", v.to_string_lossy()));
                    }
                    // The last of two values won silently: `--depth 8 --depth 2` ran depth 2.
                    if a.values.insert(name.to_string(), v).is_some() {
                        return Err(format!("--{name} is given twice; give it once"));
                    }
                } else if switches.contains(&name) {
                    if inline.is_some() {
                        return Err(format!("--{name} is a switch and takes no value"));
                    }
                    if a.has(name) {
                        return Err(format!("--{name} is given twice; give it once"));
                    }
                    a.switches.push(name.to_string());
                } else {
                    return Err(format!("unknown option --{name} (see --help)"));
                }
            } else if text.len() > 1 && text.starts_with('-') {
                // `-j` for `--json` became a file name "-j"; a file of that name follows `--`.
                return Err(format!(
                    "unknown option {text} (options start with --; put a file named {text} \
                     after --)"
                ));
            } else {
                a.positional.push(arg.clone());
            }
        }
        // `tinv-run classify ""` said only ": No such file or directory".
        if a.positional.iter().any(|p| p.is_empty()) {
            return Err("an empty argument is not a file name".into());
        }
        Ok(a)
    }

    /// Refuses more than `max` positional arguments, naming the first one too many.
    pub fn max_positional(self, max: usize) -> Result<Args, String> {
        match self.positional.get(max) {
            Some(extra) => Err(unexpected(&extra.to_string_lossy())),
            None => Ok(self),
        }
    }

    /// The value of `--name`, an option that is not a path (those are UTF-8, checked by
    /// `parse`); paths come from [`Args::path`].
    pub fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(
            !PATH_OPTIONS.contains(&name),
            "--{name} is a path: Args::path"
        );
        self.values.get(name).and_then(|v| v.to_str())
    }

    /// The value of the path option `--name`, UTF-8 or not.
    pub fn path(&self, name: &str) -> Option<&Path> {
        debug_assert!(
            PATH_OPTIONS.contains(&name),
            "--{name} is not a path: Args::get"
        );
        self.values.get(name).map(Path::new)
    }

    /// Whether `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// `--name` parsed as `T`, with `what` describing the expected value in the error.
    pub fn parse_opt<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("--{name} {v}: expected {what}")),
        }
    }

    /// `--name` as a count of at least `min`, with `what` describing it in the error.
    pub fn count<T>(&self, name: &str, what: &str, min: T) -> Result<Option<T>, String>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        match self.parse_opt::<T>(name, what)? {
            Some(v) if v < min => Err(format!("--{name} must be at least {min}")),
            v => Ok(v),
        }
    }

    /// `--threads`: 1 to 256, default 1 (the library's bounds, said in the option's own name).
    pub fn threads(&self) -> Result<usize, String> {
        self.bounded("threads", "a thread count", 1, 256)
            .map(|t| t.unwrap_or(1))
    }

    /// `--batch`: 1 to 4096, default 1.
    pub fn batch(&self) -> Result<usize, String> {
        self.batch_opt().map(|b| b.unwrap_or(1))
    }

    /// `--batch` when given: 1 to 4096.
    pub fn batch_opt(&self) -> Result<Option<usize>, String> {
        self.bounded("batch", "a batch size", 1, 4096)
    }

    /// `--name` as a count in `min..=max`.
    fn bounded(
        &self,
        name: &str,
        what: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<usize>, String> {
        match self.count::<usize>(name, what, min)? {
            Some(v) if v > max => Err(format!("--{name} must be at most {max}")),
            v => Ok(v),
        }
    }

    /// Refuses `--model` together with `--synthetic` (bench, soak): both name the model; and
    /// `--verify` with `--synthetic`, which has no file to verify.
    pub fn one_model(&self) -> Result<(), String> {
        if self.get("synthetic").is_some() {
            if self.path("model").is_some() {
                return Err("--model and --synthetic both name the model; give one".into());
            }
            if self.has("verify") {
                return Err("--verify checks a model file; --synthetic has none".into());
            }
        }
        Ok(())
    }
}

/// The error for an argument a command does not take.
pub fn unexpected(arg: &str) -> String {
    format!("unexpected argument '{arg}' (see --help)")
}

/// The bytes after the first `=` of `--name=value`, kept as an `OsString` (the name part is
/// ASCII, so the split is at a byte the value cannot straddle).
fn value_after_eq(arg: &OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let b = arg.as_bytes();
    let at = b.iter().position(|&c| c == b'=').map_or(b.len(), |i| i + 1);
    OsString::from_vec(b[at..].to_vec())
}
