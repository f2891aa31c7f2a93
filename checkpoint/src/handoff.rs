//! What a restore hands to the restored process: its new settings, and the hole to
//! unmap. Built by `plan` in the hole; read by the resumed checkpoint handler.
#![allow(unsafe_code)]

use crate::runtime::{FixedPath, Settings};
use crate::sys::{self, msg::msg};

pub const MAGIC: u64 = 0x6d69_675f_6861_6e64; // "mig_hand"

#[repr(C)]
pub struct Handoff {
    pub magic: u64,
    pub settings: Settings,
    /// The image, for messages.
    pub restored_from: FixedPath,
    /// The image as a rollback target: its own path and (device, inode); an empty path
    /// for one that is no file (a memory file from `mig restart -`).
    pub rollback_path: FixedPath,
    pub image_id: (u64, u64),
    /// The image header's (pid, creation time).
    pub image_header: (u32, u64),
    pub hole_start: u64,
    pub hole_len: u64,
    /// CLOCK_MONOTONIC when the restore started (for the debug log).
    pub started_ns: u64,
    /// The loader of the lazily restored memory (0: none) and its start time.
    pub loader: u32,
    pub loader_start: u64,
}

/// Runs in the restored process, inside the checkpoint handler that the saved process
/// was in, before it returns to the program (which then installs itself again, for
/// the restored process's checkpoint signal).
///
/// # Safety
/// `h` must be the hand-off the restore blob passed, in the still-mapped hole; every
/// signal must be blocked (it is: the handler's mask, then the restore's).
pub unsafe fn resume(h: *const Handoff) {
    // SAFETY: the caller passes the blob's hand-off pointer, valid until unmapped below.
    let h = unsafe { &*h };
    if h.magic != MAGIC {
        msg().s("restore hand-off is damaged").emit();
        sys::exit_group(mig_image::EXIT_RESTORE_FAILED);
    }
    // SAFETY: signals are blocked and this is the only thread.
    if let Some(s) = unsafe { crate::runtime::settings_mut() } {
        *s = h.settings;
        sys::msg::DEBUG.store(s.debug, core::sync::atomic::Ordering::Relaxed);
    }
    if sys::msg::debug_enabled() {
        let ms = (sys::clock_monotonic_ns().saturating_sub(h.started_ns)) / 1_000_000;
        msg().s("restored from ").bytes(h.restored_from.as_bytes()).s(" in ").num(ms).s(" ms").emit();
    }
    crate::writers::forget_writer();
    if !h.rollback_path.is_empty() {
        crate::rollback::wrote(h.rollback_path, h.image_id, h.image_header);
    }
    crate::lazy::set_loader(h.loader, h.loader_start);
    crate::timer::arm(h.settings.interval_ms, h.settings.checkpoint_signal);
    let (start, len) = (h.hole_start as usize, h.hole_len as usize);
    // SAFETY: the restore's hole (its blob, stack and arguments): every thread has
    // left it (the handoff runs after they checked in) and `h` was copied out of it.
    let _ = unsafe { sys::munmap(start, len) };
}
