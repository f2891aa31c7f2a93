//! Stopping every thread for a checkpoint, and bringing each back after a restore.
//!
//! The thread that took the checkpoint signal coordinates: it sends the stop signal to
//! every other task of the process; each one saves its resume point (as the
//! coordinator does), records itself in a slot and parks on a futex until released.
//! The slots live in this library's memory, so they are in the image too: after a
//! restore each thread finds its own record there and re-registers what the kernel
//! keeps per thread (robust list, rseq, alternate stack), then checks in, so the
//! coordinator knows when no thread runs restore code any more.
#![allow(unsafe_code)]

use super::context::{Resumed, save_context};
use super::pending::Held;
use crate::sys::{self, CPath, msg::msg};
use crate::sys::{futex_wait_private as futex_wait, futex_wake_private as futex_wake};
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use mig_image::{Context, ThreadRecord};

pub const MAX_THREADS: usize = mig_image::MAX_THREADS;
const SA_RESTORER: i32 = 0x0400_0000;
/// How long the coordinator waits for every thread to stop.
const STOP_TIMEOUT_MS: u64 = 5000;
/// How long it waits before it looks for threads that block the stop signal.
const GRACE_MS: u64 = 2;

struct Slots(UnsafeCell<[ThreadRecord; MAX_THREADS]>);
// SAFETY: slot `i` is written only by the thread that claimed index `i` (claimed with
// `NEXT.fetch_add`), and read by the coordinator only after that thread arrived.
unsafe impl Sync for Slots {}

static SLOTS: Slots = Slots(UnsafeCell::new([ThreadRecord::ZERO; MAX_THREADS]));
/// Next free slot; slot 0 is the coordinator's.
static NEXT: AtomicU32 = AtomicU32::new(1);
/// Threads parked so far (futex word the coordinator waits on).
static ARRIVED: AtomicU32 = AtomicU32::new(0);
/// Bumped to release parked threads.
static RELEASE: AtomicU32 = AtomicU32::new(0);
/// Bumped to have parked threads take their pending signals; how many have.
static TAKE: AtomicU32 = AtomicU32::new(0);
static TAKEN: AtomicU32 = AtomicU32::new(0);
/// Bumped with `RELEASE` and `TAKE`: the futex word parked threads wait on.
static BELL: AtomicU32 = AtomicU32::new(0);
/// A checkpoint is collecting threads (a stop signal outside one is ignored).
static ACTIVE: AtomicU32 = AtomicU32::new(0);
/// Threads back from a restore (reset before each image is written, so a restored
/// process starts counting from 0).
static RESUMED: AtomicU32 = AtomicU32::new(0);
/// Of those, threads that did not get their saved tid back (the main thread aside,
/// whose tid is the pid); and the pid the image was taken of.
static NEW_TIDS: AtomicU32 = AtomicU32::new(0);
static SAVED_PID: AtomicU32 = AtomicU32::new(0);
/// The signal that stops threads (a real-time signal nobody else uses).
pub static STOP_SIGNAL: AtomicU32 = AtomicU32::new(0);
/// Stop slots (`stacks`) handed out, and left, since the last reset: counted by the
/// stop handler's trampoline.
pub static SLOTS_TAKEN: AtomicU32 = AtomicU32::new(0);
pub static SLOTS_LEFT: AtomicU32 = AtomicU32::new(0);

/// Before a checkpoint stops the threads: waits (at most `ms`) until every thread has
/// left its stop slot of the last checkpoint, then hands them out from the first again.
fn reset_slots(ms: u64) {
    let deadline = sys::clock_monotonic_ns() + ms * 1_000_000;
    while SLOTS_LEFT.load(SeqCst) < SLOTS_TAKEN.load(SeqCst) && sys::clock_monotonic_ns() < deadline {
        sys::sleep_ms(1);
    }
    // A thread still on its slot now (it was stopped by the program for good) keeps it:
    // the new ones go above.
    let lingering = SLOTS_TAKEN.load(SeqCst).saturating_sub(SLOTS_LEFT.load(SeqCst));
    if lingering == 0 {
        SLOTS_TAKEN.store(0, SeqCst);
        SLOTS_LEFT.store(0, SeqCst);
    }
}

