//! Sockets made again from their settings: UNIX and inet, stream and datagram, bound
//! where they were, listening again, a datagram socket connected again, with their
//! options. A connected stream socket whose peer is outside the process comes back
//! reset (a TCP socket whose peer reset it; for UNIX sockets, a socket pair end whose
//! peer is closed), and what is not supported as a broken pipe end.

use crate::failure::Failure;
use crate::files::Strings;
use crate::sockets::{self, Diag};
use mig_image::{FdKind, FdRecord, Params, ResetParams, SocketParams, StrRef, bytes_of};

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
    strings.bytes.extend(bytes_of(&s.valued))?;
    rec.extra = StrRef { off: start as u32, len: (strings.bytes.len() - start) as u32 };
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
    use mig_image::{
        FdKind, FdRecord, Params, ResetParams, SOCKOPT_BROADCAST, SOCKOPT_FREEBIND, SOCKOPT_KEEPALIVE, SOCKOPT_NODELAY, SOCKOPT_REUSEADDR, SOCKOPT_REUSEPORT,
        SOCKOPT_V6ONLY, SockAddr, SockOpts, SocketParams,
    };
    use std::os::fd::{AsRawFd, IntoRawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// `Socket`: made again from its settings; `Reset` and `Unsupported`: a broken end.
    pub fn restore(f: &FdRecord, cx: &mut Shared) -> std::io::Result<i32> {
        if f.kind == FdKind::Reset as u32 {
            let domain = ResetParams::decode(&f.params).domain;
            let fd = reset_inet(domain).or_else(|_| broken_end(true, libc::O_RDWR))?;
            return set_status(fd, f.flags);
        }
        if f.kind != FdKind::Socket as u32 {
            return set_status(broken_end(false, f.flags as i32 & libc::O_ACCMODE)?, f.flags);
        }
        let s = SocketParams::decode(&f.params);
        let (bound, peer) = s.addrs(cx.img.str(f.extra));
        let valued = s.opts(cx.img.str(f.extra));
        // SAFETY: creating a socket.
        let fd = last_error(unsafe { libc::socket(s.domain, s.ty | libc::SOCK_CLOEXEC, s.protocol) })?;
        let freebind = if s.domain == libc::AF_INET6 { (libc::IPPROTO_IPV6, libc::IPV6_FREEBIND) } else { (libc::IPPROTO_IP, libc::IP_FREEBIND) };
        for (bit, level, name) in [
            (SOCKOPT_REUSEPORT, libc::SOL_SOCKET, libc::SO_REUSEPORT),
            (SOCKOPT_KEEPALIVE, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            (SOCKOPT_NODELAY, libc::IPPROTO_TCP, libc::TCP_NODELAY),
            (SOCKOPT_V6ONLY, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
            (SOCKOPT_BROADCAST, libc::SOL_SOCKET, libc::SO_BROADCAST),
            (SOCKOPT_FREEBIND, freebind.0, freebind.1),
        ] {
            if s.opts & bit != 0 {
                set_int(fd, level, name, 1);
            }
        }
        set_valued(fd, f.fd, s.domain, &valued);
        let inet = s.domain != libc::AF_UNIX;
        if inet {
            // Connections of the previous life may linger in TIME_WAIT on the port;
            // set as it was once bound.
            set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        }
        if SockAddr::decode(bound).is_bound() {
            if s.domain == libc::AF_UNIX {
                clear_stale_unix_path(bound, s.ty)?;
            }
            let bind = || {
                // SAFETY: `bound` holds a socket address of `bound.len()` bytes as saved.
                let r = unsafe { libc::bind(fd, bound.as_ptr().cast(), bound.len() as u32) };
                if r == 0 { Ok(()) } else { Err(Error::last_os_error()) }
            };
            let mut why = "is the original process still running?".to_string();
            let r = match bind() {
                // Connections of its previous life may linger on the port.
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) && inet && s.ty == libc::SOCK_STREAM => match super::super::time_wait::clear(bound) {
                    Ok(0) => Err(e),
                    Ok(_) => bind(),
                    Err(cause) => {
                        why = format!(
                            "connections of its previous life may linger on the port, in TIME_WAIT, for up to a minute; they cannot be ended here ({cause}): \
                             mig ends them when it runs with CAP_NET_ADMIN"
                        );
                        Err(e)
                    }
                },
                r => r,
            };
            if let Err(e) = r {
                close(fd);
                return Err(Error::other(format!("cannot bind {} again: {e} ({why})", SockAddr::decode(bound))));
            }
        }
        if inet && s.opts & SOCKOPT_REUSEADDR == 0 {
            set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 0);
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

    /// A TCP socket of `domain` whose connection the peer reset, as a connection to a
    /// peer outside the process looks after a restore: reads see `ECONNRESET`, then end
    /// of file, writes `EPIPE`. Made over the loopback interface (an error where there
    /// is none: the caller falls back to a UNIX socket end).
    fn reset_inet(domain: i32) -> std::io::Result<i32> {
        if !matches!(domain, libc::AF_INET | libc::AF_INET6) {
            return Err(Error::from(std::io::ErrorKind::Unsupported));
        }
        let loopback = if domain == libc::AF_INET { std::net::IpAddr::from([127, 0, 0, 1]) } else { std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST) };
        let listener = std::net::TcpListener::bind((loopback, 0))?;
        let client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (served, _) = listener.accept()?;
        // Linger 0: the close sends a reset, not an orderly end.
        let l = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt with a valid `struct linger` on a socket we own.
        unsafe {
            libc::setsockopt(served.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, (&l as *const libc::linger).cast(), size_of::<libc::linger>() as u32)
        };
        drop(served);
        drop(listener);
        // The reset crosses the loopback at once; wait for it, briefly.
        let mut pfd = libc::pollfd { fd: client.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        Ok(client.into_raw_fd())
    }

    fn set_int(fd: i32, level: i32, name: i32, v: i32) -> bool {
        // SAFETY: setsockopt with a valid int on our socket.
        unsafe { libc::setsockopt(fd, level, name, (&v as *const i32).cast(), 4) == 0 }
    }

    /// Buffer sizes, linger and TCP keepalive timing, as saved; what cannot be set is
    /// said.
    fn set_valued(fd: i32, saved_fd: i32, domain: i32, v: &SockOpts) {
        // The kernel doubles what is set (room for its bookkeeping) and reports that.
        for (value, name, force) in [(v.rcvbuf, libc::SO_RCVBUF, libc::SO_RCVBUFFORCE), (v.sndbuf, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE)] {
            let (mut now, mut len) = (0i32, 4u32);
            // SAFETY: getsockopt into a valid int on our socket.
            unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut now as *mut i32).cast(), &mut len) };
            if value == 0 || now == value as i32 {
                continue;
            }
            let half = (value / 2) as i32;
            // Beyond net.core.[rw]mem_max only with CAP_NET_ADMIN (the FORCE options).
            let set = set_int(fd, libc::SOL_SOCKET, force, half) || set_int(fd, libc::SOL_SOCKET, name, half);
            // SAFETY: as above.
            unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut now as *mut i32).cast(), &mut len) };
            if !set || now != value as i32 {
                let what = if name == libc::SO_RCVBUF { "SO_RCVBUF" } else { "SO_SNDBUF" };
                eprintln!("mig: warning: descriptor {saved_fd}: {what} is {now}, not {value} as saved (net.core limits; raising them needs CAP_NET_ADMIN)");
            }
        }
        set_timeouts(fd, [v.rcvtimeo_us, v.sndtimeo_us]);
        if v.linger_on != 0 {
            let l = libc::linger { l_onoff: 1, l_linger: v.linger_secs as i32 };
            // SAFETY: setsockopt with a valid `struct linger` on our socket.
            unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&l as *const libc::linger).cast(), size_of::<libc::linger>() as u32) };
        }
        if domain != libc::AF_UNIX {
            for (value, name) in [(v.keepidle, libc::TCP_KEEPIDLE), (v.keepintvl, libc::TCP_KEEPINTVL), (v.keepcnt, libc::TCP_KEEPCNT)] {
                if value != 0 {
                    set_int(fd, libc::IPPROTO_TCP, name, value as i32);
                }
            }
        }
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
