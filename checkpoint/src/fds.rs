//! Descriptors: what each one refers to, and what it takes to bring it back. The truth
//! is `/proc/self/fd` (what), `fstat`/`fcntl`/`fdinfo` (state) and sock_diag (which
//! sockets are connected to each other); hooks add the paths inotify watches were
//! given. What each kind holds, and how it comes back, is in its module of `kinds`;
//! this is the walk over the descriptors and the decisions that need all of them.
//! Async-signal-safe: runs inside the checkpoint signal handler.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::failure::Failure;
use super::files::Strings;
use super::kinds;
use super::maps::dec;
use super::scratch::List;
use super::snapshot::Snapshot;
use super::sockets::Diag;
use crate::sys::{self, CPath, msg::Msg, msg::msg};
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicI32, AtomicUsize};
use mig_image::{FdKind, FdRecord, FileParams, Params, SocketPairParams, SocketParams, StrRef, TTY_PTY_MASTER, TTY_PTY_SLAVE, TTY_TERMINAL, TtyParams};

/// Records every descriptor of the process in `s.fds` (and what some of them hold in
/// `s.queued`). `text` and `info` are working buffers.
pub fn collect(s: &mut Snapshot, text: &mut List<u8>, info: &mut List<u8>) -> Result<(), Failure> {
    kinds::tcp::forget();
    let diag = Diag::open();
    let dir = sys::open(&CPath::new(b"/proc/self/fd").ok_or(Failure::Full)?, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| Failure::Sys("opening /proc/self/fd", e))?;
    let ours = |fd: i32| fd == dir || diag.as_ref().is_some_and(|d| d.0 == fd) || super::control::is_own(fd);
    let r = (|| -> Result<(), Failure> {
        loop {
            text.truncate(0);
            let n = sys::getdents(dir, text.spare()).map_err(|e| Failure::Sys("listing /proc/self/fd", e))?;
            if n == 0 {
                return Ok(());
            }
            text.grow(n);
            for name in sys::dirent_names(text.as_slice()) {
                let Some(fd) = dec(name).and_then(|v| i32::try_from(v).ok()) else { continue };
                if ours(fd) {
                    continue;
                }
                if let Some(rec) = describe(fd, &mut s.strings, info, diag.as_ref())? {
                    s.fds.push(rec)?;
                }
            }
        }
    })();
    sys::close(dir);
    let r = r.and_then(|()| link(s, info, diag.as_ref()));
    drop(diag);
    r
}

/// Descriptors in flight in socket queues, brought into the process by peeking at
/// them: closed once the checkpoint is over (`close_in_flight`).
static IN_FLIGHT: [AtomicI32; MAX_IN_FLIGHT] = [const { AtomicI32::new(-1) }; MAX_IN_FLIGHT];
static IN_FLIGHT_N: AtomicUsize = AtomicUsize::new(0);
const MAX_IN_FLIGHT: usize = 1024;

/// Moves descriptor `passed`, just received in flight, to `*next` or above (numbers
/// ascend in the table), and keeps it to be closed; its new number.
fn carry(passed: i32, next: &mut i32) -> Option<i32> {
    let n = IN_FLIGHT_N.load(Relaxed);
    let moved = IN_FLIGHT.get(n).and_then(|slot| {
        let fd = sys::fcntl(passed, libc::F_DUPFD_CLOEXEC, *next as usize).ok()? as i32;
        slot.store(fd, Relaxed);
        IN_FLIGHT_N.store(n + 1, Relaxed);
        *next = fd + 1;
        Some(fd)
    });
    sys::close(passed);
    moved
}

/// Closes the descriptors peeking brought in: the program never sees them.
pub fn close_in_flight() {
    let n = IN_FLIGHT_N.swap(0, Relaxed);
    for slot in IN_FLIGHT.iter().take(n) {
        sys::close(slot.swap(-1, Relaxed));
    }
}

/// After a restore: the restore closed its own (the numbers recorded are the image's).
pub fn forget_in_flight() {
    IN_FLIGHT_N.store(0, Relaxed);
}

/// `/proc/self/fd/<fd>`.
fn fd_path(fd: i32) -> Option<CPath> {
    let mut num = Msg::<16>::new();
    num.num(fd as u64);
    CPath::join(&[b"/proc/self/fd/", num.as_bytes()])
}

fn slurp_info(fd: i32, info: &mut List<u8>) -> Result<(), Failure> {
    let mut num = Msg::<16>::new();
    num.num(fd as u64);
    let path = CPath::join(&[b"/proc/self/fdinfo/", num.as_bytes()]).ok_or(Failure::Full)?;
    info.truncate(0);
    let n = sys::read_file(&path, info.spare()).map_err(|e| Failure::Sys("reading /proc/self/fdinfo", e))?;
    if n == info.spare().len() {
        return Err(Failure::Full);
    }
    info.grow(n);
    Ok(())
}

