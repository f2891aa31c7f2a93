//! Regular files, directories and devices, reopened by path at their offset. A
//! regular file that is gone or replaced, or one in `/dev/shm`, has its contents saved
//! instead (`memfd`).

use crate::scratch::List;
use crate::sys::{self, CPath, msg::Msg};
use mig_image::{FdKind, FdRecord, FileParams, Params};

/// The kind of a descriptor of a regular file or a directory at `path`, where
/// `/proc/self/fd` said `target` (`deleted`: `path` with ` (deleted)` after it); sets
/// the size to save for the kinds whose contents are saved.
pub fn save(st: &libc::stat, target: &[u8], path: &[u8], deleted: bool, rec: &mut FdRecord) -> FdKind {
    let same = !deleted && CPath::new(target).and_then(|p| sys::stat(&p).ok()).is_some_and(|now| now.st_ino == st.st_ino && now.st_dev == st.st_dev);
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    if regular && (!same || path.starts_with(b"/dev/shm/")) {
        rec.data_len = st.st_size as u64;
        if same { FdKind::Shm } else { FdKind::Deleted }
    } else if same {
        // Open for writing and small enough: the contents too (`MIG_SAVE_FILES`), so
        // that a restore finds the file as it was, even if it changed or went since.
        let writable = rec.flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32;
        if regular && writable && !pseudo(path) && st.st_size as u64 <= crate::runtime::get().settings.save_files {
            rec.params = FileParams { saved: true }.encode();
        }
        FdKind::File
    } else {
        FdKind::Unsupported
    }
}

/// A file system whose files the kernel makes up (`/proc`, `/sys`, `/dev`): no contents
/// to save, and no time of change to compare.
pub fn pseudo(path: &[u8]) -> bool {
    [&b"/proc/"[..], b"/sys/", b"/dev/"].iter().any(|p| path.starts_with(p))
}

/// `path` under the process's own `/proc/<pid>` as `/proc/self/...` (in `buf`), so
/// that the restored process opens its own.
pub fn own_proc<'a>(path: &[u8], buf: &'a mut [u8; 4096]) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(b"/proc/")?;
    let mut pid = Msg::<16>::new();
    pid.num(sys::getpid() as u64);
    let rest = rest.strip_prefix(pid.as_bytes())?;
    if !(rest.is_empty() || rest.starts_with(b"/")) {
        return None;
    }
    let new = [&b"/proc/self"[..], rest];
    let len = new.iter().map(|p| p.len()).sum::<usize>();
    let mut at = 0;
    for p in new {
        buf.get_mut(at..at + p.len())?.copy_from_slice(p);
        at += p.len();
    }
    buf.get(..len)
}

/// An `O_PATH` descriptor: reopened by its path, whatever it names, while the path
/// still names the same inode (a symbolic link too: `O_PATH | O_NOFOLLOW` names it).
pub fn save_path(st: &libc::stat, target: &[u8], path: &[u8], deleted: bool) -> FdKind {
    let now = CPath::new(target).and_then(|p| sys::lstatat(libc::AT_FDCWD, &p).ok());
    let same = !deleted && now.is_some_and(|now| now.st_ino == st.st_ino && now.st_dev == st.st_dev);
    if same && path.first() == Some(&b'/') { FdKind::File } else { FdKind::Unsupported }
}

/// The contents of regular file `fd` (read through a descriptor of its own: `fd` may
/// be write-only), appended to `queue`: their length, or why they are not saved.
pub fn queued(fd: i32, flags: u32, limit: u64, queue: &mut List<u8>) -> Result<u64, &'static str> {
    const NOT_SAVED: &str = "it cannot be read, so its contents are not saved: it is reopened as it is at restore";
    // Closing a second descriptor of the file would drop the process's POSIX locks on
    // it: read through `fd` itself, unless it is write-only.
    let own = if flags & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32 {
        fd
    } else {
        if holds_posix_locks(fd) {
            return Err(
                "it is open write-only and locked (a second descriptor would drop the locks), so its contents are not saved: it is reopened as it is at restore",
            );
        }
        let mut num = Msg::<16>::new();
        num.num(fd as u64);
        let path = CPath::join(&[b"/proc/self/fd/", num.as_bytes()]).ok_or(NOT_SAVED)?;
        sys::open(&path, libc::O_RDONLY, 0).map_err(|_| NOT_SAVED)?
    };
    let start = queue.len();
    let mut off = 0u64;
    let r = loop {
        let spare = queue.spare();
        if spare.is_empty() {
            break Err("its contents do not fit in the checkpoint's memory, so they are not saved: it is reopened as it is at restore");
        }
        match sys::pread(own, spare, off) {
            Ok(0) => break Ok(off),
            Ok(n) => {
                queue.grow(n);
                off += n as u64;
                if off > limit {
                    break Err("it grew past the size MIG_SAVE_FILES allows, so its contents are not saved: it is reopened as it is at restore");
                }
            }
            Err(sys::Errno(libc::EINTR)) => {}
            Err(_) => break Err("it cannot be read, so its contents are not saved: it is reopened as it is at restore"),
        }
    };
    if own != fd {
        sys::close(own);
    }
    if r.is_err() {
        queue.truncate(start);
    }
    r
}

