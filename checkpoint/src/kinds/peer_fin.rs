//! The FIN a restored TCP connection had received (it was in CLOSE_WAIT, LAST_ACK or
//! CLOSING), sent to it again as its peer sent it: a segment from the peer's address
//! and port, written whole on a raw socket (CAP_NET_RAW, which a restore that may use
//! repair mode has). The peer had its FIN acknowledged, so it never sends it again. It
//! acknowledges nothing new and carries the peer's window as saved; it has no
//! timestamp, which the kernel does not ask of it (nor would the restored connection
//! know what the peer's clock says).
#![allow(unsafe_code)]

use super::os::*;
use mig_image::{SockAddr, TcpConn};

const FIN_ACK: u8 = 0x11;

/// Sends connection `fd` (out of repair mode) its peer's FIN, numbered as `conn` says.
pub fn send(fd: i32, conn: &TcpConn) -> std::io::Result<()> {
    let (local, peer) = (address(fd, false)?, address(fd, true)?);
    let [_, snd_wnd, ..] = conn.window;
    let window = if conn.window == [0; 5] { 0xffff } else { (snd_wnd >> conn.snd_wscale.min(14)).min(0xffff) as u16 };
    let mut tcp = Vec::with_capacity(20);
    tcp.extend_from_slice(&peer.1.to_be_bytes());
    tcp.extend_from_slice(&local.1.to_be_bytes());
    tcp.extend_from_slice(&conn.rcv_seq.to_be_bytes());
    // Acknowledges what the restored end had seen acknowledged: nothing new.
    tcp.extend_from_slice(&conn.snd_seq.wrapping_sub(conn.sendq_len).to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, FIN_ACK]);
    tcp.extend_from_slice(&window.to_be_bytes());
    tcp.extend_from_slice(&[0; 4]); // checksum, urgent pointer
    let tcp_proto = libc::IPPROTO_TCP as u8;
    let (dst, src) = (&local.0[..], &peer.0[..]);
    let (mut packet, pseudo, family) = match (dst.len(), src.len()) {
        // Version 4, 5 words; 40 bytes; don't fragment; TTL 64; the kernel fills in
        // the header's checksum and id.
        (4, 4) => ([&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, tcp_proto, 0, 0], src, dst].concat(), [src, dst, &[0, tcp_proto, 0, 20]].concat(), libc::AF_INET),
        // Version 6; 20 bytes of TCP; hop limit 64.
        (16, 16) => ([&[0x60, 0, 0, 0, 0, 20, tcp_proto, 64], src, dst].concat(), [src, dst, &[0, 0, 0, 20, 0, 0, 0, tcp_proto]].concat(), libc::AF_INET6),
        _ => return Err(Error::other("its addresses are of two families")),
    };
    let sum = checksum(&pseudo, &tcp);
    if let Some(c) = tcp.get_mut(16..18) {
        c.copy_from_slice(&sum.to_be_bytes());
    }
    packet.extend_from_slice(&tcp);
    // SAFETY: a raw socket of our own; IPPROTO_RAW: we write the IP header.
    let raw = last_error::<i32>(unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) })
        .map_err(|e| Error::other(format!("its peer's FIN cannot be sent again (a raw socket takes CAP_NET_RAW): {e}")))?;
    // SAFETY: a zeroed socket address filled with the destination (port 0: a raw
    // socket takes none); `packet` is valid for its length.
    let sent = unsafe {
        let mut to: libc::sockaddr_storage = std::mem::zeroed();
        let len = if family == libc::AF_INET {
            let sin = &mut *(&mut to as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_addr.s_addr = u32::from_ne_bytes(dst.try_into().unwrap_or_default());
            size_of::<libc::sockaddr_in>()
        } else {
            let sin6 = &mut *(&mut to as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_addr.s6_addr = dst.try_into().unwrap_or_default();
            size_of::<libc::sockaddr_in6>()
        };
        libc::sendto(raw, packet.as_ptr().cast(), packet.len(), 0, (&to as *const libc::sockaddr_storage).cast(), len as u32)
    };
    let e = Error::last_os_error();
    close(raw);
    if sent != packet.len() as isize {
        return Err(Error::other(format!("its peer's FIN cannot be sent again: {e}")));
    }
    Ok(())
}

/// The address (4 or 16 bytes) and port of `fd`'s end (or, `peer`, its peer's); an
/// IPv4-mapped IPv6 address as the IPv4 address it is (its packets are IPv4).
fn address(fd: i32, peer: bool) -> std::io::Result<(Vec<u8>, u16)> {
    let mut raw = [0u8; 128];
    let n = crate::sys::sockname(fd, peer, &mut raw).map_err(|e| Error::from_raw_os_error(e.0))?;
    match SockAddr::decode(raw.get(..n).unwrap_or_default()) {
        SockAddr::Inet { ip, port } => Ok((ip.to_vec(), port)),
        SockAddr::Inet6 { ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d], port } => Ok((Vec::from([a, b, c, d]), port)),
        SockAddr::Inet6 { ip, port } => Ok((ip.to_vec(), port)),
        _ => Err(Error::other("it is not an IP connection")),
    }
}

/// The Internet checksum of `pseudo` (the pseudo-header) and `data`.
fn checksum(pseudo: &[u8], data: &[u8]) -> u16 {
    let word = |w: &[u8]| u32::from(w.first().copied().unwrap_or(0)) << 8 | u32::from(w.get(1).copied().unwrap_or(0));
    let words = pseudo.chunks(2).chain(data.chunks(2)).map(word);
    let mut sum: u32 = words.sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
