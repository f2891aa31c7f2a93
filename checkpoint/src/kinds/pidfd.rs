//! pidfds: one of the process itself is made again for the restored process; one of
//! a process that ended and was reaped, for a process that did too; one of another
//! process of the job, for that process (back with its pid). One of any other process
//! cannot be (it comes back as a broken end, said).

use crate::fdinfo::field;
use crate::maps::dec;
use crate::sys;
use mig_image::{FdKind, FdRecord, PIDFD_ENDED, PIDFD_JOB, PIDFD_OWN, Params, PidfdParams};

/// What a pidfd of another process becomes, said at checkpoint time.
pub const OTHER: &str = "it is a pidfd of a process outside the job; it comes back as a broken pipe end";

/// The kind of a pidfd, from its `fdinfo` `text` (`Pid:` -1 once the process was
/// reaped).
pub fn save(text: &[u8], rec: &mut FdRecord) -> FdKind {
    let pid = field(text, b"Pid:");
    let params = match pid.and_then(dec) {
        Some(p) if p == sys::getpid() as u64 => PidfdParams { of: PIDFD_OWN, pid: 0 },
        // Another process of the job is one `mig checkpoint` saves too; it comes back
        // with its pid where pids may be chosen (the restore checks).
        Some(p) if crate::control::in_job() && p > 0 && p <= i32::MAX as u64 => PidfdParams { of: PIDFD_JOB, pid: p as u32 },
        None if pid == Some(b"-1") => PidfdParams { of: PIDFD_ENDED, pid: 0 },
        _ => return FdKind::Unsupported,
    };
    rec.params = params.encode();
    FdKind::Pidfd
}

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn restore(f: &FdRecord, cx: &super::Shared) -> std::io::Result<i32> {
    use super::os::*;
    let nonblock = if f.flags & libc::O_NONBLOCK as u32 != 0 { libc::O_NONBLOCK } else { 0 };
    let open = |pid: i32| {
        // SAFETY: pidfd_open of a pid.
        last_error(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, nonblock) } as i32)
    };
    let p = PidfdParams::decode(&f.params);
    match p.of {
        // SAFETY: getpid.
        PIDFD_OWN => open(unsafe { libc::getpid() }),
        PIDFD_ENDED => ended(nonblock),
        _ => {
            // Only a process of the job (its saved table says), and only where the
            // job's pids came back (this process has its own): the pid may be
            // another's otherwise.
            // SAFETY: getpid.
            let own_pid_back = unsafe { libc::getpid() } as u64 == cx.img.header.pid as u64;
            match (own_pid_back && cx.job_pids.contains(&p.pid)).then(|| open(p.pid as i32)) {
                Some(Ok(fd)) => Ok(fd),
                _ => {
                    eprintln!(
                        "mig: warning: descriptor {}: the pidfd of process {} of the job cannot be made again; it comes back as a broken pipe end",
                        f.fd, p.pid
                    );
                    broken_end(false, libc::O_RDONLY)
                }
            }
        }
    }
}

/// A pidfd of a process that ended and was reaped: of a child made for it, which ends
/// at once and is reaped here.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
fn ended(flags: i32) -> std::io::Result<i32> {
    use super::os::*;
    // SAFETY: a child that only exits; pidfd_open and waitpid on it.
    unsafe {
        let child = last_error::<i32>(libc::syscall(libc::SYS_clone, libc::SIGCHLD as u64, 0usize, 0usize, 0usize, 0usize) as i32)?;
        if child == 0 {
            libc::_exit(0);
        }
        let fd = libc::syscall(libc::SYS_pidfd_open, child, flags) as i32;
        let err = Error::last_os_error();
        let mut st = 0;
        libc::waitpid(child, &mut st, 0);
        if fd < 0 { Err(err) } else { Ok(fd) }
    }
}
