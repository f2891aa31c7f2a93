//! Intent: what the program opened, mapped and watched itself, as the interposed libc
//! calls (`src/interpose`) saw it. `/proc` cannot tell the flags a file was opened with
//! (`O_CREAT`, `O_TRUNC` are gone from `fcntl(F_GETFL)`), which mappings the program
//! made (not glibc or the loader), or the path an inotify watch was added by.
//!
//! Lock-free fixed tables, written by the hooks in any thread and read by the checkpoint
//! handler while every thread is stopped.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use libc::c_int;

const FDS: usize = 4096;
static OPEN_FLAGS: [AtomicU32; FDS] = [const { AtomicU32::new(0) }; FDS];

const MAPS: usize = 1024;
/// (start, end, `MAP_NORESERVE`) of mappings made by the program's own `mmap` calls;
/// start 0 = free slot.
static MAPPED: [(AtomicU64, AtomicU64, AtomicBool); MAPS] = [const { (AtomicU64::new(0), AtomicU64::new(0), AtomicBool::new(false)) }; MAPS];
/// Slots ever used: the hooks look no further (most programs use a few).
static MAPPED_HIGH: AtomicUsize = AtomicUsize::new(0);

fn mapped_slots() -> &'static [(AtomicU64, AtomicU64, AtomicBool)] {
    MAPPED.get(..MAPPED_HIGH.load(Ordering::Acquire).min(MAPS)).unwrap_or(&[])
}

pub fn opened(fd: c_int, flags: c_int) -> c_int {
    if let Some(slot) = usize::try_from(fd).ok().and_then(|i| OPEN_FLAGS.get(i)) {
        slot.store(flags as u32 | 0x8000_0000, Ordering::Relaxed);
    }
    fd
}

/// The program closed `fd`.
pub fn closed(fd: c_int) {
    if let Some(slot) = usize::try_from(fd).ok().and_then(|i| OPEN_FLAGS.get(i)) {
        slot.store(0, Ordering::Relaxed);
    }
    forget_watches(fd, None);
}

/// The flags descriptor `fd` was opened with by the program, if a hook saw it.
pub fn open_flags(fd: c_int) -> u32 {
    usize::try_from(fd).ok().and_then(|i| OPEN_FLAGS.get(i)).map_or(0, |s| s.load(Ordering::Relaxed) & 0x7fff_ffff)
}

/// Whether `[start, end)` overlaps a mapping the program made with `mmap` itself, and
/// whether one such made with `MAP_NORESERVE` (no swap reserved: the kernel's
/// overcommit check would refuse a mapping that large without it).
pub fn mapped_by_program(start: u64, end: u64) -> (bool, bool) {
    let mut found = (false, false);
    for (s, e, nr) in mapped_slots() {
        let (s, e) = (s.load(Ordering::Relaxed), e.load(Ordering::Acquire));
        if s != 0 && s < end && start < e {
            found = (true, found.1 || nr.load(Ordering::Relaxed));
        }
    }
    found
}

pub fn mapped(addr: *mut libc::c_void, len: usize, flags: c_int) -> *mut libc::c_void {
    if addr != libc::MAP_FAILED && len > 0 {
        let start = addr as u64;
        // A plain load first: a locked compare-exchange on every taken slot costs more.
        let claim = |(s, _, _): &&(AtomicU64, AtomicU64, AtomicBool)| {
            s.load(Ordering::Relaxed) == 0 && s.compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        };
        let slot = mapped_slots().iter().find(claim).or_else(|| {
            let i = MAPPED_HIGH.fetch_add(1, Ordering::AcqRel);
            MAPPED.get(i).filter(|s| claim(s))
        });
        if let Some((_, e, nr)) = slot {
            nr.store(flags & libc::MAP_NORESERVE != 0, Ordering::Relaxed);
            e.store(start + len as u64, Ordering::Release);
        }
    }
    addr
}

pub fn unmapped(addr: *mut libc::c_void, len: usize) {
    let (start, end) = (addr as u64, addr as u64 + len as u64);
    for (s, e, _) in mapped_slots() {
        let at = s.load(Ordering::Acquire);
        if at != 0 && at >= start && e.load(Ordering::Acquire) <= end {
            e.store(0, Ordering::Relaxed);
            s.store(0, Ordering::Release);
        }
    }
}

// ---- advice and locks: the kernel keeps them per mapping (smaps' VmFlags), read only
// where the program gave any, as smaps is slow to read ----

static ADVISED: AtomicBool = AtomicBool::new(false);
/// Advice a fork honours by leaving memory out or zeroed (`MADV_DONTFORK`, `WIPEONFORK`).
static UNFORKED: AtomicBool = AtomicBool::new(false);
/// `mlockall` flags in force (`MCL_FUTURE`, `MCL_ONFAULT`), 0 after `munlockall`.
static MLOCKALL: AtomicU32 = AtomicU32::new(0);

/// The program gave `madvise` advice the kernel keeps, or locked memory.
pub fn advised() {
    ADVISED.store(true, Ordering::Relaxed);
}

pub fn mlockall(flags: c_int) {
    advised();
    MLOCKALL.store(flags as u32, Ordering::Relaxed);
}

/// The program kept memory from a child (`MADV_DONTFORK`, `MADV_WIPEONFORK`).
pub fn kept_from_fork() {
    UNFORKED.store(true, Ordering::Relaxed);
}

/// Whether it ever did: a forked writer could not save that memory while the process
/// runs on.
pub fn ever_kept_from_fork() -> bool {
    UNFORKED.load(Ordering::Relaxed)
}

/// Whether the program ever gave advice the kernel keeps, or locked memory.
pub fn ever_advised() -> bool {
    ADVISED.load(Ordering::Relaxed)
}

