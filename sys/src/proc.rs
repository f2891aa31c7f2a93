//! The process: identity, limits, exit, exec, quiet children and pidfds, the CPU's
//! features, random bytes.

use crate::{CPath, Errno, SysResult};
use libc::c_int;

pub fn getpid() -> u32 {
    sc!(libc::SYS_getpid).unwrap_or(0) as u32
}
pub fn getuid() -> u32 {
    sc!(libc::SYS_getuid).unwrap_or(0) as u32
}
pub fn geteuid() -> u32 {
    sc!(libc::SYS_geteuid).unwrap_or(0) as u32
}
pub fn exit_group(code: c_int) -> ! {
    let _ = sc!(libc::SYS_exit_group, code);
    // SAFETY: exit_group does not return.
    unsafe { core::hint::unreachable_unchecked() }
}
/// `prlimit(0, res, new, old)`: this process's limit `res`, set to `new` if given.
pub fn prlimit(res: u32, new: Option<&mig_image::Rlimit>, old: &mut mig_image::Rlimit) -> SysResult<()> {
    let newp = new.map_or(core::ptr::null(), |r| r as *const mig_image::Rlimit);
    sc!(libc::SYS_prlimit64, 0, res, newp, old as *mut mig_image::Rlimit).map(drop)
}
/// Random bytes from the kernel (`getrandom`, never blocking); false if it had none.
pub fn random(out: &mut [u8]) -> bool {
    sc!(libc::SYS_getrandom, out.as_mut_ptr(), out.len(), libc::GRND_NONBLOCK) == Ok(out.len())
}
/// `execve(path, argv, envp)`; returns only on failure.
///
/// # Safety
/// `argv` and `envp` must be NULL-terminated arrays of NUL-terminated strings.
pub unsafe fn execve(path: &CPath, argv: *const *const u8, envp: *const *const u8) -> Errno {
    match sc!(libc::SYS_execve, path.ptr(), argv, envp) {
        Err(e) => e,
        Ok(_) => Errno(0),
    }
}
/// Forks a child that sends no signal when it ends (no SIGCHLD, invisible to the
/// program's `wait`); 0 in the child.
pub fn fork_quiet() -> SysResult<u32> {
    sc!(libc::SYS_clone, 0, 0, 0, 0, 0).map(|pid| pid as u32)
}
/// Waits for quiet child `pid` (made by `fork_quiet`) to end, and reaps it; returns
/// the signal that killed it, if one did.
pub fn reap_quiet(pid: u32) -> Option<i32> {
    let mut status: i32 = 0;
    loop {
        match sc!(libc::SYS_wait4, pid, &mut status as *mut i32, libc::__WCLONE, 0) {
            Err(Errno(libc::EINTR)) => {}
            // WIFSIGNALED: the low 7 bits are the signal (not 0, not 0x7f).
            Ok(_) if status & 0x7f != 0 && status & 0x7f != 0x7f => return Some(status & 0x7f),
            _ => return None,
        }
    }
}
/// Whether quiet child `pid` has ended (or is no child of this process); it is left
/// for `reap_quiet`.
pub fn exited(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    // SAFETY: all-zero is a valid siginfo_t.
    let mut info: libc::siginfo_t = unsafe { core::mem::zeroed() };
    let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WCLONE;
    match sc!(libc::SYS_waitid, libc::P_PID, pid, &mut info as *mut libc::siginfo_t, options, 0) {
        // SAFETY: the kernel filled `info` (or left it zeroed: si_pid 0, nothing ended).
        Ok(_) => (unsafe { info.si_pid() }) != 0,
        Err(e) => e != Errno(libc::EINTR),
    }
}
/// A descriptor that becomes readable when process `pid` ends (a zombie has ended,
/// although `kill(pid, 0)` still succeeds on it).
pub fn pidfd_open(pid: u32) -> SysResult<c_int> {
    sc!(libc::SYS_pidfd_open, pid, 0).map(|fd| fd as c_int)
}
/// A copy, in this process, of descriptor `fd` of the process `pidfd` refers to
/// (`pidfd_getfd`: needs the right to trace it), close-on-exec.
pub fn pidfd_getfd(pidfd: c_int, fd: c_int) -> SysResult<c_int> {
    sc!(libc::SYS_pidfd_getfd, pidfd, fd, 0).map(|fd| fd as c_int)
}
/// The CPU features a program may use (see `CpuFeatures`).
pub fn cpu_features() -> mig_image::CpuFeatures {
    use core::arch::x86_64::__cpuid_count;
    // `cpuid` exists on every x86_64 CPU; leaf 7 is only read where leaf 0 says it exists.
    let (max, l1, l7) = (__cpuid_count(0, 0).eax, __cpuid_count(1, 0), __cpuid_count(7, 0));
    let l7 = if max >= 7 { [l7.ebx, l7.ecx, l7.edx] } else { [0; 3] };
    let mut xcr0 = 0u64;
    if l1.ecx & (1 << 27) != 0 {
        let (lo, hi): (u32, u32);
        // SAFETY: OSXSAVE is set, so `xgetbv` with ecx = 0 is allowed in user mode.
        unsafe { core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
        xcr0 = (hi as u64) << 32 | lo as u64;
    }
    mig_image::CpuFeatures { cpuid: [l1.ecx & !(1 << 27), l1.edx, l7[0], l7[1], l7[2]], pad: 0, xcr0 }
}
