//! Pre-copied checkpoints: a copier process that shares the program's memory writes
//! the image while the program runs, and writes again the pages the program changes
//! meanwhile (`dirty`), in rounds; the program is stopped only at the end, to save its
//! threads and descriptors and the pages changed since the last round. What it holds
//! then is the snapshot: every page is either written in that stop or unchanged since
//! it was last copied. Async-signal-safe.
//!
//! Where things live: the copier runs on a stack inside the session's scratch mapping,
//! which the image leaves out and the copier unmaps as it exits (`sys::spawn_vm`); its
//! descriptors (the image file, the userfaultfd) are in its own descriptor table. The
//! image's blobs of tracked memory sit where pages were first copied (`Place`), so one
//! region may be saved as several records, one per contiguous piece of the file.
#![allow(unsafe_code)]

use super::collect::{self, Failure, Snapshot};
use super::dirty::{self, Ask, Run, Tracker};
use super::handler::{self, Job};
use super::imagefile::TempImage;
use super::maps::{self, MapLine};
use super::scratch::{List, Scratch};
use super::writer;
use crate::runtime::{self, Precopy};
use crate::sys::{self, CPath, Errno, msg::msg};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use mig_image::layout::align_up;
use mig_image::pagecrc::PageCrc;
use mig_image::*;

/// The session's state (shared by the program and the copier).
const IDLE: u32 = 0;
/// The copier copies; a checkpoint signal now only asks it to finish sooner.
const COPYING: u32 = 1;
/// The copier asked for the final stop and waits for it.
const FINAL: u32 = 2;
/// The final stop wrote its part (`Session::outcome`): the copier syncs and renames.
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
/// The program's pid while the copier tracks its memory (0: nothing is tracked); a
/// futex, woken when it clears.
static TRACKING: AtomicU32 = AtomicU32::new(0);
/// The program took its own copy of the session's connection (`take_conn`): the copier
/// no longer reports, and may end (a futex the copier waits on after giving up).
static HANDED: AtomicU32 = AtomicU32::new(0);

/// Below this, forking is cheap and pre-copying not worth its rounds (automatic mode).
const AUTO_MIN: u64 = 64 << 20;
const MAX_ROUNDS: u32 = 6;
/// A round that copied no more than this ends the rounds.
const SETTLED: u64 = 4 << 20;
/// More than this to write in the final stop, and forking is cheaper.
const PAUSE_MAX: u64 = 64 << 20;
const SCRATCH: usize = 2 << 30;
const STACK: usize = 1 << 20;

/// A run of pages of the program and where the image holds them (in pages from
/// `data_off`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Place {
    addr: u64,
    pages: u64,
    slot: u64,
}
// SAFETY: plain integers.
unsafe impl Pod for Place {}

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
    if ORDINARY.swap(0, SeqCst) == 1 {
        let mut job = session().job;
        // The copier waits for the program to take the connection, then ends: its
        // scratch (and stack) must be gone before this checkpoint looks at the memory,
        // at most a few seconds.
        take_conn(&mut job);
        let copier = COPIER.load(SeqCst);
        for _ in 0..5000 {
            if copier == 0 || sys::exited(copier) {
                break;
            }
            sys::sleep_ms(1);
        }
        // The job is never written while a copier lives.
        return Signal::Ordinary(job);
    }
    if STATE.load(SeqCst) != IDLE && sys::exited(COPIER.load(SeqCst)) {
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
    let status = sys::reap_quiet(copier);
    let mut m = msg();
    m.s("warning: the pre-copy's copier (pid ").num(copier as u64).s(") ended before its checkpoint was written");
    if let Some(sig) = status {
        m.s(" (killed by signal ").num(sig as u64).s(")");
    }
    m.s("; checkpoints go on the usual way").emit();
    s.tmp.discard();
    // Its stack and buffers; its userfaultfd (and what it tracked) went with it.
    // SAFETY: the copier that ran on it is reaped, and this side holds no list of it.
    let _ = unsafe { sys::munmap(s.scratch.base, s.scratch.len) };
    forget();
    sys::futex_wake(&TRACKING);
}

