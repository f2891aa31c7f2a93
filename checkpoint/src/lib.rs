//! mig's signal-safe core: everything that runs inside the checkpoint and rollback
//! signal handlers (and the writer and copier they start), with raw system calls
//! (`mig_sys`), fixed buffers and scratch mappings. `no_std` without `alloc`, so an
//! allocation, a format string or a `std` call here does not compile; clippy denies
//! indexing, `unwrap`, `expect` and `panic!` (a panic would abort the program being
//! checkpointed).
//!
//! Dependencies point down this list:
//! - Entry: `stacks` (the handlers' own stacks), `handler` (the checkpoint signal),
//!   `rollback`, `handoff` (what a restore hands the resumed handler).
//! - Write: `ordinary` (a forked or stopped checkpoint's image), `precopy` (a copier
//!   writes it while the program runs), `writer`, `imagefile` (the temporary file and
//!   its commit), `job` (what a checkpoint is asked), `report` (its outcome),
//!   `writers` (to reap), `control` (the request of `mig checkpoint`), `timer`
//!   (`MIG_INTERVAL`).
//! - Stop and collect: `threads`, `interrupted` (the call a stop cut short, made
//!   again), `context`, `collect` (the snapshot), and the kinds of
//!   state: `maps`, `files`, `fds` (the walk over
//!   the descriptors), `fdinfo`, `sockets`, `dirty` (pages changed since a pre-copy's
//!   round), and `kinds`: one module per kind of descriptor and POSIX timers, each with
//!   its save side and, with the `restore` feature (std, for the library's restore
//!   planner), its restore side.
//! - Below them: `snapshot` (what a checkpoint collected), `failure` (why it could
//!   not), `scratch` (fixed-capacity lists in a mapping).
//! - State shared with normal code: `runtime` (what the handlers know), `intent` (what
//!   the interposed calls saw), `lazy` (a lazy restore's loader).
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
pub mod failure;
pub mod fdinfo;
pub mod fds;
pub mod files;
pub mod handler;
pub mod handoff;
pub mod held;
pub mod imagefile;
pub mod intent;
pub mod interrupted;
pub mod job;
pub mod kinds;
pub mod lazy;
pub mod maps;
pub mod ordinary;
pub mod pending;
pub mod precopy;
pub mod report;
pub mod rollback;
pub mod runtime;
pub mod scratch;
pub mod seccomp;
pub mod snapshot;
pub mod sockets;
pub mod stacks;
pub mod threads;
pub mod timer;
pub mod tracer;
pub mod whole_job;
pub mod writer;
pub mod writers;
