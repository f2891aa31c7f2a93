//! Signals sent and not taken yet when a checkpoint has stopped every thread. The
//! kernel keeps them, not the process's memory: each stopped thread takes its own (the
//! main thread also the process's) into a list on its stop stack, which the image
//! holds, and queues them again as it leaves the stop. After the checkpoint, and after a restore,
//! each is pending again, with what came with it (sender, value, code), for the same
//! thread or for the process. mig's own signals (a checkpoint asked for meanwhile) are
//! left where they are.

use crate::sys::{self, msg::msg};

/// At most this many per thread, and as many for the process; more stay queued in the
/// kernel (pending again after the checkpoint, missing after a restore, which a warning
/// says).
const MAX: usize = 16;
/// The first real-time signal as the kernel counts (queued once per sending).
const KERNEL_SIGRTMIN: i32 = 32;

pub struct Held {
    n: usize,
    /// Bit `i`: entry `i` was the process's (else the thread's own).
    shared: u32,
    sig: [u8; MAX],
    info: [[u8; 128]; MAX],
}

impl Held {
    pub const NONE: Held = Held { n: 0, shared: 0, sig: [0; MAX], info: [[0; 128]; MAX] };

    /// Takes the calling thread's pending signals and, in the main thread, the
    /// process's. Call with every signal blocked.
    pub fn take() -> Held {
        let mut held = Held::NONE;
        // Nothing pending (the usual case): one system call.
        let pending = sys::sigpending();
        if pending == 0 {
            return held;
        }
        let skip = migs_own(pending);
        let (pid, tid) = (sys::getpid(), sys::gettid());
        held.take_from(|| crate::tracer::signal_sets(pid, tid).own & !skip, false);
        if pid == tid {
            held.take_from(|| crate::tracer::signal_sets(pid, tid).shared & !skip, true);
        }
        held
    }

    fn take_from(&mut self, set: impl Fn() -> u64, shared: bool) {
        let mut left = set();
        let mut missed = 0;
        while left != 0 {
            let sig = left.trailing_zeros() as i32 + 1;
            let bit = 1u64 << (sig - 1);
            let (Some(s), Some(info)) = (self.sig.get_mut(self.n), self.info.get_mut(self.n)) else {
                missed += left.count_ones();
                break;
            };
            if !sys::take_pending_info(sig, info) {
                left &= !bit;
                continue;
            }
            *s = sig as u8;
            self.shared |= (shared as u32) << self.n;
            self.n += 1;
            // A real-time signal may be queued several times: look again.
            left = if sig >= KERNEL_SIGRTMIN { set() & !(bit - 1) } else { left & !bit };
        }
        if missed > 0 {
            msg()
                .s("warning: thread ")
                .num(sys::gettid() as u64)
                .s(if shared { ": the process has more than " } else { ": it has more than " })
                .num(MAX as u64)
                .s(" signals pending; those beyond stay pending but are not in the image")
                .emit();
        }
    }

    /// Queues the signals taken again (after the checkpoint, or after a restore).
    pub fn put_back(&self) {
        for i in 0..self.n {
            let (Some(&sig), Some(info)) = (self.sig.get(i), self.info.get(i)) else { break };
            let r = if self.shared & (1 << i) != 0 { sys::queue_to_process(sig as i32, info) } else { sys::queue_to_self(sig as i32, info) };
            if let Err(e) = r {
                msg().s("warning: signal ").num(sig as u64).s(" pending at the checkpoint could not be queued again (errno ").num(e.0 as u64).s(")").emit();
            }
        }
    }
}

/// Those of `set` whose action is one of mig's handlers.
fn migs_own(set: u64) -> u64 {
    let mut own = 0u64;
    for sig in (1..=64).filter(|s| set & (1 << (s - 1)) != 0 && crate::runtime::migs_action(*s).is_some()) {
        own |= 1 << (sig - 1);
    }
    own
}
