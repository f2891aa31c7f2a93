//! A restore on the host where `mig checkpoint --exit` ended the process: the
//! connections `mig hold` keeps for it (`mig_proto::held`) are closed, silently, just
//! before they are made again (their addresses are then free).

use crate::sys;
use mig_proto::held::{RELEASE, RELEASED, name};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::Duration;

/// Asks the holder of process `pid`'s connections, if there is one of this user's (or
/// root's), to close them, and waits (at most 2 s) until it has.
pub fn release(pid: u32) {
    let mut buf = [0; 32];
    let Ok(mut s) = SocketAddr::from_abstract_name(name(pid, &mut buf)).and_then(|a| UnixStream::connect_addr(&a)) else { return };
    // Anyone may bind the name: another user's listener is no holder of ours.
    let Ok((_, uid)) = sys::peer_cred(s.as_raw_fd()) else { return };
    if uid != sys::getuid() && uid != 0 {
        return;
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut got = [0u8; RELEASED.len()];
    let _ = s.write_all(RELEASE).and_then(|()| s.read_exact(&mut got));
}
