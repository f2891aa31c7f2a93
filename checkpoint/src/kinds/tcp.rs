//! Established TCP connections, saved whole with the kernel's repair mode
//! (`TCP_REPAIR`, which takes CAP_NET_ADMIN): sequence numbers, queues, options and
//! windows, as CRIU does. Restored, the connection goes on where it was, the peer none
//! the wiser, provided the peer has not gone on meanwhile: the process ended without
//! closing it (`mig checkpoint --exit`, whose exit closes it in repair mode, silently:
//! `hold`). Without the capability a connection comes back reset, as before.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::files::Strings;
use crate::scratch::List;
use crate::sys;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering::Relaxed};
use mig_image::{FdRecord, SocketParams, TCP_CONN_SHUT_RD, TcpConn, bytes_of};

const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_TIMESTAMP: i32 = 24;
const TCP_REPAIR_WINDOW: i32 = 29;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
/// The states a connection is saved whole in (`tcp_states.h`): established, or closed
/// one way or both but for acknowledgements (`TcpConn::state`).
const TCP_ESTABLISHED: u8 = 1;
const TCP_FIN_WAIT1: u8 = 4;
const TCP_FIN_WAIT2: u8 = 5;
const TCP_CLOSE_WAIT: u8 = 8;
const TCP_LAST_ACK: u8 = 9;
const TCP_CLOSING: u8 = 11;
const SIOCINQ: u64 = 0x541b;
const SIOCOUTQ: u64 = 0x5411;
const SIOCOUTQNSD: u64 = 0x894b;

/// Connections saved whole by this checkpoint, to be closed silently if it ends the
/// process.
static SAVED: [AtomicI32; 4096] = [const { AtomicI32::new(-1) }; 4096];
static SAVED_N: AtomicUsize = AtomicUsize::new(0);

/// Whether stream socket `fd` is a TCP connection in a state `save` then tries to save
/// it whole in: established, or shut down one way or both (a FIN sent, received, or
/// both) with its peer still there.
pub fn repairable(fd: i32) -> bool {
    let mut info = [0u8; 8];
    sys::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info).is_ok() && info.first().is_some_and(|&s| saved_whole(s))
}

fn saved_whole(state: u8) -> bool {
    matches!(state, TCP_ESTABLISHED | TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSE_WAIT | TCP_LAST_ACK | TCP_CLOSING)
}

/// Whether a connection in `state` has sent its FIN (`.0`; `.1`: not acknowledged yet)
/// and whether it has received its peer's (`.2`).
fn fins(state: u8) -> (bool, bool, bool) {
    let sent = matches!(state, TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_LAST_ACK | TCP_CLOSING);
    let unacked = matches!(state, TCP_FIN_WAIT1 | TCP_LAST_ACK | TCP_CLOSING);
    (sent, unacked, matches!(state, TCP_CLOSE_WAIT | TCP_LAST_ACK | TCP_CLOSING))
}

fn repair_off(fd: i32) -> bool {
    // TCP_REPAIR_OFF_NO_WP: no window probe; nothing about the connection changed.
    sys::setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, -1).is_ok()
}

/// Before the descriptors are saved: none saved yet.
pub fn forget() {
    SAVED_N.store(0, Relaxed);
}

/// Appends connection `fd`'s `TcpConn` and queues to `out`; returns how many bytes.
pub fn save(fd: i32, out: &mut List<u8>) -> Result<u64, &'static str> {
    if SAVED_N.load(Relaxed) >= SAVED.len() {
        return Err("more connections than one checkpoint saves whole (4096)");
    }
    sys::setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, 1).map_err(|_| "the kernel's repair mode takes CAP_NET_ADMIN")?;
    let start = out.len();
    let r = read(fd, out);
    let r = if repair_off(fd) { r } else { Err("repair mode cannot be left") };
    if r.is_err() {
        out.truncate(start);
    } else if let Some(slot) = SAVED.get(SAVED_N.load(Relaxed)) {
        slot.store(fd, Relaxed);
        SAVED_N.fetch_add(1, Relaxed);
    }
    r.map(|()| (out.len() - start) as u64)
}

