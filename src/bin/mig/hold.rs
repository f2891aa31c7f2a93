//! `mig hold PID N`, started by the library, never by hand: keeps the TCP connections
//! of process PID, which `mig checkpoint --exit` ended, on descriptors 3..3+N (in repair
//! mode, dropping every segment) until a restore of that process asks for them to go,
//! or `HOLD_SECS` pass (see `mig_proto::held`). Closed in repair mode, they go silently.
//! Descriptor 3+N is a pipe the ending process waits on: closed once the name is bound.

use crate::Result;
use mig_proto::held::{DROP_ALL, HOLD_SECS, RELEASE, RELEASED, name};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Hold an ended process's TCP connections until its restore (internal).
#[derive(clap::Args)]
pub struct Args {
    pid: u32,
    count: u32,
}

pub fn main(a: Args) -> Result<u8> {
    let mut buf = [0; 32];
    let listener = SocketAddr::from_abstract_name(name(a.pid, &mut buf)).and_then(|addr| UnixListener::bind_addr(&addr));
    // The process waits for this before it ends.
    // SAFETY: the pipe's end the library left after the connections.
    unsafe { libc::close(3 + a.count as i32) };
    // Another holder of that name (an older process with this pid): the connections
    // close now, silently, as they would have with the process.
    let Ok(listener) = listener else { return Ok(1) };
    let deadline = Instant::now() + Duration::from_secs(HOLD_SECS);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) } <= 0 {
            continue;
        }
        let Ok((mut s, _)) = listener.accept() else { continue };
        if released(&mut s).is_some() {
            for fd in 3..3 + a.count as i32 {
                // SAFETY: the descriptors the library left here, closed once.
                unsafe { libc::close(fd) };
            }
            let _ = s.write_all(RELEASED);
            return Ok(0);
        }
    }
    Ok(0)
}

/// Whether `s` is a restore of this user's (or root's) asking for the connections.
fn released(s: &mut UnixStream) -> Option<()> {
    let (uid, me) = (crate::request::peer(s)?.1, crate::control::uid());
    (uid == me || uid == 0).then_some(())?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut got = [0u8; 8];
    s.read_exact(&mut got).ok()?;
    (got[..] == *RELEASE).then_some(())
}

/// Takes descriptor `fd` of process `pid` (`pidfd_getfd`: the right to trace it), a TCP
/// connection in repair mode, and makes it drop every segment that arrives.
pub fn take(pid: i32, fd: i32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open and pidfd_getfd return new descriptors or -1.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if pidfd < 0 {
            return None;
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let got = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0);
        if got < 0 {
            return None;
        }
        let got = OwnedFd::from_raw_fd(got as i32);
        mig_sys::attach_filter(got.as_raw_fd(), &DROP_ALL).ok().map(|()| got)
    }
}

/// Starts `mig hold <pid> <n>` (as the library does for a process `--exit` ends) with
/// `held` on descriptors 3.. and the ready pipe after them, nobody's child, and waits
/// (at most 2 s) until it answers to its name.
pub fn start(pid: i32, held: &[OwnedFd]) {
    let held = &held[..held.len().min(4096)];
    let Ok(exe) = std::env::current_exe() else { return };
    let exe = std::ffi::CString::new(exe.into_os_string().into_encoded_bytes()).unwrap_or_default();
    let (pid, n) = (std::ffi::CString::new(pid.to_string()).unwrap_or_default(), std::ffi::CString::new(held.len().to_string()).unwrap_or_default());
    let argv = [c"mig".as_ptr(), c"hold".as_ptr(), pid.as_ptr(), n.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let fds: Vec<i32> = held.iter().map(|f| f.as_raw_fd()).collect();
    let mut ready = [0i32; 2];
    // SAFETY: a pipe into a valid array; then fork: the child makes system calls only
    // (every value it uses was made before), and ends with exec or `_exit`.
    unsafe {
        if libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return;
        }
        let child = libc::fork();
        if child == 0 {
            // Nobody's child: the one in between ends at once.
            if libc::fork() != 0 {
                libc::_exit(0);
            }
            let first = 4 + fds.len() as i32;
            let mut copies = [-1i32; 4097];
            for (c, &fd) in copies.iter_mut().zip(fds.iter().chain([ready[1]].iter())) {
                *c = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, first);
            }
            for (i, &c) in copies.iter().take(fds.len() + 1).enumerate() {
                libc::dup2(c, 3 + i as i32);
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            for std in 0..3 {
                libc::dup2(null, std);
            }
            libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
            libc::setsid();
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(1);
        }
        libc::close(ready[1]);
        if child > 0 {
            libc::waitpid(child, std::ptr::null_mut(), 0);
            let mut p = libc::pollfd { fd: ready[0], events: libc::POLLIN, revents: 0 };
            libc::poll(&mut p, 1, 2000);
        }
        libc::close(ready[0]);
    }
}
