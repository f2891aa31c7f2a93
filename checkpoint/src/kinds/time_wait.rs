//! Connections of a TCP listener's previous life, lingering in TIME_WAIT on the port it
//! binds again: the kernel refuses the bind (even with `SO_REUSEADDR`, unless the old
//! listener had it too) for up to a minute. With `CAP_NET_ADMIN` they are ended
//! (sock_diag's `SOCK_DESTROY`, as `ss -K` does); a live listener on the port is never
//! touched: the bind is then refused, as it should be. Restore side, normal code.
#![allow(unsafe_code)]

use std::vec;
use std::vec::Vec;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_TIME_WAIT: u32 = 6;
/// nlmsghdr (16 bytes), then inet_diag_req_v2 (8 bytes, then the 48-byte id).
const REQ_LEN: usize = 16 + 8 + 48;
/// inet_diag_msg: 4 bytes, then the id (48 bytes), then 20 more.
const MSG_LEN: usize = 72;

/// Ends the TIME_WAIT connections whose local end is `addr` (an inet address, its port
/// not 0; any local address if `addr`'s is the wildcard). Returns how many ended, or
/// why none could be (no privilege, no sock_diag).
pub fn clear(addr: &[u8]) -> std::io::Result<usize> {
    let (family, port, ip) = parse(addr).ok_or_else(|| std::io::Error::other("not an inet address"))?;
    // SAFETY: creating a netlink socket; closed below.
    let nl = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) };
    if nl < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let r = (|| {
        let ids = lingering(nl, family, port, &ip)?;
        let mut ended = 0;
        for id in &ids {
            send(nl, &request(SOCK_DESTROY, libc::NLM_F_REQUEST | libc::NLM_F_ACK, family, id))?;
            let mut buf = [0u8; 512];
            let n = recv(nl, &mut buf)?;
            // The acknowledgement: an error message whose error is 0.
            let err = u32_at(&buf, 16).map_or(-1, |e| e as i32);
            match (n >= 20, u16_at(&buf, 4), err) {
                (true, Some(NLMSG_ERROR), 0) => ended += 1,
                (true, Some(NLMSG_ERROR), e) => return Err(std::io::Error::from_raw_os_error(-e)),
                _ => return Err(std::io::Error::other("an unexpected answer from sock_diag")),
            }
        }
        Ok(ended)
    })();
    // SAFETY: the socket made above.
    unsafe { libc::close(nl) };
    r
}

/// (family, port in network order, address bytes: 4 or 16) of an inet socket address.
fn parse(addr: &[u8]) -> Option<(u8, [u8; 2], Vec<u8>)> {
    let family = u16::from_ne_bytes([*addr.first()?, *addr.get(1)?]) as i32;
    let port = [*addr.get(2)?, *addr.get(3)?];
    match family {
        libc::AF_INET => Some((libc::AF_INET as u8, port, addr.get(4..8)?.to_vec())),
        // sin6_flowinfo (4 bytes) comes first.
        libc::AF_INET6 => Some((libc::AF_INET6 as u8, port, addr.get(8..24)?.to_vec())),
        _ => None,
    }
    .filter(|(_, p, _)| *p != [0, 0])
}

/// The sock_diag ids (48 bytes each) of the TIME_WAIT sockets on (`port`, `ip`).
fn lingering(nl: i32, family: u8, port: [u8; 2], ip: &[u8]) -> std::io::Result<Vec<[u8; 48]>> {
    send(nl, &request(SOCK_DIAG_BY_FAMILY, libc::NLM_F_REQUEST | libc::NLM_F_DUMP, family, &[0; 48]))?;
    let wildcard = ip.iter().all(|&b| b == 0);
    let mut ids = Vec::new();
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = recv(nl, &mut buf)?;
        let mut at = 0;
        while at + 16 <= n {
            let len = u32_at(&buf, at).unwrap_or(0) as usize;
            match u16_at(&buf, at + 4) {
                Some(NLMSG_DONE) => return Ok(ids),
                Some(NLMSG_ERROR) => return Err(std::io::Error::other("sock_diag refused the listing")),
                _ => {}
            }
            let Some(msg) = buf.get(at + 16..at + 16 + MSG_LEN).filter(|_| len >= 16 + MSG_LEN && at + len <= n) else { break };
            let id: [u8; 48] = msg.get(4..52).and_then(|i| i.try_into().ok()).unwrap_or([0; 48]);
            let (sport, src) = (id.get(0..2), id.get(4..4 + ip.len()));
            if msg.get(1).is_some_and(|&st| st as u32 == TCP_TIME_WAIT) && sport == Some(&port[..]) && (wildcard || src == Some(ip)) {
                ids.push(id);
            }
            at += len.next_multiple_of(4);
        }
    }
}

fn request(ty: u16, flags: i32, family: u8, id: &[u8; 48]) -> [u8; REQ_LEN] {
    let mut req = [0u8; REQ_LEN];
    req[0..4].copy_from_slice(&(REQ_LEN as u32).to_le_bytes());
    req[4..6].copy_from_slice(&ty.to_le_bytes());
    req[6..8].copy_from_slice(&(flags as u16).to_le_bytes());
    req[16] = family;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&(1u32 << TCP_TIME_WAIT).to_le_bytes());
    req[24..72].copy_from_slice(id);
    req
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

fn send(nl: i32, req: &[u8]) -> std::io::Result<()> {
    // SAFETY: sending bytes we hold on our socket.
    match unsafe { libc::send(nl, req.as_ptr().cast(), req.len(), 0) } {
        n if n == req.len() as isize => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

fn recv(nl: i32, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: receiving into a buffer we own, of its length.
    match unsafe { libc::recv(nl, buf.as_mut_ptr().cast(), buf.len(), 0) } {
        n if n >= 0 => Ok(n as usize),
        _ => Err(std::io::Error::last_os_error()),
    }
}
