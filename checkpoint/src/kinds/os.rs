//! What the restore sides share: descriptors opened, moved, copied and closed with
//! libc, in normal code (the restore runs before anything is replaced).
#![allow(unsafe_code)]

pub use std::collections::HashMap;
pub use std::ffi::CString;
pub use std::io::Error;
pub use std::string::{String, ToString};
pub use std::vec::Vec;
pub use std::{eprintln, format};

use std::fs::File;
use std::os::fd::FromRawFd;

pub fn last_error<T>(r: i32) -> std::io::Result<T>
where
    T: From<i32>,
{
    if r < 0 { Err(Error::last_os_error()) } else { Ok(T::from(r)) }
}

pub fn open_raw(path: &[u8], flags: i32, mode: u32) -> std::io::Result<i32> {
    let c = CString::new(path).map_err(|_| Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    last_error(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) })
}

/// A file that memory or a descriptor was shared through (`/dev/shm`, a deleted file),
/// made again at `path`, read-write. One that still has its name is opened by it (never
/// through a link: another user may have put one there); one that was `deleted` is made
/// under its name, which it leaves at once (so `/proc` shows it as it was and nothing
/// stays behind), or, where the name is taken, nameless in its directory (or `/tmp`).
/// One made nameless (`O_TMPFILE`: `/proc` names it `#<inode>`) is made so again: it
/// can be given a name (`linkat`), which one unlinked cannot.
pub fn make_shared_file(path: &[u8], deleted: bool, mode: u32) -> std::io::Result<i32> {
    let rw = libc::O_RDWR | libc::O_NOFOLLOW;
    if !deleted {
        let fd = open_raw(path, rw | libc::O_CREAT, mode)?;
        // SAFETY: fstat of the descriptor just opened, into a zeroed stat.
        let regular = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG
        };
        if !regular {
            close(fd);
            return Err(Error::other("it is not a regular file"));
        }
        return Ok(fd);
    }
    let base = path.rsplit(|&c| c == b'/').next().unwrap_or_default();
    let nameless = base.strip_prefix(b"#").is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit));
    if let Some(fd) = (!nameless).then(|| open_raw(path, rw | libc::O_CREAT | libc::O_EXCL, mode).ok()).flatten() {
        let c = CString::new(path).map_err(|_| Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a valid NUL-terminated path, the file we just made (O_EXCL).
        if unsafe { libc::unlink(c.as_ptr()) } == 0 {
            return Ok(fd);
        }
        close(fd);
    }
    let dir = match path.iter().rposition(|&c| c == b'/') {
        Some(0) | None => &b"/tmp"[..],
        Some(i) => path.get(..i).unwrap_or(b"/tmp"),
    };
    open_raw(dir, libc::O_TMPFILE | libc::O_RDWR, mode).or_else(|_| open_raw(b"/tmp", libc::O_TMPFILE | libc::O_RDWR, mode))
}

/// What a path must name when it is opened again.
#[derive(Clone, Copy, PartialEq)]
pub enum Expect {
    /// A regular file (a file mapping, `FdKind::File`).
    Regular,
    /// A regular file or a directory (`FdKind::File`).
    FileOrDir,
    /// A character or block device (`FdKind::Device`).
    Device,
    /// A named FIFO (`FdKind::Fifo`).
    Fifo,
}

impl Expect {
    fn name(self) -> &'static str {
        match self {
            Expect::Regular => "regular file",
            Expect::FileOrDir => "regular file or directory",
            Expect::Device => "device",
            Expect::Fifo => "FIFO",
        }
    }
}

/// Opens `path` as `open_raw` does, without waiting: a FIFO or a device put where the
/// saved file was makes `open` wait for its other end, forever. Refuses what is not
/// the `want`ed type; `O_NONBLOCK` is as `flags` asked.
pub fn open_expecting(path: &[u8], flags: i32, want: Expect) -> std::io::Result<i32> {
    let fd = open_raw(path, flags | libc::O_NONBLOCK, 0)?;
    // SAFETY: `stat` is plain old data, filled by fstat on the descriptor just opened.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let ty = if unsafe { libc::fstat(fd, &mut st) } == 0 { st.st_mode & libc::S_IFMT } else { 0 };
    let fits = match want {
        Expect::Regular => ty == libc::S_IFREG,
        Expect::FileOrDir => ty == libc::S_IFREG || ty == libc::S_IFDIR,
        Expect::Device => ty == libc::S_IFCHR || ty == libc::S_IFBLK,
        Expect::Fifo => ty == libc::S_IFIFO,
    };
    // SAFETY: fcntl on the descriptor just opened.
    let restored = fits && (flags & libc::O_NONBLOCK != 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } == 0);
    if restored {
        return Ok(fd);
    }
    let e = if fits { Error::last_os_error() } else { Error::other(format!("it is not a {} any more", want.name())) };
    close(fd);
    Err(e)
}

