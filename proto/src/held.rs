//! TCP connections held across a restart on the same host. A process that `mig
//! checkpoint --exit` ends hands the connections it saved whole (in repair mode, with a
//! socket filter that drops every segment that arrives: the peer gets neither an
//! acknowledgement nor a reset, and sends again later) to `mig hold`, which keeps them
//! until a restore of that process asks for them to go (closed in repair mode, they go
//! silently), or `HOLD_SECS` pass. Without it, a segment the peer sends while the
//! process is down (data, a window update) is answered with a reset.

/// How long `mig hold` keeps the connections when no restore asks for them.
pub const HOLD_SECS: u64 = 600;
/// The socket filter the held connections get: one `struct sock_filter`, `ret 0`
/// (every segment dropped).
pub const DROP_ALL: [u8; 8] = [0x06, 0, 0, 0, 0, 0, 0, 0];
/// What a restore writes, and what `mig hold` answers once the connections are closed.
pub const RELEASE: &[u8] = b"release\n";
pub const RELEASED: &[u8] = b"released\n";

/// The abstract UNIX socket name (without its leading NUL) of the holder of process
/// `pid`'s connections: `mig-held/<pid>`. Anyone may bind an abstract name: each side
/// checks the other's user.
pub fn name(pid: u32, out: &mut [u8; 32]) -> &[u8] {
    const PREFIX: &[u8] = b"mig-held/";
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut v = pid;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        out[PREFIX.len() + i] = digits[n - 1 - i];
    }
    &out[..PREFIX.len() + n]
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        let mut buf = [0; 32];
        assert_eq!(super::name(4_294_967_295, &mut buf), b"mig-held/4294967295");
        assert_eq!(super::name(0, &mut buf), b"mig-held/0");
    }
}
