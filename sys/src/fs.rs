//! Files by path: open, stat, rename, unlink, read a whole file, read a link or a
//! directory.

use crate::{CPath, Errno, SysResult, close, read};
use libc::c_int;

/// `openat(AT_FDCWD, path, flags | O_CLOEXEC, mode)`.
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
/// `fstatat(AT_FDCWD, path, 0)`: links followed.
pub fn stat(path: &CPath) -> SysResult<libc::stat> {
    // SAFETY: `stat` is plain old data.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_newfstatat, libc::AT_FDCWD, path.ptr(), &mut st as *mut libc::stat, 0).map(|_| st)
}
pub fn fstat(fd: c_int) -> SysResult<libc::stat> {
    // SAFETY: `stat` is plain old data.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_fstat, fd, &mut st as *mut libc::stat).map(|_| st)
}
/// The type of the file system `fd` is on (`statfs.f_type`).
pub fn fs_type(fd: c_int) -> SysResult<i64> {
    // SAFETY: `statfs` is plain old data.
    let mut st: libc::statfs = unsafe { core::mem::zeroed() };
    sc!(libc::SYS_fstatfs, fd, &mut st as *mut libc::statfs).map(|_| st.f_type as i64)
}
/// `mq_getsetattr(fd, NULL, &attr)`: (`mq_flags`, `mq_maxmsg`, `mq_msgsize`, `mq_curmsgs`).
pub fn mq_attr(fd: c_int) -> SysResult<[i64; 4]> {
    let mut attr = [0i64; 8];
    sc!(libc::SYS_mq_getsetattr, fd, 0usize, attr.as_mut_ptr()).map(|_| [attr[0], attr[1], attr[2], attr[3]])
}
/// A message of POSIX message queue `fd` into `buf`, at once or not at all (an absolute
/// timeout long past); (length, priority).
pub fn mq_take(fd: c_int, buf: &mut [u8]) -> SysResult<(usize, u32)> {
    let mut prio = 0u32;
    let past = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    sc!(libc::SYS_mq_timedreceive, fd, buf.as_mut_ptr(), buf.len(), &mut prio as *mut u32, &past as *const libc::timespec).map(|n| (n, prio))
}
/// Puts a message back on POSIX message queue `fd`, at once or not at all.
pub fn mq_put(fd: c_int, msg: &[u8], prio: u32) -> SysResult<()> {
    let past = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    sc!(libc::SYS_mq_timedsend, fd, msg.as_ptr(), msg.len(), prio, &past as *const libc::timespec).map(drop)
}
pub fn unlinkat(dir: c_int, path: &CPath) -> SysResult<()> {
    sc!(libc::SYS_unlinkat, dir, path.ptr(), 0).map(drop)
}
pub fn unlink(path: &CPath) -> SysResult<()> {
    sc!(libc::SYS_unlinkat, libc::AT_FDCWD, path.ptr(), 0).map(drop)
}
pub fn rename(from: &CPath, to: &CPath) -> SysResult<()> {
    sc!(libc::SYS_renameat, libc::AT_FDCWD, from.ptr(), libc::AT_FDCWD, to.ptr()).map(drop)
}
pub fn readlink(path: &CPath, buf: &mut [u8]) -> SysResult {
    sc!(libc::SYS_readlinkat, libc::AT_FDCWD, path.ptr(), buf.as_mut_ptr(), buf.len())
}
pub fn getdents(fd: c_int, buf: &mut [u8]) -> SysResult {
    sc!(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len())
}
/// The names of the entries `getdents` put in `buf` (`struct linux_dirent64`: inode
/// (8), offset (8), record length (2), type (1), name, NUL).
pub fn dirent_names(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    core::iter::from_fn(move || {
        let rec = buf.get(at..).filter(|r| r.len() >= 19)?;
        let reclen = rec.get(16..18).and_then(|b| b.try_into().ok()).map_or(0, u16::from_le_bytes) as usize;
        at += reclen.max(1);
        let name = rec.get(19..reclen.max(19).min(rec.len())).unwrap_or_default();
        Some(name.split(|&c| c == 0).next().unwrap_or_default())
    })
}
/// Whether this process may execute `path` (`faccessat(X_OK)`).
pub fn access_x(path: &CPath) -> SysResult<()> {
    sc!(libc::SYS_faccessat, libc::AT_FDCWD, path.ptr(), libc::X_OK, 0).map(drop)
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
/// `flock(fd, op)`: `LOCK_EX | LOCK_NB` fails with `EWOULDBLOCK` while another open
/// file description holds the lock.
pub fn flock(fd: c_int, op: c_int) -> SysResult<()> {
    sc!(libc::SYS_flock, fd, op).map(drop)
}
pub fn fsync(fd: c_int) -> SysResult<()> {
    sc!(libc::SYS_fsync, fd).map(drop)
}
pub fn ftruncate(fd: c_int, len: u64) -> SysResult<()> {
    sc!(libc::SYS_ftruncate, fd, len).map(|_| ())
}
/// Asks the disk to start writing `[off, off+len)` of `fd` out (`sync_file_range`
/// with `SYNC_FILE_RANGE_WRITE`); does not wait for it. Best effort.
pub fn start_writeback(fd: c_int, off: u64, len: u64) {
    let _ = sc!(libc::SYS_sync_file_range, fd, off, len, libc::SYNC_FILE_RANGE_WRITE);
}
pub fn getcwd(buf: &mut [u8]) -> SysResult {
    sc!(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len())
}
pub fn umask(mask: u32) -> u32 {
    sc!(libc::SYS_umask, mask).unwrap_or(0) as u32
}
