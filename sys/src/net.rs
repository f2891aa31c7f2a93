//! Sockets: create, connect, options, names, send and receive (with a descriptor).

use crate::{Errno, SysResult, close};
use libc::c_int;

pub fn socket(domain: c_int, ty: c_int, proto: c_int) -> SysResult<c_int> {
    sc!(libc::SYS_socket, domain, ty | libc::SOCK_CLOEXEC, proto).map(|fd| fd as c_int)
}
/// `connect` to the abstract UNIX socket address `name` (without its leading NUL).
pub fn connect_abstract(fd: c_int, name: &[u8]) -> SysResult<()> {
    // SAFETY: `sockaddr_un` is plain old data.
    let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as u16;
    let path = a.sun_path.get_mut(1..1 + name.len()).ok_or(Errno(libc::ENAMETOOLONG))?;
    for (d, s) in path.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    let len = core::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    sc!(libc::SYS_connect, fd, &a as *const libc::sockaddr_un, len).map(drop)
}
/// The (pid, uid) of the peer of a UNIX socket, as the kernel recorded them when the
/// connection (or the listener) was made.
pub fn peer_cred(fd: c_int) -> SysResult<(u32, u32)> {
    let mut c = [0u32; 3];
    let mut len: u32 = 12;
    sc!(libc::SYS_getsockopt, fd, libc::SOL_SOCKET, libc::SO_PEERCRED, c.as_mut_ptr(), &mut len as *mut u32).map(|_| (c[0], c[1]))
}
/// `SO_RCVTIMEO` and `SO_SNDTIMEO` of `fd`: no read or write on it blocks longer.
pub fn socket_timeouts(fd: c_int, ms: u64) {
    let tv = [(ms / 1000) as i64, ((ms % 1000) * 1000) as i64];
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        let _ = sc!(libc::SYS_setsockopt, fd, libc::SOL_SOCKET, opt, tv.as_ptr(), 16);
    }
}
/// An integer socket option.
pub fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> SysResult<i32> {
    let mut v: i32 = 0;
    let mut len: u32 = 4;
    sc!(libc::SYS_getsockopt, fd, level, name, &mut v as *mut i32, &mut len as *mut u32).map(|_| v)
}
pub fn setsockopt_int(fd: c_int, level: c_int, name: c_int, v: i32) -> SysResult<()> {
    sc!(libc::SYS_setsockopt, fd, level, name, &v as *const i32, 4).map(drop)
}
/// `getsockopt` into raw bytes; returns the length the kernel filled.
pub fn getsockopt(fd: c_int, level: c_int, name: c_int, out: &mut [u8]) -> SysResult {
    let mut len = out.len() as u32;
    sc!(libc::SYS_getsockopt, fd, level, name, out.as_mut_ptr(), &mut len as *mut u32).map(|_| len as usize)
}
/// The classic BPF filter attached to socket `fd` (`SO_GET_FILTER`) into `out`, as
/// `struct sock_filter`s (8 bytes each); returns how many (0: none). `EACCES`: an eBPF
/// program, which cannot be read back; `EINVAL`: more than `out` holds.
pub fn socket_filter(fd: c_int, out: &mut [u8]) -> SysResult {
    // The length is counted in instructions, not bytes.
    let mut len = (out.len() / 8) as u32;
    sc!(libc::SYS_getsockopt, fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, out.as_mut_ptr(), &mut len as *mut u32).map(|_| len as usize)
}
/// Attaches the classic BPF filter `insns` (`struct sock_filter`s, 8 bytes each) to
/// socket `fd` (`SO_ATTACH_FILTER`).
pub fn attach_filter(fd: c_int, insns: &[u8]) -> SysResult<()> {
    let prog = SockFprog::of(insns)?;
    sc!(libc::SYS_setsockopt, fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog as *const SockFprog, core::mem::size_of::<SockFprog>()).map(drop)
}
/// `struct sock_fprog`: a classic BPF program (socket filters, seccomp filters).
#[repr(C)]
pub struct SockFprog {
    len: u16,
    filter: *const u8,
}
impl SockFprog {
    /// The program of `insns` (`struct sock_filter`s, 8 bytes each), alive as long as they are.
    pub(crate) fn of(insns: &[u8]) -> SysResult<SockFprog> {
        let len = u16::try_from(insns.len() / 8).map_err(|_| Errno(libc::EINVAL))?;
        Ok(SockFprog { len, filter: insns.as_ptr() })
    }
    /// The instructions of the program at `at`.
    ///
    /// # Safety
    /// `at` is a `struct sock_fprog` whose instructions stay readable for `'a` (one
    /// the kernel has just read, say).
    pub unsafe fn instructions<'a>(at: usize) -> &'a [u8] {
        // SAFETY: as the caller vouches.
        unsafe {
            let p = &*(at as *const SockFprog);
            core::slice::from_raw_parts(p.filter, p.len as usize * 8)
        }
    }
}
/// `getsockname` (`peer`: `getpeername`); returns the address length.
pub fn sockname(fd: c_int, peer: bool, out: &mut [u8]) -> SysResult {
    let mut len = out.len() as u32;
    let nr = if peer { libc::SYS_getpeername } else { libc::SYS_getsockname };
    sc!(nr, fd, out.as_mut_ptr(), &mut len as *mut u32).map(|_| (len as usize).min(out.len()))
}
pub fn send(fd: c_int, buf: &[u8], flags: c_int) -> SysResult {
    sc!(libc::SYS_sendto, fd, buf.as_ptr(), buf.len(), flags, 0, 0)
}
/// `send(fd, buf, MSG_NOSIGNAL)` until all is sent: a peer that went away is an error,
/// not a SIGPIPE.
pub fn send_all(fd: c_int, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        match sc!(libc::SYS_sendto, fd, buf.as_ptr(), buf.len(), libc::MSG_NOSIGNAL, 0, 0) {
            Ok(0) => return Err(Errno(libc::EPIPE)),
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
/// `recvmsg` into one buffer without control data; returns (length, msg_flags).
pub fn recv(fd: c_int, buf: &mut [u8], flags: c_int) -> SysResult<(usize, i32)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: `msghdr` is plain old data; null name and control are valid.
    let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    sc!(libc::SYS_recvmsg, fd, &mut m as *mut libc::msghdr, flags).map(|n| (n, m.msg_flags))
}
/// `recvmsg` into `buf`, the sender's address into `name`; returns (length, message
/// flags, length of the address).
pub fn recv_from(fd: c_int, buf: &mut [u8], flags: c_int, name: &mut [u8]) -> SysResult<(usize, i32, usize)> {
    recvmsg(fd, buf, flags, name, &mut []).map(|(n, f, name_len, _)| (n, f, name_len))
}
/// `recvmsg` into `buf` with room for control messages in `control`; returns (length,
/// message flags, length of the control messages received).
pub fn recv_control(fd: c_int, buf: &mut [u8], flags: c_int, control: &mut [u64]) -> SysResult<(usize, i32, usize)> {
    recvmsg(fd, buf, flags, &mut [], control).map(|(n, f, _, control_len)| (n, f, control_len))
}
/// `recvmsg` into `buf`, the sender's address into `name` and control messages into
/// `control` (either may be empty); (length, message flags, address length, control
/// length).
fn recvmsg(fd: c_int, buf: &mut [u8], flags: c_int, name: &mut [u8], control: &mut [u64]) -> SysResult<(usize, i32, usize, usize)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: `msghdr` is plain old data; an empty name or control is a null one.
    let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    if !name.is_empty() {
        m.msg_name = name.as_mut_ptr().cast();
        m.msg_namelen = name.len() as u32;
    }
    if !control.is_empty() {
        m.msg_control = control.as_mut_ptr().cast();
        m.msg_controllen = core::mem::size_of_val(control);
    }
    sc!(libc::SYS_recvmsg, fd, &mut m as *mut libc::msghdr, flags).map(|n| (n, m.msg_flags, m.msg_namelen as usize, m.msg_controllen))
}
/// `recvmsg` into `buf`, taking at most one descriptor passed with `SCM_RIGHTS`
/// (close-on-exec); returns (length, the descriptor or -1).
pub fn recv_with_fd(fd: c_int, buf: &mut [u8]) -> SysResult<(usize, c_int)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Room for one `cmsghdr` (16 bytes) and one descriptor, 8-byte aligned.
    let mut control = [0u64; 4];
    // SAFETY: `msghdr` is plain old data; null name is valid.
    let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = control.as_mut_ptr().cast();
    m.msg_controllen = core::mem::size_of_val(&control);
    let n = sc!(libc::SYS_recvmsg, fd, &mut m as *mut libc::msghdr, libc::MSG_CMSG_CLOEXEC)?;
    // The first control message: length, level, type, then the descriptors.
    let [len, level_type, fds, _] = control;
    let rights = (libc::SOL_SOCKET as u64) | (libc::SCM_RIGHTS as u64) << 32;
    let passed = if m.msg_controllen >= 20 && len >= 20 && level_type == rights { fds as u32 as c_int } else { -1 };
    // More than one descriptor: the others are closed, not kept by accident.
    if m.msg_controllen >= 20 && level_type == rights {
        let count = (len.min(32) as usize - 16) / 4;
        if count > 1 {
            close((fds >> 32) as u32 as c_int);
        }
    }
    Ok((n, passed))
}
