//! Async-signal-safe code only: everything here runs inside the SIGUSR1/SIGUSR2
//! handlers, with raw system calls, fixed buffers and scratch mappings; no allocation,
//! no locks, no `std` I/O, no formatting, no panics.

pub mod collect;
pub mod context;
pub mod control;
pub mod dirty;
pub mod fdinfo;
pub mod fds;
pub mod files;
pub mod handler;
pub mod imagefile;
pub mod maps;
pub mod precopy;
pub mod ptimers;
pub mod rollback;
pub mod scratch;
pub mod sockets;
pub mod stacks;
pub mod threads;
pub mod timer;
pub mod writer;
