//! The calling thread's kernel state (name, TLS base, robust list, rseq area, clear-tid
//! address) and futexes.

use crate::SysResult;
use crate::time::timespec_ms;
use core::sync::atomic::AtomicU32;
use libc::c_int;

/// `arch_prctl` codes (asm/prctl.h).
pub const ARCH_SET_FS: i32 = 0x1002;
pub const ARCH_GET_FS: i32 = 0x1003;

pub fn gettid() -> u32 {
    sc!(libc::SYS_gettid).unwrap_or(0) as u32
}
/// `prctl(op, a, b, c, d)`.
///
/// # Safety
/// Each argument must be what `op` takes: where one is an address, it must be valid for
/// what the kernel reads or writes there (or, for `PR_SET_MM` and the like, stores).
pub unsafe fn prctl(op: c_int, a: usize, b: usize, c: usize, d: usize) -> SysResult {
    sc!(libc::SYS_prctl, op, a, b, c, d)
}
/// Names the calling task (`PR_SET_NAME`: what `ps` shows); `name` ends with a NUL.
pub fn set_name(name: &[u8]) {
    if name.last() == Some(&0) {
        let _ = sc!(libc::SYS_prctl, libc::PR_SET_NAME, name.as_ptr());
    }
}
/// Lets process `pid` trace this one, and so take its descriptors (`PR_SET_PTRACER`:
/// under Yama's `ptrace_scope` 1 only ancestors may otherwise); nothing without Yama.
pub fn set_ptracer(pid: u32) {
    let _ = sc!(libc::SYS_prctl, libc::PR_SET_PTRACER, pid as usize);
}
/// The calling task's name (`PR_GET_NAME`), NUL-padded.
pub fn get_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    let _ = sc!(libc::SYS_prctl, libc::PR_GET_NAME, name.as_mut_ptr());
    name
}
/// The calling thread's clear-child-tid address (`PR_GET_TID_ADDRESS`); 0 if none.
pub fn tid_address() -> u64 {
    let mut a = 0u64;
    let _ = sc!(libc::SYS_prctl, libc::PR_GET_TID_ADDRESS, &mut a as *mut u64);
    a
}
/// The calling thread's `fs` base (its TLS).
pub fn fs_base() -> u64 {
    let mut v = 0u64;
    let _ = sc!(libc::SYS_arch_prctl, ARCH_GET_FS, &mut v as *mut u64);
    v
}
/// The calling thread's robust futex list: (head, length).
pub fn robust_list() -> (u64, u64) {
    let (mut head, mut len) = (0u64, 0u64);
    let _ = sc!(libc::SYS_get_robust_list, 0, &mut head as *mut u64, &mut len as *mut u64);
    (head, len)
}
/// `set_robust_list(head, len)` for the calling thread.
///
/// # Safety
/// `head` must be a robust list head the thread keeps valid until it exits or sets
/// another: the kernel walks the list when the thread ends.
pub unsafe fn set_robust_list(head: u64, len: u64) -> SysResult<()> {
    sc!(libc::SYS_set_robust_list, head, len).map(drop)
}
/// `rseq(area, len, flags, sig)`: registers (flags 0) or unregisters
/// (`RSEQ_FLAG_UNREGISTER`) the calling thread's rseq area.
///
/// # Safety
/// `[area, area + len)` must be an rseq area that stays valid and is not otherwise
/// used while registered: the kernel writes the CPU number into it at any time.
pub unsafe fn rseq(area: u64, len: u32, flags: c_int, sig: u32) -> SysResult<()> {
    sc!(libc::SYS_rseq, area, len, flags, sig).map(drop)
}
/// Waits while `word` holds `expected`, at most `timeout_ms`. Not a private futex: the
/// waker may be another process sharing this address space (the pre-copy's copier).
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout_ms: u64) {
    let ts = timespec_ms(timeout_ms);
    let _ = sc!(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, ts.as_ptr());
}
/// Wakes every waiter on `word` (`futex_wait`).
pub fn futex_wake(word: &AtomicU32) {
    let _ = sc!(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
}
/// `futex_wait` for waiters and wakers that are threads of this process.
pub fn futex_wait_private(word: &AtomicU32, expected: u32, timeout_ms: u64) {
    let ts = timespec_ms(timeout_ms);
    let _ = sc!(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, ts.as_ptr());
}
/// `futex_wake` for waiters that are threads of this process.
pub fn futex_wake_private(word: &AtomicU32) {
    let _ = sc!(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX);
}
/// `struct sched_attr` up to `sched_period` (`SCHED_ATTR_SIZE_VER0`, 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}
/// The calling thread's scheduling policy, flags, nice value and priority.
pub fn sched_getattr() -> SysResult<SchedAttr> {
    let mut a = SchedAttr::default();
    let size = core::mem::size_of::<SchedAttr>();
    sc!(libc::SYS_sched_getattr, 0, &mut a as *mut SchedAttr, size, 0).map(|_| a)
}
/// Sets the calling thread's scheduling policy, flags, nice value and priority.
pub fn sched_setattr(a: &SchedAttr) -> SysResult<()> {
    let a = SchedAttr { size: core::mem::size_of::<SchedAttr>() as u32, ..*a };
    sc!(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0).map(drop)
}
/// The CPUs the calling thread may run on, as a bit mask.
pub fn sched_getaffinity(mask: &mut [u64]) -> SysResult<()> {
    sc!(libc::SYS_sched_getaffinity, 0, core::mem::size_of_val(mask), mask.as_mut_ptr()).map(drop)
}
/// Sets the CPUs the calling thread may run on.
pub fn sched_setaffinity(mask: &[u64]) -> SysResult<()> {
    sc!(libc::SYS_sched_setaffinity, 0, core::mem::size_of_val(mask), mask.as_ptr()).map(drop)
}
/// The process's execution domain (`personality(0xffffffff)` asks without changing it).
pub fn personality() -> u32 {
    sc!(libc::SYS_personality, 0xffff_ffffu32).unwrap_or(0) as u32
}
/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: puts the calling thread (with
/// `SECCOMP_FILTER_FLAG_TSYNC`, every thread) under one more filter, `insns` being its
/// `struct sock_filter`s (8 bytes each). Returns what the kernel returns (with TSYNC, a
/// thread that could not follow).
pub fn seccomp_filter(flags: u32, insns: &[u8]) -> SysResult<usize> {
    let prog = crate::net::SockFprog::of(insns)?;
    sc!(libc::SYS_seccomp, 1, flags, &prog as *const crate::net::SockFprog)
}
/// `prctl` for a value the kernel returns (`PR_GET_DUMPABLE`, `PR_GET_TIMERSLACK`, …).
pub fn prctl_get(op: c_int) -> SysResult<usize> {
    sc!(libc::SYS_prctl, op, 0, 0, 0, 0)
}
/// `prctl` for a value the kernel stores at an address (`PR_GET_CHILD_SUBREAPER`,
/// `PR_GET_PDEATHSIG`).
pub fn prctl_get_int(op: c_int) -> SysResult<i32> {
    let mut v: i32 = 0;
    sc!(libc::SYS_prctl, op, &mut v as *mut i32, 0, 0, 0).map(|_| v)
}