/// Moves `fd` to the lowest free number at or above `base` (close-on-exec).
pub fn raise_fd(fd: i32, base: i32) -> Result<i32, String> {
    // SAFETY: plain fcntl/close on a descriptor the caller owns.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, base) };
    // SAFETY: as above.
    unsafe { libc::close(fd) };
    if high < 0 { Err(format!("cannot allocate a descriptor: {}", Error::last_os_error())) } else { Ok(high) }
}

/// A second descriptor of the same open file description.
pub fn dup(fd: i32) -> std::io::Result<i32> {
    // SAFETY: duplicating a descriptor we own.
    last_error(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

pub fn close(fd: i32) {
    // SAFETY: closing a descriptor the restore opened and no longer uses.
    unsafe { libc::close(fd) };
}

/// Sets the status flags that `F_SETFL` can change (`O_NONBLOCK`, `O_APPEND`, …).
pub fn set_status(fd: i32, flags: u32) -> std::io::Result<i32> {
    // SAFETY: fcntl on a descriptor we own.
    last_error::<i32>(unsafe { libc::fcntl(fd, libc::F_SETFL, flags as i32) }).map(|_| fd)
}

pub fn write_all(fd: i32, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: `fd` is ours; `ManuallyDrop` keeps the `File` from closing it.
    let f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    std::io::Write::write_all(&mut &*f, data)
}

/// All of `data` at offset `off` of file `fd` (which keeps its own offset).
pub fn write_all_at(fd: i32, data: &[u8], off: u64) -> std::io::Result<()> {
    // SAFETY: `fd` is ours; `ManuallyDrop` keeps the `File` from closing it.
    let f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    std::os::unix::fs::FileExt::write_all_at(&*f, data, off)
}

pub fn isatty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Status flags that can be given to `open` again.
pub const REOPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DIRECT
    | libc::O_NOATIME
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECTORY
    | libc::O_LARGEFILE;

/// `O_NONBLOCK` if the record's status flags have it, else 0.
pub fn nonblock(flags: u32) -> i32 {
    if flags as i32 & libc::O_NONBLOCK != 0 { libc::O_NONBLOCK } else { 0 }
}

/// A pipe or socket end whose peer is gone: reads see end of file, writes `EPIPE`
/// (`socket`: a stream socket, as a connection reset by its peer looks).
pub fn broken_end(socket: bool, accmode: i32) -> std::io::Result<i32> {
    let mut p = [0i32; 2];
    // SAFETY: `p` is a valid out-array of two descriptors.
    last_error::<i32>(unsafe {
        if socket || accmode == libc::O_RDWR {
            libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, p.as_mut_ptr())
        } else {
            libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC)
        }
    })?;
    let [r, w] = p;
    let (keep, gone) = if accmode == libc::O_WRONLY && !socket { (w, r) } else { (r, w) };
    close(gone);
    Ok(keep)
}

/// Sets `SO_RCVTIMEO` and `SO_SNDTIMEO` of socket `fd` (microseconds; 0 leaves one as
/// it is, none).
pub fn set_timeouts(fd: i32, [rcv, snd]: [u64; 2]) {
    for (us, name) in [(rcv, libc::SO_RCVTIMEO), (snd, libc::SO_SNDTIMEO)] {
        if us == 0 {
            continue;
        }
        let tv = libc::timeval { tv_sec: (us / 1_000_000) as libc::time_t, tv_usec: (us % 1_000_000) as libc::suseconds_t };
        // SAFETY: setsockopt with a valid `struct timeval` on a socket of ours.
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, name, (&tv as *const libc::timeval).cast(), size_of::<libc::timeval>() as u32) };
    }
}