fn read(fd: i32, out: &mut List<u8>) -> Result<(), &'static str> {
    let mut info = [0u8; 8];
    sys::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info).map_err(|_| "TCP_INFO cannot be read")?;
    let [state, _, _, _, _, options, wscales, _] = info;
    if !saved_whole(state) {
        return Err("it is in a state repair mode does not save (SYN_SENT, closed)");
    }
    // A FIN counts in the sequence numbers and in the send queue's measures (after
    // its bytes, while not sent or not acknowledged): the saved ones are of the bytes
    // alone, the FINs being sent again by the restore.
    let (sent_fin, unacked_fin, got_fin) = fins(state);
    let recvq_len = sys::ioctl_get(fd, SIOCINQ).map_err(|_| "its receive queue cannot be measured")? as u32;
    let sendq_len = (sys::ioctl_get(fd, SIOCOUTQ).map_err(|_| "its send queue cannot be measured")? as u32).saturating_sub(unacked_fin as u32);
    let unsent = sys::ioctl_get(fd, SIOCOUTQNSD).map_err(|_| "its send queue cannot be measured")? as u32;
    let unsent = unsent.saturating_sub((sent_fin && unsent > 0) as u32).min(sendq_len);
    let int = |name| sys::getsockopt_int(fd, libc::IPPROTO_TCP, name).map(|v| v as u32).map_err(|_| "its settings cannot be read");
    let mut window = [0u8; 20];
    // Older kernels have no TCP_REPAIR_WINDOW: zeroes, not set again.
    let window = match sys::getsockopt(fd, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW, &mut window) {
        Ok(20) => core::array::from_fn(|i| window.get(i * 4..i * 4 + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_ne_bytes)),
        _ => [0; 5],
    };
    let mut conn = TcpConn {
        snd_seq: 0,
        rcv_seq: 0,
        sendq_len,
        recvq_len,
        mss: int(libc::TCP_MAXSEG)?,
        options: options as u32,
        snd_wscale: (wscales & 0xf) as u32,
        rcv_wscale: (wscales >> 4) as u32,
        timestamp: int(TCP_TIMESTAMP)?,
        window,
        unsent,
        state: state as u32,
        // Receiving is shut down once the peer's FIN is in; before, the process did it.
        flags: if !got_fin && sys::poll_now(fd, libc::POLLRDHUP) & libc::POLLRDHUP != 0 { TCP_CONN_SHUT_RD } else { 0 },
    };
    conn.rcv_seq = queue_seq(fd, TCP_RECV_QUEUE)?.wrapping_sub(got_fin as u32);
    conn.snd_seq = queue_seq(fd, TCP_SEND_QUEUE)?.wrapping_sub(sent_fin as u32);
    // Where the window was last advertised (`rcv_wup`) is never past what is expected.
    if let Some(rcv_wup) = conn.window.get_mut(4).filter(|w| (w.wrapping_sub(conn.rcv_seq) as i32) > 0) {
        *rcv_wup = conn.rcv_seq;
    }
    out.extend(bytes_of(&conn)).map_err(|_| "too much data queued")?;
    for (queue, len) in [(TCP_RECV_QUEUE, recvq_len), (TCP_SEND_QUEUE, sendq_len)] {
        sys::setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, queue).map_err(|_| "its queues cannot be read")?;
        let spare = out.spare().get_mut(..len as usize).ok_or("too much data queued")?;
        match sys::recv(fd, spare, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            Ok((n, _)) if n == len as usize => out.grow(n),
            _ if len == 0 => {}
            _ => return Err("its queues cannot be read"),
        }
    }
    Ok(())
}

fn queue_seq(fd: i32, queue: i32) -> Result<u32, &'static str> {
    sys::setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, queue).map_err(|_| "its queues cannot be read")?;
    sys::getsockopt_int(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ).map(|v| v as u32).map_err(|_| "its sequence numbers cannot be read")
}

/// Whether the other end of connection `f` is a connection of the process too (its
/// addresses, crossed, are another record's).
pub fn peer_here(all: &[FdRecord], strings: &Strings, f: &FdRecord) -> bool {
    let text = strings.bytes.as_slice();
    let addrs = |r: &FdRecord| SocketParams::connection(r, text.get(r.extra.off as usize..(r.extra.off + r.extra.len) as usize).unwrap_or_default());
    let Some(me) = addrs(f) else { return false };
    all.iter().any(|o| o.fd != f.fd && addrs(o).is_some_and(|other| SocketParams::ends_of_one(me, other)))
}

