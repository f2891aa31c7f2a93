//! Interposed libc calls. `/proc` is the truth about the process; these hooks add
//! intent it cannot tell: the flags a file was opened with (`O_CREAT`, `O_TRUNC` are
//! gone from `fcntl(F_GETFL)`), which mappings the program made itself (not glibc or
//! the loader, whose calls no hook sees), and that the program is taking over the
//! checkpoint signal, which would silently turn checkpoints off. `memory` hides what
//! mig does to the program's mappings from `madvise` and `mremap`.
#![allow(unsafe_code)]

mod memory;

use crate::runtime;
use crate::sys::msg::msg;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use libc::{c_int, sighandler_t};

/// Set once the library's own handlers are installed: only later calls are the program's.
static READY: AtomicBool = AtomicBool::new(false);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Called by the constructor once the library's own handlers are installed. Resolves
/// every real function now, so no hook resolves one lazily later (`dlsym` may allocate).
pub fn ready() {
    let _ = (redhook::real!(sigaction), redhook::real!(signal), redhook::real!(open), redhook::real!(open64));
    let _ = (redhook::real!(openat), redhook::real!(openat64), redhook::real!(creat), redhook::real!(close));
    let _ = (redhook::real!(mmap), redhook::real!(munmap));
    let _ = (redhook::real!(inotify_add_watch), redhook::real!(inotify_rm_watch));
    READY.store(true, Ordering::SeqCst);
}

/// Warns (once) when the program installs a handler on the checkpoint signal.
fn check(sig: c_int, handler: sighandler_t) {
    let Some(rt) = runtime::try_get() else { return };
    if !READY.load(Ordering::SeqCst) || sig as u32 != rt.settings.checkpoint_signal {
        return;
    }
    let ours = handler == crate::checkpoint::stacks::checkpoint_entry as *const () as sighandler_t;
    if !ours && !WARNED.swap(true, Ordering::SeqCst) {
        msg()
            .s("warning: the program installs its own handler for signal ")
            .num(sig as u64)
            .s(", which mig uses for checkpoints; start it with MIG_SIGNAL=<another signal> to keep checkpoints working")
            .emit();
    }
}

redhook::hook! {
    unsafe fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int => mig_sigaction {
        if !act.is_null() {
            // SAFETY: the caller passes a valid `sigaction` when `act` is not null.
            check(sig, unsafe { (*act).sa_sigaction });
        }
        // SAFETY: forwarding the caller's arguments unchanged.
        unsafe { redhook::real!(sigaction)(sig, act, old) }
    }
}

redhook::hook! {
    unsafe fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t => mig_signal {
        check(sig, handler);
        // SAFETY: forwarding the caller's arguments unchanged.
        unsafe { redhook::real!(signal)(sig, handler) }
    }
}

// ---- Intent: what the program opened and mapped itself ----
//
// Lock-free fixed tables, written by the hooks in any thread and read by the checkpoint
// handler while every thread is stopped.

const FDS: usize = 4096;
static OPEN_FLAGS: [AtomicU32; FDS] = [const { AtomicU32::new(0) }; FDS];

const MAPS: usize = 1024;
/// (start, end) of mappings made by the program's own `mmap` calls; 0 = free slot.
static MAPPED: [(AtomicU64, AtomicU64); MAPS] = [const { (AtomicU64::new(0), AtomicU64::new(0)) }; MAPS];
/// Slots ever used: the hooks look no further (most programs use a few).
static MAPPED_HIGH: AtomicUsize = AtomicUsize::new(0);

fn mapped_slots() -> &'static [(AtomicU64, AtomicU64)] {
    &MAPPED[..MAPPED_HIGH.load(Ordering::Acquire).min(MAPS)]
}

fn opened(fd: c_int, flags: c_int) -> c_int {
    if let Some(slot) = usize::try_from(fd).ok().and_then(|i| OPEN_FLAGS.get(i)) {
        slot.store(flags as u32 | 0x8000_0000, Ordering::Relaxed);
    }
    fd
}

/// The flags descriptor `fd` was opened with by the program, if a hook saw it.
pub fn open_flags(fd: c_int) -> u32 {
    usize::try_from(fd).ok().and_then(|i| OPEN_FLAGS.get(i)).map_or(0, |s| s.load(Ordering::Relaxed) & 0x7fff_ffff)
}

/// Whether `[start, end)` overlaps a mapping the program made with `mmap` itself.
pub fn mapped_by_program(start: u64, end: u64) -> bool {
    mapped_slots().iter().any(|(s, e)| {
        let (s, e) = (s.load(Ordering::Relaxed), e.load(Ordering::Relaxed));
        s != 0 && s < end && start < e
    })
}

fn mapped(addr: *mut libc::c_void, len: usize) -> *mut libc::c_void {
    if addr != libc::MAP_FAILED && len > 0 {
        let start = addr as u64;
        // A plain load first: a locked compare-exchange on every taken slot costs more.
        let claim =
            |(s, _): &&(AtomicU64, AtomicU64)| s.load(Ordering::Relaxed) == 0 && s.compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed).is_ok();
        let slot = mapped_slots().iter().find(claim).or_else(|| {
            let i = MAPPED_HIGH.fetch_add(1, Ordering::AcqRel);
            MAPPED.get(i).filter(|s| claim(s))
        });
        if let Some((_, e)) = slot {
            e.store(start + len as u64, Ordering::Release);
        }
    }
    addr
}