/// `mlockall`'s flags in force, as the program set them.
pub fn mlockall_flags() -> u32 {
    MLOCKALL.load(Ordering::Relaxed)
}

// ---- inotify: the kernel names a watch by inode; the program named it by path ----

const WATCHES: usize = 256;
const WATCH_PATH: usize = 1024;
const FREE: i32 = -1;
const BUSY: i32 = -2;

struct Watch {
    /// The inotify descriptor, or `FREE`/`BUSY`.
    fd: AtomicI32,
    wd: AtomicI32,
    len: AtomicU32,
    path: UnsafeCell<[u8; WATCH_PATH]>,
}
// SAFETY: `path` is written only by the thread that moved `fd` from FREE to BUSY, and
// read only after `fd` was published with release ordering.
unsafe impl Sync for Watch {}

/// Slots ever used (see `MAPPED_HIGH`).
static WATCH_HIGH: AtomicUsize = AtomicUsize::new(0);

fn watch_slots() -> &'static [Watch] {
    WATCH.get(..WATCH_HIGH.load(Ordering::Acquire).min(WATCHES)).unwrap_or(&[])
}

static WATCH: [Watch; WATCHES] =
    [const { Watch { fd: AtomicI32::new(FREE), wd: AtomicI32::new(0), len: AtomicU32::new(0), path: UnsafeCell::new([0; WATCH_PATH]) } }; WATCHES];

/// The program added watch `wd` (if not negative) to inotify instance `fd` by `name`.
pub fn watched(fd: c_int, wd: c_int, name: &[u8]) -> c_int {
    if wd < 0 {
        return wd;
    }
    forget_watches(fd, Some(wd));
    let mut full = mig_sys::msg::Msg::<WATCH_PATH>::new();
    if name.first() != Some(&b'/') {
        let mut cwd = [0u8; WATCH_PATH];
        let n = mig_sys::getcwd(&mut cwd).unwrap_or(0);
        full.bytes(cwd.get(..n.saturating_sub(1)).unwrap_or(&[])).s("/");
    }
    full.bytes(name);
    if full.overflowed() {
        return wd;
    }
    let claim = |w: &&Watch| w.fd.compare_exchange(FREE, BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok();
    let slot = watch_slots().iter().find(claim).or_else(|| WATCH.get(WATCH_HIGH.fetch_add(1, Ordering::AcqRel)).filter(|w| claim(w)));
    if let Some(w) = slot {
        let b = full.as_bytes();
        // SAFETY: this thread owns the slot (BUSY) until it publishes it below.
        let path = unsafe { &mut *w.path.get() };
        // `full` holds at most WATCH_PATH bytes, the size of `path`.
        for (d, s) in path.iter_mut().zip(b) {
            *d = *s;
        }
        w.wd.store(wd, Ordering::Relaxed);
        w.len.store(b.len() as u32, Ordering::Relaxed);
        w.fd.store(fd, Ordering::Release);
    }
    wd
}

pub fn forget_watches(fd: c_int, wd: Option<c_int>) {
    for w in watch_slots() {
        if w.fd.load(Ordering::Acquire) == fd && wd.is_none_or(|wd| w.wd.load(Ordering::Relaxed) == wd) {
            w.fd.store(FREE, Ordering::Release);
        }
    }
}

/// The path the program gave when it added watch `wd` to inotify instance `fd`.
pub fn watch_path(fd: c_int, wd: c_int) -> Option<&'static [u8]> {
    let w = watch_slots().iter().find(|w| w.fd.load(Ordering::Acquire) == fd && w.wd.load(Ordering::Relaxed) == wd)?;
    let len = w.len.load(Ordering::Relaxed) as usize;
    // SAFETY: a published slot's path is no longer written (see `Watch`).
    unsafe { (&*w.path.get()).get(..len) }
}

/// A wait with a relative timeout the program started through libc (`poll`,
/// `epoll_wait`, the sleeps, `sigtimedwait`, `semtimedop`), as its hook saw it: the
/// kernel keeps the time left to itself, so a call the checkpoint makes run again
/// (`interrupted`) would wait its whole timeout again. One per thread.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Waiting {
    /// The system call (0: none).
    pub nr: u32,
    /// When it must end, `CLOCK_MONOTONIC`.
    pub deadline_ns: u64,
    /// The time left, where a call made again reads a `timespec`.
    pub left: [i64; 2],
}

/// Where the calling thread's `Waiting` is (set by the library: it lives in the hooks'
/// thread-local storage).
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Sets how to find the calling thread's `Waiting`.
pub fn set_waiting(f: fn() -> *mut Waiting) {
    WAITING.store(f as usize, Ordering::Relaxed);
}

/// The calling thread's `Waiting`, if the library keeps one.
pub fn waiting() -> Option<&'static mut Waiting> {
    let f = WAITING.load(Ordering::Relaxed);
    if f == 0 {
        return None;
    }
    // SAFETY: `f` was stored from a `fn() -> *mut Waiting` by `set_waiting`.
    let f: fn() -> *mut Waiting = unsafe { core::mem::transmute(f) };
    // SAFETY: the thread-local record of the calling thread, alive as long as it; only
    // this thread (its hooks, then its signal handlers) touches it.
    unsafe { f().as_mut() }
}

/// After a restore, in each thread: its wait's deadline moved by `delta_ns` (the
/// monotonic clock of this boot against the checkpoint's).
pub fn shift_waiting(delta_ns: i64) {
    if let Some(w) = waiting().filter(|w| w.nr != 0) {
        w.deadline_ns = w.deadline_ns.wrapping_add(delta_ns as u64);
    }
}
