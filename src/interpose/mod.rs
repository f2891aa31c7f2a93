//! Interposed libc calls. `/proc` is the truth about the process; these hooks add what
//! it cannot tell in time: that the program is taking over the checkpoint signal, which
//! would silently turn checkpoints off.
#![allow(unsafe_code)]

use crate::runtime;
use crate::sys::msg::msg;
use core::sync::atomic::{AtomicBool, Ordering};
use libc::{c_int, sighandler_t};

/// Set once the library's own handlers are installed: only later calls are the program's.
static READY: AtomicBool = AtomicBool::new(false);
static WARNED: AtomicBool = AtomicBool::new(false);

pub fn ready() {
    READY.store(true, Ordering::SeqCst);
}

/// Warns (once) when the program installs a handler on the checkpoint signal.
fn check(sig: c_int, handler: sighandler_t) {
    let Some(rt) = runtime::try_get() else { return };
    if !READY.load(Ordering::SeqCst) || sig as u32 != rt.settings.checkpoint_signal {
        return;
    }
    let ours = handler == crate::checkpoint::handler::on_checkpoint as *const () as sighandler_t;
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
