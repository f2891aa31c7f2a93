//! Typed views of what each kind of descriptor keeps in `FdRecord::params` (and in its
//! `extra` bytes and its blob): the checkpoint encodes them, the restore and
//! `mig inspect` decode them, so the positions are written down once, here.
//!
//! The layout is the one `docs/image-format.md` lists under each `FdKind`.

use crate::format::{FdKind, FdRecord, SockOpts};

/// A kind's parameters, stored in the record's eight `u64`s.
pub trait Params: Sized {
    /// The kind whose records hold these parameters.
    const KIND: FdKind;
    fn encode(&self) -> [u64; 8];
    fn decode(p: &[u64; 8]) -> Self;
}

/// `FdKind::Pipe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeParams {
    /// `F_GETPIPE_SZ`.
    pub capacity: u64,
}

impl Params for PipeParams {
    const KIND: FdKind = FdKind::Pipe;
    fn encode(&self) -> [u64; 8] {
        [self.capacity, 0, 0, 0, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [capacity, ..] = *p;
        PipeParams { capacity }
    }
}

/// `FdKind::Fifo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FifoParams {
    /// `F_GETPIPE_SZ`.
    pub capacity: u64,
    /// Removed from its directory at checkpoint time.
    pub deleted: bool,
}

impl Params for FifoParams {
    const KIND: FdKind = FdKind::Fifo;
    fn encode(&self) -> [u64; 8] {
        [self.capacity, self.deleted as u64, 0, 0, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [capacity, deleted, ..] = *p;
        FifoParams { capacity, deleted: deleted != 0 }
    }
}

/// `FdKind::Tty`: which terminal it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TtyParams {
    /// `TTY_TERMINAL`, `TTY_PTY_MASTER` or `TTY_PTY_SLAVE`.
    pub role: u32,
    /// A pseudo-terminal's number (`/dev/pts/<index>`) as saved: which ends are one
    /// pair.
    pub index: u32,
    /// `TIOCGWINSZ`: rows, columns, x and y pixels (a pseudo-terminal's master).
    pub winsize: [u16; 4],
    /// A master's saved data is the bytes that waited in its pseudo-terminal: this many
    /// for the master to read, then the rest for the slave.
    pub output: u64,
}

/// A terminal that is not the process's own pseudo-terminal: the restoring process's.
pub const TTY_TERMINAL: u32 = 0;
/// The master end of a pseudo-terminal whose master the process holds: made again.
pub const TTY_PTY_MASTER: u32 = 1;
/// The slave end of such a pseudo-terminal.
pub const TTY_PTY_SLAVE: u32 = 2;

impl Params for TtyParams {
    const KIND: FdKind = FdKind::Tty;
    fn encode(&self) -> [u64; 8] {
        let [a, b, c, d] = self.winsize;
        [self.role as u64, self.index as u64, a as u64 | (b as u64) << 16 | (c as u64) << 32 | (d as u64) << 48, self.output, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [role, index, ws, output, ..] = *p;
        TtyParams { role: role as u32, index: index as u32, winsize: [ws as u16, (ws >> 16) as u16, (ws >> 32) as u16, (ws >> 48) as u16], output }
    }
}

/// `FdKind::PosixMq`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MqParams {
    /// `mq_maxmsg` and `mq_msgsize` of its attributes.
    pub maxmsg: u64,
    pub msgsize: u64,
    /// Its name was removed (`mq_unlink`) at checkpoint time.
    pub deleted: bool,
}

