//! Regular files, directories and devices, reopened by path at their offset. A
//! regular file that is gone or replaced, or one in `/dev/shm`, has its contents saved
//! instead (`memfd`).

use crate::sys::{self, CPath};
use mig_image::{FdKind, FdRecord};

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
        FdKind::File
    } else {
        FdKind::Unsupported
    }
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
    open_expecting(path, flags, Expect::FileOrDir).map(|fd| seek(fd, f.offset))
}

/// Puts `fd` at the saved offset; a failure (a device) is harmless.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn seek(fd: i32, offset: i64) -> i32 {
    // SAFETY: seeking a descriptor we own.
    unsafe { libc::lseek(fd, offset, libc::SEEK_SET) };
    fd
}
