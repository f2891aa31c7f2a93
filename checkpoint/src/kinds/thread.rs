//! Threads: the save side, each stopped thread's own `ThreadRecord` (registers, TLS,
//! tid address, robust list, rseq, alternate stack), made by the thread itself on its
//! stop. Made again by the blob: the restore side is the planner's `plan/threads.rs`.
#![allow(unsafe_code)]

use crate::sys;
use mig_image::{Context, ThreadRecord};

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
    }
}