/// Whether this process holds a POSIX lock on `fd`'s file (`/proc/locks`, by pid).
fn holds_posix_locks(fd: i32) -> bool {
    let Ok(st) = sys::fstat(fd) else { return true };
    let mut id = Msg::<64>::new();
    let hex2 = |m: &mut Msg<64>, v: u32| {
        if v < 16 {
            m.s("0");
        }
        m.hex(v as u64);
    };
    hex2(&mut id, libc::major(st.st_dev));
    id.s(":");
    hex2(&mut id, libc::minor(st.st_dev));
    id.s(":").num(st.st_ino);
    let mut pid = Msg::<16>::new();
    pid.num(sys::getpid() as u64);
    let mut buf = [0u8; 16384];
    let Some(locks) = CPath::new(b"/proc/locks") else { return true };
    let Ok(n) = sys::read_file(&locks, &mut buf) else { return true };
    // A full buffer may have cut the list short: assume the worst.
    if n == buf.len() {
        return true;
    }
    buf.get(..n).unwrap_or_default().split(|&c| c == b'\n').any(|l| {
        let mut w = l.split(|&c| c == b' ').filter(|w| !w.is_empty());
        w.nth(1) == Some(b"POSIX") && w.nth(2) == Some(pid.as_bytes()) && w.next() == Some(id.as_bytes())
    })
}

#[cfg(feature = "restore")]
pub fn restore(f: &FdRecord, cx: &mut super::Shared) -> std::io::Result<i32> {
    use super::os::*;
    let path = cx.img.str(f.file.path);
    let flags = f.flags as i32 & REOPEN_FLAGS;
    if f.kind == FdKind::Device as u32 {
        return open_expecting(path, flags | libc::O_NOCTTY, Expect::Device).or_else(|e| {
            eprintln!("mig: warning: descriptor {}: {} cannot be reopened ({e}); it is /dev/null now", f.fd, String::from_utf8_lossy(path));
            open_raw(b"/dev/null", f.flags as i32 & libc::O_ACCMODE, 0)
        });
    }
    if f.flags & libc::O_PATH as u32 != 0 {
        return saved::open_path(f, path);
    }
    if FileParams::decode(&f.params).saved {
        let key = (f.file.dev, f.file.ino);
        let made = match cx.put_back.get(&key) {
            Some(&made) => made,
            None => {
                let made = saved::prepare(f, cx)?;
                cx.put_back.insert(key, made);
                made
            }
        };
        // A file made again is not at its path until the point of no return: reopened
        // through the new one.
        if let Some(new) = made {
            return open_raw(format!("/proc/self/fd/{new}").as_bytes(), flags, 0).map(|fd| seek(fd, f.offset));
        }
    } else if !pseudo(path) {
        saved::say_if_changed(f, path);
    }
    open_expecting(path, flags, Expect::FileOrDir).map(|fd| seek(fd, f.offset))
}

#[cfg(feature = "restore")]
pub use saved::{PutBack, commit};

