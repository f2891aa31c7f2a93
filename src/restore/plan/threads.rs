//! Threads, the restore side (the save side is `mig_checkpoint::kinds::thread`): the
//! main thread's TLS and tid address (step 5), and, last (step 9), every other thread
//! made again with `clone`; each starts running restored code at once, with the
//! hand-off in rdx.

use super::super::blob::{CHECK_OK, CLONE_RESUME, RETRY_EEXIST, SKIP_NEXT_IF_OK, STORE_U32};
use super::program::Program;
use crate::sys;
use mig_image::{Image, Table, ThreadRecord, slice_bytes};

/// Step 5: the main thread's TLS and tid address (and glibc's cached tid). Robust list,
/// rseq and alternate stack each thread registers itself once resumed.
pub(super) fn main_thread(prog: &mut Program, t: &ThreadRecord) {
    prog.op(libc::SYS_arch_prctl, &[sys::ARCH_SET_FS as u64, t.fs_base], CHECK_OK, "setting the TLS base");
    if t.clear_tid != 0 {
        prog.op(libc::SYS_set_tid_address, &[t.clear_tid], STORE_U32, "setting the tid address").store = t.clear_tid;
    }
}

/// One `clone` per saved thread after the first (the first is the main thread: it
/// becomes this process's main thread). Each asks first for the thread's saved tid
/// (`clone3` with `set_tid`: glibc keeps the tid in the mutexes a thread owns, and
/// programs keep it for `tgkill`), which needs `CAP_CHECKPOINT_RESTORE` (or root) and a
/// free tid (one an ending thread holds is waited for, briefly); failing that, a plain
/// `clone` gives it a new one.
pub(super) fn recreate(prog: &mut Program, img: &Image, handoff_at: u64) {
    for i in 1..img.count(Table::Threads) {
        let th = img.thread(i);
        let ctx_at = prog.arena.put(&th.ctx);
        let flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        let tid_at = prog.arena.bytes(slice_bytes(&[th.tid as u64]));
        // struct clone_args up to set_tid_size (CLONE_ARGS_SIZE_VER1); the child's stack
        // pointer is stack + stack_size: the saved one.
        let clone_args: [u64; 10] = [flags, 0, th.clear_tid, th.clear_tid, 0, th.ctx.rsp - 8, 8, th.fs_base, tid_at, 1];
        let args_at = prog.arena.bytes(slice_bytes(&clone_args));
        let same = [args_at, size_of_val(&clone_args) as u64, 0, 0, 0, handoff_at];
        prog.op(libc::SYS_clone3, &same, CLONE_RESUME | SKIP_NEXT_IF_OK | RETRY_EEXIST, "recreating a thread with its tid").store = ctx_at;
        let args = [flags, th.ctx.rsp, th.clear_tid, th.clear_tid, th.fs_base, handoff_at];
        prog.op(libc::SYS_clone, &args, CHECK_OK | CLONE_RESUME, "recreating a thread").store = ctx_at;
    }
}
