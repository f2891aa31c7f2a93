//! Ctrl-C during a migration: noted, so that mig can say what became of the process
//! (before the move it is untouched; once its checkpoint began, its image is kept here
//! until it runs there; after the move it goes on there).

use std::sync::atomic::{AtomicBool, Ordering};

static CAUGHT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    CAUGHT.store(true, Ordering::SeqCst);
}

pub fn catch() {
    // SAFETY: the handler only stores to an atomic.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
}

pub fn caught() -> bool {
    CAUGHT.load(Ordering::SeqCst)
}
