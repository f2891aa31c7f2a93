//! Descriptors: read and write, close, control (`fcntl`, `ioctl`), pipes, poll.

use crate::{Errno, SysResult, getpid, time::timespec_ms};
use libc::c_int;

pub fn close(fd: c_int) {
    let _ = sc!(libc::SYS_close, fd);
}
/// `dup3(old, new, 0)`: `new` becomes a copy of `old`.
pub fn dup2(old: c_int, new: c_int) -> SysResult {
    sc!(libc::SYS_dup3, old, new, 0)
}
pub fn read(fd: c_int, buf: &mut [u8]) -> SysResult {
    sc!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len())
}
pub fn pread(fd: c_int, buf: &mut [u8], off: u64) -> SysResult {
    sc!(libc::SYS_pread64, fd, buf.as_mut_ptr(), buf.len(), off)
}
/// `pwrite(fd, buf, off)`; returns how much was written.
pub fn pwrite(fd: c_int, buf: &[u8], off: u64) -> SysResult {
    sc!(libc::SYS_pwrite64, fd, buf.as_ptr(), buf.len(), off)
}
/// `pwrite` from raw memory: the kernel copies straight from `ptr`, and an unreadable
/// page makes the call fail with `EFAULT` instead of crashing the process.
///
/// # Safety
/// `[ptr, ptr + len)` must be memory of this process that may be read (no other
/// thread's write to it races with the copy), or unmapped.
pub unsafe fn pwrite_raw(fd: c_int, ptr: *const u8, len: usize, off: u64) -> SysResult {
    sc!(libc::SYS_pwrite64, fd, ptr, len, off)
}
/// `write` from raw memory: as `pwrite_raw`, at the descriptor's offset.
///
/// # Safety
/// As `pwrite_raw`.
pub unsafe fn write_raw(fd: c_int, ptr: *const u8, len: usize) -> SysResult {
    sc!(libc::SYS_write, fd, ptr, len)
}
/// Writes all of `buf`, retrying after interruptions and short writes.
pub fn write_all(fd: c_int, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        let len = buf.len().min(1 << 30);
        match sc!(libc::SYS_write, fd, buf.as_ptr(), len) {
            Ok(0) => return Err(Errno(libc::EIO)),
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
pub fn lseek(fd: c_int, off: i64, whence: c_int) -> SysResult<i64> {
    sc!(libc::SYS_lseek, fd, off, whence).map(|v| v as i64)
}
/// `fcntl(fd, cmd, arg)` for the commands whose argument is an integer (descriptor and
/// status flags, duplication, pipe size, seals, owner, lease, notify); any other
/// command (one that takes a pointer) fails with `EINVAL` without reaching the kernel.
pub fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> SysResult {
    use libc::*;
    const INTEGER: [c_int; 14] = [
        F_DUPFD,
        F_DUPFD_CLOEXEC,
        F_GETFD,
        F_SETFD,
        F_GETFL,
        F_SETFL,
        F_GETPIPE_SZ,
        F_SETPIPE_SZ,
        F_GET_SEALS,
        F_ADD_SEALS,
        F_GETOWN,
        F_SETOWN,
        F_GETLEASE,
        F_SETLEASE,
    ];
    if !INTEGER.contains(&cmd) && cmd != F_NOTIFY {
        return Err(Errno(EINVAL));
    }
    sc!(SYS_fcntl, fd, cmd, arg)
}
/// `ioctl(fd, req, arg)`.
///
/// # Safety
/// `arg` must be what request `req` takes for this descriptor: where it is an address,
/// one of memory valid for what the request reads and writes there.
pub unsafe fn ioctl(fd: c_int, req: u64, arg: usize) -> SysResult {
    sc!(libc::SYS_ioctl, fd, req, arg)
}
/// `ioctl(fd, TCGETS, out)`: the terminal's settings (a kernel `struct termios`, 36
/// bytes); fails with `ENOTTY` where `fd` is no terminal.
pub fn tcgets(fd: c_int, out: &mut [u8; 64]) -> SysResult<()> {
    const TCGETS: u64 = 0x5401;
    sc!(libc::SYS_ioctl, fd, TCGETS, out.as_mut_ptr()).map(drop)
}
/// `ioctl(fd, TCSETS, modes)`: sets the terminal's settings at once.
pub fn tcsets(fd: c_int, modes: &[u8; 64]) -> SysResult<()> {
    const TCSETS: u64 = 0x5402;
    sc!(libc::SYS_ioctl, fd, TCSETS, modes.as_ptr()).map(drop)
}
/// `ioctl(master, TIOCGPTPEER, flags)`: a new descriptor of the slave of pseudo-terminal
/// `master`.
pub fn pty_peer(master: c_int, flags: c_int) -> SysResult<c_int> {
    sc!(libc::SYS_ioctl, master, libc::TIOCGPTPEER, flags).map(|fd| fd as c_int)
}
/// `ioctl(fd, request, &value)` for requests that read or write one `u32`/`u64`-sized
/// value (`TIOCGPTN`, `FIONREAD`, `TIOCGWINSZ`).
pub fn ioctl_get(fd: c_int, request: u64) -> SysResult<u64> {
    let mut v = 0u64;
    sc!(libc::SYS_ioctl, fd, request, &mut v as *mut u64).map(|_| v)
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
/// Whether `fd` is readable now (`ppoll`, no wait).
pub fn readable(fd: c_int) -> bool {
    wait_readable(fd, 0)
}
/// Whether `fd` becomes readable within `ms` milliseconds (`ppoll`).
pub fn wait_readable(fd: c_int, ms: u64) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ts = timespec_ms(ms);
    matches!(sc!(libc::SYS_ppoll, &mut p as *mut libc::pollfd, 1, ts.as_ptr(), 0usize, 8), Ok(1))
}
/// What `poll` reports of `fd` now for `events` (`ppoll`, no wait); 0 on failure.
pub fn poll_now(fd: c_int, events: i16) -> i16 {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    let ts = timespec_ms(0);
    match sc!(libc::SYS_ppoll, &mut p as *mut libc::pollfd, 1, ts.as_ptr(), 0usize, 8) {
        Ok(1) => p.revents,
        _ => 0,
    }
}
/// `epoll_wait(epfd, events, events.len(), timeout_ms)`: how many events it filled.
pub fn epoll_wait(epfd: c_int, events: &mut [libc::epoll_event], timeout_ms: c_int) -> SysResult {
    sc!(libc::SYS_epoll_wait, epfd, events.as_mut_ptr(), events.len(), timeout_ms)
}