impl Params for MqParams {
    const KIND: FdKind = FdKind::PosixMq;
    fn encode(&self) -> [u64; 8] {
        [self.maxmsg, self.msgsize, self.deleted as u64, 0, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [maxmsg, msgsize, deleted, ..] = *p;
        MqParams { maxmsg, msgsize, deleted: deleted != 0 }
    }
}

/// `FdKind::SocketPair`: the blob is this end's receive queue (`Queue`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketPairParams {
    pub domain: i32,
    pub ty: i32,
    /// The inode of the other end (`file.ino` is this end's).
    pub peer_ino: u64,
    /// `SO_SNDBUF`.
    pub sndbuf: i32,
    /// The kernel's shutdown bits of this end: 1, no more receiving (`SHUT_RD`); 2, no
    /// more sending (`SHUT_WR`).
    pub shutdown: u32,
    /// `SO_RCVTIMEO` and `SO_SNDTIMEO` in microseconds (0: none).
    pub timeouts_us: [u64; 2],
    /// 1: descriptors are in flight in the queue, which is then framed as
    /// `Queue::message` says (stream or datagrams).
    pub rights: u32,
    /// `SO_PASSCRED`: messages sent to it carry their sender's credentials.
    pub passcred: bool,
}

impl SocketPairParams {
    /// Datagram types queue messages, framed as `Queue` says.
    pub fn datagrams(&self) -> bool {
        self.ty != SOCK_STREAM
    }
}

impl Params for SocketPairParams {
    const KIND: FdKind = FdKind::SocketPair;
    fn encode(&self) -> [u64; 8] {
        let [rcv, snd] = self.timeouts_us;
        let flags = self.rights as u64 & 1 | (self.passcred as u64) << 1;
        [self.domain as u64, self.ty as u64, self.peer_ino, self.sndbuf as u64, self.shutdown as u64, rcv, snd, flags]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [domain, ty, peer_ino, sndbuf, shutdown, rcv, snd, flags] = *p;
        SocketPairParams {
            domain: domain as i32,
            ty: ty as i32,
            peer_ino,
            sndbuf: sndbuf as i32,
            shutdown: shutdown as u32,
            timeouts_us: [rcv, snd],
            rights: (flags & 1) as u32,
            passcred: flags & 2 != 0,
        }
    }
}

/// `FdKind::Reset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetParams {
    pub domain: i32,
}

impl Params for ResetParams {
    const KIND: FdKind = FdKind::Reset;
    fn encode(&self) -> [u64; 8] {
        [self.domain as u64, 0, 0, 0, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [domain, ..] = *p;
        ResetParams { domain: domain as i32 }
    }
}

/// `FdKind::Socket`: recreated from its settings; `extra` is the bound address then
/// the peer address (`addrs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketParams {
    pub domain: i32,
    pub ty: i32,
    pub protocol: i32,
    /// `listen` backlog; 0 when not listening.
    pub backlog: i32,
    pub bound_len: u32,
    pub peer_len: u32,
    /// `SOCKOPT_*` bits.
    pub opts: u64,
    /// Instructions of its classic BPF filter (`SO_ATTACH_FILTER`); 0: none.
    pub filter_len: u32,
}

impl SocketParams {
    /// (bound address, peer address) from the record's `extra` bytes.
    pub fn addrs<'a>(&self, extra: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        let (bound, rest) = extra.split_at((self.bound_len as usize).min(extra.len()));
        (bound, rest.get(..(self.peer_len as usize).min(rest.len())).unwrap_or_default())
    }
    /// The valued options, after the addresses in the record's `extra` bytes.
    pub fn opts(&self, extra: &[u8]) -> SockOpts {
        let at = self.bound_len as usize + self.peer_len as usize;
        extra.get(at..).and_then(|b| crate::read_record(b, 0)).unwrap_or_default()
    }
    /// The filter's instructions (`struct sock_filter`s), after the options.
    pub fn filter<'a>(&self, extra: &'a [u8]) -> &'a [u8] {
        let at = self.bound_len as usize + self.peer_len as usize + size_of::<SockOpts>();
        extra.get(at..at + self.filter_len as usize * crate::SOCK_FILTER_LEN).unwrap_or_default()
    }
    /// Whether it is a TCP connection (a connected stream socket; `TcpConn` heads its
    /// blob).
    pub fn is_connection(&self) -> bool {
        self.ty == 1 && self.peer_len > 0 && self.opts & crate::SOCKOPT_CONNECTING == 0
    }
    /// The (bound, peer) addresses of record `f` if it is a TCP connection; `extra`: its
    /// `extra` bytes.
    pub fn connection<'a>(f: &FdRecord, extra: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        let p = SocketParams::decode(&f.params);
        (f.kind == FdKind::Socket as u32 && p.is_connection()).then(|| p.addrs(extra))
    }
    /// Whether connections with these (bound, peer) addresses are the two ends of one:
    /// each one's peer is the other's bound address.
    pub fn ends_of_one(a: (&[u8], &[u8]), b: (&[u8], &[u8])) -> bool {
        a.0 == b.1 && a.1 == b.0
    }
    /// How many bytes of `extra` the record's parts take.
    pub fn extra_len(&self) -> u64 {
        self.bound_len as u64 + self.peer_len as u64 + size_of::<SockOpts>() as u64 + self.filter_len as u64 * crate::SOCK_FILTER_LEN as u64
    }
}

