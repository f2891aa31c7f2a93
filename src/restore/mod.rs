//! Restoring an image into a fresh process: `plan` checks and prepares in normal code,
//! `blob` replaces the address space, `handoff` finishes in the restored process;
//! `loader` hands over the memory restored lazily, `lazy` waits for it.

pub mod blob;
pub mod fds;
pub mod loader;
pub mod plan;
pub mod timers;
pub mod trust;