/// Gives the program its own descriptor of the session's connection to `mig
/// checkpoint`, taken from the copier's table, when the program reports the outcome
/// itself (the final stop failed or forks a writer, or the copier gave up): -1 if it
/// cannot be had (the copier is gone, or the program is not dumpable).
pub fn take_conn(job: &mut Job) {
    let theirs = job.conn;
    job.conn = -1;
    if theirs >= 0
        && let Ok(pidfd) = sys::pidfd_open(COPIER.load(SeqCst))
    {
        job.conn = sys::pidfd_getfd(pidfd, theirs).unwrap_or(-1);
        sys::close(pidfd);
    }
    HANDED.store(1, SeqCst);
    sys::futex_wake(&HANDED);
}

/// After a restore, or in a forked writer: no session is going on here.
pub fn forget() {
    STATE.store(IDLE, SeqCst);
    TRACKING.store(0, SeqCst);
    ORDINARY.store(0, SeqCst);
    COPIER.store(0, SeqCst);
}

/// A copier still at work (a rollback ends it: its process image is going away).
pub fn cancel() {
    let copier = COPIER.load(SeqCst);
    if copier != 0 && STATE.load(SeqCst) != IDLE {
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
    let copier = COPIER.load(SeqCst);
    while TRACKING.load(SeqCst) == pid {
        sys::futex_wait(&TRACKING, pid, 100);
        if sys::exited(copier) {
            TRACKING.store(0, SeqCst);
        }
    }
    true
}

/// Private memory the copier would track, in bytes.
fn resident(text: &mut List<u8>, runs: &mut List<Run>, scratch: (u64, u64)) -> Result<u64, Failure> {
    read_maps(text)?;
    let pagemap = open(b"/proc/self/pagemap", libc::O_RDONLY)?;
    let mut total = 0;
    let r = maps::lines(text.as_slice()).filter(|l| tracked(l, scratch)).try_for_each(|l| {
        dirty::scan(pagemap, l.start, l.end, Ask::Resident, runs.spare(), |a, b| {
            total += b - a;
            Ok(())
        })
    });
    sys::close(pagemap);
    r.map(|()| total)
}

/// Starts a session for `job`, written into `tmp`, if pre-copying is on and worth it.
/// Returns the copier's pid; the copier has its own copies of `tmp`'s descriptor and of
/// the job's connection.
pub fn start(job: Job, tmp: &TempImage) -> Option<u32> {
    let rt = runtime::get();
    if rt.settings.precopy == Precopy::Off || job.streamed() || STATE.load(SeqCst) != IDLE {
        return None;
    }
    let mut scratch = Scratch::sized(SCRATCH)?;
    let mut text = scratch.list(16 << 20)?;
    let mut runs = scratch.list(1 << 16)?;
    let range = (scratch.base as u64, (scratch.base + scratch.len) as u64);
    let resident = resident(&mut text, &mut runs, range).ok()?;
    if rt.settings.precopy == Precopy::Auto && resident < AUTO_MIN {
        return None;
    }
    let stack: List<u8> = scratch.list(STACK)?;
    let new = Session {
        job,
        tmp: TempImage { path: tmp.path.clone(), fd: tmp.fd, id: tmp.id },
        data_off: 0,
        slots: 0,
        places: scratch.list(1 << 20)?,
        page_crc: scratch.list(1 << 26)?,
        runs,
        text,
        resident,
        readback: scratch.list(writer::CHUNK)?,
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
    STATE.store(COPYING, SeqCst);
    TRACKING.store(job.pid, SeqCst);
    // SAFETY: the stack is the top of a list in the session's scratch, which nothing else
    // uses and the copier unmaps as it ends; `copier` works only on the session and the
    // program's memory through system calls (see `write_pages`).
    let r = unsafe { sys::spawn_vm(top, copier, 0, base, len) };
    if r < 0 {
        STATE.store(IDLE, SeqCst);
        TRACKING.store(0, SeqCst);
        // SAFETY: no copier started: the handler owns the session, dropped once here.
        unsafe { (*SESSION.0.get()).assume_init_drop() };
        return None;
    }
    COPIER.store(r as u32, SeqCst);
    Some(r as u32)
}

/// The copier: rounds, then the final stop, then sync and rename.
extern "C" fn copier(_: usize) {
    // Names the image file; the program stores it too, maybe after this starts.
    COPIER.store(sys::getpid(), SeqCst);
    // Named so (its own task's name; the image records the program's, in `collect`).
    sys::set_name(b"mig-copier\0");
    // Its copy of the program's descriptors would keep pipes and sockets open.
    let s = session();
    sys::close_from(3, &[2, s.tmp.fd, s.job.conn]);
    // Its priority is the program's, as a forked writer's is: at a lower one, a busy
    // program (or machine) starves it and the checkpoint never ends.
    let tracker = Tracker::open();
    // Without room to list them, the registrations still end with the userfaultfd.
    let mut tracked = s.scratch.list::<Run>(1 << 16).unwrap_or_else(List::empty);
    let fd = s.tmp.fd;
    let copied = match &tracker {
        Ok(t) => rounds(s, t, fd, &mut tracked),
        Err(e) => Err(Failure::Sys("userfaultfd", *e)),
    };
    // Given up meanwhile for the program's sake (`untrack`): the usual checkpoint.
    let copied = copied.and_then(|()| STATE.compare_exchange(COPYING, FINAL, SeqCst, SeqCst).map(drop).map_err(|_| abandoned()));
    let pid = s.job.pid;
    let program = sys::pidfd_open(pid);
    let wait_for_final = || {
        if sys::kill(pid, runtime::get().settings.checkpoint_signal as i32).is_err() {
            return false;
        }
        while STATE.load(SeqCst) == FINAL {
            sys::futex_wait(&STATE, FINAL, 200);
            // The program may end (or block the signal for good) meanwhile.
            if program.map_or_else(|_| sys::kill(pid, 0).is_err(), sys::readable) {
                return false;
            }
        }
        true
    };
    // Nothing is tracked once the final stop is over, or the rounds given up: mappings
    // merge again before the image is synced.
    let untrack = |tracker: Result<Tracker, Errno>| {
        if let Ok(t) = &tracker {
            for r in tracked.as_slice() {
                t.unregister(r.start, r.end);
            }
        }
        drop(tracker);
        TRACKING.store(0, SeqCst);
        sys::futex_wake(&TRACKING);
    };
    match copied {
        Ok(()) => {
            let stopped = wait_for_final();
            untrack(tracker);
            if stopped && STATE.load(SeqCst) == WRITTEN {
                finish_file(s);
            } else {
                s.tmp.discard();
                sys::close(fd);
            }
        }
        Err(why) => {
            if sys::msg::debug_enabled() {
                let mut m = msg();
                m.s("checkpoint: not pre-copied (");
                why.describe(&mut m);
                m.s("); the process stops for it as usual").emit();
            }
            s.tmp.discard();
            sys::close(fd);
            untrack(tracker);
            ORDINARY.store(1, SeqCst);
            if sys::kill(s.job.pid, runtime::get().settings.checkpoint_signal as i32).is_ok() {
                // The program takes the connection over; the copier waits for that (or
                // for the program to end) before it ends.
                while HANDED.load(SeqCst) == 0 && !program.is_ok_and(sys::readable) {
                    sys::futex_wait(&HANDED, 0, 200);
                }
            }
        }
    }
    if let Ok(p) = program {
        sys::close(p);
    }
    STATE.store(IDLE, SeqCst);
}

fn abandoned() -> Failure {
    Failure::Other("the program remapped memory the copier tracks")
}

/// Whether the program asked the copier to stop tracking (`untrack`).
fn given_up() -> Result<(), Failure> {
    if STATE.load(SeqCst) == ABANDONED { Err(abandoned()) } else { Ok(()) }
}

/// After the final stop wrote its part: sync, rename, report.
fn finish_file(s: &mut Session) {
    let tmp = TempImage { path: s.tmp.path.clone(), fd: s.tmp.fd, id: s.tmp.id };
    let result = tmp.commit(Ok(s.written), s.job.dest.as_bytes());
    let job = Job { rounds: s.rounds, ..s.job };
    handler::complete(&job, result, s.stopped_us);
}

/// Whether the copier tracks a mapping: private anonymous memory (the heap included),
/// readable, not the session's own.
fn tracked(l: &MapLine, scratch: (u64, u64)) -> bool {
    let anon = l.path.is_empty()
        || l.path == b"[heap]"
        || (l.pseudo() && !matches!(l.path, b"[stack]" | b"[vdso]" | b"[vvar]" | b"[vvar_vclock]" | b"[vsyscall]" | b"[uprobes]"));
    anon && !l.shared && l.prot & PROT_READ != 0 && (l.end <= scratch.0 || l.start >= scratch.1)
}

/// The rounds: track, copy what was written since the last look, until little is.
fn rounds(s: &mut Session, t: &Tracker, fd: i32, tracked_ranges: &mut List<Run>) -> Result<(), Failure> {
    let pagemap = open(b"/proc/self/pagemap", libc::O_RDONLY)?;
    let r = (|| {
        let scratch = (s.scratch.base as u64, (s.scratch.base + s.scratch.len) as u64);
        let mut ranges: List<Run> = s.scratch.list(1 << 16).ok_or(Failure::Full)?;
        // Room for the tables before the pages, in proportion (they are written last).
        s.data_off = align_up((1 << 20u64).max(s.resident / 256), PAGE);
        // About as large as the memory it copies (the tables and the rest are small).
        crate::control::writing(s.job.conn, s.tmp.path.as_bytes(), s.resident);
        crate::imagefile::sweep(s.job.dest.as_bytes(), s.readback.spare());
        loop {
            read_maps(&mut s.text)?;
            let before = s.copied;
            let t0 = sys::clock_monotonic_ns();
            ranges.truncate(0);
            for l in maps::lines(s.text.as_slice()).filter(|l| tracked(l, scratch)) {
                ranges.push(Run { start: l.start, end: l.end, categories: 0 })?;
            }
            for r in ranges.as_slice() {
                if !tracked_ranges.as_slice().iter().any(|t| (t.start, t.end) == (r.start, r.end)) {
                    let _ = tracked_ranges.push(*r);
                }
                given_up()?;
                copy_written(s, t, fd, pagemap, r.start, r.end)?;
            }
            s.rounds += 1;
            let round = s.copied - before;
            if sys::msg::debug_enabled() {
                let ms = (sys::clock_monotonic_ns() - t0) / 1_000_000;
                msg().s("checkpoint: pre-copy round ").num(s.rounds as u64).s(": ").num(round >> 10).s(" KiB in ").num(ms).s(" ms").emit();
            }
            if HURRY.load(SeqCst) == 1 || s.rounds >= MAX_ROUNDS || round <= SETTLED {
                return Ok(());
            }
        }
    })();
    sys::close(pagemap);
    r
}

fn open(path: &[u8], flags: i32) -> Result<i32, Failure> {
    let p = CPath::new(path).ok_or(Failure::Full)?;
    sys::open(&p, flags, 0).map_err(|e| Failure::Sys("opening /proc/self", e))
}

fn read_maps(text: &mut List<u8>) -> Result<(), Failure> {
    text.truncate(0);
    let p = CPath::new(b"/proc/self/maps").ok_or(Failure::Full)?;
    let n = sys::read_file(&p, text.spare()).map_err(|e| Failure::Sys("reading /proc/self/maps", e))?;
    text.grow(n);
    Ok(())
}

/// Copies the pages of `[a, b)` written since the last look (all of them if the
/// mapping was not tracked: pages moved in by `mremap` keep the marks of where they
/// were), and looks again from now on.
fn copy_written(s: &mut Session, t: &Tracker, fd: i32, pagemap: i32, a: u64, b: u64) -> Result<(), Failure> {
    let mut runs = core::mem::replace(&mut s.runs, List::empty());
    let mut pending = Ok(());
    let mut scan = |s: &mut Session, ask: Ask, copy: bool| {
        dirty::scan(pagemap, a, b, ask, runs.spare(), |start, end| {
            if copy && pending.is_ok() {
                pending = copy_run(s, fd, start, end, Mode::Running);
            }
            Ok(())
        })
    };
    let r = match scan(s, Ask::Written { rearm: true }, true) {
        Err(Failure::Sys(_, Errno(libc::EPERM))) => match t.register(a, b) {
            // Marks first, so that a write from now on is seen; then every page.
            Ok(()) => scan(s, Ask::Written { rearm: true }, false).and_then(|()| scan(s, Ask::Resident, true)),
            Err(_) => Ok(()),
        },
        r => r,
    };
    s.runs = runs;
    match r {
        // The mapping went away or changed since the maps were read: the next look sees.
        Err(Failure::Sys(_, Errno(libc::EPERM | libc::EINVAL | libc::ENOMEM))) => pending,
        other => other.and(pending),
    }
}

/// How `copy_run` copies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// While the program runs: a page unmapped meanwhile is skipped.
    Running,
    /// In the final stop: every page is written.
    Stopped,
    /// In the final stop, only pages never copied.
    New,
}

/// Writes the pages of `[a, b)` to their places, placing those never copied after
/// everything else.
fn copy_run(s: &mut Session, fd: i32, a: u64, b: u64, how: Mode) -> Result<(), Failure> {
    let mut i = s.places.as_slice().partition_point(|p| p.addr + p.pages * PAGE <= a);
    let mut at = a;
    while at < b {
        let (end, slot) = match s.places.as_slice().get(i) {
            Some(p) if p.addr <= at => {
                i += 1;
                let end = b.min(p.addr + p.pages * PAGE);
                if how == Mode::New {
                    at = end;
                    continue;
                }
                (end, p.slot + (at - p.addr) / PAGE)
            }
            next => {
                let end = next.map_or(b, |p| b.min(p.addr));
                let pages = (end - at) / PAGE;
                let slot = new_place(s, i, at, pages)?;
                if s.places.as_slice().get(i).is_some_and(|p| p.addr == at) {
                    i += 1;
                }
                (end, slot)
            }
        };
        write_pages(s, fd, at, (end - at) / PAGE, slot, how == Mode::Running)?;
        at = end;
    }
    Ok(())
}

/// Gives `pages` pages at `addr` new slots at the end; `i` is where they go in `places`.
fn new_place(s: &mut Session, i: usize, addr: u64, pages: u64) -> Result<u64, Failure> {
    let slot = s.slots;
    s.slots += pages;
    if s.page_crc.len() < s.slots as usize {
        let grow = s.slots as usize - s.page_crc.len();
        for _ in 0..grow {
            s.page_crc.push(0)?;
        }
    }
    let places = s.places.as_mut_slice();
    match i.checked_sub(1).and_then(|j| places.get_mut(j)) {
        Some(p) if p.addr + p.pages * PAGE == addr && p.slot + p.pages == slot => p.pages += pages,
        _ => s.places.insert(i, Place { addr, pages, slot })?,
    }
    Ok(slot)
}

/// Writes `pages` pages from `addr` to slot `slot` on, a piece at a time, and takes
/// each page's CRC from what the file then holds (so a page that changed meanwhile is
/// consistent with its CRC: it was written since, and is copied again later).
fn write_pages(s: &mut Session, fd: i32, addr: u64, pages: u64, slot: u64, running: bool) -> Result<(), Failure> {
    let (off, len) = (s.data_off + slot * PAGE, pages * PAGE);
    let mut done = 0;
    while done < len {
        if running {
            given_up()?;
        }
        let n = (len - done).min(writer::CHUNK as u64);
        write_piece(s, fd, addr + done, n, off + done, running)?;
        crc_piece(s, fd, n, off + done, slot + done / PAGE)?;
        done += n;
    }
    s.copied += len;
    Ok(())
}

/// Writes `len` bytes from `addr` at `off`. The kernel reads the program's memory: a
/// page unmapped meanwhile fails the write (`EFAULT`) instead of faulting here.
fn write_piece(s: &mut Session, fd: i32, addr: u64, len: u64, off: u64, running: bool) -> Result<(), Failure> {
    let mut done = 0;
    while done < len {
        // SAFETY: the program's memory, read by the kernel: a page unmapped meanwhile
        // gives EFAULT; one written meanwhile is caught by the dirty-page tracking.
        match unsafe { sys::pwrite_raw(fd, (addr + done) as *const u8, (len - done) as usize, off + done) } {
            Ok(0) => return Err(Failure::Sys("writing the image", Errno(libc::EIO))),
            Ok(k) => {
                done += k as u64;
                s.unflushed += k as u64;
                if s.unflushed >= writer::FLUSH {
                    // The whole file: the pieces are scattered over it.
                    sys::start_writeback(fd, 0, 0);
                    s.unflushed = 0;
                }
            }
            Err(Errno(libc::EINTR)) => {}
            Err(Errno(libc::EFAULT)) if running => {
                // This page was unmapped meanwhile (it is copied again if it comes back);
                // the pages after it may still be there, and their marks are re-armed
                // already: go on past it. The file holds zeros for it, CRC'd as such.
                done = (done / PAGE + 1) * PAGE;
                let size = sys::fstat(fd).map(|st| st.st_size as u64).unwrap_or(0);
                if size < off + len {
                    sys::ftruncate(fd, off + len).map_err(|e| Failure::Sys("extending the image", e))?;
                }
            }
            Err(e) => return Err(Failure::Sys("writing the image", e)),
        }
    }
    Ok(())
}

/// Reads back the `len` bytes just written at `off` (still in the cache) and records
/// the CRC of each page, from slot `slot` on.
fn crc_piece(s: &mut Session, fd: i32, len: u64, off: u64, slot: u64) -> Result<(), Failure> {
    let buf = s.readback.spare().get_mut(..len as usize).ok_or(Failure::Full)?;
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
        match sys::pread(fd, rest, off + done as u64) {
            Ok(0) => return Err(Failure::Sys("reading the image back", Errno(libc::EIO))),
            Ok(k) => done += k,
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(Failure::Sys("reading the image back", e)),
        }
    }
    let hasher = &runtime::get().hasher;
    let crcs = s.page_crc.as_mut_slice().get_mut(slot as usize..).ok_or(Failure::Full)?;
    for (page, crc) in buf.chunks(PAGE as usize).zip(crcs) {
        let mut h = hasher.clone();
        h.update(page);
        *crc = h.finalize();
    }
    Ok(())
}

