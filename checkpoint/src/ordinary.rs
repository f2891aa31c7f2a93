//! An ordinary checkpoint's image, from the stop: written by a forked writer while the
//! program runs on, or with the program stopped when a fork would not be a snapshot.
#![allow(unsafe_code)]

use super::collect::{self, Snapshot};
use super::control;
use super::failure::Failure;
use super::imagefile::{self, TempImage};
use super::job::{Job, since_us};
use super::report::complete;
use super::rollback;
use super::scratch::Scratch;
use super::writer;
use super::writers::add_writer;
use crate::runtime;
use crate::sys::{self, msg::msg};
use core::sync::atomic::{AtomicI32, Ordering::Relaxed};
use mig_image::{FdKind, REGION_DONTFORK, REGION_WIPEONFORK};

/// For a process of a job: the write end of the pipe its writer waits on until every
/// process of the job is taken (-1: none). The writers of the processes taken first
/// would otherwise take the CPUs the others need to stop and fork.
static GATE: AtomicI32 = AtomicI32::new(-1);

/// Lets the writer of this process's job checkpoint start.
pub fn open_gate() {
    let w = GATE.swap(-1, Relaxed);
    if w >= 0 {
        sys::close(w);
    }
}

/// The whole image from this stop: by a forked writer, or with the process stopped.
pub fn ordinary(snap: &mut Snapshot, scratch: &mut Scratch, job: &Job) {
    // The file is made before the fork, so that a rollback knows which one to expect.
    let tmp = if job.streamed() {
        None
    } else {
        match TempImage::create(job.dest.as_bytes()) {
            Ok(t) => Some(t),
            Err(f) => return complete(job, Err(f), 0),
        }
    };
    match fork_refusal(snap, job) {
        None => match (if job.held { sys::pipe2(libc::O_CLOEXEC).ok() } else { None }, fork_writer()) {
            (gate, Ok((0, _))) => {
                // The writer: a copy-on-write snapshot of the process, which runs on.
                // Its rseq area (inherited, in the memory it saves) must stay still.
                let _ = runtime::rseq_set(false);
                sys::set_name(b"mig-writer\0");
                let keep = [2, job.conn, job.stream, tmp.as_ref().map_or(-1, |t| t.fd), gate.map_or(-1, |[r, _]| r)];
                sys::close_from(3, &keep);
                if let Some([r, _]) = gate {
                    // Until the job is taken (its write end closed everywhere).
                    while matches!(sys::read(r, &mut [0u8]), Err(sys::Errno(libc::EINTR))) {}
                    sys::close(r);
                }
                let stopped_us = since_us(job.t0);
                snap.stopped_us = stopped_us;
                let result = memory_and_image(snap, scratch, job, tmp);
                complete(job, result, stopped_us);
                sys::exit_group(0);
            }
            (gate, Ok((pid, child))) => {
                if let Some([r, w]) = gate {
                    sys::close(r);
                    open_gate();
                    GATE.store(w, Relaxed);
                }
                add_writer(pid, child, tmp.as_ref());
                if let Some(t) = tmp {
                    rollback::saving(job.dest, t.id, (job.pid, job.created_ns), false);
                    sys::close(t.fd);
                }
                return;
            }
            (gate, Err(e)) => {
                for fd in gate.into_iter().flatten() {
                    sys::close(fd);
                }
                msg().s("checkpoint: cannot fork a writer (errno ").num(e.0 as u64).s("); the process stays stopped while it is written").emit()
            }
        },
        Some(why) => {
            if sys::msg::debug_enabled() {
                msg().s("checkpoint: the process stays stopped while it is written: ").s(why).emit();
            }
        }
    }
    // The kernel writes the CPU number into this thread's rseq area, which is in the
    // memory being saved: not while the image is written (its CRC would not match).
    let rseq_off = runtime::rseq_set(false).is_ok();
    let id = tmp.as_ref().map(|t| t.id);
    let result = memory_and_image(snap, scratch, job, tmp);
    if rseq_off {
        let _ = runtime::rseq_set(true);
    }
    let stopped_us = since_us(job.t0);
    if let (Ok(_), Some(id)) = (result, id) {
        rollback::saving(job.dest, id, (job.pid, job.created_ns), true);
    }
    complete(job, result, stopped_us);
}

