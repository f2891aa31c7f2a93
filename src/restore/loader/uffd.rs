//! The kernel's userfaultfd interface, as far as the loader and the blob use it.
#![allow(unsafe_code)]

use super::{close, errno};

const UFFD_API: u64 = 0xaa;
const UFFDIO_API: u64 = 0xc018_aa3f;
/// `ioctl` of the restore blob: registers a range for missing-page faults.
pub const UFFDIO_REGISTER: u64 = 0xc020_aa00;
pub const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
pub(super) const UFFDIO_WAKE: u64 = 0x8010_aa02;
pub(super) const UFFDIO_COPY: u64 = 0xc028_aa03;
pub(super) const UFFDIO_ZEROPAGE: u64 = 0xc020_aa04;
const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;
const UFFD_FEATURE_THREAD_ID: u64 = 1 << 8;
const FEATURES: u64 = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_THREAD_ID;
/// `UFFDIO_REGISTER`, `UFFDIO_UNREGISTER` and `UFFDIO_API` are offered.
const API_IOCTLS: u64 = 1 << 0 | 1 << 1 | 1 << 0x3f;
pub(super) const EVENT_PAGEFAULT: u8 = 0x12;
pub(super) const EVENT_FORK: u8 = 0x13;
pub(super) const EVENT_REMAP: u8 = 0x14;
pub(super) const EVENT_REMOVE: u8 = 0x15;
pub(super) const EVENT_UNMAP: u8 = 0x16;
pub(super) const PAGEFAULT_FLAG_WRITE: u64 = 1;
/// `struct uffd_msg`: the event (a `u8`) at `MSG_EVENT`, its arguments as `u64`s from
/// `MSG_ARGS` on: a fault's flags, address and thread id; a fork's new userfaultfd; a
/// remap's from, to and length; a remove's or unmap's start and end.
pub(super) const MSG: usize = 32;
pub(super) const MSG_EVENT: usize = 0;
pub(super) const MSG_ARGS: usize = 8;

/// A userfaultfd for this process's memory with the events the loader follows, or why
/// there is none (no privilege: fork events and faults in system calls need
/// `CAP_SYS_PTRACE`, or `vm.unprivileged_userfaultfd=1` for the latter; an old kernel).
pub(super) fn userfaultfd() -> Result<i32, String> {
    // SAFETY: userfaultfd takes flags only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) } as i32;
    if fd < 0 {
        return Err(format!("no userfaultfd (errno {})", errno()));
    }
    let mut api = [UFFD_API, FEATURES, 0];
    // SAFETY: UFFDIO_API reads and writes a `struct uffdio_api` (3 × u64).
    let r = unsafe { libc::ioctl(fd, UFFDIO_API as _, api.as_mut_ptr()) };
    if r < 0 || api[1] & FEATURES != FEATURES || api[2] & API_IOCTLS != API_IOCTLS {
        let e = errno();
        close(fd);
        return Err(format!("no userfaultfd with fork, remap, remove and unmap events (errno {e})"));
    }
    Ok(fd)
}
