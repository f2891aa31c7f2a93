//! Starting the loader: the userfaultfd and pipe it is handed, the two forks that make
//! it no child of the restored process, and the loader process's own setup.
#![allow(unsafe_code)]

use super::uffd::userfaultfd;
use super::watchdog::watchdog;
use super::{Loader, Plan, close, pipe};
use crate::restore::fds::raise_fd;
use crate::sys;

const IOPRIO_WHO_PROCESS: i32 = 1;
pub(super) const IOPRIO_CLASS_BE: i32 = 2;
pub(super) const IOPRIO_CLASS_IDLE: i32 = 3;

/// What the restore blob needs of the loader, made before anything is decided.
pub struct Channel {
    /// The userfaultfd, to register the lazy regions with (the blob closes it).
    pub uffd: i32,
    /// The blob writes one byte here once every lazy region is registered (and closes it).
    pub ready: i32,
    ready_r: i32,
}

/// Field 22 of `/proc/<pid>/stat`: when it started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.iter().rposition(|&c| c == b')')?;
    let field = stat.get(after + 2..)?.split(|&c| c == b' ').nth(22 - 3)?;
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// The userfaultfd and the pipe the blob tells the loader on (at `base` or above), or
/// why a lazy restore cannot be had here: then everything is read in.
pub fn channel(base: i32) -> Result<Channel, String> {
    let uffd = raise_fd(userfaultfd()?, base)?;
    let [ready_r, ready] = pipe().inspect_err(|_| close(uffd))?;
    match (raise_fd(ready_r, base), raise_fd(ready, base)) {
        (Ok(ready_r), Ok(ready)) => Ok(Channel { uffd, ready, ready_r }),
        (a, b) => {
            a.into_iter().chain(b).chain([uffd]).for_each(close);
            Err("no descriptor for the loader".into())
        }
    }
}

/// A loader being started (see [`spawn`]).
pub struct Spawned {
    between: u32,
    pid_r: i32,
}

/// Starts the loader of `plan` on `ch`, twice forked so that it is no child of the
/// restored process. It waits for the blob's byte on `ch.ready` before it hands over
/// anything; [`Spawned::started`] says who it is.
pub fn spawn(plan: Plan, ch: &Channel) -> Result<Spawned, String> {
    let me = sys::getpid();
    let pidfd = sys::pidfd_open(me).map_err(|e| format!("no pidfd (errno {})", e.0))?;
    let [pid_r, pid_w] = pipe().inspect_err(|_| close(pidfd))?;
    // Both forks are quiet (no SIGCHLD for the program); the one between is reaped by
    // `started`.
    let between = sys::fork_quiet();
    if between == Ok(0) {
        match sys::fork_quiet() {
            Ok(0) => run(plan, Fds { uffd: ch.uffd, pidfd, ready: ch.ready_r }, me),
            Ok(pid) => {
                let _ = sys::write_all(pid_w, &pid.to_ne_bytes());
                sys::exit_group(0)
            }
            Err(_) => sys::exit_group(1),
        }
    }
    close(pid_w);
    close(pidfd);
    close(ch.ready_r);
    match between {
        Ok(between) => Ok(Spawned { between, pid_r }),
        Err(e) => {
            close(pid_r);
            Err(format!("cannot fork the loader (errno {})", e.0))
        }
    }
}

impl Spawned {
    /// Reaps the process between, and returns the loader's pid and start time (with the
    /// pid, who it is).
    pub fn started(self) -> Result<(u32, u64), String> {
        sys::reap_quiet(self.between);
        let mut pid = [0u8; 4];
        let got = sys::read(self.pid_r, &mut pid);
        close(self.pid_r);
        let pid = u32::from_ne_bytes(pid);
        match got {
            Ok(4) if pid != 0 => Ok((pid, start_time(pid).ok_or("the loader ended at once")?)),
            _ => Err("the loader did not start".into()),
        }
    }
}

pub(super) struct Fds {
    pub(super) uffd: i32,
    pub(super) pidfd: i32,
    pub(super) ready: i32,
}

/// Closes every descriptor but those in `keep`.
pub(super) fn close_all_but(keep: &mut [i32]) {
    keep.sort_unstable();
    let mut from = 0u32;
    for &fd in keep.iter().filter(|&&fd| fd >= 0) {
        if fd as u32 > from {
            // SAFETY: close_range on descriptors of this process only.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd as u32 - 1, 0) };
        }
        from = fd as u32 + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

pub(super) fn ioprio(class: i32) {
    // SAFETY: ioprio_set on this process with plain integers.
    unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, class << 13 | if class == IOPRIO_CLASS_BE { 4 } else { 0 }) };
}

/// The loader process: never returns.
fn run(plan: Plan, fds: Fds, restored: u32) -> ! {
    close_all_but(&mut [2, fds.uffd, fds.pidfd, fds.ready, plan.image_fd]);
    // Out of the terminal's process group (^C is for the program; the loader ends with
    // it), every signal blocked (it was, for the restore): only SIGKILL ends it early.
    // SAFETY: setsid and chdir with valid arguments.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
    }
    let _ = sys::sigprocmask(libc::SIG_SETMASK, Some(u64::MAX), None);
    // SAFETY: a signal set of SIGUSR1 only, built with libc's own functions.
    let sigfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
    };
    let done = watchdog(fds.pidfd, fds.uffd, &plan.image, restored);
    // Named once the watchdog has a name of its own.
    // SAFETY: prctl with a NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"mig-loader".as_ptr()) };
    ioprio(IOPRIO_CLASS_IDLE);
    let mut l = Loader::new(plan, fds, restored, sigfd);
    l.serve();
    l.end(done)
}
