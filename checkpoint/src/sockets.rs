//! Sockets: what a socket is (family, type, bound and peer addresses, listening or
//! connected), which UNIX sockets are connected to each other (the kernel's sock_diag
//! netlink interface names a UNIX socket's peer), and the bytes queued in one.
//! Async-signal-safe: raw system calls into fixed buffers.
// TODO(kinds): removed by the kinds rewrite
#![allow(clippy::indexing_slicing)]

use super::scratch::List;
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
    pub opts: u64,
}

/// A netlink socket for sock_diag queries, opened once per checkpoint.
pub struct Diag(pub i32);

impl Diag {
    pub fn open() -> Option<Diag> {
        sys::socket(libc::AF_NETLINK, libc::SOCK_DGRAM, libc::NETLINK_SOCK_DIAG).ok().map(Diag)
    }

    /// (peer inode, listen backlog) of the UNIX socket `ino`.
    fn unix(&self, ino: u64) -> Option<(u64, u64)> {
        const SOCK_DIAG_BY_FAMILY: u16 = 20;
        const UDIAG_SHOW_PEER: u32 = 4;
        const UDIAG_SHOW_RQLEN: u32 = 16;
        const UNIX_DIAG_PEER: u16 = 2;
        const UNIX_DIAG_RQLEN: u16 = 4;
        // nlmsghdr (16 bytes) then unix_diag_req (24 bytes).
        let mut req = [0u8; 40];
        req[0..4].copy_from_slice(&40u32.to_le_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_le_bytes());
        req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_le_bytes());
        req[16] = libc::AF_UNIX as u8;
        req[20..24].copy_from_slice(&u32::MAX.to_le_bytes()); // every state
        req[24..28].copy_from_slice(&(ino as u32).to_le_bytes());
        req[28..32].copy_from_slice(&(UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN).to_le_bytes());
        req[32..40].copy_from_slice(&[0xff; 8]); // no cookie
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
        let (mut peer, mut backlog) = (0, 0);
        // unix_diag_msg is 16 bytes after the 16-byte header; attributes follow.
        let mut at = 32;
        while at + 4 <= len {
            let alen = u16_at(at)? as usize;
            match u16_at(at + 2)? {
                UNIX_DIAG_PEER => peer = u32_at(at + 4)? as u64,
                UNIX_DIAG_RQLEN => backlog = u32_at(at + 8)? as u64,
                _ => {}
            }
            at += alen.max(4).next_multiple_of(4);
        }
        Some((peer, backlog))
    }
}

impl Drop for Diag {
    fn drop(&mut self) {
        sys::close(self.0);
    }
}

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
        opts: 0,
    };
    s.bound_len = sys::sockname(fd, false, &mut s.bound).unwrap_or(0);
    s.peer_len = sys::sockname(fd, true, &mut s.peer).unwrap_or(0);
    let listening = int(libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Ok(1);
    let on = |level, name| int(level, name).is_ok_and(|v| v != 0);
    for (bit, level, name) in [
        (mig_image::SOCKOPT_REUSEADDR, libc::SOL_SOCKET, libc::SO_REUSEADDR),
        (mig_image::SOCKOPT_REUSEPORT, libc::SOL_SOCKET, libc::SO_REUSEPORT),
        (mig_image::SOCKOPT_KEEPALIVE, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    ] {
        if on(level, name) {
            s.opts |= bit;
        }
    }
    match s.domain {
        libc::AF_UNIX => {
            if let Some((peer, backlog)) = diag.and_then(|d| d.unix(ino)) {
                s.peer_ino = peer;
                if listening {
                    s.backlog = backlog.max(1);
                }
            }
        }
        libc::AF_INET | libc::AF_INET6 => {
            if s.ty == libc::SOCK_STREAM && on(libc::IPPROTO_TCP, libc::TCP_NODELAY) {
                s.opts |= mig_image::SOCKOPT_NODELAY;
            }
            if s.domain == libc::AF_INET6 && on(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) {
                s.opts |= mig_image::SOCKOPT_V6ONLY;
            }
            if listening {
                // tcp_info.tcpi_sacked holds a listener's backlog.
                let mut info = [0u8; 104];
                let n = sys::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info).unwrap_or(0);
                s.backlog = if n >= 32 { u32::from_le_bytes([info[28], info[29], info[30], info[31]]) as u64 } else { 128 };
                s.backlog = s.backlog.max(1);
            }
        }
        _ => {}
    }
    if listening && s.backlog == 0 {
        s.backlog = 128;
    }
    Ok(s)
}

