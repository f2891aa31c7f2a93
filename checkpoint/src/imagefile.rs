//! The image file: written under a temporary name beside it, synced, renamed into
//! place (async-signal-safe).
//!
//! The temporary name is `<image>.tmp.<16 random hex digits>`, created exclusively and
//! never through a link, so nothing planted there is written through or reused. The
//! writer holds an `flock` on it while it writes: a temporary file nobody holds a lock
//! on is left over from a writer that died, and the next checkpoint to that image
//! removes it (`sweep`).
#![allow(unsafe_code)]

use super::failure::Failure;
use crate::sys::{self, CPath, msg::Msg};

/// A temporary image file being written.
pub struct TempImage {
    pub path: CPath,
    pub fd: i32,
    /// (device, inode) of the file: the final stop of a pre-copy reopens it by name and
    /// checks it is still this one, and rollback only uses images it knows.
    pub id: (u64, u64),
}

/// The directory part of `image` (`.` for a bare name).
fn dir_of(image: &[u8]) -> &[u8] {
    match image.iter().rposition(|&c| c == b'/') {
        Some(0) => b"/",
        Some(i) => image.get(..i).unwrap_or(b"."),
        None => b".",
    }
}

/// The file-name part of `image`.
fn name_of(image: &[u8]) -> &[u8] {
    image.iter().rposition(|&c| c == b'/').and_then(|i| image.get(i + 1..)).unwrap_or(image)
}

fn id_of(st: &libc::stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

impl TempImage {
    /// Creates `<image>.tmp.<random>`, mode 0600, locked. Refuses first, before
    /// anything is written, an image that could not be renamed into place.
    pub fn create(image: &[u8]) -> Result<TempImage, Failure> {
        check_replaceable(image)?;
        for _ in 0..8 {
            let mut rnd = [0u8; 8];
            if !sys::random(&mut rnd) {
                // No entropy yet: the clock still makes a name nobody could plant in time,
                // and `O_EXCL` never reuses a planted one.
                rnd = (sys::clock_monotonic_ns() ^ (sys::gettid() as u64) << 40).to_le_bytes();
            }
            let mut suffix = Msg::<32>::new();
            suffix.s(".tmp.");
            let hex = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
            for b in rnd {
                suffix.bytes(&[hex(b >> 4), hex(b & 15)]);
            }
            let path = CPath::join(&[image, suffix.as_bytes()]).ok_or(Failure::Other("image path too long"))?;
            let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
            match sys::open(&path, flags, 0o600) {
                Ok(fd) => {
                    let _ = sys::flock(fd, libc::LOCK_EX | libc::LOCK_NB);
                    let id = sys::fstat(fd).map(|st| id_of(&st)).unwrap_or((0, 0));
                    return Ok(TempImage { path, fd, id });
                }
                Err(sys::Errno(libc::EEXIST)) => continue,
                Err(e) => return Err(Failure::Sys("creating the image file", e)),
            }
        }
        Err(Failure::Other("cannot find a free name for the image file"))
    }

    /// Opens this file again by name (in another process than the one that made it),
    /// never through a link, and only if it is still the same file.
    pub fn reopen(&self) -> Result<i32, Failure> {
        let fd = sys::open(&self.path, libc::O_RDWR | libc::O_NOFOLLOW, 0).map_err(|e| Failure::Sys("opening the image file", e))?;
        if sys::fstat(fd).map(|st| id_of(&st)) != Ok(self.id) {
            sys::close(fd);
            return Err(Failure::Other("the image file was replaced while it was written"));
        }
        Ok(fd)
    }

    /// Removes the file (a checkpoint that failed or was given up).
    pub fn discard(&self) {
        let _ = sys::unlink(&self.path);
    }

    /// Syncs what was `written` to the file, renames it to `image` and syncs the
    /// directory; on any failure the file goes. Closes the descriptor.
    pub fn commit(self, written: Result<u64, Failure>, image: &[u8]) -> Result<u64, Failure> {
        let dst = CPath::new(image).ok_or(Failure::Other("image path too long"));
        let result = written
            .and_then(|n| sys::fsync(self.fd).map(|()| n).map_err(|e| Failure::Sys("syncing the image", e)))
            .and_then(|n| dst.and_then(|d| sys::rename(&self.path, &d).map(|()| n).map_err(|e| Failure::Sys("renaming the image into place", e))));
        match result {
            Ok(_) => sync_dir(image),
            Err(_) => self.discard(),
        }
        sys::close(self.fd);
        result
    }
}

/// Refuses an image path the rename could not replace: a directory, or another user's
/// file in a sticky directory (`/tmp`) that is not ours either. Checked before a byte is
/// written, so that a checkpoint that cannot succeed leaves nothing behind.
fn check_replaceable(image: &[u8]) -> Result<(), Failure> {
    let dst = CPath::new(image).ok_or(Failure::Other("image path too long"))?;
    let Ok(st) = sys::lstatat(libc::AT_FDCWD, &dst) else { return Ok(()) };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(Failure::Other("the image path is a directory"));
    }
    let me = sys::geteuid();
    if me == 0 || st.st_uid == me {
        return Ok(());
    }
    let dir = CPath::new(dir_of(image)).ok_or(Failure::Other("image path too long"))?;
    let d = sys::stat(&dir).map_err(|e| Failure::Sys("looking at the image's directory", e))?;
    if d.st_mode & libc::S_ISVTX != 0 && d.st_uid != me {
        return Err(Failure::Other("the image path is another user's file in a sticky directory: it cannot be replaced"));
    }
    Ok(())
}

fn sync_dir(image: &[u8]) {
    if let Some(p) = CPath::new(dir_of(image))
        && let Ok(fd) = sys::open(&p, libc::O_RDONLY | libc::O_DIRECTORY, 0)
    {
        let _ = sys::fsync(fd);
        sys::close(fd);
    }
}

/// Removes the temporary files of `image` that writers which died left behind: ours,
/// regular, and locked by nobody. `buf` is a working buffer for the directory listing.
pub fn sweep(image: &[u8], buf: &mut [u8]) {
    let Some(dir_path) = CPath::new(dir_of(image)) else { return };
    let Ok(dir) = sys::open(&dir_path, libc::O_RDONLY | libc::O_DIRECTORY, 0) else { return };
    let mut prefix = Msg::<512>::new();
    prefix.bytes(name_of(image)).s(".tmp.");
    let me = sys::geteuid();
    while let Ok(len) = sys::getdents(dir, buf) {
        if len == 0 {
            break;
        }
        for name in sys::dirent_names(buf.get(..len).unwrap_or(&[])) {
            if prefix.overflowed() || !name.starts_with(prefix.as_bytes()) {
                continue;
            }
            let Some(p) = CPath::new(name) else { continue };
            let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
            let Ok(fd) = sys::openat(dir, &p, flags, 0) else { continue };
            let stale = sys::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_uid == me)
                && sys::flock(fd, libc::LOCK_EX | libc::LOCK_NB).is_ok();
            if stale {
                let _ = sys::unlinkat(dir, &p);
            }
            sys::close(fd);
        }
    }
    sys::close(dir);
}