impl Params for SocketParams {
    const KIND: FdKind = FdKind::Socket;
    fn encode(&self) -> [u64; 8] {
        let s = self;
        [s.domain as u64, s.ty as u64, s.protocol as u64, s.backlog as u64, s.bound_len as u64, s.peer_len as u64, s.opts, s.filter_len as u64]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [domain, ty, protocol, backlog, bound_len, peer_len, opts, filter_len] = *p;
        SocketParams {
            domain: domain as i32,
            ty: ty as i32,
            protocol: protocol as i32,
            backlog: backlog as i32,
            bound_len: bound_len as u32,
            peer_len: peer_len as u32,
            opts,
            filter_len: filter_len as u32,
        }
    }
}

/// `FdKind::EventFd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventfdParams {
    pub count: u64,
    /// `EFD_SEMAPHORE`.
    pub semaphore: bool,
}

impl Params for EventfdParams {
    const KIND: FdKind = FdKind::EventFd;
    fn encode(&self) -> [u64; 8] {
        [self.count, self.semaphore as u64, 0, 0, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [count, semaphore, ..] = *p;
        EventfdParams { count, semaphore: semaphore != 0 }
    }
}

/// `FdKind::SignalFd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalfdParams {
    /// Bit `n - 1` for signal `n`.
    pub mask: u64,
}

impl Params for SignalfdParams {
    const KIND: FdKind = FdKind::SignalFd;
    fn encode(&self) -> [u64; 8] {
        [self.mask, 0, 0, 0, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [mask, ..] = *p;
        SignalfdParams { mask }
    }
}

/// `FdKind::TimerFd`: times as (seconds, nanoseconds); `value` is the time left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerfdParams {
    pub clock: i32,
    /// Expirations not read yet.
    pub ticks: u64,
    pub value: (u64, u64),
    pub interval: (u64, u64),
}

impl Params for TimerfdParams {
    const KIND: FdKind = FdKind::TimerFd;
    fn encode(&self) -> [u64; 8] {
        let t = self;
        [t.clock as u64, t.ticks, t.value.0, t.value.1, t.interval.0, t.interval.1, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [clock, ticks, vs, vns, is, ins, ..] = *p;
        TimerfdParams { clock: clock as i32, ticks, value: (vs, vns), interval: (is, ins) }
    }
}

/// `FdKind::File`: a regular file open for writing may have its contents saved (the
/// blob, `data_len` bytes: `MIG_SAVE_FILES`), put back at restore where the file
/// changed or is gone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileParams {
    pub saved: bool,
}

impl Params for FileParams {
    const KIND: FdKind = FdKind::File;
    fn encode(&self) -> [u64; 8] {
        [self.saved as u64, 0, 0, 0, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [saved, ..] = *p;
        FileParams { saved: saved != 0 }
    }
}

/// `FdKind::Pidfd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PidfdParams {
    /// `PIDFD_OWN`, `PIDFD_ENDED` or `PIDFD_JOB`.
    pub of: u32,
    /// For `PIDFD_JOB`: the process's pid.
    pub pid: u32,
}

