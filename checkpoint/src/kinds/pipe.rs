//! Pipes wholly in the process: made again with the capacity they had, holding the
//! bytes that sat in them (saved with the first read end). A pipe whose reader is
//! outside the process is not restorable (`FdKind::Unsupported`, decided by `fds::link`).

use crate::scratch::List;
use crate::sys::{self, Errno};
use mig_image::{FdRecord, Params, PipeParams};

/// An end of a pipe: its capacity.
pub fn save(fd: i32, rec: &mut FdRecord) {
    rec.params = PipeParams { capacity: sys::fcntl(fd, libc::F_GETPIPE_SZ, 0).unwrap_or(0) as u64 }.encode();
}

/// Appends the bytes sitting in pipe `fd` (a read end) to `out` without taking them:
/// `tee` into a private pipe of the same size, then read from that.
pub fn queued(fd: i32, out: &mut List<u8>) -> Result<u64, &'static str> {
    let size = sys::fcntl(fd, libc::F_GETPIPE_SZ, 0).map_err(|_| "cannot size the pipe")?;
    let [tmp_r, tmp_w] = sys::pipe2(libc::O_NONBLOCK).map_err(|_| "no pipe to copy it through")?;
    let result = (|| {
        if sys::fcntl(tmp_w, libc::F_SETPIPE_SZ, size).is_err() {
            return Err("cannot size a pipe to copy it through");
        }
        let n = match sys::tee(fd, tmp_w, size, libc::SPLICE_F_NONBLOCK) {
            Ok(n) => n,
            Err(Errno(libc::EAGAIN)) => 0,
            Err(_) => return Err("cannot copy its contents"),
        };
        let dest = out.spare().get_mut(..n).ok_or("too much data queued")?;
        let mut got = 0;
        while let Some(rest) = dest.get_mut(got..).filter(|r| !r.is_empty()) {
            match sys::read(tmp_r, rest) {
                Ok(0) | Err(_) => return Err("cannot copy its contents"),
                Ok(k) => got += k,
            }
        }
        out.grow(n);
        Ok(n as u64)
    })();
    sys::close(tmp_r);
    sys::close(tmp_w);
    result
}

/// An end of the recreated pipe, holding the bytes it held.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn restore(f: &FdRecord, cx: &mut super::Shared) -> std::io::Result<i32> {
    use super::os::*;
    use mig_image::FdKind;
    let ino = f.file.ino;
    let ends = match cx.pipes.get(&ino) {
        Some(&ends) => ends,
        None => {
            let mut p = [0i32; 2];
            // SAFETY: `p` is a valid out-array of two descriptors.
            last_error::<i32>(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
            let [r, w] = p;
            let capacity = PipeParams::decode(&f.params).capacity;
            if capacity > 0 {
                // SAFETY: resizing the pipe we just made; a failure keeps the default.
                unsafe { libc::fcntl(w, libc::F_SETPIPE_SZ, capacity as i32) };
            }
            let same = cx.all.iter().filter(|o| o.kind == FdKind::Pipe as u32 && o.file.ino == ino);
            for o in same.clone().filter(|o| o.data_len > 0) {
                write_all(w, cx.img.data(o.data_off, o.data_len))
                    .map_err(|e| Error::other(format!("the {} bytes it held do not fit a new pipe ({e})", o.data_len)))?;
            }
            set_status(r, 0)?;
            set_status(w, 0)?;
            // Nobody in the process writes to it: readers see the rest, then the end.
            let w = if same.clone().any(|o| o.flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32) {
                w
            } else {
                close(w);
                -1
            };
            cx.pipes.insert(ino, [r, w]);
            [r, w]
        }
    };
    let [r, w] = ends;
    let end = match f.flags as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => r,
        libc::O_WRONLY => w,
        _ => return open_raw(format!("/proc/self/fd/{r}").as_bytes(), f.flags as i32 & REOPEN_FLAGS, 0),
    };
    set_status(dup(end)?, f.flags)
}
