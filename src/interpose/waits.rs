//! Waits with a relative timeout: each hook notes, per thread, which call waits and
//! until when (`checkpoint::intent::Waiting`), so that a call a checkpoint cuts short
//! runs again for the time it had left (`checkpoint::interrupted`), not its whole
//! timeout. Only timeouts above zero are noted; the note is gone once the call returns.
#![allow(unsafe_code)]

use crate::checkpoint::intent::{self, Waiting};
use crate::sys;
use core::cell::UnsafeCell;
use libc::{c_int, c_long, c_uint};

thread_local! {
    static WAITING: UnsafeCell<Waiting> = const { UnsafeCell::new(Waiting { nr: 0, deadline_ns: 0, left: [0, 0] }) };
}

fn this_thread() -> *mut Waiting {
    WAITING.with(|w| w.get())
}

/// Registers the per-thread record with the checkpoint handlers.
pub fn init() {
    intent::set_waiting(this_thread);
    let _ = (redhook::real!(poll), redhook::real!(epoll_wait), redhook::real!(epoll_pwait), redhook::real!(nanosleep));
    let _ = (redhook::real!(clock_nanosleep), redhook::real!(usleep), redhook::real!(sigtimedwait), redhook::real!(semtimedop));
}

/// Runs `call` with the wait (`nr`, `ns` from now; none if `ns` is not above 0) noted.
pub(super) fn noted<T>(nr: c_long, ns: i64, call: impl FnOnce() -> T) -> T {
    if ns <= 0 {
        return call();
    }
    let w = this_thread();
    // SAFETY: this thread's own record; its signal handlers read it only while it waits.
    unsafe { *w = Waiting { nr: nr as u32, deadline_ns: sys::clock_monotonic_ns().saturating_add(ns as u64), left: [0, 0] } };
    let r = call();
    // SAFETY: as above.
    unsafe { (*w).nr = 0 };
    r
}

pub(super) fn ms(ms: c_int) -> i64 {
    ms as i64 * 1_000_000
}

/// The time in the `timespec` at `ts`; 0 where there is none or it cannot be read
/// (the call then fails with `EFAULT`, as it would have).
pub(super) fn ts_ns(ts: *const libc::timespec) -> i64 {
    let mut t = [0u8; 16];
    if ts.is_null() || !sys::read_own(ts as u64, &mut t) {
        return 0;
    }
    let (sec, nsec) = t.split_at(8);
    let word = |b: &[u8]| i64::from_ne_bytes(b.try_into().unwrap_or_default());
    word(sec).saturating_mul(1_000_000_000).saturating_add(word(nsec))
}

redhook::hook! {
    unsafe fn poll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int) -> c_int => mig_poll {
        // SAFETY: forwarding the caller's arguments unchanged.
        noted(libc::SYS_poll, ms(timeout), || unsafe { redhook::real!(poll)(fds, n, timeout) })
    }
}
redhook::hook! {
    unsafe fn epoll_wait(ep: c_int, ev: *mut libc::epoll_event, max: c_int, timeout: c_int) -> c_int => mig_epoll_wait {
        // SAFETY: forwarding the caller's arguments unchanged.
        noted(libc::SYS_epoll_wait, ms(timeout), || unsafe { redhook::real!(epoll_wait)(ep, ev, max, timeout) })
    }
}
redhook::hook! {
    unsafe fn epoll_pwait(ep: c_int, ev: *mut libc::epoll_event, max: c_int, timeout: c_int, mask: *const libc::sigset_t) -> c_int => mig_epoll_pwait {
        // SAFETY: forwarding the caller's arguments unchanged.
        noted(libc::SYS_epoll_pwait, ms(timeout), || unsafe { redhook::real!(epoll_pwait)(ep, ev, max, timeout, mask) })
    }
}
redhook::hook! {
    unsafe fn nanosleep(req: *const libc::timespec, rem: *mut libc::timespec) -> c_int => mig_nanosleep {
        // glibc makes it a relative clock_nanosleep; the time left is the kernel's to
        // write where `rem` points, so only a sleep without one is noted.
        let ns = if rem.is_null() { ts_ns(req) } else { 0 };
        // SAFETY: forwarding the caller's arguments unchanged.
        noted(libc::SYS_clock_nanosleep, ns, || unsafe { redhook::real!(nanosleep)(req, rem) })
    }
}
redhook::hook! {
    unsafe fn clock_nanosleep(clock: libc::clockid_t, flags: c_int, req: *const libc::timespec, rem: *mut libc::timespec) -> c_int => mig_clock_nanosleep {
        let ns = if rem.is_null() && flags & libc::TIMER_ABSTIME == 0 { ts_ns(req) } else { 0 };
        // SAFETY: forwarding the caller's arguments unchanged.
        noted(libc::SYS_clock_nanosleep, ns, || unsafe { redhook::real!(clock_nanosleep)(clock, flags, req, rem) })
    }
}
redhook::hook! {
    unsafe fn usleep(us: c_uint) -> c_int => mig_usleep {
        // SAFETY: forwarding the caller's argument unchanged.
        noted(libc::SYS_clock_nanosleep, us as i64 * 1000, || unsafe { redhook::real!(usleep)(us) })
    }
}
redhook::hook! {
    unsafe fn sigtimedwait(set: *const libc::sigset_t, info: *mut libc::siginfo_t, timeout: *const libc::timespec) -> c_int => mig_sigtimedwait {
        let ns = ts_ns(timeout);
        // SAFETY: forwarding the caller's arguments unchanged.
        noted(libc::SYS_rt_sigtimedwait, ns, || unsafe { redhook::real!(sigtimedwait)(set, info, timeout) })
    }
}
redhook::hook! {
    unsafe fn semtimedop(id: c_int, ops: *mut libc::sembuf, n: libc::size_t, timeout: *const libc::timespec) -> c_int => mig_semtimedop {
        let ns = ts_ns(timeout);
        // SAFETY: forwarding the caller's arguments unchanged.
        noted(libc::SYS_semtimedop, ns, || unsafe { redhook::real!(semtimedop)(id, ops, n, timeout) })
    }
}
