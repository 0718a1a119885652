//! A small command-line parser: `--flag value`, `--flag=value`, `--switch`, positionals.

use std::collections::HashMap;

/// Parsed arguments of one subcommand.
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
    /// Positional arguments, in order.
    pub positional: Vec<String>,
}

impl Args {
    /// Parses `raw`: flags listed in `takes_value` consume the next argument (never empty);
    /// other `--x` are switches; anything not listed in either is an error naming the flag.
    pub fn parse(raw: &[String], takes_value: &[&str], switches: &[&str]) -> Result<Args, String> {
        let mut a = Args {
            values: HashMap::new(),
            switches: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = raw.iter();
        while let Some(arg) = it.next() {
            if let Some(flag) = arg.strip_prefix("--") {
                let (name, inline) = match flag.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
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
                    a.values.insert(name.to_string(), v);
                } else if switches.contains(&name) {
                    if inline.is_some() {
                        return Err(format!("--{name} is a switch and takes no value"));
                    }
                    a.switches.push(name.to_string());
                } else {
                    return Err(format!("unknown option --{name} (see --help)"));
                }
            } else {
                a.positional.push(arg.clone());
            }
        }
        Ok(a)
    }

    /// Refuses more than `max` positional arguments, naming the first one too many.
    pub fn max_positional(self, max: usize) -> Result<Args, String> {
        match self.positional.get(max) {
            Some(extra) => Err(unexpected(extra)),
            None => Ok(self),
        }
    }

    /// The value of `--name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
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

    /// Refuses `--model` together with `--synthetic` (bench, soak): both name the model.
    pub fn one_model(&self) -> Result<(), String> {
        if self.get("model").is_some() && self.get("synthetic").is_some() {
            return Err("--model and --synthetic both name the model; give one".into());
        }
        Ok(())
    }
}

/// The error for an argument a command does not take.
pub fn unexpected(arg: &str) -> String {
    format!("unexpected argument '{arg}' (see --help)")
}