/// A pidfd of the process itself: one of the restored process.
pub const PIDFD_OWN: u32 = 1;
/// A pidfd of a process that ended and was reaped: one of a process that did too.
pub const PIDFD_ENDED: u32 = 2;
/// A pidfd of another process of the job: one of that process, back with its pid.
pub const PIDFD_JOB: u32 = 3;

impl Params for PidfdParams {
    const KIND: FdKind = FdKind::Pidfd;
    fn encode(&self) -> [u64; 8] {
        [self.of as u64, self.pid as u64, 0, 0, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [of, pid, ..] = *p;
        PidfdParams { of: of as u32, pid: pid as u32 }
    }
}

/// `FdKind::Memfd`: the contents are the blob.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemfdParams {
    /// `F_GET_SEALS`; 0: not sealed (nor sealable again).
    pub seals: u64,
}

impl Params for MemfdParams {
    const KIND: FdKind = FdKind::Memfd;
    fn encode(&self) -> [u64; 8] {
        [self.seals, 0, 0, 0, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [seals, ..] = *p;
        MemfdParams { seals }
    }
}

const SOCK_STREAM: i32 = 1;

/// A socket's receive queue as saved in its blob: a stream's bytes as they are;
/// each datagram as a `u32` length (little-endian) then its bytes; with descriptors in
/// flight (`SocketPairParams::rights`), each message as [`Queue::message`] reads it.
pub struct Queue;

impl Queue {
    /// Bytes before each datagram.
    pub const HEAD: usize = 4;

    /// The head of a datagram of `len` bytes.
    pub fn head(len: usize) -> [u8; Queue::HEAD] {
        (len as u32).to_le_bytes()
    }

    /// The first datagram of `rest` and the bytes it takes with its head; `None` if
    /// `rest` does not start with a whole one.
    pub fn datagram(rest: &[u8]) -> Option<(&[u8], usize)> {
        let head: [u8; Queue::HEAD] = rest.get(..Queue::HEAD)?.try_into().ok()?;
        let len = u32::from_le_bytes(head) as usize;
        Some((rest.get(Queue::HEAD..Queue::HEAD.checked_add(len)?)?, Queue::HEAD + len))
    }

    /// Bytes before each datagram of a socket's queue that keeps its senders
    /// (`FdKind::Socket`): its length and its sender's address length (`u32`s); the
    /// address (`sockaddr` bytes, none for an unnamed sender) follows, then the bytes.
    pub const FROM_HEAD: usize = 8;

    /// The head of a datagram of `len` bytes from an address of `addr_len` bytes.
    pub fn from_head(len: usize, addr_len: usize) -> [u8; Queue::FROM_HEAD] {
        Queue::message_head(len, addr_len)
    }

    /// The first datagram of `rest` with its sender: (address, bytes, how many bytes
    /// of `rest` it takes); `None` if `rest` does not start with a whole one.
    pub fn from(rest: &[u8]) -> Option<(&[u8], &[u8], usize)> {
        let word = |at: usize| Some(u32::from_le_bytes(rest.get(at..at + 4)?.try_into().ok()?) as usize);
        let (len, addr_len) = (word(0)?, word(4)?);
        let data = Queue::FROM_HEAD.checked_add(addr_len)?;
        let end = data.checked_add(len)?;
        Some((rest.get(Queue::FROM_HEAD..data)?, rest.get(data..end)?, end))
    }

    /// Bytes before each message of a POSIX message queue: its length and its
    /// priority (`u32`s); its bytes follow.
    pub const PRIO_HEAD: usize = 8;

    /// The head of a message of `len` bytes of priority `prio`.
    pub fn prio_head(len: usize, prio: u32) -> [u8; Queue::PRIO_HEAD] {
        Queue::message_head(len, prio as usize)
    }

    /// The first message of `rest`: (priority, bytes, how many bytes of `rest` it
    /// takes); `None` if `rest` does not start with a whole one.
    pub fn prioritized(rest: &[u8]) -> Option<(u32, &[u8], usize)> {
        let word = |at: usize| Some(u32::from_le_bytes(rest.get(at..at + 4)?.try_into().ok()?));
        let (len, prio) = (word(0)? as usize, word(4)?);
        let end = Queue::PRIO_HEAD.checked_add(len)?;
        Some((prio, rest.get(Queue::PRIO_HEAD..end)?, end))
    }