/// The record of one descriptor; `None` for standard descriptors that are not
/// terminals (the restoring process's own are kept). Which kind it is comes from
/// `fstat` and what `/proc/self/fd` says; what the kind holds, from its module.
fn describe(fd: i32, strings: &mut Strings, info: &mut List<u8>, diag: Option<&Diag>) -> Result<Option<FdRecord>, Failure> {
    let mut target = [0u8; 4096];
    let n = sys::readlink(&fd_path(fd).ok_or(Failure::Full)?, &mut target).map_err(|e| Failure::Sys("readlink /proc/self/fd", e))?;
    let target = target.get(..n).unwrap_or(&target);
    let st = sys::fstat(fd).map_err(|e| Failure::Sys("fstat", e))?;
    let termios = kinds::tty::probe(fd, &st);
    // In a job, a standard descriptor may be a pipe to another of its processes.
    let job_pipe = super::control::in_job() && st.st_mode & libc::S_IFMT == libc::S_IFIFO && target.starts_with(b"pipe:");
    if fd <= 2 && termios.is_none() && !job_pipe {
        return Ok(None);
    }
    let flags = sys::fcntl(fd, libc::F_GETFL, 0).unwrap_or(0) as u32;
    let deleted = target.strip_suffix(b" (deleted)");
    let path = deleted.unwrap_or(target);
    // The process's own /proc directory: the restored process's, whatever its pid.
    let mut own = [0u8; 4096];
    let path = kinds::file::own_proc(path, &mut own).unwrap_or(path);
    let mut rec = FdRecord {
        fd,
        kind: FdKind::Unsupported as u32,
        flags,
        fd_flags: sys::fcntl(fd, libc::F_GETFD, 0).unwrap_or(0) as u32,
        offset: sys::lseek(fd, 0, libc::SEEK_CUR).unwrap_or(0),
        file: super::files::from_stat(&st, strings.add(path)?),
        data_off: 0,
        data_len: 0,
        blob: u32::MAX,
        open_flags: crate::intent::open_flags(fd),
        dup_of: -1,
        in_flight: 0,
        extra: StrRef::default(),
        params: [0; 8],
    };
    let kind = match st.st_mode & libc::S_IFMT {
        // No open file, a name: whatever it names (a symbolic link too, O_NOFOLLOW).
        _ if flags & libc::O_PATH as u32 != 0 => kinds::file::save_path(&st, target, path, deleted.is_some()),
        _ if termios.is_some() => {
            if let Some(t) = &termios {
                kinds::tty::save(fd, &st, t, &mut rec, strings)?;
            }
            FdKind::Tty
        }
        libc::S_IFREG if kinds::mq::is_mq(fd) => {
            kinds::mq::save(fd, &st, &mut rec);
            FdKind::PosixMq
        }
        libc::S_IFREG if path.starts_with(b"/memfd:") => {
            kinds::memfd::save(fd, &st, &mut rec);
            FdKind::Memfd
        }
        libc::S_IFREG | libc::S_IFDIR if path.first() == Some(&b'/') => kinds::file::save(&st, target, path, deleted.is_some(), &mut rec),
        libc::S_IFCHR | libc::S_IFBLK if path.first() == Some(&b'/') && deleted.is_none() => FdKind::Device,
        libc::S_IFIFO if path.starts_with(b"pipe:") => {
            kinds::pipe::save(fd, &mut rec);
            FdKind::Pipe
        }
        libc::S_IFIFO if path.first() == Some(&b'/') => {
            kinds::fifo::save(fd, &st, &mut rec);
            FdKind::Fifo
        }
        libc::S_IFSOCK => kinds::socket::save(fd, &mut rec, strings, diag)?,
        _ => anon_inode(fd, path, &mut rec, strings, info)?,
    };
    rec.kind = kind as u32;
    if kind.holds_locks() {
        slurp_info(fd, info)?;
        rec.extra = kinds::lock::save(fd, info.as_slice(), strings)?;
    }
    // After the locks, in the same `extra`: a sparse file's runs of data.
    if kind.saves_file() {
        kinds::memfd::segments(fd, &st, &mut rec, strings)?;
        kinds::memfd::owner(&st, &mut rec);
    }
    Ok(Some(rec))
}

