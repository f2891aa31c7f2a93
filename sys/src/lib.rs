//! Raw system calls with types around them: async-signal-safe, no libc calls, no
//! `errno`. Every system call of the checkpoint path and of the library goes through
//! here (the restore blob has its own, in `restore/blob.rs`). A function that takes a
//! raw address is an `unsafe fn` whose `# Safety` says what the address must be.
//!
//! One module per subject, re-exported here so `sys::open` is the path callers use:
//! `path` (NUL-terminated paths), `fs` (files by path), `io` (descriptors: read, write,
//! control, poll), `mem` (mappings, userfaultfd, the page map), `signal`, `thread`
//! (per-thread kernel state, futexes), `proc` (process identity, children, limits),
//! `time` (clocks, POSIX timers), `net` (sockets), `trace` (`ptrace` of other threads),
//! `msg` (messages to stderr).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

/// Issues system call `nr` with up to six arguments, each cast to `usize`, and checks
/// the result. Defined before the modules so each can use it.
macro_rules! sc {
    ($nr:expr) => { sc!($nr, 0, 0, 0, 0, 0, 0) };
    ($nr:expr, $a:expr) => { sc!($nr, $a, 0, 0, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr) => { sc!($nr, $a, $b, 0, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr) => { sc!($nr, $a, $b, $c, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr) => { sc!($nr, $a, $b, $c, $d, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => { sc!($nr, $a, $b, $c, $d, $e, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr, $e:expr, $f:expr) => {
        // SAFETY: a safe wrapper passes only pointers derived from live references or
        // buffers of the length it names; an `unsafe fn` passes the addresses its caller
        // vouches for in its `# Safety` section.
        $crate::check(unsafe {
            $crate::x86_64::syscall6($nr as usize, $a as usize, $b as usize, $c as usize, $d as usize, $e as usize, $f as usize)
        })
    };
}

mod aio;
mod fs;
mod io;
mod mem;
pub mod msg;
mod net;
mod path;
mod proc;
mod sigevent;
mod signal;
mod thread;
mod time;
mod trace;
mod x86_64;

pub use aio::*;
pub use fs::*;
pub use io::*;
pub use mem::*;
pub use net::*;
pub use path::CPath;
pub use proc::*;
pub use sigevent::Sigevent;
pub use signal::*;
pub use thread::*;
pub use time::*;
pub use trace::*;
pub use x86_64::{spawn_vm, syscall6};

/// An error number returned by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// What the error means, as `strerror` says it (for the errors a checkpoint or a
    /// restore can meet); `None` for others.
    pub fn text(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::EPERM => "Operation not permitted",
            libc::ENOENT => "No such file or directory",
            libc::EINTR => "Interrupted system call",
            libc::EIO => "Input/output error",
            libc::EBADF => "Bad file descriptor",
            libc::EAGAIN => "Resource temporarily unavailable",
            libc::ENOMEM => "Cannot allocate memory",
            libc::EACCES => "Permission denied",
            libc::EFAULT => "Bad address",
            libc::EBUSY => "Device or resource busy",
            libc::EEXIST => "File exists",
            libc::EXDEV => "Invalid cross-device link",
            libc::ENOTDIR => "Not a directory",
            libc::EISDIR => "Is a directory",
            libc::EINVAL => "Invalid argument",
            libc::ENFILE => "Too many open files in system",
            libc::EMFILE => "Too many open files",
            libc::ETXTBSY => "Text file busy",
            libc::EFBIG => "File too large",
            libc::ENOSPC => "No space left on device",
            libc::EROFS => "Read-only file system",
            libc::EPIPE => "Broken pipe",
            libc::ENAMETOOLONG => "File name too long",
            libc::ELOOP => "Too many levels of symbolic links",
            libc::EDQUOT => "Disk quota exceeded",
            libc::ECONNREFUSED => "Connection refused",
            libc::ESRCH => "No such process",
            _ => return None,
        })
    }
}

pub type SysResult<T = usize> = Result<T, Errno>;

/// A raw system call's return: an error number or a value.
pub fn check(r: isize) -> SysResult {
    if (-4095..0).contains(&r) { Err(Errno(-r as i32)) } else { Ok(r as usize) }
}
