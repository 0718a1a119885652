//! Handle registry: the C side never holds a Rust pointer. A handle is an integer that encodes
//! (generation, slot, kind) and is disguised as an opaque pointer; it is never dereferenced.
//! Looking one up checks the kind, that the slot exists and that its generation matches, so a
//! freed, twice-freed, forged or wrong-kind handle is *detected* by reading only the registry —
//! the check itself touches no freed memory.
//!
//! Objects are kept as `Arc`s: a lookup clones the `Arc` and releases the registry lock, so a
//! concurrent `_free` only unregisters the handle and the object dies after the last call using
//! it returns.

use super::status::{Fail, Status};
use std::sync::{Arc, Mutex, PoisonError};

/// Bits of the slot index (about a million live objects of each kind).
const SLOT_BITS: u32 = 20;
/// Bits left for the generation after the kind bit and the slot.
const GEN_BITS: u32 = usize::BITS - SLOT_BITS - 1;
/// Largest generation; a slot that reaches it is retired, so a generation is never reused.
const GEN_MAX: usize = (1usize << GEN_BITS) - 1;

/// Which registry a handle belongs to (the low bit of the handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `tinv_model`.
    Model = 0,
    /// A `tinv_session`.
    Session = 1,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Session => "session",
        }
    }
}

struct Entry<T> {
    /// Generation of the live object, or of the last one freed.
    gen: usize,
    obj: Option<Arc<T>>,
}

/// Live objects of one kind.
pub struct Registry<T> {
    kind: Kind,
    inner: Mutex<Slots<T>>,
}

struct Slots<T> {
    entries: Vec<Entry<T>>,
    free: Vec<usize>,
}

