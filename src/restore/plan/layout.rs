//! This fresh process's own mappings, from `/proc/self/maps`: what the hole must avoid
//! and where the kernel put `[vvar]`/`[vdso]` this time.
//!
//! The one use of the checkpoint side's `maps` parser here: the parser belongs with
//! the raw system calls (`mig-sys`), which both sides use.

use super::Refusal;
use crate::checkpoint::maps;

/// One mapping of this process.
pub(super) struct Mapping {
    pub(super) start: u64,
    pub(super) end: u64,
    /// Its file, or the kernel's name for it (`[vdso]`).
    pub(super) path: Vec<u8>,
}

/// This process's mappings, in address order.
pub(super) fn current() -> Result<Vec<Mapping>, Refusal> {
    let text = std::fs::read("/proc/self/maps").map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
    Ok(maps::lines(&text).map(|l| Mapping { start: l.start, end: l.end, path: l.path.to_vec() }).collect())
}
