//! `madvise` and `mremap`, where mig's own doing would show: a mapping the pre-copy's
//! copier tracks does not merge with a new neighbour (`checkpoint::precopy`), and memory
//! a lazy restore is still loading would be wiped in a child only once loaded
//! (`restore::lazy`). Both are system calls here (glibc's are plain wrappers), so no
//! real function is looked up; `errno` is set as glibc would.
#![allow(unsafe_code)]

use crate::checkpoint::intent;
use crate::checkpoint::lazy;
use crate::checkpoint::precopy;
use crate::sys;
use libc::{c_int, c_void};

/// The value, or -1 with `errno` set, as libc returns.
fn result<T>(r: sys::SysResult<T>) -> Option<T> {
    r.map_err(|e| {
        // SAFETY: this thread's errno, as any libc call sets it.
        unsafe { *libc::__errno_location() = e.0 };
    })
    .ok()
}

/// # Safety
/// As `madvise(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int {
    // A child would get the lazy restore's loader's data where it should see zeros.
    if advice == libc::MADV_WIPEONFORK {
        lazy::finish();
    }
    let kept = [
        libc::MADV_DONTFORK,
        libc::MADV_DOFORK,
        libc::MADV_DONTDUMP,
        libc::MADV_DODUMP,
        libc::MADV_HUGEPAGE,
        libc::MADV_NOHUGEPAGE,
        libc::MADV_WIPEONFORK,
        libc::MADV_KEEPONFORK,
        libc::MADV_MERGEABLE,
        libc::MADV_UNMERGEABLE,
    ];
    if kept.contains(&advice) {
        intent::advised();
    }
    if advice == libc::MADV_DONTFORK || advice == libc::MADV_WIPEONFORK {
        intent::kept_from_fork();
    }
    // SAFETY: the caller's arguments, unchanged, under the caller's contract.
    let r = unsafe { sys::madvise(addr as usize, len, advice) };
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
        // SAFETY: the caller's arguments, unchanged, under the caller's contract.
        unsafe { sys::mremap(old as usize, old_len, new_len, flags, new_addr as usize) }
    };
    let mut r = call();
    // EFAULT: the range is not one mapping, which it may be only because of mig.
    let efault = |r: sys::SysResult| r == Err(sys::Errno(libc::EFAULT));
    if efault(r) && precopy::untrack() {
        r = call();
    }
    result(r).map_or(libc::MAP_FAILED, |p| p as *mut c_void)
}

/// # Safety
/// As `mlock(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mlock(addr: *const c_void, len: usize) -> c_int {
    intent::advised();
    // SAFETY: the caller's arguments, unchanged, under the caller's contract.
    result(unsafe { sys::mlock2(addr as usize, len, 0) }).map_or(-1, |_| 0)
}

/// # Safety
/// As `mlock2(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mlock2(addr: *const c_void, len: usize, flags: libc::c_uint) -> c_int {
    intent::advised();
    // SAFETY: the caller's arguments, unchanged, under the caller's contract.
    result(unsafe { sys::mlock2(addr as usize, len, flags) }).map_or(-1, |_| 0)
}

/// As `mlockall(2)`.
#[unsafe(no_mangle)]
pub extern "C" fn mlockall(flags: c_int) -> c_int {
    let r = result(sys::mlockall(flags)).map_or(-1, |_| 0);
    if r == 0 {
        intent::mlockall(flags & (libc::MCL_FUTURE | libc::MCL_ONFAULT));
    }
    r
}

/// As `munlockall(2)`.
#[unsafe(no_mangle)]
pub extern "C" fn munlockall() -> c_int {
    let r = result(sys::munlockall()).map_or(-1, |_| 0);
    if r == 0 {
        intent::mlockall(0);
    }
    r
}
