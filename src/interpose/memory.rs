//! `madvise` and `mremap`, where mig's own doing would show: memory a lazy restore
//! mapped from the image is not anonymous memory (`restore::lazy`), and a mapping the
//! pre-copy's copier tracks does not merge with a new neighbour (`checkpoint::precopy`).
//! Both are system calls here (glibc's are plain wrappers), so no real function is
//! looked up; `errno` is set as glibc would.
#![allow(unsafe_code)]

use crate::checkpoint::precopy;
use crate::restore::lazy;
use crate::sys;
use libc::{c_int, c_void};

const MADV_DONTNEED_LOCKED: c_int = 24;

/// The value, or -1 with `errno` set, as libc returns.
fn result(r: isize) -> Option<usize> {
    sys::check(r)
        .map_err(|e| {
            // SAFETY: this thread's errno, as any libc call sets it.
            unsafe { *libc::__errno_location() = e.0 };
        })
        .ok()
}

/// # Safety
/// As `madvise(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int {
    match advice {
        libc::MADV_DONTNEED | MADV_DONTNEED_LOCKED | libc::MADV_FREE => lazy::discard(addr as usize, len),
        libc::MADV_WIPEONFORK => {
            lazy::replace(addr as usize, len);
        }
        _ => {}
    }
    // SAFETY: the caller's arguments, unchanged.
    let r = unsafe { sys::syscall6(libc::SYS_madvise as usize, addr as usize, len, advice as usize, 0, 0, 0) };
    result(r).map_or(-1, |_| 0)
}

/// Declared with its optional fifth argument: the kernel reads it only when `flags`
/// say so, as glibc does.
///
/// # Safety
/// As `mremap(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mremap(old: *mut c_void, old_len: usize, new_len: usize, flags: c_int, new_addr: *mut c_void) -> *mut c_void {
    let call = || {
        // SAFETY: the caller's arguments, unchanged.
        unsafe { sys::syscall6(libc::SYS_mremap as usize, old as usize, old_len, new_len, flags as usize, new_addr as usize, 0) }
    };
    // Grown, the image's pages would go on with what follows them in the file.
    if new_len > old_len {
        lazy::replace(old as usize, old_len);
    }
    let mut r = call();
    // EFAULT: the range is not one mapping, which it may be only because of mig.
    let efault = |r| r == -(libc::EFAULT as isize);
    if efault(r) && precopy::untrack() {
        r = call();
    }
    if efault(r) && lazy::replace(old as usize, old_len) {
        r = call();
    }
    result(r).map_or(libc::MAP_FAILED, |p| p as *mut c_void)
}
