//! Clocks, sleeping, interval and POSIX timers.

use crate::SysResult;
use libc::c_int;

/// A `struct timespec` of `ms` milliseconds.
pub(crate) fn timespec_ms(ms: u64) -> [i64; 2] {
    [(ms / 1000) as i64, ((ms % 1000) * 1_000_000) as i64]
}
fn clock_ns(clock: c_int) -> u64 {
    // SAFETY: `timespec` is plain old data.
    let mut ts: libc::timespec = unsafe { core::mem::zeroed() };
    let _ = sc!(libc::SYS_clock_gettime, clock, &mut ts as *mut libc::timespec);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
pub fn clock_realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}
pub fn clock_monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}
pub fn sleep_ms(ms: u64) {
    let ts = timespec_ms(ms);
    let _ = sc!(libc::SYS_nanosleep, ts.as_ptr(), 0usize);
}
pub fn getitimer(which: c_int, out: &mut mig_image::Itimer) -> SysResult<()> {
    sc!(libc::SYS_getitimer, which, out as *mut mig_image::Itimer).map(drop)
}
/// `timer_create(clock, ev, &id)` with a kernel `struct sigevent` of 64 bytes.
pub fn timer_create(clock: c_int, ev: &[u8; 64]) -> SysResult<i32> {
    let mut id: i32 = 0;
    sc!(libc::SYS_timer_create, clock, ev.as_ptr(), &mut id as *mut i32).map(|_| id)
}
/// `timer_settime(id, 0, {interval, value}, NULL)`, times as (seconds, nanoseconds).
pub fn timer_settime(id: i32, spec: &[[i64; 2]; 2]) -> SysResult<()> {
    sc!(libc::SYS_timer_settime, id, 0, spec.as_ptr(), 0).map(drop)
}
/// `timer_gettime`: {interval, value} as (seconds, nanoseconds).
pub fn timer_gettime(id: i32) -> SysResult<[i64; 4]> {
    let mut spec = [0i64; 4];
    sc!(libc::SYS_timer_gettime, id, spec.as_mut_ptr()).map(|_| spec)
}
