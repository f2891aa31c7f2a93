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
        rights: 0,
        passcred: sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PASSCRED) == Ok(1),
    }
    .encode();
}

/// Room for control messages: `SCM_MAX_FD` (253) descriptors and credentials.
const CONTROL_WORDS: usize = 160;

/// Appends the bytes queued for reading on UNIX socket `fd` to `out`, without taking
/// them (`MSG_PEEK` with a moving peek offset), framed as `Queue` says. Descriptors in
/// flight (`SCM_RIGHTS`) come into this process as new descriptors (close-on-exec),
/// each handed to `carried`, which returns the number it is saved under (none: no room).
/// Returns how many bytes were appended and whether descriptors were in flight (the
/// queue is then framed as `Queue::message` says), or why the queue cannot be saved.
pub fn queued(fd: i32, datagrams: bool, out: &mut List<u8>, carried: &mut dyn FnMut(i32) -> Option<i32>) -> Result<(u64, bool), &'static str> {
    let start = out.len();
    let mut rights = false;
    peek_each(fd, out, &mut |out| {
        let spare = out.spare();
        if spare.len() <= Queue::MESSAGE_HEAD {
            return Err("too much data queued");
        }
        let (buf_head, buf) = spare.split_at_mut(Queue::MESSAGE_HEAD);
        let mut control = [0u64; CONTROL_WORDS];
        let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC;
        let (n, got, control_len) = match sys::recv_control(fd, buf, flags, &mut control) {
            Ok(r) => r,
            Err(e) => return peek_failed(e),
        };
        // Every descriptor received is handed on first (to be closed with the others),
        // whatever else this message holds.
        let mut numbers = [0i32; 253];
        let (count, refused) = in_flight(&control, control_len, &mut numbers, carried);
        if let Some(why) = refused {
            return Err(why);
        }
        if got & libc::MSG_CTRUNC != 0 {
            return Err("more control messages in flight than a checkpoint can hold");
        }
        if n > buf.len().saturating_sub(count * 4) {
            return Err("too much data queued");
        }
        if n == 0 && !datagrams && count == 0 {
            return Ok(false); // the peer shut down its end
        }
        for (i, &v) in numbers.get(..count).unwrap_or_default().iter().enumerate() {
            if let Some(b) = buf.get_mut(n + 4 * i..n + 4 * i + 4) {
                b.copy_from_slice(&v.to_le_bytes());
            }
        }
        buf_head.copy_from_slice(&Queue::message_head(n, count));
        rights |= count > 0;
        out.grow(Queue::MESSAGE_HEAD + n + 4 * count);
        Ok(true)
    })?;
    if !rights {
        plain(out, start, datagrams);
    }
    Ok(((out.len() - start) as u64, rights))
}

/// What a peek at a socket's queue found: `Ok(true)` a message, `Ok(false)` the end.
pub(super) type Peeked = Result<bool, &'static str>;

/// A failed peek: the end of the queue, one to try again, or why it cannot be read.
pub(super) fn peek_failed(e: Errno) -> Peeked {
    match e {
        Errno(libc::EAGAIN) => Ok(false),
        Errno(libc::EINTR) => Ok(true),
        _ => Err("cannot read its queue"),
    }
}

/// Runs `one` for each message queued on socket `fd`, each peek taking the next (a
/// moving `SO_PEEK_OFF`, put back after), until it says the queue ends; if it fails,
/// `out` is cut back to where it was.
pub(super) fn peek_each(fd: i32, out: &mut List<u8>, one: &mut dyn FnMut(&mut List<u8>) -> Peeked) -> Result<(), &'static str> {
    let old = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF).unwrap_or(-1);
    sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0).map_err(|_| "cannot peek at its queue")?;
    let start = out.len();
    // Bounded: an empty datagram is skipped by the next peek only once the kernel
    // marked it peeked; never loop for ever in a signal handler.
    let mut budget = 1u32 << 20;
    let result = loop {
        let Some(left) = budget.checked_sub(1) else { break Err("too many messages queued") };
        budget = left;
        match one(out) {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(why) => break Err(why),
        }
    };
    let _ = sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, old);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// The descriptors of the control messages in `control` (`len` bytes of it), each
