//! Process attributes (the `mm` fields, auxiliary vector, working directory, umask,
//! limits, interval timers, signal actions, name, CPU features and executable): the
//! save side, into the image's `ProcessRecord`. Put back by the blob: the restore side
//! is the planner's `plan/process.rs`.
#![allow(unsafe_code)]

use crate::collect::slurp;
use crate::failure::Failure;
use crate::runtime;
use crate::scratch::List;
use crate::snapshot::Snapshot;
use crate::{files, sys};
use mig_image::MmFields;

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
    let n = sys::getcwd(&mut cwd).map_err(|e| Failure::Sys("getcwd", e))?;
    p.cwd = s.strings.add(cwd.get(..n.saturating_sub(1)).unwrap_or(&[]))?;
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
    let exe = &runtime::get().exe;
    p.cpu = sys::cpu_features();
    p.exe = files::identify(exe.as_bytes(), &mut s.strings)?.ok_or(Failure::Other("the executable is gone"))?;
    Ok(())
}