/// Forks the writer: no child of the program, so that it never sees one (see
/// `writers`), unless the program would adopt it anyway; then a quiet child. Returns
/// (0, _) in the writer, else its pid and whether it is a child.
fn fork_writer() -> sys::SysResult<(u32, bool)> {
    if sys::adopts_orphans() {
        return sys::fork_quiet().map(|pid| (pid, true));
    }
    // SAFETY: in the checkpoint handler, every catchable signal is blocked.
    unsafe { sys::spawn_orphan() }.map(|pid| (pid, false))
}

/// The memory part of the snapshot, then the image (in the writer, or stopped): into
/// `tmp`, or the job's stream.
fn memory_and_image(snap: &mut Snapshot, scratch: &mut Scratch, job: &Job, tmp: Option<TempImage>) -> Result<u64, Failure> {
    let written = collect::memory(snap).and_then(|()| write_image(snap, scratch, job, tmp.as_ref()));
    match tmp {
        Some(t) => t.commit(written, job.dest.as_bytes()),
        None => written,
    }
}

/// Why the image cannot be written by a forked copy while the process runs on.
fn fork_refusal(snap: &mut Snapshot, job: &Job) -> Option<&'static str> {
    if job.exit {
        return Some("it ends once the image is safe");
    }
    if !runtime::get().settings.fork {
        return Some("MIG_FORK=0");
    }
    // A fork does not copy this memory, or gives it zeroed.
    if snap.advice.as_slice().iter().any(|a| a.bits as u32 & (REGION_DONTFORK | REGION_WIPEONFORK) != 0) {
        return Some("it has memory a fork does not copy (MADV_DONTFORK or MADV_WIPEONFORK)");
    }
    // Memory the process shares is not copied on write: a copy would not be a snapshot.
    if collect::shares_memory(snap).unwrap_or(true) {
        return Some("it has shared memory to save");
    }
    if snap.fds.as_slice().iter().any(|f| f.data_len > 0 && FdKind::from_u32(f.kind).is_some_and(FdKind::saves_file)) {
        return Some("it has memory files or deleted files to save");
    }
    None
}

/// Writes the image into `tmp` (then committed by the caller), or into the job's
/// stream; returns its length.
fn write_image(snap: &Snapshot, scratch: &mut Scratch, job: &Job, tmp: Option<&TempImage>) -> Result<u64, Failure> {
    let hasher = &runtime::get().hasher;
    let blobs = scratch.list(snap.layout.blobs as usize).ok_or(Failure::Full)?;
    let mut crcs = writer::Crcs { blobs, blocks: scratch.list(snap.layout.blocks as usize).ok_or(Failure::Full)? };
    let mut copy_buf = scratch.list(1 << 20).ok_or(Failure::Full)?;
    let Some(tmp) = tmp else {
        let sigpipe = 1u64 << (libc::SIGPIPE - 1);
        let had_sigpipe = sys::sigpending() & sigpipe != 0;
        let written = writer::write(job.stream, snap, &mut crcs, &mut copy_buf, hasher);
        // A reader that went away is our failure, not a reason for the program to die.
        if !had_sigpipe && sys::sigpending() & sigpipe != 0 {
            sys::take_pending(libc::SIGPIPE);
        }
        return written;
    };
    control::writing(job.conn, tmp.path.as_bytes(), snap.layout.total_len());
    // Off the pause where a writer runs beside the program: files of writers that died.
    imagefile::sweep(job.dest.as_bytes(), copy_buf.spare());
    let written = writer::write(tmp.fd, snap, &mut crcs, &mut copy_buf, hasher);
    // With the process stopped all along, the header (written first) learns the pause
    // once the rest is written.
    if snap.stopped_us == 0 && written.is_ok() {
        writer::set_stopped(tmp.fd, since_us(job.t0), hasher)?;
    }
    written
}
