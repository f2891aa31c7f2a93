//! The signal handlers: SIGUSR1 writes an image, SIGUSR2 rolls back to one.
//! Everything reachable from here is async-signal-safe.
#![allow(unsafe_code)]

use super::collect::{self, Failure};
use super::control;
use super::context::{save_context, Resumed};
use super::scratch::Scratch;
use super::writer;
use crate::restore::handoff;
use crate::runtime;
use crate::sys::{self, msg::msg, CPath};
use core::ffi::{c_int, c_void};
use mig_image::Context;

pub extern "C" fn on_checkpoint(_sig: c_int, _info: *mut libc::siginfo_t, _uc: *mut c_void) {
    if threads() > 1 {
        msg().s("checkpoint refused: the process has more than one thread (not supported yet)").emit();
        return;
    }
    let mut ctx = Context::default();
    // SAFETY: `ctx` is a live local; `body` returns normally (panic = abort, and it
    // does not panic).
    let r: Resumed = unsafe { save_context(&mut ctx, body, core::ptr::null_mut()) };
    if r.restored != 0 {
        // SAFETY: a restore blob jumped here with its hand-off; signals are blocked.
        unsafe { handoff::resume(r.handoff as *const handoff::Handoff) };
    }
}

/// Runs below the saved stack pointer: its frames are not part of what is resumed.
extern "C" fn body(ctx: *mut Context, _: *mut c_void) -> u64 {
    // SAFETY: `save_context` passes the pointer it was given, to a live `Context`.
    let ctx = unsafe { *ctx };
    let t0 = sys::clock_monotonic_ns();
    let rt = runtime::get();
    let request = control::take_request();
    let dest = request.as_ref().and_then(|r| r.to).unwrap_or(rt.settings.image);
    let result = checkpoint(&ctx, dest.as_bytes(), &rt.hasher);
    let stopped_us = (sys::clock_monotonic_ns() - t0) / 1000;
    let mut why = msg();
    if let Err(f) = result {
        match f {
            Failure::Full => why.s("the process is too large for the checkpoint's tables"),
            Failure::Other(what) => why.s(what),
            Failure::Sys(what, e) => why.s(what).s(" (errno ").num(e.0 as u64).s(")"),
        };
    }
    if let Some(req) = &request {
        control::report(result.map(|(n, _)| n).map_err(|_| &why), dest.as_bytes(), stopped_us);
        if req.exit && result.is_ok() {
            sys::exit_group(0);
        }
    }
    match result {
        Ok((len, streamed)) => {
            if !streamed {
                // SAFETY: inside the handler, all signals blocked, single thread.
                if let Some(s) = unsafe { runtime::settings_mut() } {
                    s.last_image = dest;
                }
            }
            if sys::msg::debug_enabled() {
                msg().s("checkpoint written to ").bytes(dest.as_bytes()).s(" (").num(len).s(" bytes, ").num(stopped_us / 1000).s(" ms)").emit();
            }
        }
        Err(_) => {
            let mut m = msg();
            m.s("checkpoint to ").bytes(dest.as_bytes()).s(" failed: ").bytes(why.as_bytes());
            m.emit();
        }
    }
    0
}

/// Writes the image; returns its length and whether it went to a stream (a FIFO).
///
/// A file is written under a temporary name, synced, renamed into place and its
/// directory synced: a reader never sees half an image, and a crash leaves the old one.
fn checkpoint(ctx: &Context, image: &[u8], hasher: &crc32fast::Hasher) -> Result<(u64, bool), Failure> {
    let mut scratch = Scratch::new().ok_or(Failure::Other("no memory for the checkpoint"))?;
    let snap = collect::collect(&mut scratch, ctx, &[])?;
    let mut crcs = scratch.list(snap.layout.blobs as usize).ok_or(Failure::Full)?;
    let mut copy_buf = scratch.list(1 << 20).ok_or(Failure::Full)?;
    let dst = CPath::new(image).ok_or(Failure::Other("image path too long"))?;

    if sys::stat(&dst).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO) {
        let fd = sys::open(&dst, libc::O_WRONLY, 0).map_err(|e| Failure::Sys("opening the image stream", e))?;
        let written = writer::write(fd, &snap, &mut crcs, &mut copy_buf, hasher);
        sys::close(fd);
        return written.map(|n| (n, true));
    }

    let mut pid = sys::msg::Msg::<16>::new();
    pid.num(sys::getpid() as u64);
    let tmp = CPath::join(&[image, b".tmp.", pid.as_bytes()]).ok_or(Failure::Other("image path too long"))?;
    let fd = sys::open(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o600)
        .map_err(|e| Failure::Sys("creating the image file", e))?;
    let written = writer::write(fd, &snap, &mut crcs, &mut copy_buf, hasher)
        .and_then(|n| sys::fsync(fd).map(|()| n).map_err(|e| Failure::Sys("syncing the image", e)));
    sys::close(fd);
    let result = written.and_then(|n| sys::rename(&tmp, &dst).map(|()| n).map_err(|e| Failure::Sys("renaming the image into place", e)));
    match result {
        Ok(_) => sync_dir(image),
        Err(_) => {
            let _ = sys::unlink(&tmp);
        }
    }
    result.map(|n| (n, false))
}

fn sync_dir(image: &[u8]) {
    let dir = match image.iter().rposition(|&c| c == b'/') {
        Some(0) => &b"/"[..],
        Some(i) => &image[..i],
        None => b".",
    };
    if let Some(p) = CPath::new(dir) {
        if let Ok(fd) = sys::open(&p, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
            let _ = sys::fsync(fd);
            sys::close(fd);
        }
    }
}

/// Number of threads in this process.
fn threads() -> usize {
    let Some(p) = CPath::new(b"/proc/self/task") else { return 0 };
    let Ok(fd) = sys::open(&p, libc::O_RDONLY | libc::O_DIRECTORY, 0) else { return 0 };
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while let Ok(len) = sys::getdents(fd, &mut buf) {
        if len == 0 {
            break;
        }
        let mut at = 0;
        while at + 19 < len {
            let reclen = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
            if buf[at + 19] != b'.' {
                n += 1;
            }
            at += reclen.max(1);
        }
    }
    sys::close(fd);
    n
}