/// handed to `carried` and its saved number put in `numbers`: how many, and why the
/// queue cannot be saved (a descriptor with no room, credentials of another process,
/// another kind of control message).
fn in_flight(control: &[u64], len: usize, numbers: &mut [i32; 253], carried: &mut dyn FnMut(i32) -> Option<i32>) -> (usize, Option<&'static str>) {
    let (mut count, mut refused) = (0, None);
    let mut at = 0; // in words: a `cmsghdr` is its length (8 bytes), level and type
    while at + 2 <= len / 8 {
        let (Some(&cmsg_len), Some(&level_type)) = (control.get(at), control.get(at + 1)) else { break };
        let cmsg_len = cmsg_len as usize;
        if cmsg_len < 16 {
            break;
        }
        let (level, ty) = (level_type as u32 as i32, (level_type >> 32) as u32 as i32);
        let word = |k: usize| control.get(at + 2 + k / 2).map_or(0, |w| (w >> (32 * (k % 2))) as u32);
        match (level, ty) {
            (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                for k in 0..(cmsg_len - 16) / 4 {
                    let passed = word(k) as i32;
                    match (carried(passed), numbers.get_mut(count)) {
                        (Some(saved), Some(slot)) => {
                            *slot = saved;
                            count += 1;
                        }
                        _ => refused = Some("too many descriptors in flight"),
                    }
                }
            }
            // Sent again by this process, a message carries its credentials: the same
            // if they were this process's.
            (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) if word(0) == sys::getpid() && word(1) == sys::getuid() && word(2) == sys::getgid() => {}
            (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) => refused = Some("credentials of another process in flight would be lost"),
            _ => refused = Some("control messages in flight would be lost"),
        }
        at += cmsg_len.div_ceil(8);
    }
    (count, refused)
}

/// Rewrites the messages of `out` from `start` (`Queue::message`, none carrying
/// descriptors) as a queue without descriptors is framed.
fn plain(out: &mut List<u8>, start: usize, datagrams: bool) {
    let (mut from, mut to) = (start, start);
    let end = out.len();
    let all = out.as_mut_slice();
    while from < end {
        let Some((bytes, _, taken)) = all.get(from..end).and_then(Queue::message) else { break };
        let len = bytes.len();
        let body = from + Queue::MESSAGE_HEAD;
        if datagrams {
            if let Some(h) = all.get_mut(to..to + Queue::HEAD) {
                h.copy_from_slice(&Queue::head(len));
            }
            to += Queue::HEAD;
        }
        all.copy_within(body..body + len, to);
        to += len;
        from += taken;
    }
    out.truncate(to);
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
        if p.passcred {
            // Before its queue is sent again: each message takes this process's
            // credentials, as it had (`queued` saves no one else's).
            let on: i32 = 1;
            // SAFETY: setsockopt on our own socket with a valid int.
            unsafe { libc::setsockopt(end, libc::SOL_SOCKET, libc::SO_PASSCRED, (&on as *const i32).cast(), 4) };
        }
        set_status(dup(end)?, f.flags)
    }

    /// Puts back the bytes each socket pair end had queued, sent from its peer (once
    /// every end is made), with the descriptors that were in flight (`carried` gives
    /// the descriptor made for a saved number), then shuts the ends down as they were.
    pub fn fill(cx: &Shared, carried: &dyn Fn(i32) -> Option<i32>) -> Result<(), String> {
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
                let bad = || fail(Error::other("bad queue record"));
                let (msg, numbers, next) = match (p.rights, p.datagrams()) {
                    (1, _) => Queue::message(rest).ok_or_else(bad)?,
                    (_, true) => Queue::datagram(rest).map(|(m, next)| (m, &[][..], next)).ok_or_else(bad)?,
                    (_, false) => (rest, &[][..], rest.len()),
                };
                let fds = numbers
                    .chunks_exact(4)
                    .map(|b| {
                        let saved = b.try_into().map_or(-1, i32::from_le_bytes);
                        carried(saved).ok_or_else(|| fail(Error::other(format!("the descriptor in flight saved as {saved} is not in the image"))))
                    })
                    .collect::<Result<Vec<i32>, String>>()?;
                let n = send_with(from, msg, &fds).map_err(fail)?;
                let taken = match (p.rights, p.datagrams()) {
                    (_, true) => next,
                    // A stream message sent in part: its descriptors went with the
                    // first part, the rest follows on its own.
                    (1, false) => {
                        let mut left = msg.get(n..).unwrap_or_default();
                        while !left.is_empty() {
                            let m = send_with(from, left, &[]).map_err(fail)?;
                            left = left.get(m..).unwrap_or_default();
                        }
                        next
                    }
                    _ => n,
                };
                rest = rest.get(taken..).unwrap_or_default();
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

    /// Sends `msg` from `sock` with descriptors `fds` (`SCM_RIGHTS`, if any); how many
    /// bytes went.
    fn send_with(sock: i32, msg: &[u8], fds: &[i32]) -> std::io::Result<usize> {
        let mut iov = libc::iovec { iov_base: msg.as_ptr() as *mut libc::c_void, iov_len: msg.len() };
        let data_len = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        let mut control = std::vec![0u64; space.div_ceil(8)];
        // SAFETY: `msghdr` is plain old data; null name is valid.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        if !fds.is_empty() {
            m.msg_control = control.as_mut_ptr().cast();
            m.msg_controllen = space;
            // SAFETY: `control` holds CMSG_SPACE(data_len) bytes, 8-byte aligned: room
            // for one header and `fds`.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&m);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(data_len) as usize;
                std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<i32>(), fds.len());
            }
        }
        // SAFETY: `m` points at `iov` (over `msg`) and `control`, live for the call.
        let n = unsafe { libc::sendmsg(sock, &m, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n < 0 { Err(Error::last_os_error()) } else { Ok(n as usize) }
    }
}
