//! UNIX socket pairs wholly in the process (`socketpair`, or a connection accepted
//! from a listener of the process): made again as a pair, each end's receive queue
//! sent again from its peer. An end whose peer is outside comes back reset
//! (`fds::link` decides).

use crate::scratch::List;
use crate::sockets::Sock;
use crate::sys::{self, Errno};
use mig_image::{FdRecord, Params, Queue, SocketPairParams};

/// A UNIX socket connected to `s.peer_ino`.
pub fn save(fd: i32, s: &Sock, rec: &mut FdRecord) {
    let sndbuf = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).unwrap_or(0);
    rec.params = SocketPairParams {
        domain: s.domain,
        ty: s.ty,
        peer_ino: s.peer_ino,
        sndbuf,
        shutdown: s.shutdown,
        timeouts_us: [s.valued.rcvtimeo_us, s.valued.sndtimeo_us],
    }
    .encode();
}

/// Appends the bytes queued for reading on UNIX socket `fd` to `out`, without taking
/// them (`MSG_PEEK` with a moving peek offset), framed as `Queue` says. Returns how
/// many bytes were appended, or why not.
pub fn queued(fd: i32, datagrams: bool, out: &mut List<u8>) -> Result<u64, &'static str> {
    let old = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF).unwrap_or(-1);
    sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0).map_err(|_| "cannot peek at its queue")?;
    let start = out.len();
    // Bounded: an empty datagram is skipped by the next peek only once the kernel
    // marked it peeked; never loop for ever in a signal handler.
    let mut budget = 1u32 << 20;
    let result = (|| loop {
        budget = budget.checked_sub(1).ok_or("too many messages queued")?;
        let head = if datagrams { Queue::HEAD } else { 0 };
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
                for (b, v) in buf_head.iter_mut().zip(Queue::head(n)) {
                    *b = v;
                }
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

#[cfg(feature = "restore")]
pub use restore::{fill, restore};

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::{Shared, os::*};
    use mig_image::{FdKind, FdRecord, Params, Queue, SocketPairParams};

    /// An end of the recreated pair (both ends are made with the first).
    pub fn restore(f: &FdRecord, cx: &mut Shared) -> std::io::Result<i32> {
        let p = SocketPairParams::decode(&f.params);
        let end = match cx.ends.get(&f.file.ino) {
            Some(&end) => end,
            None => {
                let mut sv = [0i32; 2];
                // SAFETY: `sv` is a valid out-array of two descriptors.
                last_error::<i32>(unsafe { libc::socketpair(p.domain, p.ty | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) })?;
                let [this, peer] = sv;
                cx.ends.insert(f.file.ino, this);
                cx.ends.insert(p.peer_ino, peer);
                this
            }
        };
        set_timeouts(end, p.timeouts_us);
        set_status(dup(end)?, f.flags)
    }

    /// Puts back the bytes each socket pair end had queued, sent from its peer (once
    /// every end is made), then shuts the ends down as they were.
    pub fn fill(cx: &Shared) -> Result<(), String> {
        for f in cx.all.iter().filter(|f| f.kind == FdKind::SocketPair as u32 && f.data_len > 0) {
            let p = SocketPairParams::decode(&f.params);
            let Some(&from) = cx.ends.get(&p.peer_ino) else { continue };
            let peer_sndbuf = cx.all.iter().find(|o| o.file.ino == p.peer_ino).map_or(0, |o| SocketPairParams::decode(&o.params).sndbuf);
            let data = cx.img.data(f.data_off, f.data_len);
            let fail = |e: Error| format!("descriptor {}: the {} bytes it had queued cannot be put back: {e}", f.fd, f.data_len);
            // SAFETY: setsockopt on our end with a valid int.
            unsafe { libc::setsockopt(from, libc::SOL_SOCKET, libc::SO_SNDBUF, (&peer_sndbuf as *const i32).cast(), 4) };
            let mut rest = data;
            while !rest.is_empty() {
                let (msg, next) = if p.datagrams() { Queue::datagram(rest).ok_or_else(|| fail(Error::other("bad queue record")))? } else { (rest, rest.len()) };
                // SAFETY: sending from a buffer of `msg.len()` bytes on our socket.
                let n = unsafe { libc::send(from, msg.as_ptr().cast(), msg.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
                if n < 0 {
                    return Err(fail(Error::last_os_error()));
                }
                let n = if p.datagrams() { next } else { n as usize };
                rest = rest.get(n..).unwrap_or_default();
            }
        }
        // Shut down as they were, once the queues are back (a shut end takes no more).
        for f in cx.all.iter().filter(|f| f.kind == FdKind::SocketPair as u32 && f.dup_of < 0) {
            let how = match SocketPairParams::decode(&f.params).shutdown {
                1 => libc::SHUT_RD,
                2 => libc::SHUT_WR,
                3 => libc::SHUT_RDWR,
                _ => continue,
            };
            if let Some(&end) = cx.ends.get(&f.file.ino) {
                // SAFETY: shutdown of our own socket.
                unsafe { libc::shutdown(end, how) };
            }
        }
        Ok(())
    }
}
