//! Pre-copied checkpoints: a copier process that shares the program's memory writes
//! the image while the program runs, and writes again the pages the program changes
//! meanwhile (`dirty`), in rounds; the program is stopped only at the end, to save its
//! threads and descriptors and the pages changed since the last round. What it holds
//! then is the snapshot: every page is either written in that stop or unchanged since
//! it was last copied. Async-signal-safe.
//!
//! Where things live: the copier runs on a stack inside the session's scratch mapping,
//! which the image leaves out and the copier unmaps as it exits (`sys::spawn_vm_orphan`:
//! it is no child of the program, which never sees it; `LIVE` says when it is gone); its
//! descriptors (the image file, the userfaultfd) are in its own descriptor table. The
//! image's blobs of tracked memory sit where pages were first copied (`Place`), so one
//! region may be saved as several records, one per contiguous piece of the file.
//!
//! - this module: the session (shared by the program and the copier, `STATE` says who
//!   owns it) and what the program's handlers ask of it;
//! - `copier`: the copier process and its rounds;
//! - `pages`: where the copied pages go in the file, and their CRCs;
//! - `final_stop`: the program's last stop, which completes the image.
#![allow(unsafe_code)]

mod copier;
mod final_stop;
mod pages;

pub use final_stop::{Stopped, finish, release, scratch};

use crate::dirty::Run;
use crate::failure::Failure;
use crate::imagefile::TempImage;
use crate::job::Job;
use crate::runtime::{self, Precopy};
use crate::scratch::{List, Scratch};
use crate::sys::{self, msg::msg};
use crate::writer;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use mig_image::pagecrc::PageCrc;
use mig_image::*;
use pages::Place;

/// The session's state (shared by the program and the copier).
const IDLE: u32 = 0;
/// The copier copies; a checkpoint signal now only asks it to finish sooner.
const COPYING: u32 = 1;
/// The copier asked for the final stop and waits for it.
const FINAL: u32 = 2;
/// The final stop wrote its part (`Session::written`): the copier syncs and renames.
const WRITTEN: u32 = 3;
/// The copier gave up, or the final stop wrote the image the usual way: the copier
/// removes its file and ends.
const DROPPED: u32 = 4;
/// The program needs its memory untracked (`untrack`): the copier gives up its rounds.
const ABANDONED: u32 = 5;

static STATE: AtomicU32 = AtomicU32::new(IDLE);
/// A checkpoint signal came while copying: finish after this round.
static HURRY: AtomicU32 = AtomicU32::new(0);
/// The copier gave up before the final stop: the next signal checkpoints the usual way,
/// for the session's job.
static ORDINARY: AtomicU32 = AtomicU32::new(0);
/// The last copier: a signal from it that finds no final stop to make is stale.
static COPIER: AtomicU32 = AtomicU32::new(0);
/// The signal the copier asks for the final stop with: one whose action is mig's
/// checkpoint handler (the program may own the checkpoint signal); 0 if the program
/// took them all, and the copier writes the request into a thread (`ask_final`).
static ASK_WITH: AtomicU32 = AtomicU32::new(0);
/// Where that request's frame goes: not `mig checkpoint`'s area, whose request may be
/// the one that started the session, its handler not yet returned.
static ASK_FRAME: crate::control::FrameArea = crate::control::FrameArea::zeroed();
/// Not 0 while the copier lives: the kernel clears it (and wakes its futex) once the
/// copier has unmapped its stack and ended (`CLONE_CHILD_CLEARTID`).
static LIVE: AtomicU32 = AtomicU32::new(0);
/// The program whose memory the copier shares (in a fork of it, `LIVE` is a copy
/// nobody clears).
static OWNER: AtomicU32 = AtomicU32::new(0);
/// The program's pid while the copier tracks its memory (0: nothing is tracked); a
/// futex, woken when it clears.
static TRACKING: AtomicU32 = AtomicU32::new(0);
/// The program took its own copy of the session's connection (`take_conn`): the copier
/// no longer reports, and may end (a futex the copier waits on after giving up).
static HANDED: AtomicU32 = AtomicU32::new(0);
/// A copier of this process was killed: what its userfaultfd had write-protected may
/// not be as a new one would find it (a pre-copy after it has given a wrong image), so
/// this process is not pre-copied any more (its checkpoints are made the usual way, as
/// the warning says); a restored process starts afresh (`restored`).
static COPIER_DIED: AtomicU32 = AtomicU32::new(0);

/// Below this, forking is cheap and pre-copying not worth its rounds (automatic mode).
const AUTO_MIN: u64 = 64 << 20;
const MAX_ROUNDS: u32 = 6;
/// A round that copied no more than this ends the rounds.
const SETTLED: u64 = 4 << 20;
/// More than this to write in the final stop, and forking is cheaper.
const PAUSE_MAX: u64 = 64 << 20;
const SCRATCH: usize = 2 << 30;
const STACK: usize = 1 << 20;