/// Event fds, timers, epoll and inotify, from their `fdinfo`.
fn anon_inode(fd: i32, path: &[u8], rec: &mut FdRecord, strings: &mut Strings, info: &mut List<u8>) -> Result<FdKind, Failure> {
    let kind = match path {
        b"anon_inode:[eventfd]" => FdKind::EventFd,
        b"anon_inode:[signalfd]" => FdKind::SignalFd,
        b"anon_inode:[timerfd]" => FdKind::TimerFd,
        b"anon_inode:[eventpoll]" => FdKind::Epoll,
        b"anon_inode:inotify" => FdKind::Inotify,
        b"anon_inode:[pidfd]" => {
            slurp_info(fd, info)?;
            return Ok(kinds::pidfd::save(info.as_slice(), rec));
        }
        _ => return Ok(FdKind::Unsupported),
    };
    slurp_info(fd, info)?;
    let text = info.as_slice();
    match kind {
        FdKind::EventFd => kinds::eventfd::save(text, rec),
        FdKind::SignalFd => kinds::signalfd::save(text, rec),
        FdKind::TimerFd => kinds::timerfd::save(text, rec),
        FdKind::Epoll => rec.extra = kinds::epoll::save(fd, text, strings)?,
        FdKind::Inotify => rec.extra = kinds::inotify::save(fd, text, strings)?,
        _ => {}
    }
    Ok(kind)
}

/// Decisions that need every descriptor: which ones are copies of another (`dup`),
/// which pipes and socket pairs are wholly in the process (and what they hold), and
/// warnings for what cannot come back. Descriptors found in flight in a socket queue
/// are recorded after the others, and linked in turn (they may hold queues too).
fn link(s: &mut Snapshot, info: &mut List<u8>, diag: Option<&Diag>) -> Result<(), Failure> {
    let mut from = 0;
    for _ in 0..8 {
        let to = s.fds.len();
        if from == to {
            return Ok(());
        }
        link_range(s, from, info, diag)?;
        from = to;
    }
    Ok(())
}

