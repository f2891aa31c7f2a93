//! `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog)` and `syscall(SYS_seccomp,
//! SECCOMP_SET_MODE_FILTER, flags, prog)` (libseccomp's way, seen by the `syscall`
//! hook): a filter the kernel took is recorded (`checkpoint::seccomp`), for the image.
//! `prctl` is a plain system call here, as in glibc (`errno` set the same way), declared
//! with all the arguments the kernel may read: on x86-64 a variadic caller passes them
//! as a fixed-argument call does.
#![allow(unsafe_code)]

use crate::checkpoint::seccomp;
use crate::sys;
use libc::{c_int, c_long, c_ulong};

const SECCOMP_MODE_FILTER: c_ulong = 2;
const SECCOMP_SET_MODE_FILTER: c_ulong = 1;

/// The kernel's value, or -1 with `errno` set, as libc returns.
pub(super) fn result(r: isize) -> c_long {
    if (-4095..0).contains(&r) {
        // SAFETY: this thread's errno, as any libc call sets it.
        unsafe { *libc::__errno_location() = -r as c_int };
        return -1;
    }
    r as c_long
}

/// After `syscall(nr, args…)` returned `r`: a filter the kernel took is recorded.
///
/// # Safety
/// The arguments are those the kernel was just given.
pub(super) unsafe fn after_syscall(nr: c_long, args: [usize; 6], r: isize) {
    // With `SECCOMP_FILTER_FLAG_TSYNC` a positive value is a thread that refused.
    if r == 0 && nr == libc::SYS_seccomp && args[0] as c_ulong == SECCOMP_SET_MODE_FILTER {
        // SAFETY: the kernel took a filter from `args[2]`.
        unsafe { record(args[1] as c_ulong, args[2] as c_ulong) };
    }
}

/// Records the filter at `prog` (a `struct sock_fprog`) once the kernel has taken it.
///
/// # Safety
/// `prog` is the address the kernel just read a filter from.
unsafe fn record(flags: c_ulong, prog: c_ulong) {
    // SAFETY: the kernel has read the program and its instructions just now.
    seccomp::installed(flags as u32, unsafe { sys::SockFprog::instructions(prog as usize) });
}

/// # Safety
/// As `prctl(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prctl(op: c_int, a2: c_ulong, a3: c_ulong, a4: c_ulong, a5: c_ulong) -> c_int {
    // SAFETY: the caller's arguments, unchanged, under the caller's contract.
    let r = unsafe { sys::syscall6(libc::SYS_prctl as usize, op as usize, a2 as usize, a3 as usize, a4 as usize, a5 as usize, 0) };
    if r == 0 && op == libc::PR_SET_SECCOMP && a2 == SECCOMP_MODE_FILTER {
        // SAFETY: the kernel took a filter from `a3`.
        unsafe { record(0, a3) };
    }
    result(r) as c_int
}