fn slot(i: usize) -> Option<&'static mut ThreadRecord> {
    // SAFETY: see `Slots`: each index has one writer at a time.
    unsafe { (*SLOTS.0.get()).get_mut(i) }
}

/// Stores the calling thread's record in slot `i`.
pub fn record(i: usize, rec: ThreadRecord) {
    if let Some(s) = slot(i) {
        *s = rec;
    }
}

/// The records of the stopped threads and the coordinator (slot 0), main thread first.
pub fn records(n: usize) -> impl Iterator<Item = ThreadRecord> {
    let pid = sys::getpid();
    // SAFETY: every slot below `n` was written by a thread that has since arrived.
    let all = unsafe { (&*SLOTS.0.get()).get(..n.min(MAX_THREADS)).unwrap_or(&[]) };
    let main = all.iter().position(|r| r.tid == pid).unwrap_or(0);
    all.get(main).copied().into_iter().chain(all.iter().enumerate().filter(move |(i, _)| *i != main).map(|(_, r)| *r))
}

/// Lists the other tasks of this process into `out`; returns how many.
fn other_tasks(out: &mut [u32]) -> usize {
    let me = sys::gettid();
    let Some(p) = CPath::new(b"/proc/self/task") else { return 0 };
    let Ok(fd) = sys::open(&p, libc::O_RDONLY | libc::O_DIRECTORY, 0) else { return 0 };
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while let Ok(len) = sys::getdents(fd, &mut buf) {
        if len == 0 {
            break;
        }
        for name in sys::dirent_names(buf.get(..len).unwrap_or(&[])) {
            if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
                let tid = name.iter().fold(0u32, |a, &c| a * 10 + (c - b'0') as u32);
                if tid != me
                    && let Some(slot) = out.get_mut(n)
                {
                    *slot = tid;
                    n += 1;
                }
            }
        }
    }
    sys::close(fd);
    n
}

/// Why threads could not be stopped.
pub enum StopError {
    TooMany,
    /// A thread did not respond in time (blocks the signal, or is not a glibc thread).
    Timeout {
        tid: u32,
        signal: u32,
    },
}

/// Stops every other thread; returns the number of slots in use (coordinator
/// included). On failure every thread that did stop is released again.
pub fn stop_all() -> Result<usize, StopError> {
    let sig = STOP_SIGNAL.load(SeqCst);
    // No signal of ours to stop threads with (the program took them all): every thread
    // is stopped from outside.
    let outside = sig == 0;
    reset_slots(STOP_TIMEOUT_MS);
    super::interrupted::forget_samples();
    // The last checkpoint's records must not look like arrivals (`arrived`).
    for i in 1..(NEXT.load(SeqCst) as usize).min(MAX_THREADS) {
        if let Some(r) = slot(i) {
            r.tid = 0;
        }
    }
    NEXT.store(1, SeqCst);
    ARRIVED.store(0, SeqCst);
    ACTIVE.store(1, SeqCst);
    let mut signalled = [0u32; MAX_THREADS];
    let mut count = 0usize;
    // Signalled threads that ended before they could be stopped.
    let mut gone = 0usize;
    let pid = sys::getpid();
    // New threads may appear while we stop the others: repeat until none is new.
    loop {
        let mut tasks = [0u32; MAX_THREADS];
        let n = other_tasks(&mut tasks);
        let mut fresh = 0;
        for &tid in tasks.get(..n).unwrap_or(&[]) {
            if signalled.get(..count).unwrap_or(&[]).contains(&tid) {
                continue;
            }
            if count == MAX_THREADS - 1 {
                release();
                return Err(StopError::TooMany);
            }
            // A thread that just exited gives ESRCH.
            // `count` is below MAX_THREADS - 1 here: there is room.
            if !outside {
                super::interrupted::sample(tid);
            }
            if (outside || sys::tgkill(pid, tid, sig as i32).is_ok())
                && let Some(slot) = signalled.get_mut(count)
            {
                *slot = tid;
                count += 1;
                fresh += 1;
            }
        }
        let start = sys::clock_monotonic_ns();
        let deadline = start + STOP_TIMEOUT_MS * 1_000_000;
        // Threads that block the signal are stopped from outside once the others had
        // time to come.
        let mut grace = Some(if outside { start } else { start + GRACE_MS * 1_000_000 });
        loop {
            let arrived = ARRIVED.load(SeqCst) as usize;
            if arrived + gone >= count {
                break;
            }
            let now = sys::clock_monotonic_ns();
            if let Some(g) = grace
                && now >= g
            {
                grace = None;
                gone += stop_blocking(signalled.get(..count).unwrap_or(&[]), sig, outside);
                continue;
            }
            if now >= deadline {
                let late = signalled.get(..count).unwrap_or(&[]).iter().copied().find(|&t| !arrived_tid(t, arrived)).unwrap_or(0);
                release();
                return Err(StopError::Timeout { tid: late, signal: sig });
            }
            let until = grace.unwrap_or(deadline).min(deadline);
            futex_wait(&ARRIVED, arrived as u32, (until.saturating_sub(now) / 1_000_000).max(1));
        }
        if fresh == 0 {
            return Ok(NEXT.load(SeqCst) as usize);
        }
    }
}