/// Why the final stop did not write the image.
pub enum Stopped {
    Failed(Failure),
    /// Too much to write with the process stopped: forking is cheaper.
    Fork,
}
impl From<Failure> for Stopped {
    fn from(f: Failure) -> Self {
        Stopped::Failed(f)
    }
}
impl From<super::scratch::Full> for Stopped {
    fn from(_: super::scratch::Full) -> Self {
        Stopped::Failed(Failure::Full)
    }
}

/// The final stop, in the program's handler with every thread stopped: writes the
/// pages changed since the last round and everything untracked, then the tables; the
/// copier syncs and renames once `release`d. Returns the image's length.
pub fn finish(snap: &mut Snapshot) -> Result<u64, Stopped> {
    write_final(session(), snap)
}

/// The session's scratch, where the final stop collects its snapshot.
pub fn scratch() -> &'static mut Scratch {
    &mut session().scratch
}

/// Ends the final stop: the copier syncs, renames and reports the image (`Some`: its
/// length), or removes its file (`None`: the image was written another way, or not).
pub fn release(written: Option<u64>, stopped_us: u64) {
    let s = session();
    s.stopped_us = stopped_us;
    s.written = written.unwrap_or(0);
    STATE.store(if written.is_some() { WRITTEN } else { DROPPED }, SeqCst);
    sys::futex_wake(&STATE);
}