impl<T> Registry<T> {
    /// An empty registry for `kind`.
    pub const fn new(kind: Kind) -> Registry<T> {
        Registry {
            kind,
            inner: Mutex::new(Slots {
                entries: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots<T>> {
        // No code path panics while holding the lock with the slots half-updated, so a poisoned
        // lock still guards consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `obj` and returns its handle (never 0).
    pub fn insert(&self, obj: T) -> Result<usize, Fail> {
        // Allocated before the lock, which every infer call takes to look its handle up; and
        // declared before the guard, so a refused object is dropped after the lock is released.
        let obj = Arc::new(obj);
        let mut s = self.slots();
        let slot = match s.free.pop() {
            Some(i) => i,
            None => {
                if s.entries.len() >= (1 << SLOT_BITS) {
                    return Err(Fail::new(
                        Status::OutOfHandles,
                        format!(
                            "more than {} live {} handles",
                            1 << SLOT_BITS,
                            self.kind.name()
                        ),
                    ));
                }
                s.entries.push(Entry { gen: 0, obj: None });
                // `free` never holds more than `entries`: with the same capacity, `remove`
                // (under the lock) never allocates.
                let want = s.entries.capacity();
                let len = s.free.len();
                s.free.reserve(want - len);
                s.entries.len() - 1
            }
        };
        let e = s
            .entries
            .get_mut(slot)
            .ok_or_else(|| internal("free slot out of range"))?;
        // Generations start at 1, so a handle is never 0 (NULL).
        e.gen += 1;
        e.obj = Some(obj);
        Ok(encode(self.kind, slot, e.gen))
    }

    /// The object behind `handle`, or `TINV_ERR_INVALID_HANDLE` saying why not.
    pub fn get(&self, handle: usize) -> Result<Arc<T>, Fail> {
        let (slot, gen) = self.decode(handle)?;
        let s = self.slots();
        match s.entries.get(slot) {
            Some(Entry {
                gen: g,
                obj: Some(o),
            }) if *g == gen => Ok(Arc::clone(o)),
            Some(e) if gen != 0 && gen <= e.gen => Err(self.stale(handle)),
            _ => Err(self.unknown(handle)),
        }
    }

    /// Unregisters `handle`; the object is dropped once no call is using it.
    pub fn remove(&self, handle: usize) -> Result<Arc<T>, Fail> {
        let (slot, gen) = self.decode(handle)?;
        let mut s = self.slots();
        let taken = match s.entries.get_mut(slot) {
            Some(e) if e.gen == gen && e.obj.is_some() => e.obj.take(),
            // Generations count up from 1: a lower one was issued and freed, a higher one never.
            Some(e) if gen != 0 && gen <= e.gen => return Err(self.stale(handle)),
            _ => return Err(self.unknown(handle)),
        };
        if gen < GEN_MAX {
            s.free.push(slot);
        }
        taken.ok_or_else(|| internal("checked entry lost its object"))
    }

    /// Number of live objects.
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.slots()
            .entries
            .iter()
            .filter(|e| e.obj.is_some())
            .count()
    }

    fn decode(&self, handle: usize) -> Result<(usize, usize), Fail> {
        let kind = if handle & 1 == 0 {
            Kind::Model
        } else {
            Kind::Session
        };
        if kind != self.kind {
            return Err(Fail::new(
                Status::InvalidHandle,
                // The low bit tells a model's id from a session's; a forged value has one too,
                // so the message does not claim to know which object it is.
                format!(
                    "handle {handle:#x} is not a {} (a {} handle, or no handle at all)",
                    self.kind.name(),
                    kind.name()
                ),
            ));
        }
        Ok((
            (handle >> 1) & ((1 << SLOT_BITS) - 1),
            handle >> (SLOT_BITS + 1),
        ))
    }

    fn stale(&self, handle: usize) -> Fail {
        Fail::new(
            Status::InvalidHandle,
            format!(
                "{} handle {handle:#x} was freed (stale or double free)",
                self.kind.name()
            ),
        )
    }

    fn unknown(&self, handle: usize) -> Fail {
        Fail::new(
            Status::InvalidHandle,
            format!(
                "{} handle {handle:#x} was never issued by this library",
                self.kind.name()
            ),
        )
    }
}

fn encode(kind: Kind, slot: usize, gen: usize) -> usize {
    (gen << (SLOT_BITS + 1)) | (slot << 1) | kind as usize
}

fn internal(what: &str) -> Fail {
    Fail::new(Status::Internal, format!("handle registry: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_double_free_and_foreign_handles_are_detected() {
        let r: Registry<u32> = Registry::new(Kind::Session);
        let a = r.insert(7).unwrap();
        assert_ne!(a, 0);
        assert_eq!(*r.get(a).unwrap(), 7);
        assert_eq!(*r.remove(a).unwrap(), 7);
        let e = r.get(a).unwrap_err();
        assert_eq!(e.status, Status::InvalidHandle);
        assert!(e.msg.contains("was freed"), "{}", e.msg);
        let e = r.remove(a).unwrap_err();
        assert_eq!(e.status, Status::InvalidHandle);
        assert!(e.msg.contains("double free"), "{}", e.msg);
        // The slot is reused with a new generation: the old handle stays dead.
        let b = r.insert(8).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            a & ((1 << (SLOT_BITS + 1)) - 1),
            b & ((1 << (SLOT_BITS + 1)) - 1)
        );
        assert_eq!(r.get(a).unwrap_err().status, Status::InvalidHandle);
        assert_eq!(*r.get(b).unwrap(), 8);
        // Wrong kind (low bit clear) and a slot never allocated.
        assert!(r
            .get(b & !1)
            .unwrap_err()
            .msg
            .contains("is not a session (a model handle"));
        assert!(r
            .get(b + (5 << 1))
            .unwrap_err()
            .msg
            .contains("never issued"));
        // In a slot that exists: generation 0, and one above the slot's latest, were never
        // issued either (not "freed").
        let low = b & ((1 << (SLOT_BITS + 1)) - 1);
        assert!(r.get(low).unwrap_err().msg.contains("never issued"));
        assert!(r.remove(low).unwrap_err().msg.contains("never issued"));
        let ahead = b + (1 << (SLOT_BITS + 1));
        assert!(r.remove(ahead).unwrap_err().msg.contains("never issued"));
        assert!(r.get(ahead).unwrap_err().msg.contains("never issued"));
        assert_eq!(r.live(), 1);
    }

    #[test]
    fn generations_take_every_bit_above_the_slot() {
        // handle = generation << 21 | slot << 1 | kind: the largest generation fills the bits
        // above bit 21, and the last slot at it is the all-ones handle, decoded back whole.
        assert_eq!(GEN_MAX, usize::MAX >> 21);
        let last_slot = (1 << 20) - 1;
        assert_eq!(encode(Kind::Session, last_slot, GEN_MAX), usize::MAX);
        let r: Registry<u8> = Registry::new(Kind::Session);
        assert_eq!(r.decode(usize::MAX).unwrap(), (last_slot, GEN_MAX));
    }

    #[test]
    fn object_outlives_removal_while_borrowed() {
        let r: Registry<String> = Registry::new(Kind::Model);
        let h = r.insert("w".into()).unwrap();
        let held = r.get(h).unwrap();
        drop(r.remove(h).unwrap());
        assert_eq!(*held, "w");
        assert_eq!(r.live(), 0);
    }

    #[test]
    fn exhausted_generation_retires_the_slot() {
        let r: Registry<u8> = Registry::new(Kind::Model);
        let h = r.insert(1).unwrap();
        r.slots().entries[0].gen = GEN_MAX;
        let h2 = encode(Kind::Model, 0, GEN_MAX);
        assert_ne!(h, h2);
        r.remove(h2).unwrap();
        let h3 = r.insert(2).unwrap();
        assert_eq!(
            (h3 >> 1) & ((1 << SLOT_BITS) - 1),
            1,
            "retired slot 0 must not be reused"
        );
    }
}
