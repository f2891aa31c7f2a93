//! Sockets: what a socket is (family, type, bound and peer addresses, listening or
//! connected), which UNIX sockets are connected to each other (the kernel's sock_diag
//! netlink interface names a UNIX socket's peer). Used by the socket kinds
//! (`kinds::socket`, `kinds::socketpair`). Async-signal-safe: raw system calls into
//! fixed buffers.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::sys::{self, Errno};

pub const ADDR_MAX: usize = 128;

/// What a socket descriptor is.
pub struct Sock {
    pub domain: i32,
    pub ty: i32,
    pub protocol: i32,
    /// `listen` backlog, 0 when not listening.
    pub backlog: u64,
    pub bound: [u8; ADDR_MAX],
    pub bound_len: usize,
    pub peer: [u8; ADDR_MAX],
    /// 0 when not connected.
    pub peer_len: usize,
    /// UNIX sockets: the inode of the peer socket, 0 when none.
    pub peer_ino: u64,
    /// UNIX sockets: the kernel's shutdown bits (1: no more receiving, 2: no more
    /// sending).
    pub shutdown: u32,
    pub opts: u64,
    pub valued: mig_image::SockOpts,
    /// A listener's connections waiting to be accepted.
    pub waiting: u64,
}

/// A netlink socket for sock_diag queries, opened once per checkpoint.
pub struct Diag(pub i32);

impl Diag {
    pub fn open() -> Option<Diag> {
        sys::socket(libc::AF_NETLINK, libc::SOCK_DGRAM, libc::NETLINK_SOCK_DIAG).ok().map(Diag)
    }