struct Session {
    /// The job, with the copier's descriptors (its table is a copy of the program's).
    job: Job,
    /// The image file, created by the program before the copier started.
    tmp: TempImage,
    scratch: Scratch,
    /// Page slots start here (the tables are written before it at the end).
    data_off: u64,
    slots: u64,
    places: List<Place>,
    page_crc: List<u32>,
    runs: List<Run>,
    text: List<u8>,
    /// What was just written, read back for its CRC (`writer::CHUNK` bytes).
    readback: List<u8>,
    fold: PageCrc,
    /// The same for blocks (`BLOCK`), for `writer::write_rest`.
    block_fold: PageCrc,
    rounds: u32,
    copied: u64,
    /// Written since the disk was last asked to start on the file.
    unflushed: u64,
    /// Private memory resident when the session started.
    resident: u64,
    /// Set by the final stop: the image's length and how long the process stopped.
    written: u64,
    stopped_us: u64,
}

struct Slot(UnsafeCell<MaybeUninit<Session>>);
// SAFETY: `STATE` says who owns the session: the program's handler writes it before
// starting the copier and in the final stop (while the copier waits); the copier at
// every other time.
unsafe impl Sync for Slot {}
static SESSION: Slot = Slot(UnsafeCell::new(MaybeUninit::uninit()));

/// The session; only for whoever `STATE` says owns it.
fn session() -> &'static mut Session {
    // SAFETY: initialised by `start` before `STATE` leaves `IDLE`; the ownership rule
    // above means one side at a time holds this reference.
    unsafe { (*SESSION.0.get()).assume_init_mut() }
}

/// What a checkpoint signal should do, given the session.
pub enum Signal {
    /// Nothing more: the copier goes on.
    Handled,
    /// The final stop of the session.
    Final(Job),
    /// An ordinary checkpoint for this job (the copier gave up on it).
    Ordinary(Job),
    /// No session: an ordinary checkpoint, or a new session.
    Idle,
}

/// `sender`: who sent the signal (`si_pid`).
pub fn on_signal(sender: u32) -> Signal {
    if sender != 0 && sender == COPIER.load(SeqCst) && ASK_WITH.load(SeqCst) == 0 {
        // It asked: it need not trace this process any more.
        sys::set_ptracer(0);
    }
    if ORDINARY.swap(0, SeqCst) == 1 {
        let mut job = session().job;
        // The copier waits for the program to take the connection, then ends: its
        // scratch (and stack) must be gone before this checkpoint looks at the memory,
        // at most a few seconds.
        take_conn(&mut job);
        wait_gone(50);
        // The job is never written while a copier lives.
        return Signal::Ordinary(job);
    }
    if STATE.load(SeqCst) != IDLE && gone() {
        copier_died();
    }
    match STATE.load(SeqCst) {
        COPYING => {
            HURRY.store(1, SeqCst);
            Signal::Handled
        }
        // The copier reports a final stop that wrote the image; the program takes its
        // own copy of the connection only if it reports itself (`take_conn`).
        FINAL => Signal::Final(Job { conn: -1, ..session().job }),
        // The copier's request, after the final stop it asked for was made.
        _ if sender != 0 && sender == COPIER.load(SeqCst) => Signal::Handled,
        _ => Signal::Idle,
    }
}

/// The copier ended before its session did (it was killed): say so, and clean up what
/// it would have, so that this and later checkpoints work.
fn copier_died() {
    let s = session();
    let copier = COPIER.load(SeqCst);
    msg()
        .s("warning: the pre-copy's copier (pid ")
        .num(copier as u64)
        .s(") ended before its checkpoint was written (killed?); checkpoints go on the usual way")
        .emit();
    COPIER_DIED.store(1, SeqCst);
    s.tmp.discard();
    // Its stack and buffers; its userfaultfd (and what it tracked) went with it.
    // SAFETY: the copier that ran on it has ended, and this side holds no list of it.
    let _ = unsafe { sys::munmap(s.scratch.base, s.scratch.len) };
    forget();
    sys::futex_wake(&TRACKING);
}

/// Gives the program its own descriptor of the session's connection to `mig
/// checkpoint`, taken from the copier's table, when the program reports the outcome
/// itself (the final stop failed or forks a writer, or the copier gave up), or is held
/// with its job: -1 if it cannot be had (the copier is gone, or the program is not
/// dumpable). Once only: a descriptor the program has already is kept.
pub fn take_conn(job: &mut Job) {
    if job.conn >= 0 && HANDED.load(SeqCst) == 1 {
        return;
    }
    let theirs = session().job.conn;
    job.conn = -1;
    if theirs >= 0
        && let Ok(pidfd) = sys::pidfd_open(COPIER.load(SeqCst))
    {
        // Opened while the copier lived: the pidfd is the copier's.
        if !gone() {
            job.conn = sys::pidfd_getfd(pidfd, theirs).unwrap_or(-1);
        }
        sys::close(pidfd);
    }
    HANDED.store(1, SeqCst);
    sys::futex_wake(&HANDED);
}

