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
        if regular && writable && st.st_size as u64 <= crate::runtime::get().settings.save_files {
            rec.params = FileParams { saved: true }.encode();
        }
        FdKind::File
    } else {
        FdKind::Unsupported
    }
}

/// The contents of regular file `fd` (read through a descriptor of its own: `fd` may
/// be write-only), appended to `queue`: their length, or why they are not saved.
pub fn queued(fd: i32, limit: u64, queue: &mut List<u8>) -> Result<u64, &'static str> {
    let mut num = Msg::<16>::new();
    num.num(fd as u64);
    let path =
        CPath::join(&[b"/proc/self/fd/", num.as_bytes()]).ok_or("its path is too long, so its contents are not saved: it is reopened as it is at restore")?;
    let own = sys::open(&path, libc::O_RDONLY, 0).map_err(|_| "it cannot be read, so its contents are not saved: it is reopened as it is at restore")?;
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
    sys::close(own);
    if r.is_err() {
        queue.truncate(start);
    }
    r
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
    if FileParams::decode(&f.params).saved {
        if cx.put_back.insert((f.file.dev, f.file.ino)) {
            saved::put_back(f, cx.img)?;
        }
    } else {
        saved::say_if_changed(f, path);
    }
    open_expecting(path, flags, Expect::FileOrDir).map(|fd| seek(fd, f.offset))
}

/// Files whose contents the image carries, and those it does not, as they are found at
/// restore.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod saved {
    use super::super::os::*;
    use mig_image::{FdRecord, Image};
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn show(path: &[u8]) -> String {
        String::from_utf8_lossy(path).into_owned()
    }

    /// The file of `f` as it was at the checkpoint: left alone if its size and time of
    /// change are those saved, written back if not, made again if it is gone; said
    /// either way but the first.
    pub fn put_back(f: &FdRecord, img: &Image) -> std::io::Result<()> {
        let path = img.str(f.file.path);
        let p = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path));
        let data = if f.data_len > 0 { img.data(f.data_off, f.data_len) } else { &[][..] };
        let (fd, said) = match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_file() => {
                if m.len() == f.file.size && m.mtime() * 1_000_000_000 + m.mtime_nsec() == f.file.mtime_ns {
                    return Ok(());
                }
                let said = format!(
                    "mig: {}: it changed since the checkpoint ({} bytes then, {} now); its contents are put back as they were",
                    show(path),
                    f.file.size,
                    m.len()
                );
                (open_raw(path, libc::O_WRONLY | libc::O_NOFOLLOW, 0)?, said)
            }
            Ok(_) => return Err(Error::other("it is no longer a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fd = open_raw(path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, f.file.mode & 0o7777)?;
                (fd, format!("mig: {}: it was gone; made again from the image ({} bytes)", show(path), f.file.size))
            }
            Err(e) => return Err(e),
        };
        let written = pwrite_all(fd, data).and_then(|()| {
            // SAFETY: ftruncate and futimens on the descriptor just opened; `times` is a
            // valid array of two timespecs.
            unsafe {
                last_error::<i32>(libc::ftruncate(fd, data.len() as i64))?;
                let mtime = libc::timespec { tv_sec: f.file.mtime_ns.div_euclid(1_000_000_000), tv_nsec: f.file.mtime_ns.rem_euclid(1_000_000_000) };
                let times = [libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }, mtime];
                libc::futimens(fd, times.as_ptr());
            }
            Ok(())
        });
        close(fd);
        written?;
        eprintln!("{said}");
        Ok(())
    }

    /// A file whose contents were not saved (open read-only, or too large for
    /// `MIG_SAVE_FILES`) that changed since: the program sees it as it is now, said.
    pub fn say_if_changed(f: &FdRecord, path: &[u8]) {
        let p = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path));
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

    fn pwrite_all(fd: i32, mut data: &[u8]) -> std::io::Result<()> {
        let mut off = 0i64;
        while !data.is_empty() {
            // SAFETY: writing from a valid slice to a descriptor we own.
            let n = unsafe { libc::pwrite(fd, data.as_ptr().cast(), data.len(), off) };
            if n < 0 {
                let e = Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            data = data.get(n as usize..).unwrap_or_default();
            off += n as i64;
        }
        Ok(())
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
