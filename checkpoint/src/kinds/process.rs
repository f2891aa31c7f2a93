//! Process attributes (the `mm` fields, auxiliary vector, working directory, umask,
//! limits, interval timers, signal actions, name, CPU features, executable, and the
//! `prctl` settings, personality and `oom_score_adj`): the save side, into the image's
//! `ProcessRecord`. Put back by the blob, or by the planner where a failure can still
//! be said: the restore side is the planner's `plan/process.rs`.
#![allow(unsafe_code)]

use crate::collect::slurp;
use crate::failure::Failure;
use crate::maps::dec;
use crate::runtime;
use crate::scratch::List;
use crate::snapshot::Snapshot;
use crate::sys::{CPath, Errno};
use crate::{files, sys};
use mig_image::{ATTR_CWD_DELETED, ATTR_MLOCK_FUTURE, ATTR_MLOCK_ONFAULT, Attributes, MmFields};

pub fn save(s: &mut Snapshot, text: &mut List<u8>) -> Result<(), Failure> {
    let p = &mut s.process;
    slurp(b"/proc/self/stat", text)?;
    let stat = text.as_slice();
    let after_comm = stat.iter().rposition(|&c| c == b')').map_or(stat, |i| stat.get(i + 2..).unwrap_or(&[]));
    // Field 3 of stat(5) is the first one after the command name.
    let field = |n: usize| -> u64 {
        let f = after_comm.split(|&c| c == b' ').nth(n - 3).unwrap_or(b"0");
        f.iter().take_while(|c| c.is_ascii_digit()).fold(0u64, |a, &c| a.wrapping_mul(10).wrapping_add((c - b'0') as u64))
    };
    p.ctty = field(7) as u32;
    p.mm = MmFields {
        start_code: field(26),
        end_code: field(27),
        start_stack: field(28),
        start_data: field(45),
        end_data: field(46),
        start_brk: field(47),
        // SAFETY: brk(0) only asks where the break is.
        brk: unsafe { sys::brk(0) } as u64,
        arg_start: field(48),
        arg_end: field(49),
        env_start: field(50),
        env_end: field(51),
    };
    slurp(b"/proc/self/auxv", text)?;
    p.auxv = s.strings.add(text.as_slice())?;

    let mut cwd = [0u8; 4096];
    let mut cwd_deleted = false;
    p.cwd = match sys::getcwd(&mut cwd) {
        Ok(n) => s.strings.add(cwd.get(..n.saturating_sub(1)).unwrap_or(&[]))?,
        // Removed while the program works in it: the kernel still names it.
        Err(Errno(libc::ENOENT)) => {
            let link = CPath::new(b"/proc/self/cwd").ok_or(Failure::Full)?;
            let n = sys::readlink(&link, &mut cwd).map_err(|e| Failure::Sys("readlink /proc/self/cwd", e))?;
            let path = cwd.get(..n).unwrap_or(&[]);
            cwd_deleted = true;
            s.strings.add(path.strip_suffix(b" (deleted)").unwrap_or(path))?
        }
        Err(e) => return Err(Failure::Sys("getcwd", e)),
    };
    p.umask = sys::umask(0o022);
    sys::umask(p.umask);
    p.comm = sys::get_name();
    for (res, lim) in p.rlimits.iter_mut().enumerate() {
        let _ = sys::prlimit(res as u32, None, lim);
    }
    for (which, t) in p.itimers.iter_mut().enumerate() {
        let _ = sys::getitimer(which as i32, t);
    }
    for (i, a) in p.sigactions.iter_mut().enumerate() {
        let _ = sys::sigaction(i as i32 + 1, None, Some(a));
    }
    p.attrs = attributes(text)?;
    if cwd_deleted {
        p.attrs.flags |= ATTR_CWD_DELETED;
    }
    let mlockall = crate::intent::mlockall_flags();
    if mlockall & libc::MCL_FUTURE as u32 != 0 {
        p.attrs.flags |= ATTR_MLOCK_FUTURE | if mlockall & libc::MCL_ONFAULT as u32 != 0 { ATTR_MLOCK_ONFAULT } else { 0 };
    }
    let exe = &runtime::get().exe;
    p.cpu = sys::cpu_features();
    p.exe = files::identify(exe.as_bytes(), &mut s.strings)?.ok_or(Failure::Other("the executable is gone"))?;
    Ok(())
}

/// The process-wide `prctl` settings, personality and `oom_score_adj`.
fn attributes(text: &mut List<u8>) -> Result<Attributes, Failure> {
    slurp(b"/proc/self/oom_score_adj", text)?;
    let adj = text.as_slice().split(|c| c.is_ascii_whitespace()).next().unwrap_or(b"0");
    let (neg, digits) = match adj.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, adj),
    };
    let n = dec(digits).unwrap_or(0).min(1000) as i32;
    let flag = |op| sys::prctl_get(op).map_or(0, |v| v.min(2) as u32);
    slurp(b"/proc/self/status", text)?;
    let status_field = |key: &[u8]| crate::fdinfo::field(text.as_slice(), key).and_then(dec).unwrap_or(0) as u32;
    let (seccomp, seccomp_filters) = (status_field(b"Seccomp:").min(2), status_field(b"Seccomp_filters:"));
    Ok(Attributes {
        oom_score_adj: if neg { -n } else { n },
        personality: sys::personality(),
        child_subreaper: sys::prctl_get_int(libc::PR_GET_CHILD_SUBREAPER).map_or(0, |v| (v != 0) as u32),
        thp_disable: flag(libc::PR_GET_THP_DISABLE).min(1),
        no_new_privs: flag(libc::PR_GET_NO_NEW_PRIVS).min(1),
        dumpable: sys::prctl_get(libc::PR_GET_DUMPABLE).map_or(1, |v| v.min(2) as u32),
        pdeathsig: match sys::prctl_get_int(libc::PR_GET_PDEATHSIG).map_or(0, |v| v.clamp(0, 64) as u32) {
            // `mig restart`'s, which waits for the process: not the program's own.
            s if s == libc::SIGKILL as u32 && crate::runtime::get().settings.parent_guard => 0,
            s => s,
        },
        flags: 0,
        seccomp,
        seccomp_filters,
        membarrier: sys::membarrier_registrations() & mig_image::MEMBARRIER_REGISTRATIONS,
        // `seccomp::save` fills these in once the threads are known.
        seccomp_saved: 0,
        seccomp_programs: Default::default(),
    })
}
