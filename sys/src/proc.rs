//! The process: identity, limits, exit, exec, quiet children and pidfds, the CPU's
//! features, random bytes.

use crate::{CPath, Errno, SysResult};
use libc::c_int;

pub fn getpid() -> u32 {
    sc!(libc::SYS_getpid).unwrap_or(0) as u32
}
pub fn getgid() -> u32 {
    sc!(libc::SYS_getgid).unwrap_or(0) as u32
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
/// Makes the calling process the leader of a new session (no controlling terminal).
pub fn setsid() -> SysResult<u32> {
    sc!(libc::SYS_setsid).map(|s| s as u32)
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
/// Forks a child with pid `want` (`clone3` with `set_tid`: needs CAP_CHECKPOINT_RESTORE
/// and the pid free); 0 in the child, its pid in the parent.
///
/// # Safety
/// As `fork`: the caller has one thread, or the child only makes system calls.
pub unsafe fn fork_with_pid(want: i32) -> SysResult<u32> {
    // struct clone_args up to set_tid_size (CLONE_ARGS_SIZE_VER1): flags, pidfd,
    // child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size.
    let tid = [want];
    let args: [u64; 10] = [0, 0, 0, 0, libc::SIGCHLD as u64, 0, 0, 0, tid.as_ptr() as u64, 1];
    sc!(libc::SYS_clone3, args.as_ptr(), core::mem::size_of_val(&args)).map(|pid| pid as u32)
}
/// [`fork_with_pid`], waiting up to 5 s while `want` is held by a process that is
/// ending or has ended and waits to be reaped: a process killed just before its
/// restart (or a child its parent's death kills), whose parent (init, often; some reap
/// only every few seconds) has not reaped it yet.
///
/// # Safety
/// As [`fork_with_pid`].
pub unsafe fn fork_with_freed_pid(want: i32) -> SysResult<u32> {
    let deadline = crate::clock_monotonic_ns() + 5_000_000_000;
    loop {
        // SAFETY: as the caller promised.
        match unsafe { fork_with_pid(want) } {
            Err(Errno(libc::EEXIST)) if ending(want as u32) && crate::clock_monotonic_ns() < deadline => crate::sleep_ms(2),
            r => return r,
        }
    }
}
/// Why [`fork_with_pid`] could not give the pid asked for, from its error.
pub fn pid_refusal(e: Errno) -> &'static str {
    match e.0 {
        libc::EEXIST => "the pid is taken",
        libc::EPERM => "only a privileged restore (root, or CAP_CHECKPOINT_RESTORE) chooses pids",
        libc::ENOSYS | libc::E2BIG => "this kernel cannot choose pids (clone3 with set_tid)",
        _ => "the kernel would not give that pid",
    }
}
/// Forks a child that sends no signal when it ends (no SIGCHLD, invisible to the
/// program's `wait`); 0 in the child.
pub fn fork_quiet() -> SysResult<u32> {
    sc!(libc::SYS_clone, 0, 0, 0, 0, 0).map(|pid| pid as u32)
}
/// Whether this process adopts the orphans of its descendants (it is a subreaper, or
/// the init of its pid namespace): a process started by [`spawn_orphan`] would come
/// back to it as a child.
pub fn adopts_orphans() -> bool {
    let mut on: c_int = 0;
    getpid() == 1 || sc!(libc::SYS_prctl, libc::PR_GET_CHILD_SUBREAPER, &mut on as *mut c_int) != Ok(0) || on != 0
}
/// Reaps the intermediate of [`clone_twice`](crate::x86_64::clone_twice): its status
/// is the inner clone's errno.
fn reap_between(r: isize, tid: &u32) -> SysResult<u32> {
    let between = crate::check(r)? as u32;
    let mut status: i32 = 0;
    loop {
        match sc!(libc::SYS_wait4, between, &mut status as *mut i32, libc::__WCLONE, 0) {
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    match (status >> 8) & 0xff {
        0 if status & 0x7f == 0 && *tid != 0 => Ok(*tid),
        0 => Err(Errno(libc::ECHILD)),
        e => Err(Errno(e)),
    }
}
/// Forks a process that is no child of this one, so that the program never sees it
/// (no child, no `SIGCHLD`, nothing for `wait`): an intermediate sharing the memory
/// forks it and exits at once (the caller waits for it as for `vfork`: about the time a
/// fork takes), and is reaped here; the new process is adopted by init (or the nearest
/// subreaper, see [`adopts_orphans`]), which reaps it. Returns 0 in the new process,
/// its pid in the caller.
///
/// # Safety
/// Every catchable signal must be blocked (the intermediate runs on this stack).
pub unsafe fn spawn_orphan() -> SysResult<u32> {
    let mut tid: u32 = 0;
    // SAFETY: `tid` is a live local for CLONE_PARENT_SETTID; no stack: a fork; the
    // caller blocks the signals.
    let r = unsafe { crate::x86_64::clone_twice(libc::CLONE_PARENT_SETTID as u64, 0, &mut tid, core::ptr::null_mut(), 0, 0, 0, 0) };
    if r == 0 {
        return Ok(0);
    }
    reap_between(r, &tid)
}
/// [`spawn_vm`](crate::spawn_vm), but the new process is no child of this one (as in
/// [`spawn_orphan`]): `live` is not 0 from now until the kernel sets it to 0 (and wakes
/// its futex waiters) once the new process has unmapped its stack and ended. Returns
/// its pid.
///
/// # Safety
/// As for `spawn_vm`, and every catchable signal must be blocked.
pub unsafe fn spawn_vm_orphan(
    stack_top: usize,
    f: extern "C" fn(usize),
    arg: usize,
    unmap: usize,
    unmap_len: usize,
    live: &core::sync::atomic::AtomicU32,
) -> SysResult<u32> {
    let flags = libc::CLONE_VM | libc::CLONE_PARENT_SETTID | libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID;
    let mut tid: u32 = 0;
    // Until the new process runs (and the kernel stores its pid there).
    live.store(u32::MAX, core::sync::atomic::Ordering::SeqCst);
    // SAFETY: `tid` is a live local; `live` a word in the shared memory the kernel writes
    // (the new process's pid as it starts, 0 as it ends); the stack and `f` as the
    // caller vouches.
    let r = unsafe { crate::x86_64::clone_twice(flags as u64, stack_top, &mut tid, live.as_ptr(), f as usize, arg, unmap, unmap_len) };
    let r = reap_between(r, &tid);
    if r.is_err() {
        live.store(0, core::sync::atomic::Ordering::SeqCst);
    }
    r
}
/// Field 22 of `/proc/<pid>/stat`: when process `pid` started, in clock ticks since
/// boot (with the pid, who it is).
pub fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22, |field| field.iter().try_fold(0u64, |v, &c| if c.is_ascii_digit() { Some(v * 10 + (c - b'0') as u64) } else { None }))
}
/// Whether process `pid` is ending (killed: SIGKILL pending; exiting: `PF_EXITING`),
/// has ended and waits to be reaped (state `Z` or `X`), or is gone already.
fn ending(pid: u32) -> bool {
    const PF_EXITING: u64 = 4;
    let number = |f: &[u8]| f.iter().try_fold(0u64, |v, &c| if c.is_ascii_digit() { Some(v * 10 + (c - b'0') as u64) } else { None });
    let Some(state) = stat_field(pid, 3, |state| state.first().copied()) else { return true };
    let exiting = stat_field(pid, 9, number).is_some_and(|flags| flags & PF_EXITING != 0);
    matches!(state, b'Z' | b'X') || exiting || killed(pid)
}
/// Whether SIGKILL is pending for process `pid` (its main thread's or the process's).
fn killed(pid: u32) -> bool {
    let mut path = crate::msg::Msg::<32>::new();
    path.s("/proc/").num(pid as u64).s("/status");
    let mut buf = [0u8; 4096];
    let Some(len) = CPath::new(path.as_bytes()).and_then(|p| crate::read_file(&p, &mut buf).ok()) else { return false };
    let text = buf.get(..len).unwrap_or_default();
    [&b"SigPnd:\t"[..], b"ShdPnd:\t"].iter().any(|key| {
        let Some(at) = text.windows(key.len()).position(|w| w == *key) else { return false };
        let hex = text.get(at + key.len()..).unwrap_or_default().iter().take_while(|c| c.is_ascii_hexdigit());
        let set = hex.fold(0u64, |v, &c| v << 4 | (c as char).to_digit(16).unwrap_or(0) as u64);
        set & 1 << (libc::SIGKILL - 1) != 0
    })
}
/// Field `n` (from 3: those after the command's name) of `/proc/<pid>/stat`, given to `f`.
fn stat_field<T>(pid: u32, n: usize, f: impl FnOnce(&[u8]) -> Option<T>) -> Option<T> {
    let mut path = crate::msg::Msg::<32>::new();
    path.s("/proc/").num(pid as u64).s("/stat");
    let mut buf = [0u8; 1024];
    let len = crate::read_file(&CPath::new(path.as_bytes())?, &mut buf).ok()?;
    let stat = buf.get(..len)?;
    let after = stat.iter().rposition(|&c| c == b')')?;
    f(stat.get(after + 2..)?.split(|&c| c == b' ').nth(n.checked_sub(3)?)?)
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
/// Reaps child `pid` (of any kind) if it has ended; true if it was reaped.
pub fn reap_if_ended(pid: u32) -> bool {
    sc!(libc::SYS_wait4, pid, core::ptr::null_mut::<i32>(), libc::WNOHANG | libc::__WALL, 0).is_ok_and(|r| r == pid as usize)
}
/// Whether descriptor `fd` of this process is the file an epoll set watches, as
/// `slot` names it (`struct kcmp_epoll_slot`: the set, the registered number, 0).
pub fn kcmp_epoll_target(fd: i32, slot: &[u32; 3]) -> bool {
    let me = getpid();
    sc!(libc::SYS_kcmp, me, me, 7 /* KCMP_EPOLL_TFD */, fd, slot.as_ptr()) == Ok(0)
}
/// The highest descriptor number this process may have, plus one (`RLIMIT_NOFILE`),
/// at most 65536.
pub fn max_fd() -> i32 {
    let mut lim = [0u64; 2];
    let n = sc!(libc::SYS_prlimit64, 0, libc::RLIMIT_NOFILE, 0usize, lim.as_mut_ptr()).map_or(1024, |_| lim[0]);
    n.min(65536) as i32
}
/// Whether process `pid` shares this process's memory (`kcmp` `KCMP_VM`): a program
/// that `exec`ed no longer shares its copier's.
pub fn shares_memory_with(pid: u32) -> bool {
    sc!(libc::SYS_kcmp, getpid(), pid, 1 /* KCMP_VM */, 0, 0) == Ok(0)
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
/// The swap space configured, in bytes (`sysinfo`); 0 also if it cannot be read.
pub fn swap_total() -> u64 {
    // SAFETY: all-zero is a valid `struct sysinfo`.
    let mut info: libc::sysinfo = unsafe { core::mem::zeroed() };
    match sc!(libc::SYS_sysinfo, &mut info as *mut libc::sysinfo) {
        Ok(_) => info.totalswap as u64 * info.mem_unit as u64,
        Err(_) => 0,
    }
}
/// The `membarrier` commands this process registered (`MEMBARRIER_CMD_GET_REGISTRATIONS`,
/// Linux 6.3); 0 where the kernel cannot say.
pub fn membarrier_registrations() -> u32 {
    const MEMBARRIER_CMD_GET_REGISTRATIONS: usize = 1 << 9;
    sc!(libc::SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0).map_or(0, |v| v as u32)
}
