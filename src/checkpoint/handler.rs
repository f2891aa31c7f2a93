//! The signal handlers: SIGUSR1 writes an image, SIGUSR2 rolls back to one.
//! Everything reachable from here is async-signal-safe.
#![allow(unsafe_code)]

use super::collect::{self, Failure};
use super::control;
use super::threads;
use super::context::{save_context, Resumed};
use super::scratch::Scratch;
use super::writer;
use crate::restore::handoff;
use crate::runtime;
use crate::sys::{self, msg::msg, CPath};
use core::ffi::{c_int, c_void};
use mig_image::Context;

pub extern "C" fn on_checkpoint(_sig: c_int, _info: *mut libc::siginfo_t, _uc: *mut c_void) {
    let rt = runtime::get();
    if !threads::choose_signal(rt.settings.thread_signal) {
        msg().s("checkpoint refused: no free real-time signal to stop threads with").emit();
        return;
    }
    let mut n = match threads::stop_all() {
        Ok(n) => n,
        Err(threads::StopError::TooMany) => {
            msg().s("checkpoint refused: more threads than a checkpoint can hold").emit();
            return;
        }
        Err(threads::StopError::Timeout { tid, signal }) => {
            msg()
                .s("checkpoint abandoned: thread ")
                .num(tid as u64)
                .s(" did not stop within 5 s (it blocks signal ")
                .num(signal as u64)
                .s(", or was not created by pthread_create); the process goes on unharmed")
                .emit();
            return;
        }
    };
    let mut ctx = Context::default();
    // SAFETY: `ctx` and `n` are live locals; `body` returns normally (panic = abort,
    // and it does not panic).
    let r: Resumed = unsafe { save_context(&mut ctx, body, (&mut n as *mut usize).cast()) };
    if r.restored != 0 {
        threads::resumed(0);
        threads::wait_resumed(n);
        threads::release();
        // SAFETY: a restore blob jumped here with its hand-off; signals are blocked,
        // and every other thread has left the restore code.
        unsafe { handoff::resume(r.handoff as *const handoff::Handoff) };
    } else {
        threads::release();
    }
}

/// Runs below the saved stack pointer: its frames are not part of what is resumed.
extern "C" fn body(ctx: *mut Context, n: *mut c_void) -> u64 {
    // SAFETY: `save_context` passes the pointers it was given: a live `Context`, and
    // `on_checkpoint`'s thread count.
    let (ctx, n) = unsafe { (*ctx, *n.cast::<usize>()) };
    threads::record(0, collect::thread(&ctx));
    threads::prepare_image();
    let t0 = sys::clock_monotonic_ns();
    let rt = runtime::get();
    let request = control::take_request();
    let dest = request.as_ref().and_then(|r| r.to).unwrap_or(rt.settings.image);
    let portable = rt.settings.portable || request.as_ref().is_some_and(|r| r.portable);
    let result = checkpoint(&ctx, n, dest.as_bytes(), portable, &rt.hasher);
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
fn checkpoint(ctx: &Context, threads: usize, image: &[u8], portable: bool, hasher: &crc32fast::Hasher) -> Result<(u64, bool), Failure> {
    let mut scratch = Scratch::new().ok_or(Failure::Other("no memory for the checkpoint"))?;
    let snap = collect::collect(&mut scratch, ctx, threads, portable)?;
    let mut crcs = scratch.list(snap.layout.blobs as usize).ok_or(Failure::Full)?;
    let mut copy_buf = scratch.list(1 << 20).ok_or(Failure::Full)?;
    let dst = CPath::new(image).ok_or(Failure::Other("image path too long"))?;

    if sys::stat(&dst).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO) {
        let fd = sys::open(&dst, libc::O_WRONLY, 0).map_err(|e| Failure::Sys("opening the image stream", e))?;
        let sigpipe = 1u64 << (libc::SIGPIPE - 1);
        let had_sigpipe = sys::sigpending() & sigpipe != 0;
        let written = writer::write(fd, &snap, &mut crcs, &mut copy_buf, hasher);
        sys::close(fd);
        // A reader that went away is our failure, not a reason for the program to die.
        if !had_sigpipe && sys::sigpending() & sigpipe != 0 {
            sys::take_pending(libc::SIGPIPE);
        }
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
    if let Some(p) = CPath::new(dir)
        && let Ok(fd) = sys::open(&p, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
            let _ = sys::fsync(fd);
            sys::close(fd);
        }
}

/// glibc's signal return trampoline, for actions installed with raw `rt_sigaction`.
pub fn restorer() -> u64 {
    runtime::get().restorer
}

/// Installs the checkpoint handler on `sig` (raw `rt_sigaction`: usable after a restore).
pub fn install(sig: u32) {
    let act = mig_image::KSigaction {
        handler: on_checkpoint as *const () as u64,
        flags: (libc::SA_SIGINFO | libc::SA_RESTART | 0x0400_0000) as u64,
        restorer: restorer(),
        mask: u64::MAX,
    };
    let _ = sys::sigaction(sig as i32, Some(&act), None);
}
