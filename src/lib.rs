//! mig: transparent checkpoint/restore of a Linux process, from inside it.
//!
//! `LD_PRELOAD=libmig.so ./app`: the constructor installs two signal handlers, or, with
//! `MIG_RESTORE=<image>`, replaces the fresh process with the saved one.
//!
//! - `checkpoint/` — async-signal-safe: the SIGUSR1 handler that writes an image and the
//!   SIGUSR2 handler that rolls back to one.
//! - `restore/` — the restore: `plan` (normal code) and the `blob` that swaps the
//!   address space.
//! - `interpose/` — libc hooks: a warning when the program takes the checkpoint signal;
//!   `madvise` and `mremap` that do not see a lazy restore or a pre-copy.
//! - `sys/` — raw system calls; `runtime` — what the handlers know; `config` — `MIG_*`.
//! - The image format itself is the `mig-image` crate (`image/`).
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

mod config;
mod interpose;
mod restore;

use mig_checkpoint as checkpoint;
use mig_checkpoint::runtime;
use mig_sys as sys;

use runtime::{FixedPath, Runtime};
use std::path::PathBuf;

/// glibc's rseq registration of this thread: (`__rseq_offset`, registered length).
#[allow(unsafe_code)]
fn rseq_info() -> (isize, u32) {
    // SAFETY: dlsym with valid NUL-terminated names; the symbols, when present, are
    // glibc's read-only `ptrdiff_t __rseq_offset` and `unsigned int __rseq_size`.
    unsafe {
        let off = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()) as *const isize;
        let size = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()) as *const u32;
        if off.is_null() || size.is_null() || *size == 0 {
            return (0, 0);
        }
        // glibc registers at least the original 32-byte `struct rseq`.
        (*off, (*size).next_multiple_of(32).max(32))
    }
}

#[allow(unsafe_code)]
fn install_rollback() {
    // SAFETY: `sigaction` is plain old data; the handler is an `extern "C"` function
    // with the SA_SIGINFO signature; every signal is blocked while it runs.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = checkpoint::stacks::rollback_entry as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigfillset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut());
    }
}

/// glibc's `__restore_rt`, as it puts it into every `sigaction` it installs.
#[allow(unsafe_code)]
fn libc_restorer() -> u64 {
    // SAFETY: install a no-op action through libc, read back the kernel's view of it
    // (which carries glibc's restorer), then put the old action back as the kernel had
    // it (through libc it would carry the restorer's flag, which the program would read).
    unsafe {
        let mut old = mig_image::KSigaction::default();
        let _ = sys::sigaction(libc::SIGURG, None, Some(&mut old));
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGURG, &sa, std::ptr::null_mut());
        let mut k = mig_image::KSigaction::default();
        let _ = sys::sigaction(libc::SIGURG, None, Some(&mut k));
        let _ = sys::sigaction(libc::SIGURG, Some(&old), None);
        k.restorer
    }
}

/// This library's file (where the dynamic loader found it).
#[allow(unsafe_code)]
fn library_path() -> PathBuf {
    // SAFETY: dladdr on an address of this library fills `info` with pointers into the
    // loader's own strings, valid while the library is loaded.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(library_path as *const libc::c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return PathBuf::new();
        }
        let name = std::ffi::CStr::from_ptr(info.dli_fname);
        std::fs::canonicalize(std::ffi::OsStr::from_encoded_bytes_unchecked(name.to_bytes())).unwrap_or_default()
    }
}

#[ctor::ctor(unsafe)]
fn init() {
    let restore_from = std::env::var_os(mig_proto::env::RESTORE).filter(|v| !v.is_empty()).map(PathBuf::from);
    if restore_from.is_some() {
        // Nothing may interrupt the restore; the saved mask comes back with it.
        let _ = sys::sigprocmask(libc::SIG_SETMASK, Some(u64::MAX), None);
    }
    let settings = config::settings();
    sys::msg::DEBUG.store(settings.debug, std::sync::atomic::Ordering::Relaxed);
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
    let (rseq_offset, rseq_len) = rseq_info();
    runtime::init(Runtime {
        settings,
        exe: FixedPath::new(exe.as_os_str().as_encoded_bytes()).unwrap_or(FixedPath::EMPTY),
        rseq_offset,
        rseq_len,
        hasher: crc32fast::Hasher::new(),
        restorer: libc_restorer(),
        checkpoint_entry: checkpoint::stacks::checkpoint_entry as *const () as u64,
        stop_entry: checkpoint::stacks::stop_entry as *const () as u64,
        mig: checkpoint::whole_job::mig_beside(library_path().as_os_str().as_encoded_bytes()),
    });
    if let Some(image) = restore_from {
        restore::plan::restore(&image, settings);
    }
    checkpoint::seccomp::init();
    checkpoint::stacks::init();
    checkpoint::handler::install(settings.checkpoint_signal);
    install_rollback();
    checkpoint::threads::choose_signal(settings.thread_signal);
    checkpoint::handler::choose_request_signal();
    interpose::held_signals::init(settings.checkpoint_signal);
    checkpoint::control::publish();
    checkpoint::threads::note_frame_layout();
    // A member of another process's job does not write the job's image by itself.
    if settings.job_root().is_none() {
        checkpoint::timer::arm(settings.interval_ms, settings.checkpoint_signal);
    }
    interpose::ready();
}
