//! Typed views of what each kind of descriptor keeps in `FdRecord::params` (and in its
//! `extra` bytes and its blob): the checkpoint encodes them, the restore and
//! `mig inspect` decode them, so the positions are written down once, here.
//!
//! The layout is the one `docs/image-format.md` lists under each `FdKind`.

use crate::format::FdKind;

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

/// `FdKind::SocketPair`: the blob is this end's receive queue (`Queue`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketPairParams {
    pub domain: i32,
    pub ty: i32,
    /// The inode of the other end (`file.ino` is this end's).
    pub peer_ino: u64,
    /// `SO_SNDBUF`.
    pub sndbuf: i32,
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
        [self.domain as u64, self.ty as u64, self.peer_ino, self.sndbuf as u64, 0, 0, 0, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [domain, ty, peer_ino, sndbuf, ..] = *p;
        SocketPairParams { domain: domain as i32, ty: ty as i32, peer_ino, sndbuf: sndbuf as i32 }
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
}

impl SocketParams {
    /// (bound address, peer address) from the record's `extra` bytes.
    pub fn addrs<'a>(&self, extra: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        extra.split_at((self.bound_len as usize).min(extra.len()))
    }
}

impl Params for SocketParams {
    const KIND: FdKind = FdKind::Socket;
    fn encode(&self) -> [u64; 8] {
        let s = self;
        [s.domain as u64, s.ty as u64, s.protocol as u64, s.backlog as u64, s.bound_len as u64, s.peer_len as u64, s.opts, 0]
    }
    fn decode(p: &[u64; 8]) -> Self {
        let [domain, ty, protocol, backlog, bound_len, peer_len, opts, _] = *p;
        SocketParams {
            domain: domain as i32,
            ty: ty as i32,
            protocol: protocol as i32,
            backlog: backlog as i32,
            bound_len: bound_len as u32,
            peer_len: peer_len as u32,
            opts,
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
/// each datagram as a `u32` length (little-endian) then its bytes.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = TimerfdParams { clock: 1, ticks: 3, value: (9, 999), interval: (0, 500) };
        assert_eq!(t.encode(), [1, 3, 9, 999, 0, 500, 0, 0]);
        assert_eq!(TimerfdParams::decode(&t.encode()), t);
        let s = SocketParams { domain: 2, ty: 1, protocol: 6, backlog: 128, bound_len: 16, peer_len: 0, opts: 1 };
        assert_eq!(s.encode(), [2, 1, 6, 128, 16, 0, 1, 0]);
        assert_eq!(SocketParams::decode(&s.encode()), s);
        let e = EventfdParams { count: 7, semaphore: true };
        assert_eq!(EventfdParams::decode(&e.encode()), e);
        let p = SocketPairParams { domain: 1, ty: 2, peer_ino: 201, sndbuf: 212992 };
        assert_eq!(p.encode(), [1, 2, 201, 212992, 0, 0, 0, 0]);
        assert!(SocketPairParams::decode(&p.encode()).datagrams());
    }

    #[test]
    fn frames_datagrams() {
        let mut q = [0u8; 7];
        q[..4].copy_from_slice(&Queue::head(3));
        q[4..].copy_from_slice(b"abc");
        assert_eq!(Queue::datagram(&q), Some((&b"abc"[..], 7)));
        assert_eq!(Queue::datagram(&q[..6]), None);
        assert_eq!(Queue::datagram(&[]), None);
    }
}