    /// Bytes before each message of a queue with descriptors in flight: its length and
    /// how many descriptors it carries (`u32`s); the message's bytes follow, then the
    /// saved numbers of those descriptors (`i32`s).
    pub const MESSAGE_HEAD: usize = 8;

    /// The head of a message of `len` bytes carrying `fds` descriptors.
    pub fn message_head(len: usize, fds: usize) -> [u8; Queue::MESSAGE_HEAD] {
        let mut h = [0u8; Queue::MESSAGE_HEAD];
        h[..4].copy_from_slice(&(len as u32).to_le_bytes());
        h[4..].copy_from_slice(&(fds as u32).to_le_bytes());
        h
    }

    /// The first message of `rest`: its bytes, the numbers of the descriptors it
    /// carries (4 bytes each), and how many bytes of `rest` it takes; `None` if `rest`
    /// does not start with a whole one.
    pub fn message(rest: &[u8]) -> Option<(&[u8], &[u8], usize)> {
        let word = |at: usize| Some(u32::from_le_bytes(rest.get(at..at + 4)?.try_into().ok()?) as usize);
        let (len, fds) = (word(0)?, word(4)?.checked_mul(4)?);
        let numbers = Queue::MESSAGE_HEAD.checked_add(len)?;
        let end = numbers.checked_add(fds)?;
        Some((rest.get(Queue::MESSAGE_HEAD..numbers)?, rest.get(numbers..end)?, end))
    }
}

/// A socket address as the kernel gives it (`getsockname`) and takes it (`bind`):
/// a `u16` family, then what the family needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockAddr<'a> {
    /// `AF_UNIX`: the bytes after the family: a path up to its NUL, an abstract name
    /// after a NUL, or nothing (unnamed).
    Unix(&'a [u8]),
    Inet {
        ip: [u8; 4],
        port: u16,
    },
    Inet6 {
        ip: [u8; 16],
        port: u16,
    },
    /// Another family, or too short for its own.
    Other,
}

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

impl<'a> SockAddr<'a> {
    pub fn decode(addr: &'a [u8]) -> SockAddr<'a> {
        let Some((family, rest)) = addr.split_first_chunk::<2>() else { return SockAddr::Other };
        let port = |b: Option<&[u8; 2]>| b.map_or(0, |b| u16::from_be_bytes(*b));
        match u16::from_ne_bytes(*family) {
            AF_UNIX => SockAddr::Unix(rest),
            // sockaddr_in: port, then the address.
            AF_INET => match rest.get(2..6).and_then(|b| b.try_into().ok()) {
                Some(ip) => SockAddr::Inet { ip, port: port(rest.first_chunk()) },
                None => SockAddr::Other,
            },
            // sockaddr_in6: port, flow info, then the address.
            AF_INET6 => match rest.get(6..22).and_then(|b| b.try_into().ok()) {
                Some(ip) => SockAddr::Inet6 { ip, port: port(rest.first_chunk()) },
                None => SockAddr::Other,
            },
            _ => SockAddr::Other,
        }
    }

    /// Whether it names something to bind to again (not the unnamed UNIX address,
    /// not the wildcard address with port 0).
    pub fn is_bound(&self) -> bool {
        match self {
            SockAddr::Unix(rest) => !rest.is_empty(),
            SockAddr::Inet { ip, port } => *port != 0 || *ip != [0; 4],
            SockAddr::Inet6 { ip, port } => *port != 0 || *ip != [0; 16],
            SockAddr::Other => false,
        }
    }

    /// A UNIX address's path; empty for an abstract or unnamed one.
    pub fn path(&self) -> &'a [u8] {
        match self {
            SockAddr::Unix(rest) => rest.split(|&c| c == 0).next().unwrap_or_default(),
            _ => &[],
        }
    }
}

/// In words: a path, `1.2.3.4:80`, `[::1]:80`.
impl core::fmt::Display for SockAddr<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            SockAddr::Unix(_) if self.path().is_empty() => f.write_str("an abstract UNIX address"),
            SockAddr::Unix(_) => {
                for chunk in self.path().utf8_chunks() {
                    f.write_str(chunk.valid())?;
                    if !chunk.invalid().is_empty() {
                        f.write_str("\u{FFFD}")?;
                    }
                }
                Ok(())
            }
            SockAddr::Inet { ip: [a, b, c, d], port } => write!(f, "{a}.{b}.{c}.{d}:{port}"),
            SockAddr::Inet6 { ip, port } => write!(f, "[{}]:{port}", core::net::Ipv6Addr::from(ip)),
            SockAddr::Other => f.write_str("a socket address"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = TimerfdParams { clock: 1, ticks: 3, value: (9, 999), interval: (0, 500) };
        assert_eq!(t.encode(), [1, 3, 9, 999, 0, 500, 0, 0]);
        assert_eq!(TimerfdParams::decode(&t.encode()), t);
        let s = SocketParams { domain: 2, ty: 1, protocol: 6, backlog: 128, bound_len: 16, peer_len: 0, opts: 1, filter_len: 4 };
        assert_eq!(s.encode(), [2, 1, 6, 128, 16, 0, 1, 4]);
        assert_eq!(SocketParams::decode(&s.encode()), s);
        let e = EventfdParams { count: 7, semaphore: true };
        assert_eq!(EventfdParams::decode(&e.encode()), e);
        let p = SocketPairParams { domain: 1, ty: 2, peer_ino: 201, sndbuf: 212992, shutdown: 2, timeouts_us: [1_500_000, 0], rights: 1, passcred: true };
        assert_eq!(p.encode(), [1, 2, 201, 212992, 2, 1_500_000, 0, 3]);
        assert_eq!(SocketPairParams::decode(&p.encode()), p);
        assert!(SocketPairParams::decode(&p.encode()).datagrams());
    }

