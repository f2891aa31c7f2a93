//! Process attributes, the restore side (the save side is `mig_checkpoint::kinds::process`):
//! what the blob sets once the memory is back: the `mm` fields (step 4), signal actions
//! (6), and the working directory, umask, limits, timers and name (8).

use super::super::blob::CHECK_OK;
use super::program::Program;
use crate::sys;
use mig_image::{ATTR_CWD_DELETED, Attributes, Image, ProcessRecord, Rlimit, slice_bytes};
use std::os::unix::ffi::OsStrExt;

/// Step 4: brk and the other mm fields (also makes /proc/<pid>/cmdline the saved one).
pub(super) fn mm_fields(prog: &mut Program, img: &Image, p: &ProcessRecord) {
    let auxv = img.str(p.auxv);
    let auxv_at = prog.arena.bytes(auxv);
    let mm = p.mm;
    let mm_map: [u64; 13] = [
        mm.start_code,
        mm.end_code,
        mm.start_data,
        mm.end_data,
        mm.start_brk,
        mm.brk,
        mm.start_stack,
        mm.arg_start,
        mm.arg_end,
        mm.env_start,
        mm.env_end,
        auxv_at,
        (auxv.len() as u64) | (u32::MAX as u64) << 32,
    ];
    let mm_at = prog.arena.bytes(slice_bytes(&mm_map));
    prog.op(libc::SYS_prctl, &[libc::PR_SET_MM as u64, libc::PR_SET_MM_MAP as u64, mm_at, 104], CHECK_OK, "setting brk and the mm fields");
}

/// Step 6: signal actions (the mask comes back with the signal frame).
pub(super) fn signal_actions(prog: &mut Program, p: &ProcessRecord) {
    for (i, a) in p.sigactions.iter().enumerate() {
        let sig = i as u64 + 1;
        if sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64 {
            continue;
        }
        let at = prog.arena.put(a);
        prog.op(libc::SYS_rt_sigaction, &[sig, at, 0, 8], CHECK_OK, "restoring a signal action");
    }
}

/// Step 8: working directory, umask, limits (no higher than this process may set),
/// timers (`timers`: the POSIX timers made again, with what they had left), name.
pub(super) fn attributes(prog: &mut Program, img: &Image, p: &ProcessRecord, timers: &[(i32, [i64; 4])]) {
    let cwd_at = prog.arena.bytes(img.str(p.cwd));
    if p.attrs.flags & ATTR_CWD_DELETED == 0 {
        prog.op(libc::SYS_chdir, &[cwd_at], CHECK_OK, "changing to the saved working directory");
    }
    prog.op(libc::SYS_umask, &[p.umask as u64], 0, "setting the umask");
    for (res, saved) in p.rlimits.iter().enumerate() {
        let mut now = Rlimit::default();
        if sys::prlimit(res as u32, None, &mut now).is_err() {
            continue;
        }
        let max = saved.max.min(now.max);
        let lim = Rlimit { cur: saved.cur.min(max), max };
        let at = prog.arena.put(&lim);
        prog.op(libc::SYS_prlimit64, &[0, res as u64, at, 0], 0, "setting a resource limit");
    }
    for (which, t) in p.itimers.iter().enumerate() {
        let at = prog.arena.put(t);
        prog.op(libc::SYS_setitimer, &[which as u64, at, 0], CHECK_OK, "arming an interval timer");
    }
    for (id, spec) in timers {
        let at = prog.arena.bytes(slice_bytes(spec));
        prog.op(libc::SYS_timer_settime, &[*id as u64, 0, at, 0], CHECK_OK, "arming a POSIX timer");
    }
    let comm_at = prog.arena.bytes(&p.comm);
    prog.op(libc::SYS_prctl, &[libc::PR_SET_NAME as u64, comm_at], 0, "setting the process name");
}

/// The process-wide `prctl` settings, personality and `oom_score_adj`, set now, before
/// the point of no return: they outlive the blob (the process and its memory map stay
/// this one), and what the kernel refuses can still be said.
pub(super) fn settings(img: &Image, a: &Attributes) {
    if a.flags & ATTR_CWD_DELETED != 0 {
        removed_cwd(std::path::Path::new(std::ffi::OsStr::from_bytes(img.str(img.process().cwd))));
    }
    let warn = |what: &str| eprintln!("mig: warning: {what} cannot be set back: {}", std::io::Error::last_os_error());
    let now = std::fs::read_to_string("/proc/self/oom_score_adj").ok().and_then(|s| s.trim().parse::<i32>().ok());
    if now != Some(a.oom_score_adj) && std::fs::write("/proc/self/oom_score_adj", a.oom_score_adj.to_string()).is_err() {
        eprintln!(
            "mig: warning: oom_score_adj stays {} (the image has {}): lowering it needs CAP_SYS_RESOURCE",
            now.map_or("unknown".into(), |n| n.to_string()),
            a.oom_score_adj
        );
    }
    // SAFETY: each prctl and personality call below takes values, no addresses.
    unsafe {
        if libc::personality(0xffff_ffff) as u32 != a.personality && libc::personality(a.personality as libc::c_ulong) < 0 {
            warn("the personality");
        }
        let set = |op: libc::c_int, v: u32, what: &str| {
            if libc::prctl(op, v as libc::c_ulong, 0, 0, 0) < 0 {
                warn(what);
            }
        };
        set(libc::PR_SET_CHILD_SUBREAPER, a.child_subreaper, "PR_SET_CHILD_SUBREAPER");
        if a.thp_disable != 0 {
            set(libc::PR_SET_THP_DISABLE, 1, "PR_SET_THP_DISABLE");
        }
        if a.no_new_privs != 0 {
            set(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS");
        }
        // Without one of its own, the process keeps the one it was started with (`mig
        // restart`'s: it ends with the command that waits for it).
        if a.pdeathsig != 0 {
            set(libc::PR_SET_PDEATHSIG, a.pdeathsig, "PR_SET_PDEATHSIG");
        }
        set(libc::PR_SET_DUMPABLE, a.dumpable.min(1), "PR_SET_DUMPABLE");
        for bit in (0..32).map(|b| 1u32 << b).filter(|b| a.membarrier & b != 0) {
            if libc::syscall(libc::SYS_membarrier, bit, 0, 0) < 0 {
                warn("a membarrier registration");
            }
        }
    }
}

/// Works in a removed directory, as the process did: a new one is made (beside where
/// the old one was, else in the temporary directory), entered and removed.
fn removed_cwd(old: &std::path::Path) {
    let name = format!(".mig-cwd.{}", std::process::id());
    let places = [old.parent().map(|d| d.join(&name)), Some(std::env::temp_dir().join(&name))];
    for dir in places.into_iter().flatten() {
        if std::fs::create_dir(&dir).is_ok() {
            let entered = std::env::set_current_dir(&dir).is_ok();
            let _ = std::fs::remove_dir(&dir);
            if entered {
                return;
            }
        }
    }
    eprintln!(
        "mig: warning: the working directory {} was removed before the checkpoint, and no removed one could be made: the process works in {}",
        old.display(),
        std::env::current_dir().map_or("?".into(), |d| d.display().to_string())
    );
}
