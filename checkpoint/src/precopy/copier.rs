//! The copier: a process sharing the program's memory that copies it into the image in
//! rounds, each copying what the program wrote since the last (`dirty`), until little
//! is; then it asks for the final stop and, once that wrote its part, syncs, renames
//! and reports the image.

use super::pages::{Mode, copy_run};
use super::{COPIER, COPYING, FINAL, HANDED, HURRY, IDLE, MAX_ROUNDS, ORDINARY, SETTLED, STATE, Session, TRACKING, WRITTEN, abandoned, given_up, session};
use crate::control;
use crate::dirty::{self, Ask, Run, Tracker};
use crate::failure::Failure;
use crate::imagefile::TempImage;
use crate::job::Job;
use crate::maps::{self, MapLine};
use crate::report::complete;
use crate::scratch::List;
use crate::sys::{self, CPath, Errno, msg::msg};
use core::sync::atomic::Ordering::SeqCst;
use mig_image::layout::align_up;
use mig_image::*;
use mig_proto::request;

/// Private memory the copier would track, in bytes.
pub(super) fn resident(text: &mut List<u8>, runs: &mut List<Run>, scratch: (u64, u64)) -> Result<u64, Failure> {
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

/// The copier: rounds, then the final stop, then sync and rename.
pub(super) extern "C" fn copier(_: usize) {
    // Names the image file; the program stores it too, maybe after this starts.
    COPIER.store(sys::getpid(), SeqCst);
    // Named so (its own task's name; the image records the program's, in `collect`).
    sys::set_name(b"mig-copier\0");
    // The program takes the connection from it (`take_conn`), and is not its parent.
    sys::set_ptracer(session().job.pid);
    // Its copy of the program's descriptors would keep pipes and sockets open.
    let s = session();
    sys::close_from(3, &[2, s.tmp.fd, s.job.conn]);
    // Its priority is the program's, as a forked writer's is: at a lower one, a busy
    // program (or machine) starves it and the checkpoint never ends.
    let tracker = Tracker::open();
    // Without room to list them, the registrations still end with the userfaultfd.
    let mut tracked = s.scratch.list::<Run>(1 << 16).unwrap_or_else(List::empty);
    let fd = s.tmp.fd;
    // A process of a job copies on until every pre-copying process of it has, and the
    // command says stop (or gives the checkpoint up: then nothing more happens here).
    let (held, conn) = (s.job.held, s.job.conn);
    let mut waits = Hold::Copying;
    let mut enough = |s: &Session, round: u64| -> bool {
        let settled = HURRY.load(SeqCst) == 1 || s.rounds >= MAX_ROUNDS || round <= SETTLED;
        match waits {
            _ if !held => settled,
            Hold::Copying if !settled => false,
            Hold::Copying => {
                waits = if control::say_held(conn, b"copied") { Hold::Waiting } else { Hold::Abandoned };
                waits == Hold::Abandoned || word(conn, &mut waits, 0)
            }
            _ => word(conn, &mut waits, if round <= SETTLED { 50 } else { 0 }),
        }
    };
    let copied = match &tracker {
        Ok(t) => rounds(s, t, fd, &mut tracked, &mut enough),
        Err(e) => Err(Failure::Sys("userfaultfd", *e)),
    };
    let copied = match (copied, waits) {
        (Ok(()), Hold::Abandoned) => Err(Failure::Other(ABANDONED_BY_JOB)),
        (r, _) => r,
    };
    // Given up meanwhile for the program's sake (`untrack`): the usual checkpoint.
    let copied = copied.and_then(|()| STATE.compare_exchange(COPYING, FINAL, SeqCst, SeqCst).map(drop).map_err(|_| abandoned()));
    let pid = s.job.pid;
    let program = sys::pidfd_open(pid);
    // The program may end meanwhile, or exec another (which must not get the signal:
    // it is no longer the memory copied).
    let gone = || program.map_or_else(|_| sys::kill(pid, 0).is_err(), sys::readable) || !sys::shares_memory_with(pid);
    let wait_for_final = || {
        if gone() || !super::ask_final(pid) {
            return false;
        }
        let mut waited = 0;
        while STATE.load(SeqCst) == FINAL {
            sys::futex_wait(&STATE, FINAL, 200);
            // (or block the signal for good)
            if gone() {
                return false;
            }
            waited += 1;
            if waited % 3 == 0 && super::ask_again() && STATE.load(SeqCst) == FINAL && !super::ask_final(pid) {
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
        Err(Failure::Other(ABANDONED_BY_JOB)) => {
            s.tmp.discard();
            sys::close(fd);
            untrack(tracker);
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
            if super::ask_final(s.job.pid) {
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

const ABANDONED_BY_JOB: &str = "the job's checkpoint was abandoned";

/// Where the copier of a held process is with the command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Its rounds go on until little is copied.
    Copying,
    /// It said `copied`; it copies on until the command's word.
    Waiting,
    /// The command said stop.
    Stop,
    /// The command gave the checkpoint up, or went away.
    Abandoned,
}

/// Waits up to `ms` for the command's word; whether the rounds end (it came).
fn word(conn: i32, waits: &mut Hold, ms: u64) -> bool {
    if !sys::wait_readable(conn, ms) {
        return false;
    }
    let mut line = [0u8; 16];
    *waits = if control::next_line(conn, &mut line) == Some(request::STOP) { Hold::Stop } else { Hold::Abandoned };
    true
}

/// After the final stop wrote its part: sync, rename, report.
fn finish_file(s: &mut Session) {
    let tmp = TempImage { path: s.tmp.path.clone(), fd: s.tmp.fd, id: s.tmp.id };
    let result = tmp.commit(Ok(s.written), s.job.dest.as_bytes());
    let job = Job { rounds: s.rounds, ..s.job };
    complete(&job, result, s.stopped_us);
}

/// Whether the copier tracks a mapping: private anonymous memory (the heap included),
/// readable, not the session's own nor mig's stacks.
fn tracked(l: &MapLine, scratch: (u64, u64)) -> bool {
    let anon = l.path.is_empty()
        || l.path == b"[heap]"
        || (l.pseudo() && !matches!(l.path, b"[stack]" | b"[vdso]" | b"[vvar]" | b"[vvar_vclock]" | b"[vsyscall]" | b"[uprobes]"));
    anon && !l.shared && l.prot & PROT_READ != 0 && (l.end <= scratch.0 || l.start >= scratch.1) && !crate::stacks::own(l.start, l.end)
}

/// The rounds: track, copy what was written since the last look, until little is.
fn rounds(s: &mut Session, t: &Tracker, fd: i32, tracked_ranges: &mut List<Run>, enough: &mut dyn FnMut(&Session, u64) -> bool) -> Result<(), Failure> {
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
            if enough(s, round) {
                return Ok(());
            }
        }
    })();
    sys::close(pagemap);
    r
}

pub(super) fn open(path: &[u8], flags: i32) -> Result<i32, Failure> {
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