/// Stops from outside (`tracer`) those of `tids` for which `sig` waits, blocked (with
/// `all`, every one), as many at a time as the tracer takes; returns how many of them
/// ended meanwhile.
fn stop_blocking(tids: &[u32], sig: u32, all: bool) -> usize {
    let mut blocking = [0u32; MAX_THREADS];
    let mut n = 0;
    for &tid in tids.iter().filter(|&&t| all || !arrived(t)) {
        if (all || super::tracer::waiting(sys::getpid(), tid, sig))
            && let Some(slot) = blocking.get_mut(n)
        {
            *slot = tid;
            n += 1;
        }
    }
    let mut gone = 0;
    for batch in blocking.get(..n).unwrap_or(&[]).chunks(super::tracer::MAX) {
        let mut out = [super::tracer::Outcome::Refused; super::tracer::MAX];
        super::tracer::stop(batch, sig, all, &mut out);
        gone += out.iter().take(batch.len()).filter(|&&o| o == super::tracer::Outcome::Gone).count();
    }
    gone
}

fn arrived_tid(tid: u32, arrived: usize) -> bool {
    (1..=arrived).filter_map(slot).any(|r| r.tid == tid)
}

/// Whether thread `tid` has recorded itself in a slot of this checkpoint.
fn arrived(tid: u32) -> bool {
    (1..NEXT.load(SeqCst) as usize).filter_map(slot).any(|r| r.tid == tid)
}

/// Resets the restore check-in count, which is saved in the image: call before
/// writing it.
pub fn prepare_image() {
    RESUMED.store(0, SeqCst);
    NEW_TIDS.store(0, SeqCst);
    SAVED_PID.store(sys::getpid(), SeqCst);
}

/// Lets every parked thread go on.
pub fn release() {
    ACTIVE.store(0, SeqCst);
    RELEASE.fetch_add(1, SeqCst);
    BELL.fetch_add(1, SeqCst);
    futex_wake(&BELL);
}

/// The stop signal's handler, in every thread but the coordinator.
pub extern "C" fn on_stop(_sig: c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    stop_signal(info, uc);
}

/// At start: has the stop handler note the layout of the kernel's signal frames
/// (`tracer::note_frame`), which frames written from outside copy.
pub fn note_frame_layout() {
    let sig = STOP_SIGNAL.load(SeqCst);
    if sig != 0 {
        let _ = sys::tgkill(sys::getpid(), sys::gettid(), sig as i32);
    }
}

fn stop_signal(info: *mut libc::siginfo_t, uc: *mut c_void) {
    if super::control::MIG_CONTROL.sw_size.load(SeqCst) == 0 {
        super::tracer::note_frame(uc);
    }
    // SAFETY: the kernel (or `tracer`) passes an `SA_SIGINFO` handler its frame's
    // siginfo.
    super::tracer::fix_frame(unsafe { info.as_ref() }, uc);
    let call = super::interrupted::restart(uc, true);
    if ACTIVE.load(SeqCst) != 0 {
        // On this stop stack, so in the image: pending again after a restore too, and
        // before `settle` looks.
        let mut held = Held::NONE;
        stop(&mut held);
        held.put_back();
    }
    if let Some(call) = call {
        call.settle();
    }
}