/// `link` for the records from `from` on.
fn link_range(s: &mut Snapshot, from: usize, info: &mut List<u8>, diag: Option<&Diag>) -> Result<(), Failure> {
    let n = s.fds.len();
    // A pseudo-terminal's slave whose master is not here is another process's
    // terminal: the restoring process's (`mig checkpoint` names one whose master is in
    // another process of the job).
    for i in from..n {
        let all = s.fds.as_slice();
        let Some(f) = all.get(i) else { break };
        let p = TtyParams::decode(&f.params);
        let tty = f.kind == FdKind::Tty as u32;
        let master_here = |a: &[FdRecord]| {
            a.iter().any(|o| o.kind == f.kind && TtyParams::decode(&o.params).role == TTY_PTY_MASTER && TtyParams::decode(&o.params).index == p.index)
        };
        // In a job, the master may be another process's: the restore decides.
        if tty
            && p.role == TTY_PTY_SLAVE
            && !master_here(all)
            && !super::control::in_job()
            && let Some(r) = s.fds.as_mut_slice().get_mut(i)
        {
            r.params = TtyParams { role: TTY_TERMINAL, ..p }.encode();
        }
    }
    for i in from..n {
        let (before, rest) = s.fds.as_mut_slice().split_at_mut(i);
        let Some(f) = rest.first_mut() else { break };
        let original = before.iter().find(|o| o.dup_of < 0 && o.file.dev == f.file.dev && o.file.ino == f.file.ino && sys::same_file(o.fd, f.fd));
        if let Some(o) = original {
            f.dup_of = o.fd;
            f.data_len = 0;
            // The original lists the locks of their open file description (and a
            // sparse file's runs).
            let kind = FdKind::from_u32(f.kind);
            if kind.is_some_and(FdKind::holds_locks) {
                f.extra = StrRef::default();
            }
            if let Some(runs) = f.params.get_mut(mig_image::SEGMENTS_PARAM).filter(|_| kind.is_some_and(FdKind::saves_file)) {
                *runs = 0;
            }
        }
    }
    for i in from..n {
        let Some(&f) = s.fds.as_slice().get(i) else { break };
        if f.dup_of >= 0 {
            continue;
        }
        let all = s.fds.as_slice();
        let reads = |r: &FdRecord| r.flags & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32;
        let kind = match FdKind::from_u32(f.kind) {
            Some(FdKind::Pipe) => {
                let reader = all.iter().find(|o| o.kind == f.kind && o.dup_of < 0 && o.file.ino == f.file.ino && reads(o));
                match reader {
                    // Its reader may be another process of the job: the job's image
                    // knows (`mig checkpoint` warns if none is).
                    None if super::control::in_job() => FdKind::Pipe,
                    None => {
                        warn(&f, &s.strings, "its reader is outside the process; it comes back as a broken pipe end");
                        FdKind::Unsupported
                    }
                    Some(r) if r.fd == f.fd => {
                        let at = s.queued.len() as u64;
                        match kinds::pipe::queued(f.fd, &mut s.queued) {
                            Ok(len) => set_data(s, i, at, len),
                            Err(why) => warn(&f, &s.strings, why),
                        }
                        FdKind::Pipe
                    }
                    Some(_) => FdKind::Pipe,
                }
            }
            // The bytes waiting in a pseudo-terminal, both ways: saved with the first
            // descriptor of its master (a slave's master is here, or, in a job, in
            // another process of the job).
            Some(FdKind::Tty) if TtyParams::decode(&f.params).role == TTY_PTY_MASTER => {
                let p = TtyParams::decode(&f.params);
                let master_of = |o: &FdRecord| o.kind == f.kind && o.dup_of < 0 && TtyParams::decode(&o.params).index == p.index;
                if all.iter().find(|o| master_of(o)).is_some_and(|o| o.fd == f.fd) {
                    let at = s.queued.len() as u64;
                    match kinds::tty::queued(f.fd, &mut s.queued) {
                        Ok((output, len)) => {
                            set_data(s, i, at, len);
                            if let Some(r) = s.fds.as_mut_slice().get_mut(i) {
                                r.params = TtyParams { output, ..p }.encode();
                            }
                        }
                        Err(why) => warn(&f, &s.strings, why),
                    }
                }
                FdKind::Tty
            }
            Some(FdKind::PosixMq) => {
                // Saved with the first descriptor of it the process has.
                if all.iter().find(|o| o.kind == f.kind && o.dup_of < 0 && o.file.ino == f.file.ino).is_some_and(|o| o.fd == f.fd) {
                    let at = s.queued.len() as u64;
                    match kinds::mq::queued(f.fd, &mut s.queued) {
                        Ok(len) => set_data(s, i, at, len),
                        Err(why) => warn(&f, &s.strings, why),
                    }
                }
                FdKind::PosixMq
            }
            Some(FdKind::Fifo) => {
                // Saved with the first read end of it the process has.
                let first_reader = all.iter().find(|o| o.kind == f.kind && o.dup_of < 0 && o.file.ino == f.file.ino && reads(o));
                if first_reader.is_some_and(|r| r.fd == f.fd) {
                    let at = s.queued.len() as u64;
                    match kinds::pipe::queued(f.fd, &mut s.queued) {
                        Ok(len) => set_data(s, i, at, len),
                        Err(why) => warn(&f, &s.strings, why),
                    }
                }
                FdKind::Fifo
            }
            Some(FdKind::SocketPair) => {
                let p = SocketPairParams::decode(&f.params);
                // In a job, its peer may be another process of the job (`mig checkpoint`
                // warns if none is).
                if super::control::in_job() || all.iter().any(|o| o.kind == f.kind && o.file.ino == p.peer_ino) {
                    let at = s.queued.len() as u64;
                    let carried_from = IN_FLIGHT_N.load(Relaxed);
                    let mut next = s.fds.as_slice().last().map_or(3, |l| l.fd + 1);
                    match kinds::socketpair::queued(f.fd, p.datagrams(), &mut s.queued, &mut |passed| carry(passed, &mut next)) {
                        Ok((len, rights)) => {
                            set_data(s, i, at, len);
                            if let Some(r) = s.fds.as_mut_slice().get_mut(i) {
                                r.params = SocketPairParams { rights: rights as u32, ..p }.encode();
                            }
                            in_flight_records(s, carried_from, info, diag)?;
                        }
                        // Those it carried are closed with the others, not recorded.
                        Err(why) => warn(&f, &s.strings, why),
                    }
                    FdKind::SocketPair
                } else {
                    warn(&f, &s.strings, "it is connected outside the process; it comes back as a connection reset by the peer");
                    FdKind::Reset
                }
            }
            Some(FdKind::Reset) => {
                warn(&f, &s.strings, "it is connected outside the process; it comes back as a connection reset by the peer");
                FdKind::Reset
            }
            Some(FdKind::Socket) if SocketParams::decode(&f.params).is_connection() => {
                let at = s.queued.len() as u64;
                match kinds::tcp::save(f.fd, &mut s.queued) {
                    Ok(len) => {
                        set_data(s, i, at, len);
                        // Both ends in the process come back together; in a job, `mig
                        // checkpoint` tells those with a peer outside it.
                        if !s.exiting && !super::control::in_job() && !kinds::tcp::peer_here(s.fds.as_slice(), &s.strings, &f) {
                            warn(
                                &f,
                                &s.strings,
                                "its TCP connection is saved whole, but its peer sees it closed when this process ends, and a restored one is then reset \
                                 (`mig checkpoint --exit` ends the process without closing it)",
                            );
                        }
                        FdKind::Socket
                    }
                    Err(why) => {
                        let mut m = Msg::<200>::new();
                        m.s("its TCP connection cannot be saved (").s(why).s("); it comes back as a connection reset by the peer");
                        warn(&f, &s.strings, core::str::from_utf8(m.as_bytes()).unwrap_or(why));
                        if let Some(r) = s.fds.as_mut_slice().get_mut(i) {
                            r.params = mig_image::ResetParams { domain: SocketParams::decode(&f.params).domain }.encode();
                        }
                        FdKind::Reset
                    }
                }
            }
            Some(FdKind::Socket) if SocketParams::decode(&f.params).ty == libc::SOCK_DGRAM => {
                let at = s.queued.len() as u64;
                match kinds::socket::queued(f.fd, &mut s.queued) {
                    Ok(len) => set_data(s, i, at, len),
                    Err(why) => warn(&f, &s.strings, why),
                }
                FdKind::Socket
            }
            Some(FdKind::Unsupported) => {
                let pidfd =
                    s.strings.bytes.as_slice().get(f.file.path.off as usize..(f.file.path.off + f.file.path.len) as usize) == Some(b"anon_inode:[pidfd]");
                warn(&f, &s.strings, if pidfd { kinds::pidfd::OTHER } else { "it is not supported; it comes back as a broken pipe end" });
                FdKind::Unsupported
            }
            Some(FdKind::File) if FileParams::decode(&f.params).saved => {
                let at = s.queued.len() as u64;
                match kinds::file::queued(f.fd, f.flags, crate::runtime::get().settings.save_files, &mut s.queued) {
                    Ok(len) => set_data(s, i, at, len),
                    Err(why) => {
                        warn(&f, &s.strings, why);
                        if let Some(r) = s.fds.as_mut_slice().get_mut(i) {
                            r.params = FileParams { saved: false }.encode();
                        }
                    }
                }
                FdKind::File
            }
            _ => continue,
        };
        if let Some(r) = s.fds.as_mut_slice().get_mut(i) {
            r.kind = kind as u32;
        }
    }
    Ok(())
}

