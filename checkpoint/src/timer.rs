//! `MIG_INTERVAL`: periodic checkpoints, driven by a POSIX timer that sends the
//! checkpoint signal. The restored process arms a new one from its new settings, so
//! this one is left out of the image.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::sys;
use core::sync::atomic::{AtomicI32, Ordering};

static OWN: AtomicI32 = AtomicI32::new(-1);

/// The id of the library's own timer, if one is armed.
pub fn own_id() -> Option<i32> {
    Some(OWN.load(Ordering::Relaxed)).filter(|&id| id >= 0)
}

/// Arms a timer that raises `sig` every `ms` milliseconds (0: nothing).
pub fn arm(ms: u64, sig: u32) {
    if ms == 0 {
        return;
    }
    let ev = sys::Sigevent::signal(sig as i32).to_bytes();
    let ts = [(ms / 1000) as i64, ((ms % 1000) * 1_000_000) as i64];
    if let Ok(id) = sys::timer_create(libc::CLOCK_MONOTONIC, &ev) {
        OWN.store(id, Ordering::Relaxed);
        let _ = sys::timer_settime(id, &[ts, ts]);
    }
}