/// A stopped thread's slot, the signals it took (`take_pending`), and the release
/// count it waits to see bumped.
struct Parked<'a> {
    slot: usize,
    held: &'a mut Held,
    release: u32,
}

fn stop(held: &mut Held) {
    let mut ctx = Context::default();
    let mut parked = Parked { slot: usize::MAX, held, release: 0 };
    // SAFETY: `ctx` and `parked` are live locals; `park` does not unwind.
    let r: Resumed = unsafe { save_context(&mut ctx, park, (&mut parked as *mut Parked).cast()) };
    if r.restored != 0 {
        resumed(parked.slot);
        // Not before the coordinator has made again what the process shares (an AIO
        // context this thread's interrupted call waits on: too early, the call fails
        // with EINVAL) and lets every thread go, as after a checkpoint. The count is
        // the image's: bumped once by this process's `release`.
        loop {
            let bell = BELL.load(SeqCst);
            if RELEASE.load(SeqCst) != parked.release {
                break;
            }
            futex_wait(&BELL, bell, 1000);
        }
    }
}

extern "C" fn park(ctx: *mut Context, arg: *mut c_void) -> u64 {
    let release = RELEASE.load(SeqCst);
    let mut take = TAKE.load(SeqCst);
    // SAFETY: `arg` is `stop`'s `parked`, alive while this runs.
    let parked = unsafe { &mut *arg.cast::<Parked>() };
    parked.release = release;
    let i = NEXT.fetch_add(1, SeqCst) as usize;
    parked.slot = i;
    // SAFETY: `ctx` is `stop`'s local, filled by `save_context`.
    record(i, crate::kinds::thread::save(unsafe { &*ctx }));
    ARRIVED.fetch_add(1, SeqCst);
    futex_wake(&ARRIVED);
    loop {
        let bell = BELL.load(SeqCst);
        if RELEASE.load(SeqCst) != release {
            return 0;
        }
        if TAKE.load(SeqCst) != take {
            take = TAKE.load(SeqCst);
            *parked.held = Held::take();
            TAKEN.fetch_add(1, SeqCst);
            futex_wake(&TAKEN);
            continue;
        }
        futex_wait(&BELL, bell, 1000);
    }
}

/// Once every thread has stopped (none can send another a signal any more): has each
/// of the `n - 1` parked ones take its pending signals, and waits until they have (at
/// most a second). The coordinator takes its own. Skipped when no signal is queued
/// for the user at all (the usual case: a look at `/proc` costs less than waking
/// every thread).
pub fn take_pending(n: usize) {
    if n > 1 && super::tracer::signal_sets(sys::getpid(), sys::gettid()).user_queued > 0 {
        TAKEN.store(0, SeqCst);
        TAKE.fetch_add(1, SeqCst);
        BELL.fetch_add(1, SeqCst);
        futex_wake(&BELL);
        let deadline = sys::clock_monotonic_ns() + 1_000_000_000;
        loop {
            let taken = TAKEN.load(SeqCst);
            let now = sys::clock_monotonic_ns();
            if taken as usize >= n - 1 || now >= deadline {
                break;
            }
            futex_wait(&TAKEN, taken, ((deadline - now) / 1_000_000).max(1));
        }
    }
}

/// In a restored process, each thread as it leaves the restore: re-registers its
/// per-thread kernel state from its saved record, and checks in.
pub fn resumed(i: usize) {
    // A wait's deadline, on this boot's clock.
    super::intent::shift_waiting(sys::clock_monotonic_ns().wrapping_sub(super::handler::started_ns()) as i64);
    if let Some(r) = slot(i).map(|r| *r) {
        if r.tid != sys::gettid() && r.tid != SAVED_PID.load(SeqCst) {
            NEW_TIDS.fetch_add(1, SeqCst);
        }
        if r.robust_head != 0 {
            // SAFETY: the robust list head is in this thread's restored TLS.
            let _ = unsafe { sys::set_robust_list(r.robust_head, r.robust_len) };
        }
        if r.rseq_len != 0 {
            // SAFETY: the rseq area is in this thread's restored TLS.
            let _ = unsafe { sys::rseq(r.rseq_addr, r.rseq_len, 0, r.rseq_sig) };
        }
        let ss: [u64; 3] = if r.altstack_flags & libc::SS_DISABLE as u32 != 0 {
            [0, libc::SS_DISABLE as u64, 0]
        } else {
            [r.altstack_sp, r.altstack_flags as u64, r.altstack_size]
        };
        // SAFETY: the stack the thread had when it was saved, restored with its memory
        // (or SS_DISABLE).
        let _ = unsafe { sys::set_sigaltstack(&ss) };
        set_sched(&r.sched);
    }
    RESUMED.fetch_add(1, SeqCst);
    futex_wake(&RESUMED);
}

