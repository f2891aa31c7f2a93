//! `mig hold PID N`, started by the library, never by hand: keeps the TCP connections
//! of process PID, which `mig checkpoint --exit` ended, on descriptors 3..3+N (in repair
//! mode, dropping every segment) until a restore of that process asks for them to go,
//! or `HOLD_SECS` pass (see `mig_proto::held`). Closed in repair mode, they go silently.
//! Descriptor 3+N is a pipe the ending process waits on: closed once the name is bound.

use crate::Result;
use mig_proto::held::{HOLD_SECS, RELEASE, RELEASED, name};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
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