    /// (peer inode, listen backlog, shutdown bits, connections waiting to be accepted)
    /// of the UNIX socket `ino`.
    fn unix(&self, ino: u64) -> Option<(u64, u64, u32, u64)> {
        const SOCK_DIAG_BY_FAMILY: u16 = 20;
        const UDIAG_SHOW_PEER: u32 = 4;
        const UDIAG_SHOW_RQLEN: u32 = 16;
        const UNIX_DIAG_PEER: u16 = 2;
        const UNIX_DIAG_RQLEN: u16 = 4;
        const UNIX_DIAG_SHUTDOWN: u16 = 6;
        // nlmsghdr (16 bytes) then unix_diag_req (24 bytes).
        let mut req = [0u8; 40];
        let mut put = |at: usize, bytes: &[u8]| req.iter_mut().skip(at).zip(bytes).for_each(|(b, v)| *b = *v);
        put(0, &40u32.to_le_bytes());
        put(4, &SOCK_DIAG_BY_FAMILY.to_le_bytes());
        put(6, &(libc::NLM_F_REQUEST as u16).to_le_bytes());
        put(16, &[libc::AF_UNIX as u8]);
        put(20, &u32::MAX.to_le_bytes()); // every state
        put(24, &(ino as u32).to_le_bytes());
        put(28, &(UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN).to_le_bytes());
        put(32, &[0xff; 8]); // no cookie
        sys::send(self.0, &req, 0).ok()?;
        let mut resp = [0u8; 1024];
        let (n, _) = sys::recv(self.0, &mut resp, 0).ok()?;
        let resp = resp.get(..n)?;
        let u16_at = |at: usize| Some(u16::from_le_bytes(resp.get(at..at + 2)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(resp.get(at..at + 4)?.try_into().ok()?));
        if u16_at(4)? != SOCK_DIAG_BY_FAMILY {
            return None; // NLMSG_ERROR: no such socket
        }
        let len = (u32_at(0)? as usize).min(n);
        let (mut peer, mut backlog, mut shutdown, mut waiting) = (0, 0, 0, 0);
        // unix_diag_msg is 16 bytes after the 16-byte header; attributes follow.
        let mut at = 32;
        while at + 4 <= len {
            let alen = u16_at(at)? as usize;
            match u16_at(at + 2)? {
                UNIX_DIAG_PEER => peer = u32_at(at + 4)? as u64,
                UNIX_DIAG_RQLEN => (waiting, backlog) = (u32_at(at + 4)? as u64, u32_at(at + 8)? as u64),
                UNIX_DIAG_SHUTDOWN => shutdown = *resp.get(at + 4)? as u32 & 3,
                _ => {}
            }
            at += alen.max(4).next_multiple_of(4);
        }
        Some((peer, backlog, shutdown, waiting))
    }
}

impl Drop for Diag {
    fn drop(&mut self) {
        sys::close(self.0);
    }
}

const TCP_SYN_SENT: u8 = 2;

/// Describes socket `fd` (inode `ino`).
pub fn inspect(fd: i32, ino: u64, diag: Option<&Diag>) -> Result<Sock, Errno> {
    let int = |level, name| sys::getsockopt_int(fd, level, name);
    let mut s = Sock {
        domain: int(libc::SOL_SOCKET, libc::SO_DOMAIN)?,
        ty: int(libc::SOL_SOCKET, libc::SO_TYPE)?,
        protocol: int(libc::SOL_SOCKET, libc::SO_PROTOCOL).unwrap_or(0),
        backlog: 0,
        bound: [0; ADDR_MAX],
        bound_len: 0,
        peer: [0; ADDR_MAX],
        peer_len: 0,
        peer_ino: 0,
        shutdown: 0,
        opts: 0,
        valued: mig_image::SockOpts::default(),
        waiting: 0,
    };
    s.bound_len = sys::sockname(fd, false, &mut s.bound).unwrap_or(0);
    s.peer_len = sys::sockname(fd, true, &mut s.peer).unwrap_or(0);
    let listening = int(libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Ok(1);
    let on = |level, name| int(level, name).is_ok_and(|v| v != 0);
    for (bit, level, name) in [
        (mig_image::SOCKOPT_REUSEADDR, libc::SOL_SOCKET, libc::SO_REUSEADDR),
        (mig_image::SOCKOPT_REUSEPORT, libc::SOL_SOCKET, libc::SO_REUSEPORT),
        (mig_image::SOCKOPT_KEEPALIVE, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        (mig_image::SOCKOPT_BROADCAST, libc::SOL_SOCKET, libc::SO_BROADCAST),
    ] {
        if on(level, name) {
            s.opts |= bit;
        }
    }
    let v = &mut s.valued;
    v.rcvbuf = int(libc::SOL_SOCKET, libc::SO_RCVBUF).unwrap_or(0) as u32;
    v.sndbuf = int(libc::SOL_SOCKET, libc::SO_SNDBUF).unwrap_or(0) as u32;
    v.rcvtimeo_us = timeout_us(fd, libc::SO_RCVTIMEO);
    v.sndtimeo_us = timeout_us(fd, libc::SO_SNDTIMEO);
    let mut linger = [0u8; 8];
    if sys::getsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &mut linger) == Ok(8) {
        let [a, b, c, d, e, f, g, h] = linger;
        v.linger_on = (u32::from_ne_bytes([a, b, c, d]) != 0) as u32;
        v.linger_secs = u32::from_ne_bytes([e, f, g, h]);
    }
    match s.domain {
        libc::AF_UNIX => {
            if let Some((peer, backlog, shutdown, waiting)) = diag.and_then(|d| d.unix(ino)) {
                s.peer_ino = peer;
                s.shutdown = shutdown;
                if listening {
                    s.backlog = backlog.max(1);
                    s.waiting = waiting;
                }
            }
        }
        libc::AF_INET | libc::AF_INET6 => {
            if s.ty == libc::SOCK_STREAM && on(libc::IPPROTO_TCP, libc::TCP_NODELAY) {
                s.opts |= mig_image::SOCKOPT_NODELAY;
            }
            // A connection being made: no peer for getpeername yet, but SO_PEERNAME
            // says where it goes (asked for no more than the address's length).
            let mut info = [0u8; 1];
            let len = if s.domain == libc::AF_INET { size_of::<libc::sockaddr_in>() } else { size_of::<libc::sockaddr_in6>() };
            if s.ty == libc::SOCK_STREAM
                && s.peer_len == 0
                && sys::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info).is_ok()
                && info == [TCP_SYN_SENT]
                && let Ok(n) = sys::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERNAME, s.peer.get_mut(..len).unwrap_or_default())
            {
                s.peer_len = n.min(ADDR_MAX);
                s.opts |= mig_image::SOCKOPT_CONNECTING;
            }
            if s.ty == libc::SOCK_STREAM {
                let v = &mut s.valued;
                v.keepidle = int(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE).unwrap_or(0) as u32;
                v.keepintvl = int(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL).unwrap_or(0) as u32;
                v.keepcnt = int(libc::IPPROTO_TCP, libc::TCP_KEEPCNT).unwrap_or(0) as u32;
            }
            let freebind = if s.domain == libc::AF_INET { (libc::IPPROTO_IP, libc::IP_FREEBIND) } else { (libc::IPPROTO_IPV6, libc::IPV6_FREEBIND) };
            if on(freebind.0, freebind.1) {
                s.opts |= mig_image::SOCKOPT_FREEBIND;
            }
            if s.domain == libc::AF_INET6 && on(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) {
                s.opts |= mig_image::SOCKOPT_V6ONLY;
            }
            if listening {
                // tcp_info.tcpi_sacked holds a listener's backlog, tcpi_unacked its
                // connections waiting to be accepted.
                let mut info = [0u8; 104];
                let n = sys::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info).unwrap_or(0);
                let word = |at: usize| info.get(at..at + 4).filter(|_| n >= at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
                s.backlog = word(28).map_or(128, |v| v as u64);
                s.backlog = s.backlog.max(1);
                s.waiting = word(24).unwrap_or(0) as u64;
            }
        }
        _ => {}
    }
    if listening && s.backlog == 0 {
        s.backlog = 128;
    }
    Ok(s)
}

/// `SO_RCVTIMEO` or `SO_SNDTIMEO` of `fd`, in microseconds (0: none).
fn timeout_us(fd: i32, name: i32) -> u64 {
    let mut tv = [0u8; 16];
    if sys::getsockopt(fd, libc::SOL_SOCKET, name, &mut tv) != Ok(16) {
        return 0;
    }
    let [s0, s1, s2, s3, s4, s5, s6, s7, u0, u1, u2, u3, u4, u5, u6, u7] = tv;
    let (secs, usecs) = (u64::from_ne_bytes([s0, s1, s2, s3, s4, s5, s6, s7]), u64::from_ne_bytes([u0, u1, u2, u3, u4, u5, u6, u7]));
    secs.saturating_mul(1_000_000).saturating_add(usecs)
}
