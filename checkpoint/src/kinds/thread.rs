//! Threads: the save side, each stopped thread's own `ThreadRecord` (registers, TLS,
//! tid address, robust list, rseq, alternate stack, scheduling), made by the thread
//! itself on its stop. Made again by the blob: the restore side is the planner's `plan/threads.rs`.
#![allow(unsafe_code)]

use crate::sys::{self, msg::msg};
use mig_image::{Context, ThreadRecord, ThreadSched};

/// The calling thread's record.
pub fn save(ctx: &Context) -> ThreadRecord {
    let rt = crate::runtime::get();
    let fs_base = sys::fs_base();
    let clear_tid = sys::tid_address();
    let (robust_head, robust_len) = sys::robust_list();
    // SAFETY: `stack_t` is plain old data.
    let mut ss: libc::stack_t = unsafe { core::mem::zeroed() };
    let _ = sys::sigaltstack(&mut ss);
    let rseq = rt.rseq_len != 0;
    ThreadRecord {
        tid: sys::gettid(),
        rseq_len: if rseq { rt.rseq_len } else { 0 },
        ctx: *ctx,
        fs_base,
        clear_tid,
        robust_head,
        robust_len,
        rseq_addr: if rseq { fs_base.wrapping_add(rt.rseq_offset as u64) } else { 0 },
        rseq_sig: crate::runtime::RSEQ_SIG,
        // Running on the alternate stack is a property of this moment, not a setting.
        altstack_flags: (ss.ss_flags & !libc::SS_ONSTACK) as u32,
        altstack_sp: ss.ss_sp as u64,
        altstack_size: ss.ss_size as u64,
        sched: sched(),
    }
}

/// The calling thread's scheduling (zeroes for what cannot be read: not set back).
fn sched() -> ThreadSched {
    let mut s = ThreadSched::ZERO;
    match sys::sched_getattr() {
        // SCHED_OTHER, FIFO, RR, BATCH, IDLE.
        Ok(a) if matches!(a.policy, 0 | 1 | 2 | 3 | 5) => {
            s.policy = a.policy;
            s.flags = (a.flags & 1) as u32; // SCHED_FLAG_RESET_ON_FORK
            s.priority = a.priority;
            s.nice = a.nice;
        }
        Ok(a) => msg().s("warning: thread ").num(sys::gettid() as u64).s(" has scheduling policy ").num(a.policy as u64).s(", which is not restored").emit(),
        Err(_) => {}
    }
    s.timerslack_ns = sys::prctl_get(libc::PR_GET_TIMERSLACK).map_or(0, |v| v as u64);
    if sys::sched_getaffinity(&mut s.affinity).is_err() {
        s.affinity = [0; 16];
    }
    s
}
