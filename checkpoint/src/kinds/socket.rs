//! Sockets made again from their settings: UNIX and inet, stream and datagram, bound
//! where they were, listening again, a datagram socket connected again, with their
//! options. A connected stream socket whose peer is outside the process comes back
//! reset (a TCP socket whose peer reset it; for UNIX sockets, a socket pair end whose
//! peer is closed), and what is not supported as a broken pipe end.

use crate::failure::Failure;
use crate::files::Strings;
use crate::scratch::List;
use crate::sockets::{self, Diag};
use crate::sys;
use mig_image::{FdKind, FdRecord, Params, Queue, ResetParams, SocketParams, StrRef, bytes_of};

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
    // An established TCP connection is saved whole where repair mode allows (`tcp`;
    // else it is reset there).
    let connecting = s.opts & mig_image::SOCKOPT_CONNECTING != 0;
    if s.peer_len > 0 && stream && !connecting && (s.domain == libc::AF_UNIX || !super::tcp::repairable(fd)) {
        rec.params = ResetParams { domain: s.domain }.encode();
        return Ok(FdKind::Reset);
    }
    if s.waiting > 0 {
        let mut why = crate::sys::msg::Msg::<160>::new();
        why.num(s.waiting).s(" connections waiting to be accepted are not saved; their clients see them reset when this process ends");
        crate::fds::warn(rec, strings, core::str::from_utf8(why.as_bytes()).unwrap_or("connections waiting to be accepted are not saved"));
    }
    let (bound, peer) = (s.bound.get(..s.bound_len).unwrap_or_default(), s.peer.get(..s.peer_len).unwrap_or_default());
    let start = strings.bytes.len();
    strings.bytes.extend(bound)?;
    strings.bytes.extend(peer)?;
    strings.bytes.extend(bytes_of(&s.valued))?;
    let filter_len = match sys::socket_filter(fd, strings.bytes.spare()) {
        Ok(n) => {
            strings.bytes.grow(n * mig_image::SOCK_FILTER_LEN);
            n
        }
        Err(e) => {
            let why = if e.0 == libc::EACCES {
                "its eBPF socket filter cannot be read back; it comes back without one"
            } else {
                "its socket filter cannot be saved; it comes back without one"
            };
            crate::fds::warn(rec, strings, why);
            0
        }
    };
    let mut opts = s.opts;
    if filter_len > 0 && sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_LOCK_FILTER).is_ok_and(|v| v != 0) {
        opts |= mig_image::SOCKOPT_LOCK_FILTER;
    }
    rec.extra = StrRef { off: start as u32, len: (strings.bytes.len() - start) as u32 };
    rec.params = SocketParams {
        domain: s.domain,
        ty: s.ty,
        protocol: s.protocol,
        backlog: s.backlog as i32,
        bound_len: bound.len() as u32,
        peer_len: peer.len() as u32,
        opts,
        filter_len: filter_len as u32,
    }
    .encode();
    Ok(FdKind::Socket)
}

/// Appends the datagrams queued on datagram socket `fd` to `out`, each with its
/// sender's address (`Queue::from`), without taking them (`MSG_PEEK` with a moving
/// peek offset). Returns how many bytes were appended, or why not.
pub fn queued(fd: i32, out: &mut List<u8>) -> Result<u64, &'static str> {
    let start = out.len();
    super::socketpair::peek_each(fd, out, &mut |out| {
        let mut from = [0u8; sockets::ADDR_MAX];
        let spare = out.spare();
        if spare.len() <= Queue::FROM_HEAD + from.len() {
            return Err("too much data queued");
        }
        let (head, rest) = spare.split_at_mut(Queue::FROM_HEAD);
        let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC;
        let (n, got, from_len) = match sys::recv_from(fd, rest, flags, &mut from) {
            Ok(r) => r,
            Err(e) => return super::socketpair::peek_failed(e),
        };
        if got & libc::MSG_CTRUNC != 0 {
            return Err("descriptors or credentials in flight would be lost");
        }
        let from = from.get(..from_len.min(sockets::ADDR_MAX)).unwrap_or_default();
        if n + from.len() > rest.len() {
            return Err("too much data queued");
        }
        // The address goes before the bytes.
        rest.copy_within(0..n, from.len());
        if let Some(a) = rest.get_mut(..from.len()) {
            a.copy_from_slice(from);
        }
        head.copy_from_slice(&Queue::from_head(n, from.len()));
        out.grow(Queue::FROM_HEAD + from.len() + n);
        Ok(true)
    })?;
    Ok((out.len() - start) as u64)
}

