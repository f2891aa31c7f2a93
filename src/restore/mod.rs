//! Restoring an image into a fresh process: `plan` checks and prepares in normal code,
//! `blob` replaces the address space; `fds`, `timers` and `trust` serve the plan, and
//! `loader` hands over the memory restored lazily. What runs in the restored process
//! afterwards (the hand-off, waiting for the loader) is the checkpoint crate's
//! (`handoff`, `lazy`).

pub mod blob;
pub mod fds;
pub mod held;
pub mod job;
pub mod loader;
pub mod plan;
pub mod shared_pages;
pub mod sysv;
pub mod timers;
pub mod trust;