/// Appends the bytes queued for reading on UNIX socket `fd` to `out`, without taking
/// them (`MSG_PEEK` with a moving peek offset). Datagrams are stored as a `u32` length
/// then their bytes. Returns how many bytes were appended, or why not.
pub fn queued(fd: i32, datagrams: bool, out: &mut List<u8>) -> Result<u64, &'static str> {
    let old = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF).unwrap_or(-1);
    sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0).map_err(|_| "cannot peek at its queue")?;
    let start = out.len();
    // Bounded: an empty datagram is skipped by the next peek only once the kernel
    // marked it peeked; never loop for ever in a signal handler.
    let mut budget = 1u32 << 20;
    let result = (|| loop {
        budget = budget.checked_sub(1).ok_or("too many messages queued")?;
        let head = if datagrams { 4 } else { 0 };
        let spare = out.spare();
        if spare.len() <= head {
            return Err("too much data queued");
        }
        let (buf_head, buf) = spare.split_at_mut(head);
        match sys::recv(fd, buf, libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC) {
            Ok((n, flags)) => {
                if flags & libc::MSG_CTRUNC != 0 {
                    return Err("descriptors or credentials in flight would be lost");
                }
                if n > buf.len() {
                    return Err("too much data queued");
                }
                if n == 0 && !datagrams {
                    return Ok(()); // the peer shut down its end
                }
                buf_head.copy_from_slice(&(n as u32).to_le_bytes()[..head]);
                out.grow(head + n);
            }
            Err(Errno(libc::EAGAIN)) => return Ok(()),
            Err(Errno(libc::EINTR)) => {}
            Err(_) => return Err("cannot read its queue"),
        }
    })();
    let _ = sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, old);
    if result.is_err() {
        out.truncate(start);
    }
    result.map(|()| (out.len() - start) as u64)
}

/// Appends the bytes sitting in pipe `fd` (a read end) to `out` without taking them:
/// `tee` into a private pipe of the same size, then read from that.
pub fn pipe_queued(fd: i32, out: &mut List<u8>) -> Result<u64, &'static str> {
    let size = sys::fcntl(fd, libc::F_GETPIPE_SZ, 0).map_err(|_| "cannot size the pipe")?;
    let tmp = sys::pipe2(libc::O_NONBLOCK).map_err(|_| "no pipe to copy it through")?;
    let result = (|| {
        if sys::fcntl(tmp[1], libc::F_SETPIPE_SZ, size).is_err() {
            return Err("cannot size a pipe to copy it through");
        }
        let n = match sys::tee(fd, tmp[1], size, libc::SPLICE_F_NONBLOCK) {
            Ok(n) => n,
            Err(Errno(libc::EAGAIN)) => 0,
            Err(_) => return Err("cannot copy its contents"),
        };
        let spare = out.spare();
        if spare.len() < n {
            return Err("too much data queued");
        }
        let mut got = 0;
        while got < n {
            match sys::read(tmp[0], &mut spare[got..n]) {
                Ok(0) | Err(_) => return Err("cannot copy its contents"),
                Ok(k) => got += k,
            }
        }
        out.grow(n);
        Ok(n as u64)
    })();
    sys::close(tmp[0]);
    sys::close(tmp[1]);
    result
}
