//! Signals: actions, masks, pending sets, the alternate stack, sending.

use crate::SysResult;
use libc::c_int;

pub fn sigaction(sig: c_int, new: Option<&mig_image::KSigaction>, old: Option<&mut mig_image::KSigaction>) -> SysResult<()> {
    let newp = new.map_or(core::ptr::null(), |a| a as *const _);
    let oldp = old.map_or(core::ptr::null_mut(), |a| a as *mut _);
    sc!(libc::SYS_rt_sigaction, sig, newp, oldp, 8).map(drop)
}
pub fn sigprocmask(how: c_int, new: Option<u64>, old: Option<&mut u64>) -> SysResult<()> {
    let set = new.unwrap_or(0);
    let newp = if new.is_some() { &set as *const u64 } else { core::ptr::null() };
    let oldp = old.map_or(core::ptr::null_mut(), |a| a as *mut u64);
    sc!(libc::SYS_rt_sigprocmask, how, newp, oldp, 8).map(drop)
}
/// The set of signals pending for this thread or the process.
pub fn sigpending() -> u64 {
    let mut set = 0u64;
    let _ = sc!(libc::SYS_rt_sigpending, &mut set as *mut u64, 8);
    set
}
/// Takes one pending, blocked `sig` without waiting (`rt_sigtimedwait`, zero timeout).
pub fn take_pending(sig: c_int) {
    let set = 1u64 << (sig - 1);
    let zero = [0i64; 2];
    let _ = sc!(libc::SYS_rt_sigtimedwait, &set as *const u64, 0, zero.as_ptr(), 8);
}
/// Takes one pending, blocked `sig` without waiting, with what came with it (the
/// kernel's 128-byte `siginfo`); false if none was pending.
pub fn take_pending_info(sig: c_int, info: &mut [u8; 128]) -> bool {
    let set = 1u64 << (sig - 1);
    let zero = [0i64; 2];
    sc!(libc::SYS_rt_sigtimedwait, &set as *const u64, info.as_mut_ptr(), zero.as_ptr(), 8) == Ok(sig as usize)
}
/// Queues `sig` with `info` for the calling thread (`rt_tgsigqueueinfo`: a thread may
/// queue any `siginfo` to itself).
pub fn queue_to_self(sig: c_int, info: &[u8; 128]) -> SysResult<()> {
    sc!(libc::SYS_rt_tgsigqueueinfo, crate::getpid(), crate::gettid(), sig, info.as_ptr()).map(drop)
}
/// Queues `sig` with `info` for the process (`rt_sigqueueinfo`; any `siginfo` only
/// from the main thread, whose tid is the pid).
pub fn queue_to_process(sig: c_int, info: &[u8; 128]) -> SysResult<()> {
    sc!(libc::SYS_rt_sigqueueinfo, crate::getpid(), sig, info.as_ptr()).map(drop)
}
/// The calling thread's alternate signal stack (`sigaltstack(NULL, old)`).
pub fn sigaltstack(old: &mut libc::stack_t) -> SysResult<()> {
    sc!(libc::SYS_sigaltstack, 0, old as *mut libc::stack_t).map(drop)
}
/// Sets the calling thread's alternate signal stack (`sigaltstack(new, NULL)`):
/// `new` is (sp, flags, size), as `stack_t` lays them out.
///
/// # Safety
/// Unless `SS_DISABLE` is in the flags, `[sp, sp + size)` must be writable memory that
/// nothing else uses while a signal handler may run on it.
pub unsafe fn set_sigaltstack(new: &[u64; 3]) -> SysResult<()> {
    sc!(libc::SYS_sigaltstack, new.as_ptr(), 0).map(drop)
}
pub fn kill(pid: u32, sig: c_int) -> SysResult<()> {
    sc!(libc::SYS_kill, pid, sig).map(|_| ())
}
/// `tgkill(pid, tid, sig)`: to one thread of process `pid`.
pub fn tgkill(pid: u32, tid: u32, sig: c_int) -> SysResult<()> {
    sc!(libc::SYS_tgkill, pid, tid, sig).map(drop)
}
/// Sends `sig` to the process a pidfd refers to (never to a process that took its pid).
pub fn pidfd_send_signal(pidfd: c_int, sig: c_int) -> SysResult<()> {
    sc!(libc::SYS_pidfd_send_signal, pidfd, sig, 0, 0).map(drop)
}
