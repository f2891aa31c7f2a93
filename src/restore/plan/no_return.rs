//! The point of no return: the last step that can still refuse, then every signal
//! blocked, and the loader's identity written into the hand-off.
#![allow(unsafe_code)]

use super::super::loader::Spawned;
use super::Refusal;
use crate::checkpoint::handoff::Handoff;
use crate::runtime;
use crate::sys;

/// Crosses it: after this the blob runs, or the process is gone. `last` runs once
/// nothing can refuse any more (it changes things outside the process).
pub(super) fn cross(spawned: Option<Spawned>, handoff_at: u64, last: impl FnOnce()) -> Result<(), Refusal> {
    // glibc's rseq area is in the TLS about to go away: unregistered last.
    unregister_rseq()?;
    // From here on no signal may run code of this process: block them all.
    let _ = sys::sigprocmask(libc::SIG_SETMASK, Some(u64::MAX), None);
    if let Some(spawned) = spawned {
        let (pid, start) = spawned.started().map_err(|why| format!("cannot start the loader of the lazily restored memory: {why}"))?;
        // SAFETY: the hand-off written into the hole (`handoff::write`); nothing else
        // refers to it yet.
        unsafe { (*(handoff_at as *mut Handoff)).loader = pid };
        // SAFETY: as above.
        unsafe { (*(handoff_at as *mut Handoff)).loader_start = start };
    }
    last();
    Ok(())
}

/// Unregisters the fresh process's rseq area (glibc registers one per thread in TLS).
fn unregister_rseq() -> Result<(), Refusal> {
    runtime::rseq_set(false).map_err(|e| format!("cannot unregister rseq (errno {})", e.0))
}