/// After a restore: no session is going on here, and no copier of this process's was
/// ever killed.
pub fn restored() {
    forget();
    COPIER_DIED.store(0, SeqCst);
}

/// After a restore, or in a forked writer: no session is going on here.
pub fn forget() {
    STATE.store(IDLE, SeqCst);
    TRACKING.store(0, SeqCst);
    ORDINARY.store(0, SeqCst);
    COPIER.store(0, SeqCst);
    LIVE.store(0, SeqCst);
    OWNER.store(0, SeqCst);
}

/// Whether the copier has ended (or never ran beside this process: a fork of the
/// program made during a session, or none started).
fn gone() -> bool {
    LIVE.load(SeqCst) == 0 || OWNER.load(SeqCst) != sys::getpid()
}

/// Waits up to `tenths` tenths of a second for the copier to be gone; whether it is.
fn wait_gone(tenths: u32) -> bool {
    for _ in 0..tenths {
        let live = LIVE.load(SeqCst);
        if live == 0 || OWNER.load(SeqCst) != sys::getpid() {
            return true;
        }
        sys::futex_wait(&LIVE, live, 100);
    }
    gone()
}

/// Before a new checkpoint: the last copier has ended (it ends soon after its image is
/// written, or it is given up). With a session going on, see `on_signal`.
pub fn wait_ended() {
    if STATE.load(SeqCst) == IDLE {
        while !wait_gone(10) {}
    }
}

/// A copier still at work (a rollback ends it: its process image is going away).
pub fn cancel() {
    let copier = COPIER.load(SeqCst);
    if copier != 0 && STATE.load(SeqCst) != IDLE && !gone() {
        let _ = sys::kill(copier, libc::SIGKILL);
    }
}

/// Called by the program (its `mremap` failed with `EFAULT`):
/// a mapping registered with the copier's userfaultfd does not merge with a neighbour
/// that is not, so a range the program mapped as one can be two mappings while the
/// copier tracks it. The copier stops tracking (giving up its rounds if it still
/// copies: the checkpoint is then made the usual way) and this waits until it has.
/// Returns whether anything was tracked: the caller tries again.
pub fn untrack() -> bool {
    let pid = sys::getpid();
    if TRACKING.load(SeqCst) != pid {
        return false; // nothing tracked, or a child forked meanwhile: not its memory
    }
    if STATE.compare_exchange(COPYING, ABANDONED, SeqCst, SeqCst).is_ok() && sys::msg::debug_enabled() {
        msg().s("checkpoint: pre-copy abandoned: the program remaps memory the copier tracks").emit();
    }
    // Past its rounds, the copier untracks right after the final stop.
    while TRACKING.load(SeqCst) == pid {
        sys::futex_wait(&TRACKING, pid, 100);
        if gone() {
            TRACKING.store(0, SeqCst);
        }
    }
    true
}