/// The calling thread's saved scheduling, set back; what the kernel refuses is said.
fn set_sched(s: &mig_image::ThreadSched) {
    let attr = sys::SchedAttr { policy: s.policy, flags: s.flags as u64, nice: s.nice, priority: s.priority, ..Default::default() };
    if let Err(e) = sys::sched_setattr(&attr) {
        msg()
            .s("warning: thread ")
            .num(sys::gettid() as u64)
            .s(": its scheduling policy ")
            .num(s.policy as u64)
            .s(" with nice ")
            .inum(s.nice as i64)
            .s(" and priority ")
            .num(s.priority as u64)
            .s(" cannot be set back (errno ")
            .num(e.0 as u64)
            .s(")")
            .emit();
    }
    if s.timerslack_ns != 0 {
        // SAFETY: PR_SET_TIMERSLACK takes a value, no address.
        let _ = unsafe { sys::prctl(libc::PR_SET_TIMERSLACK, s.timerslack_ns as usize, 0, 0, 0) };
    }
    if s.affinity.iter().any(|&w| w != 0)
        && let Err(e) = sys::sched_setaffinity(&s.affinity)
    {
        msg()
            .s("warning: thread ")
            .num(sys::gettid() as u64)
            .s(": its CPU affinity cannot be set back (errno ")
            .num(e.0 as u64)
            .s("); it may run on any CPU")
            .emit();
    }
}

/// The coordinator, after a restore: waits until the other `n - 1` threads have left
/// the restore code (so the hole can go); says if threads got new tids.
pub fn wait_resumed(n: usize) {
    let want = n as u32;
    loop {
        let now = RESUMED.load(SeqCst);
        if now >= want {
            break;
        }
        futex_wait(&RESUMED, now, 1000);
    }
    let changed = NEW_TIDS.load(SeqCst);
    if changed > 0 {
        msg()
            .s("warning: ")
            .num(changed as u64)
            .s(if changed == 1 { " thread came" } else { " threads came" })
            .s(" back with a new thread id (choosing it needs root or CAP_CHECKPOINT_RESTORE, and the old one free): a mutex one of them held across the checkpoint is no longer its own")
            .emit();
    }
}

/// Picks the stop signal: a real-time signal whose action is still the default, or
/// ours already; installs the handler. Returns false if none is free (threads are then
/// stopped from outside).
pub fn choose_signal(wanted: Option<u32>) -> bool {
    let current = STOP_SIGNAL.load(SeqCst);
    let candidates = wanted.into_iter().chain(Some(current).filter(|&s| s != 0)).chain((libc::SIGRTMIN() as u32 + 2..=libc::SIGRTMAX() as u32).rev());
    for sig in candidates {
        let mut old = mig_image::KSigaction::default();
        if sys::sigaction(sig as i32, None, Some(&mut old)).is_err() {
            continue;
        }
        let ours = old.handler == crate::runtime::get().stop_entry;
        if ours || old.handler == 0 {
            if !ours {
                install(sig);
            }
            STOP_SIGNAL.store(sig, SeqCst);
            return true;
        }
        if Some(sig) == wanted {
            msg().s("warning: MIG_THREAD_SIGNAL ").num(sig as u64).s(" is used by the program; picking another").emit();
        }
    }
    STOP_SIGNAL.store(0, SeqCst);
    false
}

fn install(sig: u32) {
    let rt = crate::runtime::get();
    let act = mig_image::KSigaction {
        handler: rt.stop_entry,
        flags: (libc::SA_SIGINFO | libc::SA_RESTART | SA_RESTORER) as u64,
        restorer: rt.restorer,
        mask: u64::MAX,
    };
    let _ = sys::sigaction(sig as i32, Some(&act), None);
}