#[cfg(feature = "restore")]
pub use restore::restore;

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::{Shared, os::*};
    use mig_image::{
        FdKind, FdRecord, Params, Queue, ResetParams, SOCKOPT_BROADCAST, SOCKOPT_CONNECTING, SOCKOPT_FREEBIND, SOCKOPT_KEEPALIVE, SOCKOPT_LOCK_FILTER,
        SOCKOPT_NODELAY, SOCKOPT_REUSEADDR, SOCKOPT_REUSEPORT, SOCKOPT_V6ONLY, SockAddr, SockOpts, SocketParams,
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
        // A TCP connection, taken over in repair mode; or, where that fails, reset.
        let connection = s.is_connection();
        // SAFETY: creating a socket.
        let fd = last_error(unsafe { libc::socket(s.domain, s.ty | libc::SOCK_CLOEXEC, s.protocol) })?;
        let taken_over = |fd: i32, r: std::io::Result<()>| match r {
            Ok(()) => set_status(fd, f.flags),
            Err(e) => {
                close(fd);
                eprintln!(
                    "mig: warning: descriptor {}: its TCP connection to {} cannot be taken over ({e}); it comes back as a connection reset by the peer",
                    f.fd,
                    SockAddr::decode(peer)
                );
                set_status(reset_inet(s.domain).or_else(|_| broken_end(true, libc::O_RDWR))?, f.flags)
            }
        };
        if let Err(e) = attach_filter(fd, s.filter(cx.img.str(f.extra)), s.opts & SOCKOPT_LOCK_FILTER != 0) {
            close(fd);
            return Err(Error::other(format!("its socket filter cannot be attached again: {e}")));
        }
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
        let blob = cx.img.data(f.data_off, f.data_len);
        let conn = match connection.then(|| super::super::tcp::prepare(fd, blob)) {
            Some(Ok(conn)) => Some(conn),
            Some(Err(e)) => return taken_over(fd, Err(e)),
            None => None,
        };
        let inet = s.domain != libc::AF_UNIX;
        // (Repair mode lets a connection share its port with the listener it came from;
        // SO_REUSEADDR would take that away.)
        if inet && conn.is_none() {
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
                if conn.is_some() {
                    return taken_over(fd, Err(Error::other(format!("cannot bind {} again: {e}", SockAddr::decode(bound)))));
                }
                close(fd);
                return Err(Error::other(format!("cannot bind {} again: {e} ({why})", SockAddr::decode(bound))));
            }
        }
        if let Some(conn) = conn {
            // In repair mode `connect` sends nothing: the connection is established.
            // SAFETY: `peer` holds a socket address of `peer.len()` bytes as saved.
            let r = if unsafe { libc::connect(fd, peer.as_ptr().cast(), peer.len() as u32) } < 0 { Err(Error::last_os_error()) } else { Ok(()) };
            let r = r.and_then(|()| super::super::tcp::restore(fd, &conn, blob));
            if r.is_ok() {
                set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, (s.opts & SOCKOPT_REUSEADDR != 0) as i32);
            }
            return taken_over(fd, r);
        }
        if inet && s.opts & SOCKOPT_REUSEADDR == 0 {
            set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 0);
        }
        if f.data_len > 0 {
            fill_datagrams(f, cx, &s, bound)?;
        }
        if s.backlog > 0 {
            // SAFETY: listen on our socket.
            last_error::<i32>(unsafe { libc::listen(fd, s.backlog) })?;
        }
        let connecting = s.opts & SOCKOPT_CONNECTING != 0;
        if connecting {
            // Started again, without waiting: the program waits (or polls) for it as it
            // did; a blocking `connect` it was in, begun again, goes on waiting.
            // SAFETY: fcntl on our socket, before its saved flags are set back.
            unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
        }
        if !peer.is_empty() {
            // SAFETY: `peer` holds a socket address of `peer.len()` bytes as saved.
            if unsafe { libc::connect(fd, peer.as_ptr().cast(), peer.len() as u32) } < 0
                && !(connecting && Error::last_os_error().raw_os_error() == Some(libc::EINPROGRESS))
            {
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

    /// The datagrams queued on socket `fd` (bound to `bound`), sent to it again before
    /// it is connected, each from a socket bound to its sender's address where that is
    /// free (its sender is gone); the others come from an unnamed sender, which a
    /// warning says.
    fn fill_datagrams(f: &FdRecord, cx: &Shared, s: &SocketParams, bound: &[u8]) -> std::io::Result<()> {
        let to = reachable(bound).ok_or_else(|| Error::other("its queued datagrams cannot be put back: it is not bound to an address they can be sent to"))?;
        let mut rest = cx.img.data(f.data_off, f.data_len);
        let mut unnamed = 0;
        while !rest.is_empty() {
            let (from, bytes, taken) = Queue::from(rest).ok_or_else(|| Error::other("bad queue record"))?;
            // SAFETY: creating a socket, closed below.
            let sender = last_error(unsafe { libc::socket(s.domain, s.ty | libc::SOCK_CLOEXEC, s.protocol) })?;
            let named = SockAddr::decode(from);
            if !named.path().is_empty() {
                // A socket file its process left, which nothing receives on any more.
                let _ = clear_stale_unix_path(from, s.ty);
            }
            // SAFETY: `from` holds a socket address of `from.len()` bytes as saved.
            let bound_here = named.is_bound() && unsafe { libc::bind(sender, from.as_ptr().cast(), from.len() as u32) } == 0;
            unnamed += (named.is_bound() && !bound_here) as u32;
            // SAFETY: sending `bytes` to the address in `to`.
            let n = unsafe {
                libc::sendto(sender, bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL, to.as_ptr().cast(), to.len() as u32)
            };
            let sent = if n < 0 { Err(Error::last_os_error()) } else { Ok(()) };
            close(sender);
            if bound_here && !named.path().is_empty() {
                let _ = std::fs::remove_file(Path::new(std::ffi::OsStr::from_bytes(named.path())));
            }
            sent.map_err(|e| Error::other(format!("its queued datagrams cannot be put back: {e}")))?;
            rest = rest.get(taken..).unwrap_or_default();
        }
        if unnamed > 0 {
            eprintln!(
                "mig: warning: descriptor {}: {unnamed} of the datagrams it had queued come back from an unnamed sender (their sender's address is in use)",
                f.fd
            );
        }
        Ok(())
    }

    /// Attaches the classic BPF program `filter` (`struct sock_filter`s) to socket `fd`,
    /// and locks it if it was.
    fn attach_filter(fd: i32, filter: &[u8], lock: bool) -> std::io::Result<()> {
        if filter.is_empty() {
            return Ok(());
        }
        let insns: Vec<libc::sock_filter> = filter
            .chunks_exact(mig_image::SOCK_FILTER_LEN)
            .map(|b| {
                let [c0, c1, jt, jf, k0, k1, k2, k3] = b.try_into().unwrap_or([0u8; 8]);
                libc::sock_filter { code: u16::from_ne_bytes([c0, c1]), jt, jf, k: u32::from_ne_bytes([k0, k1, k2, k3]) }
            })
            .collect();
        let prog = libc::sock_fprog { len: insns.len() as u16, filter: insns.as_ptr() as *mut libc::sock_filter };
        // SAFETY: `prog` points at `insns`, live for the call.
        last_error::<i32>(unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, (&prog as *const libc::sock_fprog).cast(), size_of::<libc::sock_fprog>() as u32)
        })?;
        if lock {
            set_int(fd, libc::SOL_SOCKET, libc::SO_LOCK_FILTER, 1);
        }
        Ok(())
    }

    /// Where a socket bound to `bound` is sent to from this host: its address, the
    /// loopback one for a wildcard address.
    fn reachable(bound: &[u8]) -> Option<Vec<u8>> {
        let mut to = bound.to_vec();
        match SockAddr::decode(bound) {
            SockAddr::Unix(rest) if !rest.is_empty() => {}
            SockAddr::Inet { ip, port } if port != 0 => {
                if ip == [0; 4] {
                    to.get_mut(4..8)?.copy_from_slice(&[127, 0, 0, 1]);
                }
            }
            SockAddr::Inet6 { ip, port } if port != 0 => {
                if ip == [0; 16] {
                    to.get_mut(8..24)?.copy_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
                }
            }
            _ => return None,
        }
        Some(to)
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