fn unmapped(addr: *mut libc::c_void, len: usize) {
    let (start, end) = (addr as u64, addr as u64 + len as u64);
    for (s, e) in mapped_slots() {
        let at = s.load(Ordering::Acquire);
        if at != 0 && at >= start && e.load(Ordering::Acquire) <= end {
            e.store(0, Ordering::Relaxed);
            s.store(0, Ordering::Release);
        }
    }
}

redhook::hook! {
    unsafe fn open(path: *const libc::c_char, flags: c_int, mode: libc::mode_t) -> c_int => mig_open {
        // SAFETY: forwarding the caller's arguments unchanged (mode declared explicitly).
        opened(unsafe { redhook::real!(open)(path, flags, mode) }, flags)
    }
}
redhook::hook! {
    unsafe fn open64(path: *const libc::c_char, flags: c_int, mode: libc::mode_t) -> c_int => mig_open64 {
        // SAFETY: as for `open`.
        opened(unsafe { redhook::real!(open64)(path, flags, mode) }, flags)
    }
}
redhook::hook! {
    unsafe fn openat(dir: c_int, path: *const libc::c_char, flags: c_int, mode: libc::mode_t) -> c_int => mig_openat {
        // SAFETY: as for `open`.
        opened(unsafe { redhook::real!(openat)(dir, path, flags, mode) }, flags)
    }
}
redhook::hook! {
    unsafe fn openat64(dir: c_int, path: *const libc::c_char, flags: c_int, mode: libc::mode_t) -> c_int => mig_openat64 {
        // SAFETY: as for `open`.
        opened(unsafe { redhook::real!(openat64)(dir, path, flags, mode) }, flags)
    }
}
redhook::hook! {
    unsafe fn creat(path: *const libc::c_char, mode: libc::mode_t) -> c_int => mig_creat {
        // SAFETY: as for `open`.
        opened(unsafe { redhook::real!(creat)(path, mode) }, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC)
    }
}
redhook::hook! {
    unsafe fn close(fd: c_int) -> c_int => mig_close {
        if let Some(slot) = usize::try_from(fd).ok().and_then(|i| OPEN_FLAGS.get(i)) {
            slot.store(0, Ordering::Relaxed);
        }
        forget_watches(fd, None);
        // SAFETY: forwarding the caller's argument unchanged.
        unsafe { redhook::real!(close)(fd) }
    }
}
redhook::hook! {
    unsafe fn mmap(addr: *mut libc::c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: libc::off_t) -> *mut libc::c_void => mig_mmap {
        // SAFETY: forwarding the caller's arguments unchanged.
        mapped(unsafe { redhook::real!(mmap)(addr, len, prot, flags, fd, off) }, len)
    }
}
redhook::hook! {
    unsafe fn munmap(addr: *mut libc::c_void, len: usize) -> c_int => mig_munmap {
        unmapped(addr, len);
        // SAFETY: forwarding the caller's arguments unchanged.
        unsafe { redhook::real!(munmap)(addr, len) }
    }
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
    &WATCH[..WATCH_HIGH.load(Ordering::Acquire).min(WATCHES)]
}

static WATCH: [Watch; WATCHES] =
    [const { Watch { fd: AtomicI32::new(FREE), wd: AtomicI32::new(0), len: AtomicU32::new(0), path: UnsafeCell::new([0; WATCH_PATH]) } }; WATCHES];

fn watched(fd: c_int, wd: c_int, path: *const libc::c_char) -> c_int {
    if wd < 0 || path.is_null() {
        return wd;
    }
    forget_watches(fd, Some(wd));
    // SAFETY: the caller passed a NUL-terminated path that the kernel just accepted.
    let name = unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes();
    let mut full = crate::sys::msg::Msg::<WATCH_PATH>::new();
    if name.first() != Some(&b'/') {
        let mut cwd = [0u8; WATCH_PATH];
        let n = crate::sys::getcwd(&mut cwd).unwrap_or(0);
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
        unsafe { (&mut *w.path.get())[..b.len()].copy_from_slice(b) };
        w.wd.store(wd, Ordering::Relaxed);
        w.len.store(b.len() as u32, Ordering::Relaxed);
        w.fd.store(fd, Ordering::Release);
    }
    wd
}

fn forget_watches(fd: c_int, wd: Option<c_int>) {
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

redhook::hook! {
    unsafe fn inotify_add_watch(fd: c_int, path: *const libc::c_char, mask: u32) -> c_int => mig_inotify_add_watch {
        // SAFETY: forwarding the caller's arguments unchanged.
        watched(fd, unsafe { redhook::real!(inotify_add_watch)(fd, path, mask) }, path)
    }
}
redhook::hook! {
    unsafe fn inotify_rm_watch(fd: c_int, wd: c_int) -> c_int => mig_inotify_rm_watch {
        forget_watches(fd, Some(wd));
        // SAFETY: forwarding the caller's arguments unchanged.
        unsafe { redhook::real!(inotify_rm_watch)(fd, wd) }
    }
}
