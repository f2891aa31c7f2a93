//! Step 9, last: every thread but the main one made again with `clone`; each starts
//! running restored code at once, with the hand-off in rdx.

use super::super::blob::{CHECK_OK, CLONE_RESUME};
use super::program::Program;
use mig_image::{Image, Table};

/// One `clone` per saved thread after the first (the first is the main thread: it
/// becomes this process's main thread).
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
        let args = [flags, th.ctx.rsp, th.clear_tid, th.clear_tid, th.fs_base, handoff_at];
        prog.op(libc::SYS_clone, &args, CHECK_OK | CLONE_RESUME, "recreating a thread").store = ctx_at;
    }
}
