//! Sockets made again from their settings: UNIX and inet, stream and datagram, bound
//! where they were, listening again, a datagram socket connected again. A connected
//! stream socket whose peer is outside the process comes back reset (reads see end
//! of file, writes `EPIPE`), and so does, as a broken pipe end, what is not supported.

use crate::failure::Failure;
use crate::files::Strings;
use crate::sockets::{self, Diag};
use mig_image::{FdKind, FdRecord, Params, ResetParams, SocketParams, StrRef};

/// A socket: its kind and settings. The addresses go to `strings`, bound then peer.
pub fn save(fd: i32, rec: &mut FdRecord, strings: &mut Strings, diag: Option<&Diag>) -> Result<FdKind, Failure> {
    let Ok(s) = sockets::inspect(fd, rec.file.ino, diag) else { return Ok(FdKind::Unsupported) };
    if !matches!(s.domain, libc::AF_UNIX | libc::AF_INET | libc::AF_INET6) {
        return Ok(FdKind::Unsupported);
    }
    let stream = s.ty != libc::SOCK_DGRAM;
    if s.domain == libc::AF_UNIX && s.peer_ino != 0 {
        // Paired with a socket in this process, or not: `fds::link` decides.
        super::socketpair::save(fd, &s, rec);
        return Ok(FdKind::SocketPair);
    }
    if s.peer_len > 0 && stream {
        rec.params = ResetParams { domain: s.domain }.encode();
        return Ok(FdKind::Reset);
    }
    let (bound, peer) = (s.bound.get(..s.bound_len).unwrap_or_default(), s.peer.get(..s.peer_len).unwrap_or_default());
    let start = strings.bytes.len();
    strings.bytes.extend(bound)?;
    strings.bytes.extend(peer)?;
    rec.extra = StrRef { off: start as u32, len: (bound.len() + peer.len()) as u32 };
    rec.params = SocketParams {
        domain: s.domain,
        ty: s.ty,
        protocol: s.protocol,
        backlog: s.backlog as i32,
        bound_len: bound.len() as u32,
        peer_len: peer.len() as u32,
        opts: s.opts,
    }
    .encode();
    Ok(FdKind::Socket)
}

#[cfg(feature = "restore")]
pub use restore::restore;

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::{Shared, os::*};
    use mig_image::{FdKind, FdRecord, Params, SOCKOPT_KEEPALIVE, SOCKOPT_NODELAY, SOCKOPT_REUSEPORT, SOCKOPT_V6ONLY, SockAddr, SocketParams};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// `Socket`: made again from its settings; `Reset` and `Unsupported`: a broken end.
    pub fn restore(f: &FdRecord, cx: &mut Shared) -> std::io::Result<i32> {
        if f.kind != FdKind::Socket as u32 {
            return set_status(broken_end(f.kind == FdKind::Reset as u32, f.flags as i32 & libc::O_ACCMODE)?, f.flags);
        }
        let s = SocketParams::decode(&f.params);
        let (bound, peer) = s.addrs(cx.img.str(f.extra));
        // SAFETY: creating a socket.
        let fd = last_error(unsafe { libc::socket(s.domain, s.ty | libc::SOCK_CLOEXEC, s.protocol) })?;
        let on = |level, name| {
            let one: i32 = 1;
            // SAFETY: setsockopt with a valid int on our socket.
            unsafe { libc::setsockopt(fd, level, name, (&one as *const i32).cast(), 4) };
        };
        for (bit, level, name) in [
            (SOCKOPT_REUSEPORT, libc::SOL_SOCKET, libc::SO_REUSEPORT),
            (SOCKOPT_KEEPALIVE, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            (SOCKOPT_NODELAY, libc::IPPROTO_TCP, libc::TCP_NODELAY),
            (SOCKOPT_V6ONLY, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
        ] {
            if s.opts & bit != 0 {
                on(level, name);
            }
        }
        if s.domain != libc::AF_UNIX {
            // Connections of the previous life may linger in TIME_WAIT on the port.
            on(libc::SOL_SOCKET, libc::SO_REUSEADDR);
        }
        if SockAddr::decode(bound).is_bound() {
            if s.domain == libc::AF_UNIX {
                clear_stale_unix_path(bound, s.ty)?;
            }
            // SAFETY: `bound` holds a socket address of `bound.len()` bytes as saved.
            let r = unsafe { libc::bind(fd, bound.as_ptr().cast(), bound.len() as u32) };
            if r < 0 {
                let e = Error::last_os_error();
                close(fd);
                return Err(Error::other(format!("cannot bind {} again: {e} (is the original process still running?)", SockAddr::decode(bound))));
            }
        }
        if s.backlog > 0 {
            // SAFETY: listen on our socket.
            last_error::<i32>(unsafe { libc::listen(fd, s.backlog) })?;
        }
        if !peer.is_empty() {
            // SAFETY: `peer` holds a socket address of `peer.len()` bytes as saved.
            if unsafe { libc::connect(fd, peer.as_ptr().cast(), peer.len() as u32) } < 0 {
                eprintln!(
                    "mig: warning: descriptor {}: cannot connect to {} again ({}); it is unconnected",
                    f.fd,
                    SockAddr::decode(peer),
                    Error::last_os_error()
                );
            }
        }
        set_status(fd, f.flags)
    }

    /// A UNIX socket path left behind by the previous life blocks `bind`: removed when
    /// nobody listens there any more; refused when someone does.
    fn clear_stale_unix_path(addr: &[u8], ty: i32) -> std::io::Result<()> {
        let path = SockAddr::decode(addr).path();
        if path.is_empty() {
            return Ok(()); // abstract name
        }
        let p = Path::new(std::ffi::OsStr::from_bytes(path));
        let Ok(meta) = std::fs::symlink_metadata(p) else { return Ok(()) };
        if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            return Ok(());
        }
        // SAFETY: a probe socket, connected to the saved address and closed. Non-blocking:
        // a listener with a full backlog (EAGAIN) is alive too, and must not hold us up.
        let alive = unsafe {
            let probe = libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
            let ok = probe >= 0
                && (libc::connect(probe, addr.as_ptr().cast(), addr.len() as u32) == 0 || Error::last_os_error().raw_os_error() == Some(libc::EAGAIN));
            libc::close(probe);
            ok
        };
        if alive {
            return Err(Error::other(format!("{} is in use by another process", p.display())));
        }
        std::fs::remove_file(p)
    }
}
