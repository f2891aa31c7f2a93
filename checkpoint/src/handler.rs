//! The checkpoint signal's handler (`MIG_SIGNAL`, SIGUSR1 by default): decides what
//! the signal asks (a pre-copy's step, a request of `mig checkpoint`, a plain
//! checkpoint), stops the threads, collects the snapshot and has the image written
//! (`ordinary`, `precopy`); after a restore, the same handler resumes (`handoff`). The
//! rollback handler is `rollback`'s. Everything reachable from here is
//! async-signal-safe.
#![allow(unsafe_code)]

use super::collect;
use super::context::{Resumed, save_context};
use super::control;
use super::failure::Failure;
use super::imagefile::TempImage;
use super::job::{Job, since_us};
use super::ordinary::ordinary;
use super::precopy::{self, Signal, Stopped};
use super::report::complete;
use super::rollback;
use super::scratch::Scratch;
use super::threads;
use super::whole_job;
use super::writers::writer_reap;
use crate::handoff;
use crate::runtime;
use crate::sys::{self, msg::msg};
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use mig_image::Context;
use mig_proto::request;

/// When the checkpoint signal arrived: the start of the pause.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// When the last checkpoint's signal came (`CLOCK_MONOTONIC`): in a restored process,
/// the image's.
pub fn started_ns() -> u64 {
    STARTED.load(Relaxed)
}

/// The checkpoint signal's handler (entered on the library's own stack, see `stacks`).
pub extern "C" fn on_checkpoint(_sig: c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    entered(info, uc);
}