/// Files whose contents the image carries, and those it does not, as they are found at
/// restore.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod saved {
    use super::super::os::*;
    use mig_image::FdRecord;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn show(path: &[u8]) -> String {
        String::from_utf8_lossy(path).into_owned()
    }

    /// A file to write back as it was at the checkpoint, once the restore can no longer
    /// be refused (nothing outside the process changes before).
    pub struct PutBack {
        /// Open for writing: the file, or a new one not yet at its path.
        pub fd: i32,
        /// Where a new file goes (it was gone).
        pub link_to: Option<Vec<u8>>,
        pub data: Vec<u8>,
        pub mtime_ns: i64,
        /// What is said once it is done.
        pub said: String,
    }

    /// What the file of `f` needs: nothing if its size and time of change are those
    /// saved; else its contents written back at `commit`, into a new file if it is
    /// gone. Returns the new file's descriptor (`None`: the file at its path is used).
    pub fn prepare(f: &FdRecord, cx: &mut super::super::Shared) -> std::io::Result<Option<i32>> {
        let path = cx.img.str(f.file.path);
        let p = Path::new(std::ffi::OsStr::from_bytes(path));
        let data = if f.data_len > 0 { cx.img.data(f.data_off, f.data_len).to_vec() } else { Vec::new() };
        let (fd, link_to, said) = match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_file() => {
                if m.len() == f.file.size && m.mtime() * 1_000_000_000 + m.mtime_nsec() == f.file.mtime_ns {
                    return Ok(None);
                }
                let said = format!(
                    "mig: {}: it changed since the checkpoint ({} bytes then, {} now); its contents are put back as they were",
                    show(path),
                    f.file.size,
                    m.len()
                );
                (open_raw(path, libc::O_WRONLY | libc::O_NOFOLLOW, 0)?, None, said)
            }
            Ok(_) => return Err(Error::other("it is no longer a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = p.parent().unwrap_or(Path::new("/"));
                let fd = open_raw(dir.as_os_str().as_bytes(), libc::O_TMPFILE | libc::O_RDWR, f.file.mode & 0o7777)
                    .map_err(|e| Error::other(format!("it is gone, and cannot be made again in {}: {e}", dir.display())))?;
                (fd, Some(path.to_vec()), format!("mig: {}: it was gone; made again from the image ({} bytes)", show(path), f.file.size))
            }
            Err(e) => return Err(e),
        };
        let fd = raise_fd(fd, cx.base).map_err(Error::other)?;
        let new = link_to.is_some().then_some(fd);
        cx.pending.push(PutBack { fd, link_to, data, mtime_ns: f.file.mtime_ns, said });
        Ok(new)
    }

    /// Writes back every file `prepare` set aside, and says so. Their descriptors are
    /// left to the blob, which closes every descriptor the restore made for itself.
    pub fn commit(pending: &[PutBack]) {
        for b in pending {
            let done = write_all_at(b.fd, &b.data, 0).and_then(|()| {
                // SAFETY: ftruncate and futimens on a descriptor we own; `times` is a valid
                // array of two timespecs.
                unsafe {
                    last_error::<i32>(libc::ftruncate(b.fd, b.data.len() as i64))?;
                    let mtime = libc::timespec { tv_sec: b.mtime_ns.div_euclid(1_000_000_000), tv_nsec: b.mtime_ns.rem_euclid(1_000_000_000) };
                    let times = [libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }, mtime];
                    libc::futimens(b.fd, times.as_ptr());
                }
                if let Some(to) = &b.link_to {
                    let from = CString::new(format!("/proc/self/fd/{}", b.fd)).unwrap_or_default();
                    let to = CString::new(to.clone()).map_err(|_| Error::from(std::io::ErrorKind::InvalidInput))?;
                    // SAFETY: two valid NUL-terminated paths.
                    last_error::<i32>(unsafe { libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW) })?;
                }
                Ok(())
            });
            match done {
                Ok(()) => eprintln!("{}", b.said),
                Err(e) => eprintln!("mig: warning: {} (but it failed: {e}; the program has the file as it was, its path does not)", b.said),
            }
        }
    }

    /// An `O_PATH` descriptor of what `path` names, if it is still the kind of file it
    /// was (a symbolic link is not followed).
    pub fn open_path(f: &FdRecord, path: &[u8]) -> std::io::Result<i32> {
        let ty = f.file.mode & libc::S_IFMT;
        let nofollow = if ty == libc::S_IFLNK { libc::O_NOFOLLOW } else { 0 };
        let fd = open_raw(path, libc::O_PATH | nofollow, 0)?;
        // SAFETY: fstat of the descriptor just opened into a zeroed stat.
        let now = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) == 0 { st.st_mode & libc::S_IFMT } else { 0 }
        };
        if now != ty {
            close(fd);
            return Err(Error::other("it names another kind of file now"));
        }
        Ok(fd)
    }

    /// A file whose contents were not saved (open read-only, or too large for
    /// `MIG_SAVE_FILES`) that changed since: the program sees it as it is now, said.
    pub fn say_if_changed(f: &FdRecord, path: &[u8]) {
        let p = Path::new(std::ffi::OsStr::from_bytes(path));
        let Ok(m) = std::fs::metadata(p) else { return };
        let changed = m.is_file() && (m.len() != f.file.size || m.mtime() * 1_000_000_000 + m.mtime_nsec() != f.file.mtime_ns);
        if changed {
            eprintln!(
                "mig: warning: descriptor {} ({}): the file changed since the checkpoint ({} bytes then, {} now) and its contents were not saved (MIG_SAVE_FILES); the program sees it as it is now",
                f.fd,
                show(path),
                f.file.size,
                m.len()
            );
        }
    }
}

/// Puts `fd` at the saved offset; a failure (a device) is harmless.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn seek(fd: i32, offset: i64) -> i32 {
    // SAFETY: seeking a descriptor we own.
    unsafe { libc::lseek(fd, offset, libc::SEEK_SET) };
    fd
}