/// Records the descriptors a queue just saved carried in flight (from
/// `IN_FLIGHT[from]` on), after all others.
fn in_flight_records(s: &mut Snapshot, from: usize, info: &mut List<u8>, diag: Option<&Diag>) -> Result<(), Failure> {
    for slot in IN_FLIGHT.get(from..IN_FLIGHT_N.load(Relaxed)).unwrap_or_default() {
        if let Some(mut rec) = describe(slot.load(Relaxed), &mut s.strings, info, diag)? {
            rec.in_flight = 1;
            if rec.kind == FdKind::Epoll as u32 {
                warn(&rec, &s.strings, "an epoll set in flight in a socket queue comes back without its registrations");
            }
            // The kernel drops a process's POSIX locks on a file at any close of it.
            if FdKind::from_u32(rec.kind).is_some_and(FdKind::holds_locks) && slurp_info(rec.fd, info).is_ok() && contains(info.as_slice(), b" POSIX ") {
                warn(&rec, &s.strings, "the process's POSIX locks on this file end when the checkpoint closes the copy it took in to save");
            }
            s.fds.push(rec)?;
        }
    }
    Ok(())
}

fn contains(text: &[u8], word: &[u8]) -> bool {
    text.windows(word.len()).any(|w| w == word)
}

/// Descriptor `i`'s blob is `len` bytes of `s.queued` from `at`.
fn set_data(s: &mut Snapshot, i: usize, at: u64, len: u64) {
    if let Some(r) = s.fds.as_mut_slice().get_mut(i) {
        r.data_off = at;
        r.data_len = len;
    }
}

/// "warning: descriptor N (what it is): `why`" (a descriptor in flight has no number).
pub(crate) fn warn(f: &FdRecord, strings: &Strings, why: &str) {
    let what = strings.bytes.as_slice();
    let what = what.get(f.file.path.off as usize..(f.file.path.off + f.file.path.len) as usize).unwrap_or(&[]);
    if f.in_flight == 1 {
        msg().s("warning: a descriptor in flight in a socket queue (").bytes(what).s("): ").s(why).emit();
    } else {
        msg().s("warning: descriptor ").num(f.fd as u64).s(" (").bytes(what).s("): ").s(why).emit();
    }
}
