//! What the library (`libmig.so`) and the command (`mig`) must agree on, defined once:
//! signal names (`MIG_SIGNAL`), the settings' variable names, and the checkpoint
//! request protocol (the socket's name, the request and the answer).
//!
//! `no_std` and allocation-free: the library uses it in its signal handlers.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod held;
pub mod published;
pub mod request;
pub mod signal;

/// The variables the library reads when a process starts (or is restored).
pub mod env {
    /// Where images go.
    pub const IMAGE: &str = "MIG_IMAGE";
    /// Restore from this image instead of starting anew.
    pub const RESTORE: &str = "MIG_RESTORE";
    /// Checkpoint every that many seconds.
    pub const INTERVAL: &str = "MIG_INTERVAL";
    /// The signal that asks for a checkpoint.
    pub const SIGNAL: &str = "MIG_SIGNAL";
    /// The signal that stops threads.
    pub const THREAD_SIGNAL: &str = "MIG_THREAD_SIGNAL";
    /// `debug`: say what happens.
    pub const LOG: &str = "MIG_LOG";
    pub const PORTABLE: &str = "MIG_PORTABLE";
    pub const FORK: &str = "MIG_FORK";
    pub const PRECOPY: &str = "MIG_PRECOPY";
    /// Which files open for writing have their contents saved: `none`, `all`, or a
    /// size limit per file (`1M`, the default; `512K`, bytes).
    pub const SAVE_FILES: &str = "MIG_SAVE_FILES";
    pub const RESTORE_EAGER: &str = "MIG_RESTORE_EAGER";
    /// `1`: restore images of other users too.
    pub const TRUST_IMAGE: &str = "MIG_TRUST_IMAGE";
    /// Signals the job's supervisor (`mig run --checkpoint-on`) answers with a
    /// checkpoint of the whole job: each process of the job, where it leaves such a
    /// signal at its default action, ignores it (and is told the default is in force),
    /// so that it lives until the job is saved. Comma-separated names or numbers.
    pub const CHECKPOINT_ON: &str = "MIG_CHECKPOINT_ON";
    /// Set by `mig restart` for a process it started with its saved pid and waits for:
    /// the parent-death signal (SIGKILL) the process has is the command's, not its own.
    pub const PARENT_GUARD: &str = "MIG_PARENT_GUARD";
    /// The preload variable the command sets for the library.
    pub const PRELOAD: &str = "LD_PRELOAD";
    /// The command's own settings: the library to preload, ssh, and compression.
    pub const LIB: &str = "MIG_LIB";
    pub const SSH: &str = "MIG_SSH";
    pub const COMPRESS: &str = "MIG_COMPRESS";
}