fn write_final(s: &mut Session, snap: &mut Snapshot) -> Result<u64, Stopped> {
    collect::memory_regions(snap)?;
    let pagemap = open(b"/proc/self/pagemap", libc::O_RDONLY)?;
    let r = (|| {
        let fd = s.tmp.reopen()?;
        let r = split_and_write(s, snap, pagemap, fd);
        sys::close(fd);
        r
    })();
    sys::close(pagemap);
    r
}

fn is_tracked(r: &RegionRecord) -> bool {
    matches!(RegionKind::from_u32(r.kind), Some(RegionKind::Anon | RegionKind::Heap))
        && r.prot & PROT_READ != 0
        && r.flags & REGION_DATA_IN_FD == 0
        && r.data_len > 0
}

/// Pass 1: what changed since the last round, and whether writing it now beats a fork.
/// Pass 2: every tracked region becomes one record per contiguous piece of the file,
/// its changed and new pages written; then the rest of the image.
fn split_and_write(s: &mut Session, snap: &mut Snapshot, pagemap: i32, fd: i32) -> Result<u64, Stopped> {
    let mut changed: List<Run> = s.scratch.list(1 << 20).ok_or(Failure::Full)?;
    // Per region: its runs in `changed` (start..end), `categories` 1 if it is tracked.
    let mut changes: List<Run> = s.scratch.list(snap.regions.len()).ok_or(Failure::Full)?;
    let mut pause_bytes = 0u64;
    for r in snap.regions.as_slice() {
        let from = changed.len() as u64;
        let scanned = is_tracked(r)
            && match dirty::scan(pagemap, r.start, r.end, Ask::Written { rearm: false }, s.runs.spare(), |a, b| {
                pause_bytes += b - a;
                changed.push(Run { start: a, end: b, categories: 0 }).map(|_| ()).map_err(Failure::from)
            }) {
                Ok(()) => true,
                Err(Failure::Full) => return Err(Failure::Full.into()),
                // Not tracked (any more): written whole.
                Err(_) => false,
            };
        if !scanned {
            changed.truncate(from as usize);
            pause_bytes += r.data_len;
        }
        changes.push(Run { start: from, end: changed.len() as u64, categories: scanned as u64 })?;
    }
    if sys::msg::debug_enabled() {
        msg().s("checkpoint: the final stop writes ").num(pause_bytes >> 10).s(" KiB").emit();
    }
    if pause_bytes > PAUSE_MAX {
        return Err(Stopped::Fork);
    }

    let mut regions: List<RegionRecord> = s.scratch.list(1 << 18).ok_or(Failure::Full)?;
    let mut extents: List<Extent> = s.scratch.list(1 << 22).ok_or(Failure::Full)?;
    let mut placed: List<u64> = s.scratch.list(1 << 18).ok_or(Failure::Full)?;
    // The block CRCs of the pieces already in the file, which `placed` points into.
    let mut placed_blocks: List<u32> = s.scratch.list(blocks_of(s.slots * PAGE) as usize + (1 << 18)).ok_or(Failure::Full)?;
    let old_extents = snap.extents.as_slice();
    for (i, r) in snap.regions.as_slice().iter().enumerate() {
        let first = r.first_extent as usize;
        let own = old_extents.get(first..first + r.extents as usize).unwrap_or(&[]);
        let c = *changes.as_slice().get(i).ok_or(Failure::Other("a region without its pre-copy changes"))?;
        if c.categories == 0 {
            let mut copy = *r;
            copy.first_extent = extents.len() as u32;
            extents.extend(own)?;
            regions.push(copy)?;
            placed.push(0)?;
            continue;
        }
        let runs = changed.as_slice().get(c.start as usize..c.end as usize).ok_or(Failure::Other("a region's pre-copy changes out of range"))?;
        split_region(s, fd, r, own, runs, &mut regions, &mut extents, &mut placed, &mut placed_blocks)?;
    }
    snap.regions = regions;
    snap.extents = extents;

    let mut layout = snap.table_layout().with_data_area(s.data_off, s.slots * PAGE).ok_or(Stopped::Fork)?;
    for (r, &p) in snap.regions.as_mut_slice().iter_mut().zip(placed.as_slice()) {
        if p & writer::PLACED != 0 {
            r.blob = layout.add_placed_blob(r.data_len);
        } else if r.data_len > 0 {
            (r.blob, r.data_off) = layout.add_blob(r.data_len);
        }
    }
    snap.layout = layout;
    collect::place_fd_blobs(snap)?;
    let hasher = &runtime::get().hasher;
    let blobs = s.scratch.list(snap.layout.blobs as usize).ok_or(Failure::Full)?;
    let mut crcs = writer::Crcs { blobs, blocks: s.scratch.list(snap.layout.blocks as usize).ok_or(Failure::Full)? };
    let mut copy_buf = s.scratch.list(1 << 20).ok_or(Failure::Full)?;
    Ok(writer::write_rest(fd, snap, placed.as_slice(), placed_blocks.as_slice(), &mut crcs, &mut copy_buf, hasher, &s.block_fold)?)
}