/// Starts a session for `job`, if pre-copying is on and worth it, written into the
/// file `create` makes then, just before the copier starts (made earlier, a program
/// killed meanwhile would leave it behind, with no copier to remove it). Returns the
/// copier's pid and the file, whose descriptor and the job's connection the copier has
/// copies of; `None`: not pre-copied.
pub fn start(job: Job, create: impl FnOnce() -> Result<TempImage, Failure>) -> Result<Option<(u32, TempImage)>, Failure> {
    let rt = runtime::get();
    if rt.settings.precopy == Precopy::Off || job.streamed() || STATE.load(SeqCst) != IDLE || COPIER_DIED.load(SeqCst) != 0 {
        return Ok(None);
    }
    let Some(mut scratch) = Scratch::sized(SCRATCH) else { return Ok(None) };
    let (Some(mut text), Some(mut runs)) = (scratch.list(16 << 20), scratch.list(1 << 16)) else { return Ok(None) };
    let range = (scratch.base as u64, (scratch.base + scratch.len) as u64);
    let Ok(resident) = copier::resident(&mut text, &mut runs, range) else { return Ok(None) };
    // Memory a fork leaves out keeps a process stopped for its whole write: a copier
    // that shares the memory does better at any size.
    if rt.settings.precopy == Precopy::Auto && resident < AUTO_MIN && !crate::intent::ever_kept_from_fork() {
        return Ok(None);
    }
    let lists = (|| Some((scratch.list::<u8>(STACK)?, scratch.list(1 << 20)?, scratch.list(1 << 26)?, scratch.list(writer::CHUNK)?)))();
    let Some((stack, places, page_crc, readback)) = lists else { return Ok(None) };
    let tmp = create()?;
    let new = Session {
        job,
        tmp: TempImage { path: tmp.path.clone(), fd: tmp.fd, id: tmp.id },
        data_off: 0,
        slots: 0,
        places,
        page_crc,
        runs,
        text,
        resident,
        readback,
        fold: PageCrc::new(),
        block_fold: PageCrc::for_len(BLOCK),
        rounds: 0,
        copied: 0,
        unflushed: 0,
        written: 0,
        stopped_us: 0,
        scratch,
    };
    let top = (stack.as_slice().as_ptr() as usize + STACK) & !15;
    // SAFETY: `STATE` is `IDLE`, so no copier uses the session (the last one unmapped
    // its scratch: overwriting drops nothing).
    unsafe { (*SESSION.0.get()).write(new) };
    let (base, len) = (session().scratch.base, session().scratch.len);
    HURRY.store(0, SeqCst);
    HANDED.store(0, SeqCst);
    ASK_WITH.store(migs_signal(), SeqCst);
    STATE.store(COPYING, SeqCst);
    TRACKING.store(job.pid, SeqCst);
    OWNER.store(sys::getpid(), SeqCst);
    // No child of the program, unless the program would adopt it anyway: then a quiet
    // child, reaped by the next checkpoint.
    let child = sys::adopts_orphans();
    let r = if child {
        // SAFETY: the stack is the top of a list in the session's scratch, which nothing
        // else uses and the copier unmaps as it ends; `copier` works only on the session
        // and the program's memory through system calls (see `write_pages`).
        unsafe { sys::spawn_vm(top, copier::copier, 0, base, len, &LIVE) }
    } else {
        // SAFETY: as above; in the checkpoint handler, every catchable signal is blocked.
        unsafe { sys::spawn_vm_orphan(top, copier::copier, 0, base, len, &LIVE) }.map_or_else(|e| -(e.0 as isize), |pid| pid as isize)
    };
    if r < 0 {
        STATE.store(IDLE, SeqCst);
        TRACKING.store(0, SeqCst);
        // SAFETY: no copier started: the handler owns the session, dropped once here.
        unsafe { (*SESSION.0.get()).assume_init_drop() };
        tmp.discard();
        sys::close(tmp.fd);
        return Ok(None);
    }
    COPIER.store(r as u32, SeqCst);
    if ASK_WITH.load(SeqCst) == 0 {
        // Under Yama's ptrace_scope 1, only a declared tracer may attach.
        sys::set_ptracer(r as u32);
    }
    if child {
        crate::writers::add_writer(r as u32, true, None);
    }
    Ok(Some((r as u32, tmp)))
}

/// The request signal or the checkpoint signal, whichever still has mig's checkpoint
/// handler (0: neither).
fn migs_signal() -> u32 {
    let c = &crate::control::MIG_CONTROL;
    [c.request_signal.load(SeqCst), runtime::get().settings.checkpoint_signal]
        .into_iter()
        .find(|&sig| {
            let mut act = mig_image::KSigaction::default();
            sig != 0 && sys::sigaction(sig as i32, None, Some(&mut act)).is_ok() && act.handler == runtime::get().checkpoint_entry
        })
        .unwrap_or(0)
}

/// The copier: asks program `pid` for the final stop (or an ordinary checkpoint).
fn ask_final(pid: u32) -> bool {
    match ASK_WITH.load(SeqCst) {
        0 => {
            // A request written while the handler runs (the one that started this
            // session may not have returned yet) would be dropped.
            let busy = &crate::control::MIG_CONTROL.busy;
            let deadline = sys::clock_monotonic_ns() + 5_000_000_000;
            while busy.load(SeqCst) != 0 && sys::clock_monotonic_ns() < deadline {
                sys::sleep_ms(1);
            }
            crate::tracer::ask_checkpoint(pid, sys::getpid(), ASK_FRAME.top()) == crate::tracer::Outcome::Stopped
        }
        sig => sys::kill(pid, sig as i32).is_ok(),
    }
}

/// Whether a request that found no final stop made should be made again: a written
/// one is dropped if another checkpoint ran (a signal is noted and sent again).
fn ask_again() -> bool {
    ASK_WITH.load(SeqCst) == 0 && crate::control::MIG_CONTROL.busy.load(SeqCst) == 0
}

fn abandoned() -> Failure {
    Failure::Other("the program remapped memory the copier tracks")
}

/// Whether the program asked the copier to stop tracking (`untrack`).
fn given_up() -> Result<(), Failure> {
    if STATE.load(SeqCst) == ABANDONED { Err(abandoned()) } else { Ok(()) }
}
