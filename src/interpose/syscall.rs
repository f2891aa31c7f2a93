//! `syscall(2)`: what a program asks of the kernel without a libc wrapper. A plain
//! system call here, as in glibc (`errno` set the same way), declared with the six
//! arguments it passes on (on x86-64 a variadic caller passes them as a fixed-argument
//! call does). On the way: a wait with a relative timeout is noted as its libc
//! wrapper's hook notes it (`waits`), so that a checkpoint does not make it wait its
//! whole timeout again; a seccomp filter the kernel took is recorded (`seccomp`).
#![allow(unsafe_code)]

use super::{seccomp, waits};
use crate::sys;
use libc::{c_int, c_long};

/// The relative timeout (in ns) of a wait the checkpoint's restart knows
/// (`checkpoint::interrupted`); 0 for every other call.
fn timeout(nr: c_long, a: [usize; 6]) -> i64 {
    let ts = |p: usize| waits::ts_ns(p as *const libc::timespec);
    match nr {
        libc::SYS_futex if a[1] as c_int & libc::FUTEX_CMD_MASK == libc::FUTEX_WAIT => ts(a[3]),
        libc::SYS_nanosleep if a[1] == 0 => ts(a[0]),
        libc::SYS_clock_nanosleep if a[1] as c_int & libc::TIMER_ABSTIME == 0 && a[3] == 0 => ts(a[2]),
        libc::SYS_io_getevents => ts(a[4]),
        libc::SYS_rt_sigtimedwait => ts(a[2]),
        libc::SYS_semtimedop => ts(a[3]),
        libc::SYS_poll => waits::ms(a[2] as c_int),
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait => waits::ms(a[3] as c_int),
        _ => 0,
    }
}

/// # Safety
/// As `syscall(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn syscall(nr: c_long, a1: c_long, a2: c_long, a3: c_long, a4: c_long, a5: c_long, a6: c_long) -> c_long {
    let a = [a1, a2, a3, a4, a5, a6].map(|v| v as usize);
    let ns = timeout(nr, a);
    // SAFETY: the caller's arguments, unchanged, under the caller's contract.
    let r = waits::noted(nr, ns, || unsafe { sys::syscall6(nr as usize, a[0], a[1], a[2], a[3], a[4], a[5]) });
    // SAFETY: the arguments the kernel was just given.
    unsafe { seccomp::after_syscall(nr, a, r) };
    seccomp::result(r)
}