/// One tracked region: its saved pages go where they were copied (new ones at the end,
/// changed ones rewritten); a record per run of pages contiguous in the file.
#[allow(clippy::too_many_arguments)]
fn split_region(
    s: &mut Session,
    fd: i32,
    r: &RegionRecord,
    own: &[Extent],
    changed: &[Run],
    regions: &mut List<RegionRecord>,
    extents: &mut List<Extent>,
    placed: &mut List<u64>,
    placed_blocks: &mut List<u32>,
) -> Result<(), Failure> {
    // Pages changed since the last round, and pages never copied, are written now.
    for c in changed {
        copy_run(s, fd, c.start, c.end, Mode::Stopped)?;
    }
    for e in own {
        copy_run(s, fd, r.start + e.first_page * PAGE, r.start + (e.first_page + e.pages) * PAGE, Mode::New)?;
    }
    // Every saved page has a place now: cut the region where the file is not contiguous.
    let mut piece: Option<(RegionRecord, u64, u64)> = None; // record, first slot, next slot
    for e in own {
        let (a, b) = (r.start + e.first_page * PAGE, r.start + (e.first_page + e.pages) * PAGE);
        let mut i = s.places.as_slice().partition_point(|p| p.addr + p.pages * PAGE <= a);
        let mut at = a;
        while at < b {
            let p = *s.places.as_slice().get(i).ok_or(Failure::Other("a saved page has no place"))?;
            let end = b.min(p.addr + p.pages * PAGE);
            let (slot, pages) = (p.slot + (at - p.addr) / PAGE, (end - at) / PAGE);
            match &mut piece {
                Some((rec, _, next)) if *next == slot => {
                    let last = extents.as_mut_slice().last_mut().ok_or(Failure::Full)?;
                    if rec.start + (last.first_page + last.pages) * PAGE == at {
                        last.pages += pages;
                    } else {
                        extents.push(Extent { first_page: (at - rec.start) / PAGE, pages })?;
                        rec.extents += 1;
                    }
                    rec.data_len += pages * PAGE;
                    *next += pages;
                }
                _ => {
                    let start = match piece.take() {
                        Some((mut rec, first, _)) => {
                            rec.end = at;
                            close_piece(s, rec, first, regions, placed, placed_blocks)?;
                            at
                        }
                        None => r.start,
                    };
                    let rec = RegionRecord {
                        start,
                        file_off: r.file_off + (start - r.start),
                        first_extent: extents.len() as u32,
                        extents: 1,
                        data_off: s.data_off + slot * PAGE,
                        data_len: pages * PAGE,
                        blob: u32::MAX,
                        ..*r
                    };
                    extents.push(Extent { first_page: (at - start) / PAGE, pages })?;
                    piece = Some((rec, slot, slot + pages));
                }
            }
            at = end;
            i += 1;
        }
    }
    match piece {
        Some((mut rec, first, _)) => {
            rec.end = r.end;
            close_piece(s, rec, first, regions, placed, placed_blocks)
        }
        None => {
            // Nothing saved any more: the region without data.
            regions.push(RegionRecord { first_extent: extents.len() as u32, extents: 0, data_len: 0, data_off: 0, blob: u32::MAX, ..*r })?;
            placed.push(0).map(|_| ()).map_err(Failure::from)
        }
    }
}

/// Records a piece of a tracked region with the CRCs of its pages folded into its
/// blob's and its blocks' (`BLOCK` is a whole number of pages).
fn close_piece(
    s: &Session,
    rec: RegionRecord,
    first_slot: u64,
    regions: &mut List<RegionRecord>,
    placed: &mut List<u64>,
    placed_blocks: &mut List<u32>,
) -> Result<(), Failure> {
    let pages = (rec.data_len / PAGE) as usize;
    let crcs = s.page_crc.as_slice().get(first_slot as usize..first_slot as usize + pages).ok_or(Failure::Other("page CRCs out of bounds"))?;
    let crc = crcs.iter().fold(0, |acc, &c| s.fold.append(acc, c));
    let first = placed_blocks.len() as u64;
    for block in crcs.chunks((BLOCK / PAGE) as usize) {
        placed_blocks.push(block.iter().fold(0, |acc, &c| s.fold.append(acc, c)))?;
    }
    regions.push(rec)?;
    placed.push(writer::PLACED | first << 33 | crc as u64)?;
    Ok(())
}
