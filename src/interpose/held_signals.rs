//! Signals the job's supervisor answers (`MIG_CHECKPOINT_ON`, set by `mig run
//! --checkpoint-on`): a batch system sends them to every process of the job (Slurm's
//! SIGTERM before it kills a job it preempts or whose time is up), and the supervisor
//! saves the whole job instead. Each process that leaves such a signal at its default
//! action (which would end it) ignores it instead, and whoever asks is told the default
//! is in force; a program that sets its own action gets the signal, as it asked.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// The signals ignored for the supervisor (bit `sig - 1`), until the program sets its
/// own action on one.
static HELD: AtomicU64 = AtomicU64::new(0);

/// At start: ignores each signal of `MIG_CHECKPOINT_ON` whose action is the default
/// (or already ignored: inherited from a process of the job across exec).
pub fn init(checkpoint_signal: u32) {
    let Ok(list) = std::env::var(mig_proto::env::CHECKPOINT_ON) else { return };
    for sig in list.split(',').filter_map(|s| mig_proto::signal::parse(s.trim())) {
        let sig = sig as i32;
        if sig == checkpoint_signal as i32 || !(1..=64).contains(&sig) || sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: reading and setting a signal's action with plain `sigaction` values.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || !(old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN) {
                continue;
            }
            let mut ign: libc::sigaction = std::mem::zeroed();
            ign.sa_sigaction = libc::SIG_IGN;
            if libc::sigaction(sig, &ign, std::ptr::null_mut()) == 0 {
                HELD.fetch_or(1 << (sig - 1), SeqCst);
            }
        }
    }
}

/// Whether `sig` is held for the supervisor.
pub fn held(sig: i32) -> bool {
    (1..=64).contains(&sig) && HELD.load(SeqCst) & (1 << (sig - 1)) != 0
}

/// The program sets its own action on `sig`: it is the program's from now on.
pub fn released(sig: i32) {
    if (1..=64).contains(&sig) {
        HELD.fetch_and(!(1 << (sig - 1)), SeqCst);
    }
}