fn entered(info: *mut libc::siginfo_t, uc: *mut c_void) {
    // SAFETY: the kernel (or a frame written from outside, `tracer`) passes an
    // `SA_SIGINFO` handler its frame's siginfo.
    super::tracer::fix_frame(unsafe { info.as_ref() }, uc);
    super::tracer::note_frame(uc);
    let call = super::interrupted::restart(uc, false);
    control::MIG_CONTROL.busy.store(1, Relaxed);
    checkpoint(info);
    control::MIG_CONTROL.busy.store(0, Relaxed);
    if let Some(call) = call {
        call.settle();
    }
    // A rollback asked for meanwhile runs once this handler has returned.
    if rollback::DEFERRED.swap(0, Relaxed) == 1 {
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
    let (sender, code, uid, value, signo) =
        unsafe { info.as_ref().map_or((0, 0, 0, 0, 0), |i| (i.si_pid() as u32, i.si_code, i.si_uid(), i.si_value().sival_ptr as u64, i.si_signo as u32)) };
    let (job, stop) = match precopy::on_signal(sender) {
        Signal::Handled => return,
        Signal::Final(job) => (job, Stop::Final),
        Signal::Ordinary(job) => (job, Stop::Ordinary),
        Signal::Idle => {
            let (job, own_image) = match control::take(code, uid, value) {
                control::Asked::Withdrawn => return control::done_here(None),
                // The job's supervisor answers this signal (it may have come to every
                // process of the job): it saves the whole job.
                control::Asked::Plain if runtime::get().settings.supervised(signo) => return control::done_here(None),
                // A process with children is saved with them, by `mig checkpoint`.
                control::Asked::Plain if whole_job::has_children() && whole_job::delegate() => return control::done_here(None),
                control::Asked::Plain => (Job::plain(), true),
                control::Asked::Request(r) => (Job::requested(&r), r.to.is_none() && r.stream < 0),
            };
            if own_image && let Some(root) = runtime::get().settings.job_root() {
                // The job's image is the whole job's: `mig checkpoint` saves it.
                if job.conn < 0 && whole_job::delegate() {
                    return control::done_here(None);
                }
                return member_refuses(&job, root);
            }
            // Images are written one at a time, in order.
            writer_reap();
            precopy::wait_ended();
            // A process of a job is saved in the job's one stop, pre-copied first only
            // if the command asks (its copier then waits for the job).
            if !job.exit && !job.streamed() && (!job.held || job.pre) {
                match precopy::start(job, || TempImage::create(job.dest.as_bytes())) {
                    Ok(Some((_, tmp))) => {
                        rollback::writing(job.dest, tmp.id, (job.pid, job.created_ns));
                        // The copier has its own copies of the file and the connection.
                        sys::close(tmp.fd);
                        return control::done_here(Some(&job.request()));
                    }
                    Ok(None) => {}
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
    // No image: the asker hears why, a pre-copy session ends.
    let answer = |why: &str| {
        let mut m = msg();
        m.s(why);
        if job.conn >= 0 {
            control::report(job.conn, Err(&m), job.dest.as_bytes(), 0);
        }
        if stop == Stop::Final {
            precopy::release(None, 0);
        }
        control::done_here(Some(&job.request()));
    };
    let refused = |why: Option<&str>| {
        if let Some(why) = why {
            msg().s(why).emit();
        }
        answer(why.unwrap_or("the process's threads could not be stopped"));
    };
    // Without a free real-time signal, threads are stopped from outside.
    threads::choose_signal(rt.settings.thread_signal);
    let n = match threads::stop_all() {
        Ok(n) => n,
        Err(threads::StopError::TooMany) => return refused(Some("checkpoint refused: more threads than a checkpoint can hold")),
        Err(threads::StopError::Timeout { tid, signal }) => {
            msg()
                .s("checkpoint abandoned: thread ")
                .num(tid as u64)
                .s(" did not stop within 5 s (it blocks signal ")
                .num(signal as u64)
                .s(" and cannot be traced, or was not created by pthread_create); the process goes on unharmed")
                .emit();
            return refused(None);
        }
    };
    // A request for this process alone that finds a child now (one started since
    // `mig checkpoint` looked, which it then could not save): no image; the command
    // asks the job instead.
    if job.conn >= 0 && !job.held && whole_job::has_children() {
        threads::release();
        return answer(mig_proto::request::HAS_CHILDREN);
    }
    // Every thread stopped: the signals sent and not taken are those of the image.
    // The coordinator's are on this stack, so in the image (see `threads::stop_signal`).
    threads::take_pending(n);
    let held = super::pending::Held::take();
    let mut args = Args { n, job: Job { t0: STARTED.load(Relaxed), ..job }, stop };
    let mut ctx = Context::default();
    // SAFETY: `ctx` and `args` are live locals; `body` returns normally (panic = abort,
    // and it does not panic).
    let r: Resumed = unsafe { save_context(&mut ctx, body, (&mut args as *mut Args).cast()) };
    if r.restored != 0 {
        precopy::restored();
        crate::kinds::aio::restore();
        crate::fds::forget_in_flight();
        control::done_here(None);
        threads::resumed(0);
        threads::wait_resumed(n);
        held.put_back();
        crate::seccomp::restored();
        threads::release();
        // SAFETY: a restore blob jumped here with its hand-off; signals are blocked,
        // and every other thread has left the restore code.
        unsafe { handoff::resume(r.handoff as *const handoff::Handoff) };
        // With the restored process's settings (the hand-off's), unless the program
        // had taken that signal for itself (its action came back with the image).
        let sig = runtime::get().settings.checkpoint_signal;
        let mut old = mig_image::KSigaction::default();
        if sys::sigaction(sig as i32, None, Some(&mut old)).is_ok() && (old.handler == 0 || old.handler == runtime::get().checkpoint_entry) {
            install(sig);
        }
    } else {
        // Before any thread runs on: the program never sees them.
        crate::fds::close_in_flight();
        control::done_here(Some(&args.job.request()));
        held.put_back();
        threads::release();
    }
}

/// A member of another process's job asked to write the job's image: refused, so a
/// child's image never replaces its parent's (a process tree is not saved whole yet).
fn member_refuses(job: &Job, root: u32) {
    let mut m = msg();
    m.s("checkpoint refused: process ")
        .num(sys::getpid() as u64)
        .s(" belongs to the job of process ")
        .num(root as u64)
        .s(", whose image is ")
        .bytes(job.dest.as_bytes())
        .s("; mig saves one process, not its children, so only process ")
        .num(root as u64)
        .s(" writes that image (`mig checkpoint --to <another image>` saves this one alone)");
    if job.conn >= 0 {
        control::report(job.conn, Err(&m), job.dest.as_bytes(), 0);
    } else {
        m.emit();
    }
    control::done_here(Some(&job.request()));
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
    threads::record(0, crate::kinds::thread::save(&ctx));
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
    // A pre-copied process of a job says so itself (the copier waits for this stop).
    if stop == Stop::Final && job.held {
        precopy::take_conn(job);
        control::rejoin(job.conn);
    }
    // Every process of a job stops before any is saved: the bytes in a pipe between
    // two of them are then the same for both.
    if job.held && job.conn >= 0 && !control::hold(job.conn, b"stopped", request::GO) {
        if stop == Stop::Final {
            precopy::release(None, 0);
        }
        complete(job, Err(Failure::Other("the job's checkpoint was abandoned")), 0);
        return 0;
    }
    let go_us = since_us(job.t0);
    let mut snap = match collect::collect(scratch, &ctx, n, job.portable, job.exit, job.created_ns) {
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
                if job.held && sys::msg::debug_enabled() {
                    msg().s("checkpoint: held: go after ").num(go_us).s(" us, final stop written at ").num(since_us(job.t0)).s(" us").emit();
                }
                // None goes on before every one is taken; the copier syncs once the
                // job runs on (its pause then ends: it is reported).
                if job.held && job.conn >= 0 {
                    let _ = control::held(job.conn, b"taken", &mut [0u8; 16]);
                }
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
    let collected_us = since_us(job.t0);
    ordinary(&mut snap, scratch, job);
    if stop == Stop::Final {
        precopy::release(None, 0);
    }
    if job.held && sys::msg::debug_enabled() {
        msg().s("checkpoint: held: go after ").num(go_us).s(" us, collected at ").num(collected_us).s(" us, taken at ").num(since_us(job.t0)).s(" us").emit();
    }
    // ... and none goes on before every one is taken (whatever the command says then);
    // its writer starts then, not while the others still stop and fork.
    if job.held && job.conn >= 0 {
        let mut line = [0u8; 16];
        if control::held(job.conn, b"taken", &mut line) == Some(request::WRITE) {
            // The job stays stopped until it ends (the command ends it once it is safe):
            // its connections end without a word to their peers, held before the image
            // is written (so before the command can end the job), unless the command
            // lets it go on after all.
            crate::kinds::tcp::hold();
            super::ordinary::open_gate();
            let _ = control::next_line(job.conn, &mut line);
            crate::kinds::tcp::release();
        }
    }
    super::ordinary::open_gate();
    0
}

/// Installs the checkpoint handler on `sig` (raw `rt_sigaction`: usable after a restore).
pub fn install(sig: u32) {
    let act = mig_image::KSigaction {
        handler: runtime::get().checkpoint_entry,
        flags: (libc::SA_SIGINFO | libc::SA_RESTART | 0x0400_0000) as u64,
        restorer: runtime::get().restorer,
        mask: u64::MAX,
    };
    let _ = sys::sigaction(sig as i32, Some(&act), None);
}

/// Picks the request signal (`control::MIG_CONTROL`): a real-time signal that is ours
/// already, or still at its default action, and neither the stop nor the checkpoint
/// signal; installs the checkpoint handler on it.
pub fn choose_request_signal() {
    let rt = runtime::get();
    let published = &control::MIG_CONTROL.request_signal;
    let current = published.load(Relaxed);
    let stop = threads::STOP_SIGNAL.load(Relaxed);
    let candidates = Some(current).filter(|&s| s != 0).into_iter().chain((libc::SIGRTMIN() as u32 + 2..=libc::SIGRTMAX() as u32).rev());
    for sig in candidates.filter(|&s| s != stop && s != rt.settings.checkpoint_signal) {
        let mut old = mig_image::KSigaction::default();
        if sys::sigaction(sig as i32, None, Some(&mut old)).is_err() {
            continue;
        }
        if old.handler == rt.checkpoint_entry || old.handler == 0 {
            if old.handler == 0 {
                install(sig);
            }
            published.store(sig, Relaxed);
            return;
        }
    }
    published.store(0, Relaxed);
}
