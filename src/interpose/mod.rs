//! Interposed libc calls. `/proc` is the truth about the process; these hooks add
//! intent it cannot tell, kept in `mig_checkpoint::intent`: the flags a file was opened
//! with, which mappings the program made itself (not glibc or the loader, whose calls
//! no hook sees), the paths of inotify watches; and they warn when the program takes
//! over the checkpoint signal, which would silently turn checkpoints off. `memory` hides what
//! mig does to the program's mappings from `madvise` and `mremap`; `seccomp` records the
//! filters the program installs, which the kernel does not show; `syscall` sees what
//! the program asks of the kernel directly (filters, waits with a timeout).
#![allow(unsafe_code)]

pub mod held_signals;
mod memory;
mod seccomp;
mod syscall;
mod waits;

use crate::checkpoint::intent::{closed, forget_watches, mapped, opened, unmapped, watched};
use crate::runtime;
use crate::sys::msg::msg;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    waits::init();
    READY.store(true, Ordering::SeqCst);
}

/// Warns (once) when the program installs a handler on the checkpoint signal.
fn check(sig: c_int, handler: sighandler_t) {
    let Some(rt) = runtime::try_get() else { return };
    if !READY.load(Ordering::SeqCst) || sig as u32 != rt.settings.checkpoint_signal {
        return;
    }
    // The default is mig's handler, which `default_set` puts back.
    let ours = handler == libc::SIG_DFL || handler == crate::checkpoint::stacks::checkpoint_entry as *const () as sighandler_t;
    if !ours && !WARNED.swap(true, Ordering::SeqCst) {
        msg()
            .s("warning: the program sets its own action on signal ")
            .num(sig as u64)
            .s(", which mig uses for checkpoints: that signal no longer asks for one (`mig checkpoint` still does; or start the program with MIG_SIGNAL=<another signal>)")
            .emit();
    }
}

/// After the program set an action on `sig`: if that was mig's request signal, mig
/// takes another (`mig checkpoint` reads which).
fn moved(sig: c_int) {
    if READY.load(Ordering::SeqCst) && sig as u32 == crate::checkpoint::control::MIG_CONTROL.request_signal.load(Ordering::SeqCst) {
        crate::checkpoint::handler::choose_request_signal();
    }
}

/// mig's action on each signal, as the program first met it (handler 0: none seen).
static MIGS: [[AtomicU64; 4]; 65] = [const { [const { AtomicU64::new(0) }; 4] }; 65];

/// Whether `sig`'s action is one of mig's handlers (checkpoint, stop, rollback), which
/// the program reads back as the default: under mig, a signal of mig's does by default
/// what mig does with it. That action is remembered, so that the program setting the
/// default (putting back what it read) gets it back.
fn migs(sig: c_int) -> bool {
    let Some(act) = READY.load(Ordering::SeqCst).then(|| runtime::migs_action(sig)).flatten() else { return false };
    if let Some(slot) = MIGS.get(sig as usize) {
        for (w, v) in slot.iter().zip([act.handler, act.flags, act.restorer, act.mask]) {
            w.store(v, Ordering::SeqCst);
        }
    }
    true
}

/// The program set `sig` to its default: mig's action, where it had one, comes back.
fn default_set(sig: c_int) {
    let Some(slot) = MIGS.get(sig as usize) else { return };
    let [handler, flags, restorer, mask] = [0, 1, 2, 3].map(|i| slot[i].load(Ordering::SeqCst));
    if handler != 0 {
        let _ = crate::sys::sigaction(sig, Some(&mig_image::KSigaction { handler, flags, restorer, mask }), None);
    }
}

redhook::hook! {
    unsafe fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int => mig_sigaction {
        let migs = migs(sig);
        // SAFETY: the caller passes a valid `sigaction` when `act` is not null.
        let to_default = !act.is_null() && unsafe { (*act).sa_sigaction } == libc::SIG_DFL;
        let keep_migs = migs && to_default;
        if !act.is_null() && !keep_migs {
            // SAFETY: as above.
            check(sig, unsafe { (*act).sa_sigaction });
        }
        let was_held = held_signals::held(sig) || migs;
        let act = if keep_migs { std::ptr::null() } else { act };
        // SAFETY: forwarding the caller's arguments (an `act` setting mig's signal to
        // its default dropped).
        let r = unsafe { redhook::real!(sigaction)(sig, act, old) };
        if r == 0 && to_default && !migs {
            default_set(sig);
        }
        if r == 0 && was_held && !old.is_null() {
            // SAFETY: the caller's `old`, just filled: the default it believes in.
            unsafe {
                *old = std::mem::zeroed();
                (*old).sa_sigaction = libc::SIG_DFL;
            }
        }
        if !act.is_null() {
            held_signals::released(sig);
            moved(sig);
        }
        r
    }
}

redhook::hook! {
    unsafe fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t => mig_signal {
        if handler == libc::SIG_DFL && migs(sig) {
            return libc::SIG_DFL;
        }
        check(sig, handler);
        let was_held = held_signals::held(sig) || migs(sig);
        // SAFETY: forwarding the caller's arguments unchanged.
        let r = unsafe { redhook::real!(signal)(sig, handler) };
        if handler == libc::SIG_DFL && r != libc::SIG_ERR {
            default_set(sig);
        }
        held_signals::released(sig);
        moved(sig);
        if was_held && r != libc::SIG_ERR { libc::SIG_DFL } else { r }
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
        closed(fd);
        // SAFETY: forwarding the caller's argument unchanged.
        unsafe { redhook::real!(close)(fd) }
    }
}
redhook::hook! {
    unsafe fn mmap(addr: *mut libc::c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: libc::off_t) -> *mut libc::c_void => mig_mmap {
        // SAFETY: forwarding the caller's arguments unchanged.
        mapped(unsafe { redhook::real!(mmap)(addr, len, prot, flags, fd, off) }, len, flags)
    }
}
redhook::hook! {
    unsafe fn munmap(addr: *mut libc::c_void, len: usize) -> c_int => mig_munmap {
        unmapped(addr, len);
        // SAFETY: forwarding the caller's arguments unchanged.
        unsafe { redhook::real!(munmap)(addr, len) }
    }
}

redhook::hook! {
    unsafe fn inotify_add_watch(fd: c_int, path: *const libc::c_char, mask: u32) -> c_int => mig_inotify_add_watch {
        // SAFETY: forwarding the caller's arguments unchanged.
        let wd = unsafe { redhook::real!(inotify_add_watch)(fd, path, mask) };
        if wd < 0 || path.is_null() {
            return wd;
        }
        // SAFETY: a NUL-terminated path, which the kernel just accepted.
        watched(fd, wd, unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes())
    }
}
redhook::hook! {
    unsafe fn inotify_rm_watch(fd: c_int, wd: c_int) -> c_int => mig_inotify_rm_watch {
        forget_watches(fd, Some(wd));
        // SAFETY: forwarding the caller's arguments unchanged.
        unsafe { redhook::real!(inotify_rm_watch)(fd, wd) }
    }
}
