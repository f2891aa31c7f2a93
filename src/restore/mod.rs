//! Restoring an image into a fresh process: `plan` checks and prepares in normal code,
//! `blob` replaces the address space, `handoff` finishes in the restored process.

pub mod blob;
pub mod fds;
pub mod handoff;
pub mod plan;
pub mod timers;
