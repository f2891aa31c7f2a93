//! NUL-terminated paths in fixed buffers, for the system calls that take a path.

use crate::msg;

/// A NUL-terminated path built in a fixed buffer (no allocation).
#[derive(Clone)]
pub struct CPath {
    buf: [u8; 4096],
}

impl CPath {
    /// `None` if `path` is too long or contains a NUL.
    pub fn new(path: &[u8]) -> Option<Self> {
        let mut buf = [0u8; 4096];
        if path.len() >= buf.len() || path.contains(&0) {
            return None;
        }
        buf.get_mut(..path.len())?.copy_from_slice(path);
        Some(CPath { buf })
    }
    /// Joins parts, e.g. `["/proc/self/fd/", "12"]`.
    pub fn join(parts: &[&[u8]]) -> Option<Self> {
        let mut m = msg::Msg::<4096>::new();
        for p in parts {
            m.bytes(p);
        }
        if m.overflowed() { None } else { Self::new(m.as_bytes()) }
    }
    pub fn ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }
    /// The path without its NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let len = self.buf.iter().position(|&c| c == 0).unwrap_or(self.buf.len());
        self.buf.get(..len).unwrap_or(&[])
    }
}
