//! The signal handlers: SIGUSR1 writes an image, SIGUSR2 rolls back to one.
//! Everything reachable from here is async-signal-safe.
#![allow(unsafe_code)]

use super::collect::{self, Failure};
use super::control;
use super::precopy::{self, Signal, Stopped};
use super::threads;
use super::context::{save_context, Resumed};
use super::scratch::Scratch;
use super::writer;
use crate::restore::handoff;
use crate::runtime;
use crate::sys::{self, msg::msg, CPath};
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use runtime::FixedPath;
use mig_image::{Context, FdKind};

/// When the checkpoint signal arrived: the start of the pause.
static STARTED: AtomicU64 = AtomicU64::new(0);

pub extern "C" fn on_checkpoint(_sig: c_int, info: *mut libc::siginfo_t, _uc: *mut c_void) {
    // A lazy restore's memory is complete once its loader is done: wait for it.
    if !crate::restore::lazy::finish() {
        return msg().s("checkpoint refused: the lazily restored memory is still being loaded").emit();
    }
    STARTED.store(sys::clock_monotonic_ns(), Relaxed);
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` handler.
    let sender = unsafe { info.as_ref().map_or(0, |i| i.si_pid()) } as u32;
    let (job, stop) = match precopy::on_signal(sender) {
        Signal::Handled => return,
        Signal::Final(job) => (job, Stop::Final),
        Signal::Ordinary(job) => (job, Stop::Ordinary),
        Signal::Idle => {
            let job = Job::requested();
            // Images are written one at a time, in order.
            writer_reap();
            if !job.exit
                && let Some(pid) = precopy::start(job, job.streamed())
            {
                add_writer(pid);
                return;
            }
            (job, Stop::Ordinary)
        }
    };
    let rt = runtime::get();
    let refused = |why: Option<&str>| {
        if let Some(why) = why {
            msg().s(why).emit();
        }
        if stop == Stop::Final {
            precopy::release(None, 0);
        }
    };
    if !threads::choose_signal(rt.settings.thread_signal) {
        return refused(Some("checkpoint refused: no free real-time signal to stop threads with"));
    }
    let n = match threads::stop_all() {
        Ok(n) => n,
        Err(threads::StopError::TooMany) => return refused(Some("checkpoint refused: more threads than a checkpoint can hold")),
        Err(threads::StopError::Timeout { tid, signal }) => {
            msg()
                .s("checkpoint abandoned: thread ")
                .num(tid as u64)
                .s(" did not stop within 5 s (it blocks signal ")
                .num(signal as u64)
                .s(", or was not created by pthread_create); the process goes on unharmed")
                .emit();
            return refused(None);
        }
    };
    let mut args = Args { n, job: Job { t0: STARTED.load(Relaxed), ..job }, stop };
    let mut ctx = Context::default();
    // SAFETY: `ctx` and `args` are live locals; `body` returns normally (panic = abort,
    // and it does not panic).
    let r: Resumed = unsafe { save_context(&mut ctx, body, (&mut args as *mut Args).cast()) };
    if r.restored != 0 {
        precopy::forget();
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

/// What one checkpoint is asked to do.
#[derive(Clone, Copy)]
pub struct Job {
    pub dest: FixedPath,
    pub portable: bool,
    /// End the process once the image is safe (`mig checkpoint --exit`).
    pub exit: bool,
    /// `mig checkpoint` waits for a report.
    pub report: bool,
    /// The checkpointed process (not the forked writer).
    pub pid: u32,
    /// When the process stopped.
    pub t0: u64,
    /// Pre-copy rounds the image took (0: none).
    pub rounds: u32,
}

impl Job {
    /// The job `mig checkpoint` asked for, or the default one for a bare signal.
    fn requested() -> Job {
        let rt = runtime::get();
        let request = control::take_request();
        Job {
            dest: request.as_ref().and_then(|r| r.to).unwrap_or(rt.settings.image),
            portable: rt.settings.portable || request.as_ref().is_some_and(|r| r.portable),
            exit: request.as_ref().is_some_and(|r| r.exit),
            report: request.is_some(),
            pid: sys::getpid(),
            t0: 0,
            rounds: 0,
        }
    }

    /// The image goes to a pipe (`mig migrate`, `mig checkpoint --compress`).
    fn streamed(&self) -> bool {
        CPath::new(self.dest.as_bytes()).and_then(|p| sys::stat(&p).ok()).is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO)
    }
}

/// Which stop this is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The whole checkpoint happens now (the image written by a fork, or stopped).
    Ordinary,
    /// The end of a pre-copy: the copier waits for this stop.
    Final,
}

struct Args {
    /// Threads stopped.
    n: usize,
    job: Job,
    stop: Stop,
}

/// Runs below the saved stack pointer: its frames are not part of what is resumed.
extern "C" fn body(ctx: *mut Context, args: *mut c_void) -> u64 {
    // SAFETY: `save_context` passes the pointers it was given: a live `Context`, and
    // `on_checkpoint`'s `Args`.
    let (ctx, args) = unsafe { (*ctx, &*args.cast::<Args>()) };
    threads::record(0, collect::thread(&ctx));
    threads::prepare_image();
    let (n, job, stop) = (args.n, args.job, args.stop);
    let mut own_scratch = None;
    let scratch = match stop {
        Stop::Final => precopy::scratch(),
        Stop::Ordinary => match own_scratch.insert(Scratch::new()) {
            Some(s) => s,
            None => {
                complete(&job, Err(Failure::Other("no memory for the checkpoint")), 0);
                return 0;
            }
        },
    };
    let mut snap = match collect::collect(scratch, &ctx, n, job.portable) {
        Ok(snap) => snap,
        Err(f) => {
            complete(&job, Err(f), 0);
            if stop == Stop::Final {
                precopy::release(None, 0);
            }
            return 0;
        }
    };
    if stop == Stop::Final {
        match precopy::finish(&mut snap) {
            Ok(len) => {
                set_last_image(job.dest);
                precopy::release(Some(len), since_us(job.t0));
                return 0;
            }
            Err(Stopped::Failed(f)) => {
                complete(&job, Err(f), 0);
                precopy::release(None, 0);
                return 0;
            }
            Err(Stopped::Fork) => {
                if sys::msg::debug_enabled() {
                    msg().s("checkpoint: too much to write in the final stop of the pre-copy; forking instead").emit();
                }
            }
        }
    }
    ordinary(&mut snap, scratch, &job);
    if stop == Stop::Final {
        precopy::release(None, 0);
    }
    0
}

/// The whole image from this stop: by a forked writer, or with the process stopped.
fn ordinary(snap: &mut collect::Snapshot, scratch: &mut Scratch, job: &Job) {
    let streamed = job.streamed();
    let dest = job.dest;
    match fork_refusal(snap, job) {
        None => match sys::fork_quiet() {
            Ok(0) => {
                // The writer: a copy-on-write snapshot of the process, which runs on.
                // Its rseq area (inherited, in the memory it saves) must stay still.
                let _ = runtime::rseq_set(false);
                sys::close_from(3, &[2]);
                let stopped_us = since_us(job.t0);
                complete(job, memory_and_image(snap, scratch, job, streamed), stopped_us);
                sys::exit_group(0);
            }
            Ok(pid) => {
                add_writer(pid);
                if !streamed {
                    set_last_image(dest);
                }
                return;
            }
            Err(e) => msg().s("checkpoint: cannot fork a writer (errno ").num(e.0 as u64).s("); the process stays stopped while it is written").emit(),
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
    let result = memory_and_image(snap, scratch, job, streamed);
    if rseq_off {
        let _ = runtime::rseq_set(true);
    }
    let stopped_us = since_us(job.t0);
    if result.is_ok() && !streamed {
        set_last_image(dest);
    }
    complete(job, result, stopped_us);
}

fn since_us(t0: u64) -> u64 {
    sys::clock_monotonic_ns().saturating_sub(t0) / 1000
}

/// The memory part of the snapshot, then the image (in the writer, or stopped).
fn memory_and_image(snap: &mut collect::Snapshot, scratch: &mut Scratch, job: &Job, streamed: bool) -> Result<u64, Failure> {
    collect::memory(snap)?;
    write_image(snap, scratch, job, streamed)
}

/// The writers of the last checkpoint (a forked writer or a pre-copy's copier), reaped
/// at the next checkpoint (they send no SIGCHLD and no `wait` of the program sees them).
static WRITERS: [AtomicU32; 2] = [const { AtomicU32::new(0) }; 2];

/// After a restore: the writers recorded in the image are not this process's
/// children (`pid`: one that is, 0: none).
pub fn set_writer(pid: u32) {
    WRITERS[0].store(pid, Relaxed);
    WRITERS[1].store(0, Relaxed);
}

fn add_writer(pid: u32) {
    if WRITERS[0].compare_exchange(0, pid, Relaxed, Relaxed).is_err() {
        WRITERS[1].store(pid, Relaxed);
    }
}

/// The previous writers are waited for: images are written one at a time, in order,
/// and no writer is left unreaped.
fn writer_reap() {
    for w in &WRITERS {
        let pid = w.swap(0, Relaxed);
        if pid != 0 {
            sys::reap_quiet(pid);
        }
    }
}

/// Why the image cannot be written by a forked copy while the process runs on.
fn fork_refusal(snap: &mut collect::Snapshot, job: &Job) -> Option<&'static str> {
    if job.exit {
        return Some("it ends once the image is safe");
    }
    if !runtime::get().settings.fork {
        return Some("MIG_FORK=0");
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

fn set_last_image(dest: runtime::FixedPath) {
    // SAFETY: inside the handler, all signals blocked, the other threads parked.
    if let Some(s) = unsafe { runtime::settings_mut() } {
        s.last_image = dest;
    }
}

/// Reports the outcome: to `mig checkpoint` if it asked, on stderr if it failed (or
/// always with `MIG_LOG=debug`); ends the process if asked and the image is safe.
pub fn complete(job: &Job, result: Result<u64, Failure>, stopped_us: u64) {
    let mut why = msg();
    if let Err(f) = result {
        f.describe(&mut why);
    }
    if job.report {
        control::report(job.pid, result.map_err(|_| &why), job.dest.as_bytes(), stopped_us);
    }
    match result {
        Ok(len) => {
            if sys::msg::debug_enabled() {
                let mut m = msg();
                m.s("checkpoint written to ").bytes(job.dest.as_bytes()).s(" (").num(len).s(" bytes, process stopped for ");
                m.num(stopped_us / 1000).s(".").num(stopped_us / 100 % 10).s(" ms");
                if job.rounds > 0 {
                    m.s(", pre-copied in ").num(job.rounds as u64).s(" rounds");
                }
                m.s(")").emit();
            }
            if job.exit {
                sys::exit_group(0);
            }
        }
        Err(_) => msg().s("checkpoint to ").bytes(job.dest.as_bytes()).s(" failed: ").bytes(why.as_bytes()).emit(),
    }
}

/// Writes the image to `job.dest`; returns its length.
///
/// A file is written under a temporary name, synced, renamed into place and its
/// directory synced: a reader never sees half an image, and a crash leaves the old one.
fn write_image(snap: &collect::Snapshot, scratch: &mut Scratch, job: &Job, streamed: bool) -> Result<u64, Failure> {
    let hasher = &runtime::get().hasher;
    let blobs = scratch.list(snap.layout.blobs as usize).ok_or(Failure::Full)?;
    let mut crcs = writer::Crcs { blobs, blocks: scratch.list(snap.layout.blocks as usize).ok_or(Failure::Full)? };
    let mut copy_buf = scratch.list(1 << 20).ok_or(Failure::Full)?;
    let image = job.dest.as_bytes();
    let dst = CPath::new(image).ok_or(Failure::Other("image path too long"))?;

    if streamed {
        let fd = sys::open(&dst, libc::O_WRONLY, 0).map_err(|e| Failure::Sys("opening the image stream", e))?;
        let sigpipe = 1u64 << (libc::SIGPIPE - 1);
        let had_sigpipe = sys::sigpending() & sigpipe != 0;
        let written = writer::write(fd, snap, &mut crcs, &mut copy_buf, hasher);
        sys::close(fd);
        // A reader that went away is our failure, not a reason for the program to die.
        if !had_sigpipe && sys::sigpending() & sigpipe != 0 {
            sys::take_pending(libc::SIGPIPE);
        }
        return written;
    }

    let tmp = temp_path(image, sys::getpid()).ok_or(Failure::Other("image path too long"))?;
    let fd = sys::open(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o600)
        .map_err(|e| Failure::Sys("creating the image file", e))?;
    let written = writer::write(fd, snap, &mut crcs, &mut copy_buf, hasher);
    let result = commit(fd, written, &tmp, &dst, image);
    sys::close(fd);
    result
}

/// The name an image is written under before it is renamed into place.
pub fn temp_path(image: &[u8], pid: u32) -> Option<CPath> {
    let mut num = sys::msg::Msg::<16>::new();
    num.num(pid as u64);
    CPath::join(&[image, b".tmp.", num.as_bytes()])
}

/// Syncs an image `written` to `fd` under the name `tmp`, renames it to `dst` and
/// syncs its directory; on any failure the temporary file goes.
pub fn commit(fd: i32, written: Result<u64, Failure>, tmp: &CPath, dst: &CPath, image: &[u8]) -> Result<u64, Failure> {
    let result = written
        .and_then(|n| sys::fsync(fd).map(|()| n).map_err(|e| Failure::Sys("syncing the image", e)))
        .and_then(|n| sys::rename(tmp, dst).map(|()| n).map_err(|e| Failure::Sys("renaming the image into place", e)));
    match result {
        Ok(_) => sync_dir(image),
        Err(_) => {
            let _ = sys::unlink(tmp);
        }
    }
    result
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