/// The process ends after its image is safe: its saved connections are put in repair
/// mode, so that the exit closes them without a word to their peers (no FIN, no
/// reset), and the restored process takes them over. First, for up to 300 ms, until
/// their peers have acknowledged all they were sent: a peer's delayed
/// acknowledgement (up to 200 ms) reaching the port while nothing is there would be
/// answered with a reset. (Sent again by the restored process, those bytes are
/// acknowledged again, as duplicates.)
pub fn hold() {
    let unacknowledged = |fd| sys::ioctl_get(fd, SIOCOUTQ).unwrap_or(0).saturating_sub(sys::ioctl_get(fd, SIOCOUTQNSD).unwrap_or(0));
    let deadline = sys::clock_monotonic_ns() + 300_000_000;
    while saved().any(|fd| unacknowledged(fd) > 0) && sys::clock_monotonic_ns() < deadline {
        sys::sleep_ms(2);
    }
    for fd in saved() {
        let _ = sys::setsockopt_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, 1);
    }
}

/// The connections this checkpoint saved whole.
pub fn saved() -> impl Iterator<Item = i32> {
    SAVED.iter().take(SAVED_N.load(Relaxed)).map(|s| s.load(Relaxed))
}

/// The held connections go on after all (the job's checkpoint was abandoned).
pub fn release() {
    for slot in SAVED.iter().take(SAVED_N.load(Relaxed)) {
        let _ = repair_off(slot.load(Relaxed));
    }
}

