//! mig's signal-safe core: everything that runs inside the checkpoint and rollback
//! signal handlers (and the writer and copier they start), with raw system calls
//! (`mig_sys`), fixed buffers and scratch mappings. `no_std` without `alloc`, so an
//! allocation, a format string or a `std` call here does not compile; clippy denies
//! indexing and `unwrap` (a panic would abort the program being checkpointed).
//!
//! - Entry: `stacks` (the handlers' own stacks), `handler` (the checkpoint),
//!   `rollback`, `control` (the request of `mig checkpoint`), `timer` (`MIG_INTERVAL`).
//! - Stop: `threads`, `context`.
//! - Collect: `collect` (the snapshot), `maps`, `files`, `fds` (the walk over the
//!   descriptors), `fdinfo`, `sockets`, `dirty` (pages changed since a pre-copy).
//! - Kinds of state: `kinds`, one module per kind of descriptor and POSIX timers, each
//!   with its save side and, with the `restore` feature (std, normal code, for the
//!   library's restore planner), its restore side.
//! - Write: `imagefile` (the temporary file and its commit), `writer`, `precopy`.
//! - State shared with normal code: `runtime` (what the handlers know), `intent` (what
//!   the interposed calls saw), `handoff` (from a restore), `lazy` (its loader).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

// The restore sides of `kinds` are normal code; the save sides never see std.
#[cfg(all(feature = "restore", not(test)))]
extern crate std;

use mig_sys as sys;

pub mod collect;
pub mod context;
pub mod control;
pub mod dirty;
pub mod fdinfo;
pub mod fds;
pub mod files;
pub mod handler;
pub mod handoff;
pub mod imagefile;
pub mod intent;
pub mod kinds;
pub mod lazy;
pub mod maps;
pub mod precopy;
pub mod rollback;
pub mod runtime;
pub mod scratch;
pub mod sockets;
pub mod stacks;
pub mod threads;
pub mod timer;
pub mod writer;
