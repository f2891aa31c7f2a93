//! What a descriptor holds, in words, from its kind's typed record
//! (`mig_image::params`): the same decoding the restore uses.

use mig_image::*;

/// A short description of what `rec` holds beyond its path and flags; empty when
/// there is nothing more to say.
pub fn describe(img: &Image, rec: &FdRecord) -> String {
    let what = held(img, rec);
    match (rec.in_flight, what.is_empty()) {
        (0, _) => what,
        (_, true) => "in flight in a socket queue".into(),
        _ => format!("in flight in a socket queue, {what}"),
    }
}

fn held(img: &Image, rec: &FdRecord) -> String {
    let Some(kind) = FdKind::from_u32(rec.kind) else { return String::new() };
    if rec.dup_of >= 0 {
        return format!("a copy of descriptor {}", rec.dup_of);
    }
    match kind {
        FdKind::Pipe => format!("capacity {}", PipeParams::decode(&rec.params).capacity),
        FdKind::PosixMq => {
            let p = MqParams::decode(&rec.params);
            format!("{} messages of {} bytes at most{}", p.maxmsg, p.msgsize, if p.deleted { ", its name removed" } else { "" })
        }
        FdKind::Fifo => {
            let p = FifoParams::decode(&rec.params);
            format!("capacity {}{}", p.capacity, if p.deleted { ", its name removed" } else { "" })
        }
        FdKind::SocketPair => {
            let p = SocketPairParams::decode(&rec.params);
            let rights = if p.rights == 1 { ", descriptors in flight in its queue" } else { "" };
            format!("{} {} pair, peer inode {}{rights}", domain(p.domain), sock_type(p.ty), p.peer_ino)
        }
        FdKind::Reset => format!("{}, connected outside the process", domain(ResetParams::decode(&rec.params).domain)),
        FdKind::Socket => {
            let p = SocketParams::decode(&rec.params);
            let (bound, peer) = p.addrs(img.str(rec.extra));
            let mut v = vec![format!("{} {}", domain(p.domain), sock_type(p.ty))];
            if SockAddr::decode(bound).is_bound() {
                v.push(format!("bound to {}", SockAddr::decode(bound)));
            }
            if p.backlog > 0 {
                v.push(format!("listening (backlog {})", p.backlog));
            }
            if !peer.is_empty() {
                v.push(format!("connected to {}", SockAddr::decode(peer)));
            }
            v.join(", ")
        }
        FdKind::EventFd => {
            let p = EventfdParams::decode(&rec.params);
            format!("count {}{}", p.count, if p.semaphore { ", semaphore" } else { "" })
        }
        FdKind::SignalFd => {
            let mask = SignalfdParams::decode(&rec.params).mask;
            let signals: Vec<String> = (1..=64).filter(|n| mask & (1u64 << (n - 1)) != 0).map(|n: u32| n.to_string()).collect();
            format!("signals {}", if signals.is_empty() { "none".into() } else { signals.join(",") })
        }
        FdKind::TimerFd => {
            let p = TimerfdParams::decode(&rec.params);
            let t = |(s, ns): (u64, u64)| format!("{}.{:09}s", s, ns);
            format!("clock {}, {} left, interval {}, {} unread", p.clock, t(p.value), t(p.interval), p.ticks)
        }
        FdKind::Memfd => format!("seals {:#x}", MemfdParams::decode(&rec.params).seals),
        FdKind::Epoll => {
            let fds: Vec<String> = img.records::<EpollEntry>(rec.extra).map(|e| e.fd.to_string()).collect();
            format!("watches {}", if fds.is_empty() { "nothing".into() } else { fds.join(",") })
        }
        FdKind::Inotify => {
            let n = img.records::<InotifyWatch>(rec.extra).count();
            format!("{n} watch{}", if n == 1 { "" } else { "es" })
        }
        FdKind::File | FdKind::Deleted | FdKind::Device | FdKind::Unsupported | FdKind::Tty | FdKind::Shm | FdKind::Pidfd => String::new(),
    }
}

fn domain(d: i32) -> &'static str {
    match d {
        libc::AF_UNIX => "unix",
        libc::AF_INET => "inet",
        libc::AF_INET6 => "inet6",
        _ => "other",
    }
}

fn sock_type(t: i32) -> &'static str {
    match t {
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM => "datagram",
        libc::SOCK_SEQPACKET => "seqpacket",
        libc::SOCK_RAW => "raw",
        _ => "socket",
    }
}