#[cfg(feature = "restore")]
pub use restore::{finish, prepare, restore};

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::os::*;
    use super::*;

    const TCPOPT_MSS: u32 = 2;
    const TCPOPT_WINDOW: u32 = 3;
    const TCPOPT_SACK_PERM: u32 = 4;
    const TCPOPT_TIMESTAMP: u32 = 8;
    const TCP_REPAIR_OPTIONS: i32 = 22;
    const TCPI_OPT_TIMESTAMPS: u32 = 1;
    const TCPI_OPT_SACK: u32 = 2;
    const TCPI_OPT_WSCALE: u32 = 4;

    fn set(fd: i32, name: i32, v: &[u8], what: &str) -> std::io::Result<()> {
        // SAFETY: setsockopt with `v.len()` valid bytes on our socket.
        let r = unsafe { libc::setsockopt(fd, libc::IPPROTO_TCP, name, v.as_ptr().cast(), v.len() as u32) };
        if r == 0 { Ok(()) } else { Err(Error::other(format!("{what}: {}", Error::last_os_error()))) }
    }

    fn set_int(fd: i32, name: i32, v: i32, what: &str) -> std::io::Result<()> {
        set(fd, name, &v.to_ne_bytes(), what)
    }

    /// Puts connection `fd` (a new TCP socket, options set, not bound yet) in repair
    /// mode and sets where its queues start, as `blob` (its saved `TcpConn` and
    /// queues) says: to be called before `bind` and `connect`. Returns the record.
    pub fn prepare(fd: i32, blob: &[u8]) -> std::io::Result<TcpConn> {
        let conn: TcpConn = mig_image::read_record(blob, 0).ok_or_else(|| Error::other("its TCP state is cut short"))?;
        if conn.blob_len() != blob.len() as u64 || !u8::try_from(conn.state).is_ok_and(saved_whole) || conn.flags & !TCP_CONN_SHUT_RD != 0 {
            return Err(Error::other("its TCP state does not match its queues"));
        }
        set_int(fd, TCP_REPAIR, 1, "repair mode (it takes CAP_NET_ADMIN)")?;
        for (queue, seq, len) in [(TCP_RECV_QUEUE, conn.rcv_seq, conn.recvq_len), (TCP_SEND_QUEUE, conn.snd_seq, conn.sendq_len)] {
            set_int(fd, TCP_REPAIR_QUEUE, queue, "its queues")?;
            set_int(fd, TCP_QUEUE_SEQ, seq.wrapping_sub(len) as i32, "its sequence numbers")?;
        }
        Ok(conn)
    }

    /// After `connect` (in repair mode: no packet leaves): the options, timestamps,
    /// queues and windows the connection had. It stays in repair mode until every
    /// descriptor is made (`finish`).
    pub fn restore(fd: i32, conn: &TcpConn, blob: &[u8]) -> std::io::Result<()> {
        let mut opts = Vec::from([(TCPOPT_MSS, conn.mss)]);
        if conn.options & TCPI_OPT_WSCALE != 0 {
            opts.push((TCPOPT_WINDOW, conn.snd_wscale | conn.rcv_wscale << 16));
        }
        if conn.options & TCPI_OPT_TIMESTAMPS != 0 {
            opts.push((TCPOPT_TIMESTAMP, 0));
        }
        if conn.options & TCPI_OPT_SACK != 0 {
            opts.push((TCPOPT_SACK_PERM, 0));
        }
        let bytes: Vec<u8> = opts.iter().flat_map(|&(c, v)| c.to_ne_bytes().into_iter().chain(v.to_ne_bytes())).collect();
        set(fd, TCP_REPAIR_OPTIONS, &bytes, "its TCP options")?;
        if conn.options & TCPI_OPT_TIMESTAMPS != 0 {
            set_int(fd, TCP_TIMESTAMP, conn.timestamp as i32, "its timestamps")?;
        }
        let (recvq, sent, _) = queues(conn, blob);
        for (queue, bytes) in [(TCP_RECV_QUEUE, recvq), (TCP_SEND_QUEUE, sent)] {
            set_int(fd, TCP_REPAIR_QUEUE, queue, "its queues")?;
            send_all(fd, bytes)?;
        }
        if conn.window != [0; 5] {
            let w: Vec<u8> = conn.window.iter().flat_map(|v| v.to_ne_bytes()).collect();
            set(fd, TCP_REPAIR_WINDOW, &w, "its windows")?;
        }
        set_int(fd, TCP_REPAIR_QUEUE, 0, "its queues")
    }

    /// The receive queue, the part of the send queue that was sent (it goes back as
    /// sent: the peer acknowledges it, or it is sent again) and the part that was not.
    fn queues<'b>(conn: &TcpConn, blob: &'b [u8]) -> (&'b [u8], &'b [u8], &'b [u8]) {
        let queues = blob.get(size_of::<TcpConn>()..).unwrap_or_default();
        let (recvq, sendq) = queues.split_at((conn.recvq_len as usize).min(queues.len()));
        let (sent, unsent) = sendq.split_at(sendq.len() - (conn.unsent as usize).min(sendq.len()));
        (recvq, sent, unsent)
    }

    /// Once every descriptor is made (the peer of a connection within the process
    /// too): connection `f` leaves repair mode and sends what it had not sent. Where
    /// that fails, a warning.
    pub fn finish(fd: i32, f: &FdRecord, blob: &[u8]) {
        let mut repair = 0i32;
        let mut len = 4u32;
        // SAFETY: getsockopt into a valid int on our socket.
        let r = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, TCP_REPAIR, (&mut repair as *mut i32).cast(), &mut len) };
        // Made otherwise (reset): nothing to do.
        let Some(conn) = mig_image::read_record::<TcpConn>(blob, 0).filter(|_| r == 0 && repair == 1) else { return };
        let (_, _, unsent) = queues(&conn, blob);
        let (sent_fin, _, got_fin) = fins(conn.state as u8);
        // With a window probe: a peer that has gone answers it with a reset, which
        // the program then sees, as it would have. Then the FINs: the peer's, as the
        // peer sent it (a segment from its address: the peer acknowledged it, so it
        // never comes again), and this end's, by shutting it down (the peer
        // acknowledges it again if it had).
        let done = set_int(fd, TCP_REPAIR, 0, "leaving repair mode")
            .and_then(|()| send_all(fd, unsent))
            .and_then(|()| if got_fin { super::super::peer_fin::send(fd, &conn) } else { Ok(()) })
            .and_then(|()| {
                let how = match (sent_fin, conn.flags & TCP_CONN_SHUT_RD != 0) {
                    (false, false) => return Ok(()),
                    (true, false) => libc::SHUT_WR,
                    (false, true) => libc::SHUT_RD,
                    (true, true) => libc::SHUT_RDWR,
                };
                // SAFETY: shutdown of our socket.
                if unsafe { libc::shutdown(fd, how) } != 0 {
                    return Err(Error::other(format!("shutting it down again: {}", Error::last_os_error())));
                }
                Ok(())
            });
        if let Err(e) = done {
            eprintln!("mig: warning: descriptor {}: its TCP connection may be broken: {e}", f.fd);
        }
    }

    fn send_all(fd: i32, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let chunk = bytes.len().min(64 << 10);
            // SAFETY: sending `chunk` bytes of `bytes` on our socket.
            let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), chunk, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            if n <= 0 {
                return Err(Error::other(format!("its queued bytes: {}", Error::last_os_error())));
            }
            bytes = bytes.get(n as usize..).unwrap_or_default();
        }
        Ok(())
    }
}
