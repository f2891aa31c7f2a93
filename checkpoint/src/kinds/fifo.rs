//! Named FIFOs: opened again by their path, each descriptor on an open file
//! description of its own as `open` made it; the bytes that sat in one are saved with
//! the first read end the process has (as for pipes, `pipe::queued`) and put back. A
//! FIFO removed from its directory is made again under a temporary name, opened, and
//! removed again. Reopening by name is what FIFOs are for: another process that opens
//! the same name meets the restored one, as it would have met the original.

use mig_image::{FdRecord, FifoParams, Params};

/// A FIFO's descriptor: its capacity, and whether its name is gone.
pub fn save(fd: i32, st: &libc::stat, rec: &mut FdRecord) {
    let capacity = crate::sys::fcntl(fd, libc::F_GETPIPE_SZ, 0).unwrap_or(0) as u64;
    rec.params = FifoParams { capacity, deleted: st.st_nlink == 0 }.encode();
}

#[cfg(feature = "restore")]
pub use restore::restore;

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::{Shared, os::*};
    use mig_image::{FdKind, FdRecord, FifoParams, Params};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// The descriptor of record `f`, opened anew on the FIFO (opened once per FIFO,
    /// both ends, so that no open waits; closed with the scaffolding).
    pub fn restore(f: &FdRecord, cx: &mut Shared) -> std::io::Result<i32> {
        let [r, w] = match cx.fifos.get(&f.file.ino) {
            Some(&ends) => ends,
            None => {
                let ends = open_fifo(f, cx)?;
                cx.fifos.insert(f.file.ino, ends);
                ends
            }
        };
        let via = if f.flags as i32 & libc::O_ACCMODE == libc::O_WRONLY { w } else { r };
        open_raw(format!("/proc/self/fd/{via}").as_bytes(), f.flags as i32 & REOPEN_FLAGS, 0)
    }

    fn open_fifo(f: &FdRecord, cx: &Shared) -> std::io::Result<[i32; 2]> {
        let p = FifoParams::decode(&f.params);
        let path = cx.img.str(f.file.path);
        let temporary = if p.deleted {
            let dir = Path::new(std::ffi::OsStr::from_bytes(path)).parent().filter(|d| d.is_dir()).unwrap_or(Path::new("/tmp"));
            let name = dir.join(format!(".mig-fifo.{}.{}", std::process::id(), f.file.ino));
            let c = CString::new(name.as_os_str().as_bytes()).map_err(|_| Error::from(std::io::ErrorKind::InvalidInput))?;
            // SAFETY: a valid NUL-terminated path.
            last_error::<i32>(unsafe { libc::mkfifo(c.as_ptr(), f.file.mode & 0o7777) })?;
            Some(c)
        } else {
            None
        };
        let node = temporary.as_ref().map_or(path, |c| c.as_bytes());
        // What the name holds must be a FIFO; the write end is opened on the very same
        // one (through the read end), whatever the name holds by then.
        let ends = open_expecting(node, libc::O_RDONLY | libc::O_NONBLOCK, Expect::Fifo).and_then(|r| {
            match open_raw(format!("/proc/self/fd/{r}").as_bytes(), libc::O_WRONLY | libc::O_NONBLOCK, 0) {
                Ok(w) => Ok([r, w]),
                Err(e) => {
                    close(r);
                    Err(e)
                }
            }
        });
        if let Some(c) = &temporary {
            // SAFETY: removing the name we just made.
            unsafe { libc::unlink(c.as_ptr()) };
        }
        let [r, w] = ends.map_err(|e| Error::other(format!("cannot open the FIFO {} again: {e}", String::from_utf8_lossy(path))))?;
        if p.capacity > 0 {
            // SAFETY: resizing the FIFO we opened; a failure keeps its size.
            unsafe { libc::fcntl(w, libc::F_SETPIPE_SZ, p.capacity as i32) };
        }
        for o in cx.all.iter().filter(|o| o.kind == FdKind::Fifo as u32 && o.file.ino == f.file.ino && o.data_len > 0) {
            write_all(w, cx.img.data(o.data_off, o.data_len))
                .map_err(|e| Error::other(format!("the {} bytes the FIFO {} held do not fit it again ({e})", o.data_len, String::from_utf8_lossy(path))))?;
        }
        Ok([r, w])
    }
}
