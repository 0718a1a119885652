/// A typed metadata value. Type numbers are part of the format (see `docs/FORMAT.md`): a new one
/// is a new format version, so the enum is exhaustive.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Type 0: unsigned 64-bit integer.
    U64(u64),
    /// Type 1: IEEE-754 binary64.
    F64(f64),
    /// Type 2: UTF-8 string.
    Str(String),
    /// Type 3: array of unsigned 64-bit integers.
    U64s(Vec<u64>),
    /// Type 4: array of binary64.
    F64s(Vec<f64>),
}

impl MetaValue {
    /// The on-disk type number.
    pub fn type_id(&self) -> u32 {
        match self {
            MetaValue::U64(_) => 0,
            MetaValue::F64(_) => 1,
            MetaValue::Str(_) => 2,
            MetaValue::U64s(_) => 3,
            MetaValue::F64s(_) => 4,
        }
    }
}

/// The metadata section: ordered key/value pairs with unique keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, MetaValue)>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (replacing an earlier value).
    pub fn set(&mut self, key: &str, value: MetaValue) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// Value of `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// All entries in file order.
    pub fn entries(&self) -> &[(String, MetaValue)] {
        &self.entries
    }

    /// Integer value of `key`.
    pub fn u64(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            MetaValue::U64(v) => Some(*v),
            _ => None,
        }
    }

    /// Float value of `key`.
    pub fn f64(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            MetaValue::F64(v) => Some(*v),
            _ => None,
        }
    }

    /// String value of `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            MetaValue::Str(v) => Some(v),
            _ => None,
        }
    }

    /// Integer-array value of `key`.
    pub fn u64s(&self, key: &str) -> Option<&[u64]> {
        match self.get(key)? {
            MetaValue::U64s(v) => Some(v),
            _ => None,
        }
    }

    /// Float-array value of `key`.
    pub fn f64s(&self, key: &str) -> Option<&[f64]> {
        match self.get(key)? {
            MetaValue::F64s(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn push_unique(&mut self, key: String, value: MetaValue) -> bool {
        if self.entries.iter().any(|(k, _)| *k == key) {
            return false;
        }
        self.entries.push((key, value));
        true
    }
}
