//! The signal handlers: SIGUSR1 writes an image, SIGUSR2 rolls back to one.
//! Everything reachable from here is async-signal-safe.
#![allow(unsafe_code)]

use super::collect::{self, Failure};
use super::context::{Resumed, save_context};
use super::control;
use super::imagefile::{self, TempImage};
use super::precopy::{self, Signal, Stopped};
use super::rollback;
use super::scratch::Scratch;
use super::threads;
use super::writer;
use crate::handoff;
use crate::runtime;
use crate::sys::{self, msg::msg};
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use mig_image::{Context, FdKind};
use runtime::FixedPath;

/// When the checkpoint signal arrived: the start of the pause.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// The checkpoint signal's handler (entered on the library's own stack, see `stacks`).
pub extern "C" fn on_checkpoint(_sig: c_int, info: *mut libc::siginfo_t, _uc: *mut c_void) {
    checkpoint(info);
    // A rollback asked for meanwhile runs once this handler has returned.
    if super::stacks::ROLLBACK_DEFERRED.swap(0, Relaxed) == 1 {
        let _ = sys::kill(sys::getpid(), libc::SIGUSR2);
    }
}

fn checkpoint(info: *mut libc::siginfo_t) {
    // A lazy restore's memory is complete once its loader is done: wait for it.
    if !crate::lazy::finish() {
        return msg().s("checkpoint refused: the lazily restored memory is still being loaded").emit();
    }
    STARTED.store(sys::clock_monotonic_ns(), Relaxed);
    sys::msg::clear_warnings();
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` handler; for a
    // queued signal (`sigqueue`) its value is the request's nonce.
    let (sender, code, uid, value) =
        unsafe { info.as_ref().map_or((0, 0, 0, 0), |i| (i.si_pid() as u32, i.si_code, i.si_uid(), i.si_value().sival_ptr as u64)) };
    let (job, stop) = match precopy::on_signal(sender) {
        Signal::Handled => return,
        Signal::Final(job) => (job, Stop::Final),
        Signal::Ordinary(job) => (job, Stop::Ordinary),
        Signal::Idle => {
            let job = match control::take(code, uid, value) {
                control::Asked::Withdrawn => return control::done_here(None),
                control::Asked::Plain => Job::plain(),
                control::Asked::Request(r) => Job::requested(&r),
            };
            // Images are written one at a time, in order.
            writer_reap();
            if !job.exit && !job.streamed() {
                match TempImage::create(job.dest.as_bytes()) {
                    Ok(tmp) => match precopy::start(job, &tmp) {
                        Some(pid) => {
                            add_writer(pid);
                            rollback::writing(job.dest, tmp.id, (job.pid, job.created_ns));
                            // The copier has its own copies of the file and the connection.
                            sys::close(tmp.fd);
                            return control::done_here(Some(&job.request()));
                        }
                        None => {
                            tmp.discard();
                            sys::close(tmp.fd);
                        }
                    },
                    Err(f) => {
                        complete(&job, Err(f), 0);
                        return control::done_here(Some(&job.request()));
                    }
                }
            }
            (job, Stop::Ordinary)
        }
    };
    let rt = runtime::get();
    let refused = |why: Option<&str>| {
        if let Some(why) = why {
            msg().s(why).emit();
        }
        let mut m = msg();
        m.s(why.unwrap_or("the process's threads could not be stopped"));
        if job.conn >= 0 {
            control::report(job.conn, Err(&m), job.dest.as_bytes(), 0);
        }
        if stop == Stop::Final {
            precopy::release(None, 0);
        }
        control::done_here(Some(&job.request()));
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
        control::done_here(None);
        threads::resumed(0);
        threads::wait_resumed(n);
        threads::release();
        // SAFETY: a restore blob jumped here with its hand-off; signals are blocked,
        // and every other thread has left the restore code.
        unsafe { handoff::resume(r.handoff as *const handoff::Handoff) };
    } else {
        control::done_here(Some(&args.job.request()));
        threads::release();
    }
}

/// What one checkpoint is asked to do.
#[derive(Clone, Copy)]
pub struct Job {
    /// Where the image goes (unless it is streamed).
    pub dest: FixedPath,
    pub portable: bool,
    /// End the process once the image is safe (`mig checkpoint --exit`).
    pub exit: bool,
    /// The connection to `mig checkpoint` the outcome is reported on (-1: nobody asked).
    /// It is a descriptor of whichever process reports: the program, its forked
    /// writer, or the pre-copy's copier.
    pub conn: i32,
    /// The descriptor the image is streamed to (-1: to `dest`).
    pub stream: i32,
    /// The checkpointed process (not the forked writer).
    pub pid: u32,
    /// The image's creation time (its header's): with `pid`, what tells this image
    /// from any other, also one copied over it in place (same inode).
    pub created_ns: u64,
    /// When the process stopped.
    pub t0: u64,
    /// Pre-copy rounds the image took (0: none).
    pub rounds: u32,
}

impl Job {
    /// The default job of a plain checkpoint signal.
    fn plain() -> Job {
        let rt = runtime::get();
        Job {
            dest: rt.settings.image,
            portable: rt.settings.portable,
            exit: false,
            conn: -1,
            stream: -1,
            pid: sys::getpid(),
            created_ns: sys::clock_realtime_ns(),
            t0: 0,
            rounds: 0,
        }
    }

    /// The job `mig checkpoint` asked for.
    fn requested(r: &control::Request) -> Job {
        let rt = runtime::get();
        Job {
            dest: r.to.unwrap_or(rt.settings.image),
            portable: rt.settings.portable || r.portable,
            exit: r.exit,
            conn: r.conn,
            stream: r.stream,
            ..Job::plain()
        }
    }

    /// The image goes to a descriptor (`mig migrate`, `mig checkpoint --to -`).
    pub fn streamed(&self) -> bool {
        self.stream >= 0
    }

    /// This job's descriptors, to close once they are handed on.
    fn request(&self) -> control::Request {
        control::Request { conn: self.conn, to: None, exit: self.exit, portable: self.portable, stream: self.stream }
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
    let (ctx, args) = unsafe { (*ctx, &mut *args.cast::<Args>()) };
    threads::record(0, collect::thread(&ctx));
    threads::prepare_image();
    let (n, stop) = (args.n, args.stop);
    let job = &mut args.job;
    let mut own_scratch = None;
    let scratch = match stop {
        Stop::Final => precopy::scratch(),
        Stop::Ordinary => match own_scratch.insert(Scratch::new()) {
            Some(s) => s,
            None => {
                complete(job, Err(Failure::Other("no memory for the checkpoint")), 0);
                return 0;
            }
        },
    };
    let mut snap = match collect::collect(scratch, &ctx, n, job.portable, job.created_ns) {
        Ok(snap) => snap,
        Err(f) => {
            if stop == Stop::Final {
                precopy::take_conn(job);
                precopy::release(None, 0);
            }
            complete(job, Err(f), 0);
            return 0;
        }
    };
    if stop == Stop::Final {
        snap.stopped_us = since_us(job.t0);
        match precopy::finish(&mut snap) {
            Ok(len) => {
                precopy::release(Some(len), since_us(job.t0));
                return 0;
            }
            Err(Stopped::Failed(f)) => {
                precopy::take_conn(job);
                precopy::release(None, 0);
                complete(job, Err(f), 0);
                return 0;
            }
            Err(Stopped::Fork) => {
                if sys::msg::debug_enabled() {
                    msg().s("checkpoint: too much to write in the final stop of the pre-copy; forking instead").emit();
                }
                precopy::take_conn(job);
            }
        }
    }
    ordinary(&mut snap, scratch, job);
    if stop == Stop::Final {
        precopy::release(None, 0);
    }
    0
}

/// The whole image from this stop: by a forked writer, or with the process stopped.
fn ordinary(snap: &mut collect::Snapshot, scratch: &mut Scratch, job: &Job) {
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
        None => match sys::fork_quiet() {
            Ok(0) => {
                // The writer: a copy-on-write snapshot of the process, which runs on.
                // Its rseq area (inherited, in the memory it saves) must stay still.
                let _ = runtime::rseq_set(false);
                sys::set_name(b"mig-writer\0");
                let keep = [2, job.conn, job.stream, tmp.as_ref().map_or(-1, |t| t.fd)];
                sys::close_from(3, &keep);
                let stopped_us = since_us(job.t0);
                snap.stopped_us = stopped_us;
                let result = memory_and_image(snap, scratch, job, tmp);
                complete(job, result, stopped_us);
                sys::exit_group(0);
            }
            Ok(pid) => {
                add_writer(pid);
                if let Some(t) = tmp {
                    rollback::writing(job.dest, t.id, (job.pid, job.created_ns));
                    sys::close(t.fd);
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
    let id = tmp.as_ref().map(|t| t.id);
    let result = memory_and_image(snap, scratch, job, tmp);
    if rseq_off {
        let _ = runtime::rseq_set(true);
    }
    let stopped_us = since_us(job.t0);
    if let (Ok(_), Some(id)) = (result, id) {
        rollback::wrote(job.dest, id, (job.pid, job.created_ns));
    }
    complete(job, result, stopped_us);
}

fn since_us(t0: u64) -> u64 {
    sys::clock_monotonic_ns().saturating_sub(t0) / 1000
}

/// The memory part of the snapshot, then the image (in the writer, or stopped): into
/// `tmp`, or the job's stream.
fn memory_and_image(snap: &mut collect::Snapshot, scratch: &mut Scratch, job: &Job, tmp: Option<TempImage>) -> Result<u64, Failure> {
    let written = collect::memory(snap).and_then(|()| write_image(snap, scratch, job, tmp.as_ref()));
    match tmp {
        Some(t) => t.commit(written, job.dest.as_bytes()),
        None => written,
    }
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
/// and no writer is left unreaped. One killed before it finished is said: its image
/// was not made (its temporary file goes with the next sweep).
fn writer_reap() {
    for w in &WRITERS {
        let pid = w.swap(0, Relaxed);
        if pid != 0
            && let Some(sig) = sys::reap_quiet(pid)
        {
            msg()
                .s("warning: the writer of the previous checkpoint (pid ")
                .num(pid as u64)
                .s(") was killed by signal ")
                .num(sig as u64)
                .s(" before it finished: that image was not made")
                .emit();
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

/// Reports the outcome: to `mig checkpoint` if it asked, on stderr if it failed (or
/// always with `MIG_LOG=debug`); ends the process if asked and the image is safe.
pub fn complete(job: &Job, result: Result<u64, Failure>, stopped_us: u64) {
    let mut why = msg();
    if let Err(f) = result {
        f.describe(&mut why);
    }
    control::report(job.conn, result.map_err(|_| &why), job.dest.as_bytes(), stopped_us);
    match result {
        Ok(len) => {
            if sys::msg::debug_enabled() {
                let mut m = msg();
                m.s("checkpoint written to ")
                    .bytes(if job.streamed() { b"a stream" } else { job.dest.as_bytes() })
                    .s(" (")
                    .num(len)
                    .s(" bytes, process stopped for ");
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
        Err(_) => msg().s("checkpoint to ").bytes(if job.streamed() { b"a stream" } else { job.dest.as_bytes() }).s(" failed: ").bytes(why.as_bytes()).emit(),
    }
}

/// Writes the image into `tmp` (then committed by the caller), or into the job's
/// stream; returns its length.
fn write_image(snap: &collect::Snapshot, scratch: &mut Scratch, job: &Job, tmp: Option<&TempImage>) -> Result<u64, Failure> {
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

/// glibc's signal return trampoline, for actions installed with raw `rt_sigaction`.
pub fn restorer() -> u64 {
    runtime::get().restorer
}

/// Installs the checkpoint handler on `sig` (raw `rt_sigaction`: usable after a restore).
pub fn install(sig: u32) {
    let act = mig_image::KSigaction {
        handler: super::stacks::checkpoint_entry as *const () as u64,
        flags: (libc::SA_SIGINFO | libc::SA_RESTART | 0x0400_0000) as u64,
        restorer: restorer(),
        mask: u64::MAX,
    };
    let _ = sys::sigaction(sig as i32, Some(&act), None);
}