    #[test]
    fn frames_datagrams() {
        let mut q = [0u8; 7];
        q[..4].copy_from_slice(&Queue::head(3));
        q[4..].copy_from_slice(b"abc");
        assert_eq!(Queue::datagram(&q), Some((&b"abc"[..], 7)));
        assert_eq!(Queue::datagram(&q[..6]), None);
        let mut m = Queue::message_head(2, 1).to_vec();
        m.extend_from_slice(b"hi");
        m.extend_from_slice(&7i32.to_le_bytes());
        assert_eq!(Queue::message(&m), Some((&b"hi"[..], &7i32.to_le_bytes()[..], 14)));
        assert_eq!(Queue::message(&m[..13]), None);
        let mut d = Queue::from_head(2, 3).to_vec();
        d.extend_from_slice(b"\x01\x00\x00hi");
        assert_eq!(Queue::from(&d), Some((&b"\x01\x00\x00"[..], &b"hi"[..], 13)));
        assert_eq!(Queue::from(&d[..12]), None);
        assert_eq!(Queue::datagram(&[]), None);
    }

    #[test]
    fn decodes_addresses() {
        let mut v4 = [0u8; 16];
        v4[..2].copy_from_slice(&2u16.to_ne_bytes());
        assert!(!SockAddr::decode(&v4).is_bound());
        v4[2..4].copy_from_slice(&8080u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        let a = SockAddr::decode(&v4);
        assert!(a.is_bound());
        assert_eq!(a, SockAddr::Inet { ip: [127, 0, 0, 1], port: 8080 });
        let mut unix = [0u8; 12];
        unix[..2].copy_from_slice(&1u16.to_ne_bytes());
        unix[2..9].copy_from_slice(b"/tmp/s\0");
        assert_eq!(SockAddr::decode(&unix).path(), b"/tmp/s");
        assert!(!SockAddr::decode(&unix[..2]).is_bound());
        assert_eq!(SockAddr::decode(&[1, 2]), SockAddr::Other);
    }
}
