//! FNV-1a 64 written from docs/FORMAT.md ("Hashes"), for tests that check the runtime's
//! checksums against the format's own definition rather than against the runtime's code.

/// FNV-1a's offset basis: the hash of no bytes.
pub const BASIS: u64 = 0xcbf29ce484222325;

/// FNV-1a 64 of `bytes`, continued from `h`.
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
