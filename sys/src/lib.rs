//! Raw system calls with types around them: async-signal-safe, no libc, no `errno`.
//! Everything on the checkpoint and restore paths goes through here.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod msg;
mod sigevent;
mod x86_64;

use libc::c_int;
pub use sigevent::Sigevent;
pub use x86_64::{spawn_vm, syscall6};

/// `arch_prctl` codes (asm/prctl.h).
pub const ARCH_SET_FS: i32 = 0x1002;
pub const ARCH_GET_FS: i32 = 0x1003;

/// An error number returned by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// What the error means, as `strerror` says it (for the errors a checkpoint or a
    /// restore can meet); `None` for others.
    pub fn text(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::EPERM => "Operation not permitted",
            libc::ENOENT => "No such file or directory",
            libc::EINTR => "Interrupted system call",
            libc::EIO => "Input/output error",
            libc::EBADF => "Bad file descriptor",
            libc::EAGAIN => "Resource temporarily unavailable",
            libc::ENOMEM => "Cannot allocate memory",
            libc::EACCES => "Permission denied",
            libc::EFAULT => "Bad address",
            libc::EBUSY => "Device or resource busy",
            libc::EEXIST => "File exists",
            libc::EXDEV => "Invalid cross-device link",
            libc::ENOTDIR => "Not a directory",
            libc::EISDIR => "Is a directory",
            libc::EINVAL => "Invalid argument",
            libc::ENFILE => "Too many open files in system",
            libc::EMFILE => "Too many open files",
            libc::ETXTBSY => "Text file busy",
            libc::EFBIG => "File too large",
            libc::ENOSPC => "No space left on device",
            libc::EROFS => "Read-only file system",
            libc::EPIPE => "Broken pipe",
            libc::ENAMETOOLONG => "File name too long",
            libc::ELOOP => "Too many levels of symbolic links",
            libc::EDQUOT => "Disk quota exceeded",
            libc::ECONNREFUSED => "Connection refused",
            libc::ESRCH => "No such process",
            _ => return None,
        })
    }
}

pub type SysResult<T = usize> = Result<T, Errno>;

/// A raw system call's return: an error number or a value.
pub fn check(r: isize) -> SysResult {
    if (-4095..0).contains(&r) { Err(Errno(-r as i32)) } else { Ok(r as usize) }
}

