//! Restoring an image into a fresh process: `plan` checks and prepares in normal code,
//! `blob` replaces the address space, `handoff` finishes in the restored process, `lazy` keeps memory mapped from the
//! image behaving as anonymous memory.

pub mod blob;
pub mod fds;
pub mod handoff;
pub mod lazy;
pub mod plan;
pub mod timers;
pub mod trust;
