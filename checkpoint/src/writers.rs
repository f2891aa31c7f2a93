//! The writers of the last checkpoint (a forked writer or a pre-copy's copier): quiet
//! children of the program, reaped by the next checkpoint.

use crate::sys::{self, msg::msg};
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// The writers of the last checkpoint (a forked writer or a pre-copy's copier), reaped
/// at the next checkpoint (they send no SIGCHLD and no `wait` of the program sees them).
static WRITERS: [AtomicU32; 2] = [const { AtomicU32::new(0) }; 2];

/// After a restore: the writers recorded in the image are not this process's
/// children (`pid`: one that is, 0: none).
pub fn set_writer(pid: u32) {
    WRITERS[0].store(pid, Relaxed);
    WRITERS[1].store(0, Relaxed);
}

pub fn add_writer(pid: u32) {
    if WRITERS[0].compare_exchange(0, pid, Relaxed, Relaxed).is_err() {
        WRITERS[1].store(pid, Relaxed);
    }
}

/// The previous writers are waited for: images are written one at a time, in order,
/// and no writer is left unreaped. One killed before it finished is said: its image
/// was not made (its temporary file goes with the next sweep).
pub fn writer_reap() {
    for w in &WRITERS {
        let pid = w.swap(0, Relaxed);
        if pid != 0
            && let Some(sig) = sys::reap_quiet(pid)
        {
            msg()
                .s("warning: the writer of the previous checkpoint (pid ")
                .num(pid as u64)
                .s(") was killed by signal ")
                .num(sig as u64)
                .s(" before it finished: that image was not made")
                .emit();
        }
    }
}