macro_rules! sc {
    ($nr:expr) => { sc!($nr, 0, 0, 0, 0, 0, 0) };
    ($nr:expr, $a:expr) => { sc!($nr, $a, 0, 0, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr) => { sc!($nr, $a, $b, 0, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr) => { sc!($nr, $a, $b, $c, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr) => { sc!($nr, $a, $b, $c, $d, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => { sc!($nr, $a, $b, $c, $d, $e, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr, $e:expr, $f:expr) => {
        // SAFETY: each wrapper below passes pointers derived from live references or
        // buffers of the length it names, matching the system call's contract.
        check(unsafe {
            syscall6($nr as usize, $a as usize, $b as usize, $c as usize, $d as usize, $e as usize, $f as usize)
        })
    };
}

/// A NUL-terminated path built in a fixed buffer (no allocation).
#[derive(Clone)]
pub struct CPath {
    buf: [u8; 4096],
}

impl CPath {
    /// `None` if `path` is too long or contains a NUL.
    pub fn new(path: &[u8]) -> Option<Self> {
        let mut buf = [0u8; 4096];
        if path.len() >= buf.len() || path.contains(&0) {
            return None;
        }
        buf[..path.len()].copy_from_slice(path);
        Some(CPath { buf })
    }
    /// Joins parts, e.g. `["/proc/self/fd/", "12"]`.
    pub fn join(parts: &[&[u8]]) -> Option<Self> {
        let mut m = msg::Msg::<4096>::new();
        for p in parts {
            m.bytes(p);
        }
        if m.overflowed() { None } else { Self::new(m.as_bytes()) }
    }
    pub fn ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }
    /// The path without its NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let len = self.buf.iter().position(|&c| c == 0).unwrap_or(self.buf.len());
        self.buf.get(..len).unwrap_or(&[])
    }
}

pub fn open(path: &CPath, flags: c_int, mode: u32) -> SysResult<c_int> {
    openat(libc::AT_FDCWD, path, flags, mode)
}
/// `openat(dir, path, flags | O_CLOEXEC, mode)`.
pub fn openat(dir: c_int, path: &CPath, flags: c_int, mode: u32) -> SysResult<c_int> {
    sc!(libc::SYS_openat, dir, path.ptr(), flags | libc::O_CLOEXEC, mode).map(|fd| fd as c_int)
}
/// `fstatat(dir, path, AT_SYMLINK_NOFOLLOW)`: what is at `path` itself, a link not followed.
pub fn lstatat(dir: c_int, path: &CPath) -> SysResult<libc::stat> {
    // SAFETY: `stat` is plain old data.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_newfstatat, dir, path.ptr(), &mut st as *mut libc::stat, libc::AT_SYMLINK_NOFOLLOW).map(|_| st)
}
pub fn unlinkat(dir: c_int, path: &CPath) -> SysResult<()> {
    sc!(libc::SYS_unlinkat, dir, path.ptr(), 0).map(drop)
}
/// `flock(fd, op)`: `LOCK_EX | LOCK_NB` fails with `EWOULDBLOCK` while another open
/// file description holds the lock.
pub fn flock(fd: c_int, op: c_int) -> SysResult<()> {
    sc!(libc::SYS_flock, fd, op).map(drop)
}
/// Random bytes from the kernel (`getrandom`, never blocking); false if it had none.
pub fn random(out: &mut [u8]) -> bool {
    sc!(libc::SYS_getrandom, out.as_mut_ptr(), out.len(), libc::GRND_NONBLOCK) == Ok(out.len())
}
pub fn geteuid() -> u32 {
    sc!(libc::SYS_geteuid).unwrap_or(0) as u32
}
/// `connect` to the abstract UNIX socket address `name` (without its leading NUL).
pub fn connect_abstract(fd: c_int, name: &[u8]) -> SysResult<()> {
    // SAFETY: `sockaddr_un` is plain old data.
    let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as u16;
    let path = a.sun_path.get_mut(1..1 + name.len()).ok_or(Errno(libc::ENAMETOOLONG))?;
    for (d, s) in path.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    let len = core::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    sc!(libc::SYS_connect, fd, &a as *const libc::sockaddr_un, len).map(drop)
}
/// The (pid, uid) of the peer of a UNIX socket, as the kernel recorded them when the
/// connection (or the listener) was made.
pub fn peer_cred(fd: c_int) -> SysResult<(u32, u32)> {
    let mut c = [0u32; 3];
    let mut len: u32 = 12;
    sc!(libc::SYS_getsockopt, fd, libc::SOL_SOCKET, libc::SO_PEERCRED, c.as_mut_ptr(), &mut len as *mut u32).map(|_| (c[0], c[1]))
}
/// `SO_RCVTIMEO` and `SO_SNDTIMEO` of `fd`: no read or write on it blocks longer.
pub fn socket_timeouts(fd: c_int, ms: u64) {
    let tv = [(ms / 1000) as i64, ((ms % 1000) * 1000) as i64];
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        let _ = sc!(libc::SYS_setsockopt, fd, libc::SOL_SOCKET, opt, tv.as_ptr(), 16);
    }
}
/// `recvmsg` into `buf`, taking at most one descriptor passed with `SCM_RIGHTS`
/// (close-on-exec); returns (length, the descriptor or -1).
pub fn recv_with_fd(fd: c_int, buf: &mut [u8]) -> SysResult<(usize, c_int)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Room for one `cmsghdr` (16 bytes) and one descriptor, 8-byte aligned.
    let mut control = [0u64; 4];
    // SAFETY: `msghdr` is plain old data; null name is valid.
    let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = control.as_mut_ptr().cast();
    m.msg_controllen = core::mem::size_of_val(&control);
    let n = sc!(libc::SYS_recvmsg, fd, &mut m as *mut libc::msghdr, libc::MSG_CMSG_CLOEXEC)?;
    // The first control message: length, level, type, then the descriptors.
    let [len, level_type, fds, _] = control;
    let rights = (libc::SOL_SOCKET as u64) | (libc::SCM_RIGHTS as u64) << 32;
    let passed = if m.msg_controllen >= 20 && len >= 20 && level_type == rights { fds as u32 as c_int } else { -1 };
    // More than one descriptor: the others are closed, not kept by accident.
    if m.msg_controllen >= 20 && level_type == rights {
        let count = (len.min(32) as usize - 16) / 4;
        if count > 1 {
            close((fds >> 32) as u32 as c_int);
        }
    }
    Ok((n, passed))
}
/// `send(fd, buf, MSG_NOSIGNAL)` until all is sent: a peer that went away is an error,
/// not a SIGPIPE.
pub fn send_all(fd: c_int, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        match sc!(libc::SYS_sendto, fd, buf.as_ptr(), buf.len(), libc::MSG_NOSIGNAL, 0, 0) {
            Ok(0) => return Err(Errno(libc::EPIPE)),
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
pub fn close(fd: c_int) {
    let _ = sc!(libc::SYS_close, fd);
}
pub fn read(fd: c_int, buf: &mut [u8]) -> SysResult {
    sc!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len())
}
pub fn pwrite(fd: c_int, buf: *const u8, len: usize, off: u64) -> SysResult {
    sc!(libc::SYS_pwrite64, fd, buf, len, off)
}
pub fn pread(fd: c_int, buf: &mut [u8], off: u64) -> SysResult {
    sc!(libc::SYS_pread64, fd, buf.as_mut_ptr(), buf.len(), off)
}
/// Writes from raw memory: the kernel copies straight from `ptr`, and an unreadable
/// page makes the call fail with `EFAULT` instead of crashing the process.
pub fn write_raw(fd: c_int, ptr: *const u8, len: usize) -> SysResult {
    sc!(libc::SYS_write, fd, ptr, len)
}
pub fn write_all(fd: c_int, mut ptr: *const u8, mut len: usize) -> SysResult<()> {
    while len > 0 {
        match write_raw(fd, ptr, len.min(1 << 30)) {
            Ok(0) => return Err(Errno(libc::EIO)),
            Ok(n) => {
                ptr = ptr.wrapping_add(n);
                len -= n;
            }
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
/// Reads a whole (small, `/proc`) file into `buf`; returns the length read.
pub fn read_file(path: &CPath, buf: &mut [u8]) -> SysResult {
    let fd = open(path, libc::O_RDONLY, 0)?;
    let mut len = 0;
    let r = loop {
        match buf.get_mut(len..).map(|b| read(fd, b)) {
            Some(Ok(0)) | None => break Ok(len),
            Some(Ok(n)) => len += n,
            Some(Err(Errno(libc::EINTR))) => {}
            Some(Err(e)) => break Err(e),
        }
    };
    close(fd);
    r
}
pub fn lseek(fd: c_int, off: i64, whence: c_int) -> SysResult<i64> {
    sc!(libc::SYS_lseek, fd, off, whence).map(|v| v as i64)
}
pub fn fstat(fd: c_int) -> SysResult<libc::stat> {
    // SAFETY: `stat` is plain old data.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_fstat, fd, &mut st as *mut libc::stat).map(|_| st)
}
pub fn stat(path: &CPath) -> SysResult<libc::stat> {
    // SAFETY: `stat` is plain old data.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_newfstatat, libc::AT_FDCWD, path.ptr(), &mut st as *mut libc::stat, 0).map(|_| st)
}
pub fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> SysResult {
    sc!(libc::SYS_fcntl, fd, cmd, arg)
}
pub fn readlink(path: &CPath, buf: &mut [u8]) -> SysResult {
    sc!(libc::SYS_readlinkat, libc::AT_FDCWD, path.ptr(), buf.as_mut_ptr(), buf.len())
}
pub fn getdents(fd: c_int, buf: &mut [u8]) -> SysResult {
    sc!(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len())
}
pub fn fsync(fd: c_int) -> SysResult<()> {
    sc!(libc::SYS_fsync, fd).map(drop)
}
pub fn rename(from: &CPath, to: &CPath) -> SysResult<()> {
    sc!(libc::SYS_renameat, libc::AT_FDCWD, from.ptr(), libc::AT_FDCWD, to.ptr()).map(drop)
}
pub fn unlink(path: &CPath) -> SysResult<()> {
    sc!(libc::SYS_unlinkat, libc::AT_FDCWD, path.ptr(), 0).map(drop)
}
pub fn mmap(addr: usize, len: usize, prot: c_int, flags: c_int, fd: c_int, off: u64) -> SysResult {
    sc!(libc::SYS_mmap, addr, len, prot, flags, fd, off)
}
pub fn munmap(addr: usize, len: usize) -> SysResult<()> {
    sc!(libc::SYS_munmap, addr, len).map(drop)
}
pub fn mprotect(addr: usize, len: usize, prot: u32) -> SysResult<()> {
    sc!(libc::SYS_mprotect, addr, len, prot).map(drop)
}
pub fn brk(addr: usize) -> usize {
    sc!(libc::SYS_brk, addr).unwrap_or(0)
}
pub fn getpid() -> u32 {
    sc!(libc::SYS_getpid).unwrap_or(0) as u32
}
pub fn getuid() -> u32 {
    sc!(libc::SYS_getuid).unwrap_or(0) as u32
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
pub fn gettid() -> u32 {
    sc!(libc::SYS_gettid).unwrap_or(0) as u32
}
pub fn exit_group(code: c_int) -> ! {
    let _ = sc!(libc::SYS_exit_group, code);
    // SAFETY: exit_group does not return.
    unsafe { core::hint::unreachable_unchecked() }
}
pub fn umask(mask: u32) -> u32 {
    sc!(libc::SYS_umask, mask).unwrap_or(0) as u32
}
pub fn getcwd(buf: &mut [u8]) -> SysResult {
    sc!(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len())
}
pub fn prlimit(res: u32, new: Option<&mig_image::Rlimit>, old: &mut mig_image::Rlimit) -> SysResult<()> {
    let newp = new.map_or(core::ptr::null(), |r| r as *const mig_image::Rlimit);
    sc!(libc::SYS_prlimit64, 0, res, newp, old as *mut mig_image::Rlimit).map(drop)
}
pub fn getitimer(which: c_int, out: &mut mig_image::Itimer) -> SysResult<()> {
    sc!(libc::SYS_getitimer, which, out as *mut mig_image::Itimer).map(drop)
}
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
pub fn sigaltstack(old: &mut libc::stack_t) -> SysResult<()> {
    sc!(libc::SYS_sigaltstack, 0, old as *mut libc::stack_t).map(drop)
}
/// Names the calling task (`PR_SET_NAME`: what `ps` shows); `name` ends with a NUL.
pub fn set_name(name: &[u8]) {
    if name.last() == Some(&0) {
        let _ = prctl(libc::PR_SET_NAME, name.as_ptr() as usize, 0, 0, 0);
    }
}
pub fn prctl(op: c_int, a: usize, b: usize, c: usize, d: usize) -> SysResult {
    sc!(libc::SYS_prctl, op, a, b, c, d)
}
pub fn fs_base() -> u64 {
    let mut v = 0u64;
    let _ = sc!(libc::SYS_arch_prctl, ARCH_GET_FS, &mut v as *mut u64);
    v
}
pub fn robust_list() -> (u64, u64) {
    let (mut head, mut len) = (0u64, 0u64);
    let _ = sc!(libc::SYS_get_robust_list, 0, &mut head as *mut u64, &mut len as *mut u64);
    (head, len)
}
pub fn clock_realtime_ns() -> u64 {
    // SAFETY: `timespec` is plain old data.
    let mut ts: libc::timespec = unsafe { core::mem::zeroed() };
    let _ = sc!(libc::SYS_clock_gettime, libc::CLOCK_REALTIME, &mut ts as *mut libc::timespec);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
pub fn clock_monotonic_ns() -> u64 {
    // SAFETY: `timespec` is plain old data.
    let mut ts: libc::timespec = unsafe { core::mem::zeroed() };
    let _ = sc!(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts as *mut libc::timespec);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
pub fn socket(domain: c_int, ty: c_int, proto: c_int) -> SysResult<c_int> {
    sc!(libc::SYS_socket, domain, ty | libc::SOCK_CLOEXEC, proto).map(|fd| fd as c_int)
}
/// An integer socket option.
pub fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> SysResult<i32> {
    let mut v: i32 = 0;
    let mut len: u32 = 4;
    sc!(libc::SYS_getsockopt, fd, level, name, &mut v as *mut i32, &mut len as *mut u32).map(|_| v)
}
pub fn setsockopt_int(fd: c_int, level: c_int, name: c_int, v: i32) -> SysResult<()> {
    sc!(libc::SYS_setsockopt, fd, level, name, &v as *const i32, 4).map(drop)
}
/// `getsockopt` into raw bytes; returns the length the kernel filled.
pub fn getsockopt(fd: c_int, level: c_int, name: c_int, out: &mut [u8]) -> SysResult {
    let mut len = out.len() as u32;
    sc!(libc::SYS_getsockopt, fd, level, name, out.as_mut_ptr(), &mut len as *mut u32).map(|_| len as usize)
}
/// `getsockname` (`peer`: `getpeername`); returns the address length.
pub fn sockname(fd: c_int, peer: bool, out: &mut [u8]) -> SysResult {
    let mut len = out.len() as u32;
    let nr = if peer { libc::SYS_getpeername } else { libc::SYS_getsockname };
    sc!(nr, fd, out.as_mut_ptr(), &mut len as *mut u32).map(|_| (len as usize).min(out.len()))
}
pub fn send(fd: c_int, buf: &[u8], flags: c_int) -> SysResult {
    sc!(libc::SYS_sendto, fd, buf.as_ptr(), buf.len(), flags, 0, 0)
}
/// `recvmsg` into one buffer without control data; returns (length, msg_flags).
pub fn recv(fd: c_int, buf: &mut [u8], flags: c_int) -> SysResult<(usize, i32)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: `msghdr` is plain old data; null name and control are valid.
    let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    sc!(libc::SYS_recvmsg, fd, &mut m as *mut libc::msghdr, flags).map(|n| (n, m.msg_flags))
}
pub fn pipe2(flags: c_int) -> SysResult<[c_int; 2]> {
    let mut p = [0 as c_int; 2];
    sc!(libc::SYS_pipe2, p.as_mut_ptr(), flags | libc::O_CLOEXEC).map(|_| p)
}
pub fn tee(from: c_int, to: c_int, len: usize, flags: u32) -> SysResult {
    sc!(libc::SYS_tee, from, to, len, flags)
}
/// Whether two descriptors of this process share one open file description.
pub fn same_file(a: c_int, b: c_int) -> bool {
    let pid = getpid();
    sc!(libc::SYS_kcmp, pid, pid, 0 /* KCMP_FILE */, a, b) == Ok(0)
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
/// Closes every descriptor but those in `keep` (negative entries are ignored), from 0
/// up for those below `first`, and every one from `first` on.
pub fn close_from(first: u32, keep: &[i32]) {
    for fd in 0..first as i32 {
        if !keep.contains(&fd) {
            close(fd);
        }
    }
    // The kept ones from `first` on, in order, and the ranges between them.
    let mut from = first;
    loop {
        let next = keep.iter().filter_map(|&k| u32::try_from(k).ok()).filter(|&k| k >= from).min();
        let to = next.map_or(u32::MAX, |k| k.saturating_sub(1));
        if next != Some(from) {
            let _ = sc!(libc::SYS_close_range, from, to, 0);
        }
        match next {
            Some(k) if k < u32::MAX => from = k + 1,
            _ => return,
        }
    }
}
/// Marks every descriptor from `first` on close-on-exec.
pub fn cloexec_from(first: u32) {
    let _ = sc!(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
}
pub fn kill(pid: u32, sig: c_int) -> SysResult<()> {
    sc!(libc::SYS_kill, pid, sig).map(|_| ())
}
/// Waits while `word` holds `expected`, at most `timeout_ms`. Not a private futex: the
/// waker may be another process sharing this address space (the pre-copy's copier).
/// A `struct timespec` of `ms` milliseconds.
fn timespec_ms(ms: u64) -> [i64; 2] {
    [(ms / 1000) as i64, ((ms % 1000) * 1_000_000) as i64]
}
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32, timeout_ms: u64) {
    let ts = timespec_ms(timeout_ms);
    let _ = sc!(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, ts.as_ptr());
}
pub fn sleep_ms(ms: u64) {
    let ts = timespec_ms(ms);
    let _ = sc!(libc::SYS_nanosleep, ts.as_ptr(), 0usize);
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
/// Whether `fd` is readable now (`ppoll`, no wait).
pub fn readable(fd: c_int) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ts = [0i64, 0];
    matches!(sc!(libc::SYS_ppoll, &mut p as *mut libc::pollfd, 1, ts.as_ptr(), 0usize, 8), Ok(1))
}
/// Whether `fd` becomes readable within `ms` milliseconds (`ppoll`).
pub fn wait_readable(fd: c_int, ms: u64) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ts = timespec_ms(ms);
    matches!(sc!(libc::SYS_ppoll, &mut p as *mut libc::pollfd, 1, ts.as_ptr(), 0usize, 8), Ok(1))
}
/// Sends `sig` to the process a pidfd refers to (never to a process that took its pid).
pub fn pidfd_send_signal(pidfd: c_int, sig: c_int) -> SysResult<()> {
    sc!(libc::SYS_pidfd_send_signal, pidfd, sig, 0, 0).map(drop)
}
pub fn futex_wake(word: &core::sync::atomic::AtomicU32) {
    let _ = sc!(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
}
/// Asks the disk to start writing `[off, off+len)` of `fd` out (`sync_file_range`
/// with `SYNC_FILE_RANGE_WRITE`); does not wait for it. Best effort.
pub fn start_writeback(fd: c_int, off: u64, len: u64) {
    let _ = sc!(libc::SYS_sync_file_range, fd, off, len, libc::SYNC_FILE_RANGE_WRITE);
}
pub fn ftruncate(fd: c_int, len: u64) -> SysResult<()> {
    sc!(libc::SYS_ftruncate, fd, len).map(|_| ())
}
pub fn ioctl(fd: c_int, req: u64, arg: usize) -> SysResult {
    sc!(libc::SYS_ioctl, fd, req, arg)
}
/// `timer_gettime`: {interval, value} as (seconds, nanoseconds).
pub fn timer_gettime(id: i32) -> SysResult<[i64; 4]> {
    let mut spec = [0i64; 4];
    sc!(libc::SYS_timer_gettime, id, spec.as_mut_ptr()).map(|_| spec)
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
