//! Descriptors: what each one refers to, and what it takes to bring it back. The truth
//! is `/proc/self/fd` (what), `fstat`/`fcntl`/`fdinfo` (state) and sock_diag (which
//! sockets are connected to each other); hooks add the paths inotify watches were
//! given. Async-signal-safe: runs inside the checkpoint signal handler.
#![allow(unsafe_code)]
// TODO(kinds): removed by the kinds rewrite
#![allow(clippy::indexing_slicing)]

use super::collect::{Failure, Snapshot};
use super::fdinfo::{dec_field, hex_field, lines, pair_field, value};
use super::files::Strings;
use super::maps::{dec, hex};
use super::scratch::List;
use super::sockets::{self, Diag};
use crate::sys::{self, CPath, msg::Msg, msg::msg};
use mig_image::*;

/// Records every descriptor of the process in `s.fds` (and what some of them hold in
/// `s.queued`). `text` and `info` are working buffers.
pub fn collect(s: &mut Snapshot, text: &mut List<u8>, info: &mut List<u8>) -> Result<(), Failure> {
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
            let mut at = 0;
            let buf = text.as_slice();
            while let Some(rec) = buf.get(at..) {
                if rec.len() < 19 {
                    break;
                }
                let reclen = u16::from_le_bytes([rec[16], rec[17]]) as usize;
                let name = rec.get(19..reclen.max(19)).unwrap_or(&[]);
                let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
                at += reclen.max(1);
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
    drop(diag);
    r?;
    link(s)
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

/// The kernel's `struct termios` on x86_64.
const TERMIOS_LEN: usize = 36;

/// The record of one descriptor; `None` for standard descriptors that are not
/// terminals (the restoring process's own are kept).
fn describe(fd: i32, strings: &mut Strings, info: &mut List<u8>, diag: Option<&Diag>) -> Result<Option<FdRecord>, Failure> {
    let mut target = [0u8; 4096];
    let n = sys::readlink(&fd_path(fd).ok_or(Failure::Full)?, &mut target).map_err(|e| Failure::Sys("readlink /proc/self/fd", e))?;
    let target = &target[..n.min(target.len())];
    let st = sys::fstat(fd).map_err(|e| Failure::Sys("fstat", e))?;
    let mut termios = [0u8; 64];
    let tty = st.st_mode & libc::S_IFMT == libc::S_IFCHR && sys::tcgets(fd, &mut termios).is_ok();
    if fd <= 2 && !tty {
        return Ok(None);
    }
    let flags = sys::fcntl(fd, libc::F_GETFL, 0).unwrap_or(0) as u32;
    let deleted = target.strip_suffix(b" (deleted)");
    let path = deleted.unwrap_or(target);
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
        pad: 0,
        extra: StrRef::default(),
        params: [0; 8],
    };
    let kind = match st.st_mode & libc::S_IFMT {
        _ if tty => {
            rec.extra = strings.add(&termios[..TERMIOS_LEN])?;
            FdKind::Tty
        }
        libc::S_IFREG if path.starts_with(b"/memfd:") => {
            rec.params[0] = sys::fcntl(fd, libc::F_GET_SEALS, 0).unwrap_or(0) as u64;
            rec.data_len = st.st_size as u64;
            FdKind::Memfd
        }
        libc::S_IFREG | libc::S_IFDIR if path.first() == Some(&b'/') => {
            let same =
                deleted.is_none() && CPath::new(target).and_then(|p| sys::stat(&p).ok()).is_some_and(|now| now.st_ino == st.st_ino && now.st_dev == st.st_dev);
            let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
            if regular && (!same || path.starts_with(b"/dev/shm/")) {
                rec.data_len = st.st_size as u64;
                if same { FdKind::Shm } else { FdKind::Deleted }
            } else if same {
                FdKind::File
            } else {
                FdKind::Unsupported
            }
        }
        libc::S_IFCHR | libc::S_IFBLK if path.first() == Some(&b'/') && deleted.is_none() => FdKind::Device,
        libc::S_IFIFO if path.starts_with(b"pipe:") => {
            rec.params[0] = sys::fcntl(fd, libc::F_GETPIPE_SZ, 0).unwrap_or(0) as u64;
            FdKind::Pipe
        }
        libc::S_IFSOCK => socket(fd, &mut rec, strings, diag)?,
        _ => anon_inode(fd, path, &mut rec, strings, info)?,
    };
    rec.kind = kind as u32;
    Ok(Some(rec))
}

fn socket(fd: i32, rec: &mut FdRecord, strings: &mut Strings, diag: Option<&Diag>) -> Result<FdKind, Failure> {
    let Ok(s) = sockets::inspect(fd, rec.file.ino, diag) else { return Ok(FdKind::Unsupported) };
    if !matches!(s.domain, libc::AF_UNIX | libc::AF_INET | libc::AF_INET6) {
        return Ok(FdKind::Unsupported);
    }
    let stream = s.ty != libc::SOCK_DGRAM;
    if s.domain == libc::AF_UNIX && s.peer_ino != 0 {
        // Paired with a socket in this process, or not: `link` decides.
        let sndbuf = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).unwrap_or(0);
        rec.params = [s.domain as u64, s.ty as u64, s.peer_ino, sndbuf as u64, 0, 0, 0, 0];
        return Ok(FdKind::SocketPair);
    }
    if s.peer_len > 0 && stream {
        rec.params[0] = s.domain as u64;
        return Ok(FdKind::Reset);
    }
    let start = strings.bytes.len();
    strings.bytes.extend(&s.bound[..s.bound_len])?;
    strings.bytes.extend(&s.peer[..s.peer_len])?;
    rec.extra = StrRef { off: start as u32, len: (s.bound_len + s.peer_len) as u32 };
    rec.params = [s.domain as u64, s.ty as u64, s.protocol as u64, s.backlog, s.bound_len as u64, s.peer_len as u64, s.opts, 0];
    Ok(FdKind::Socket)
}

/// Event fds, timers, epoll and inotify, from their `fdinfo`.
fn anon_inode(fd: i32, path: &[u8], rec: &mut FdRecord, strings: &mut Strings, info: &mut List<u8>) -> Result<FdKind, Failure> {
    let kind = match path {
        b"anon_inode:[eventfd]" => FdKind::EventFd,
        b"anon_inode:[signalfd]" => FdKind::SignalFd,
        b"anon_inode:[timerfd]" => FdKind::TimerFd,
        b"anon_inode:[eventpoll]" => FdKind::Epoll,
        b"anon_inode:inotify" => FdKind::Inotify,
        _ => return Ok(FdKind::Unsupported),
    };
    slurp_info(fd, info)?;
    let text = info.as_slice();
    let p = &mut rec.params;
    match kind {
        FdKind::EventFd => {
            p[0] = hex_field(text, b"eventfd-count:").unwrap_or(0);
            p[1] = dec_field(text, b"eventfd-semaphore:").unwrap_or(0);
        }
        FdKind::SignalFd => p[0] = hex_field(text, b"sigmask:").unwrap_or(0),
        FdKind::TimerFd => {
            let value = pair_field(text, b"it_value:").unwrap_or((0, 0));
            let interval = pair_field(text, b"it_interval:").unwrap_or((0, 0));
            *p = [dec_field(text, b"clockid:").unwrap_or(0), dec_field(text, b"ticks:").unwrap_or(0), value.0, value.1, interval.0, interval.1, 0, 0];
        }
        FdKind::Epoll => {
            let start = strings.bytes.len();
            for line in lines(text).filter(|l| l.starts_with(b"tfd:")) {
                let e = EpollEntry {
                    fd: value(line, b"tfd:").and_then(dec).unwrap_or(0) as i32,
                    events: value(line, b"events:").and_then(hex).unwrap_or(0) as u32,
                    data: value(line, b"data:").and_then(hex).unwrap_or(0),
                };
                // Registered under a number that now names another file (or none): the
                // registration cannot be made again. Kept out, and said.
                let ino = value(line, b"ino:").and_then(hex).unwrap_or(0);
                if sys::fstat(e.fd).map(|st| st.st_ino) != Ok(ino) {
                    msg()
                        .s("warning: epoll descriptor ")
                        .num(fd as u64)
                        .s(" watches a closed descriptor ")
                        .num(e.fd as u64)
                        .s("; that registration is dropped")
                        .emit();
                    continue;
                }
                strings.bytes.extend(bytes_of(&e))?;
            }
            rec.extra = StrRef { off: start as u32, len: (strings.bytes.len() - start) as u32 };
        }
        FdKind::Inotify => rec.extra = inotify(fd, text, strings)?,
        _ => {}
    }
    Ok(kind)
}

/// The watches of inotify instance `fd`: paths first (the hook's), then the entries.
fn inotify(fd: i32, text: &[u8], strings: &mut Strings) -> Result<StrRef, Failure> {
    let watches = || {
        lines(text).filter(|l| l.starts_with(b"inotify ")).map(|l| {
            let wd = value(l, b"wd:").and_then(hex).unwrap_or(0) as i32;
            let mask = value(l, b"mask:").and_then(hex).unwrap_or(0) as u32;
            (wd, mask, crate::intent::watch_path(fd, wd))
        })
    };
    let mut at = strings.bytes.len();
    for (wd, _, path) in watches() {
        match path {
            Some(p) => drop(strings.bytes.extend(p)?),
            None => {
                msg().s("warning: inotify descriptor ").num(fd as u64).s(": the path of watch ").num(wd as u64).s(" is unknown; that watch is dropped").emit()
            }
        }
    }
    let start = strings.bytes.len();
    for (wd, mask, path) in watches() {
        let Some(p) = path else { continue };
        let w = InotifyWatch { wd, mask, path: StrRef { off: at as u32, len: p.len() as u32 } };
        at += p.len();
        strings.bytes.extend(bytes_of(&w))?;
    }
    Ok(StrRef { off: start as u32, len: (strings.bytes.len() - start) as u32 })
}

/// Decisions that need every descriptor: which ones are copies of another (`dup`),
/// which pipes and socket pairs are wholly in the process (and what they hold), and
/// warnings for what cannot come back.
fn link(s: &mut Snapshot) -> Result<(), Failure> {
    let n = s.fds.len();
    for i in 0..n {
        let f = s.fds.as_slice()[i];
        let original =
            s.fds.as_slice()[..i].iter().find(|o| o.dup_of < 0 && o.file.dev == f.file.dev && o.file.ino == f.file.ino && sys::same_file(o.fd, f.fd));
        if let Some(o) = original {
            let fd = o.fd;
            let r = &mut s.fds.as_mut_slice()[i];
            r.dup_of = fd;
            r.data_len = 0;
        }
    }
    for i in 0..n {
        let f = s.fds.as_slice()[i];
        if f.dup_of >= 0 {
            continue;
        }
        let all = s.fds.as_slice();
        let reads = |r: &FdRecord| r.flags & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32;
        let kind = match FdKind::from_u32(f.kind) {
            Some(FdKind::Pipe) => {
                let reader = all.iter().find(|o| o.kind == f.kind && o.dup_of < 0 && o.file.ino == f.file.ino && reads(o));
                match reader {
                    None => {
                        warn(&f, s, "its reader is outside the process; it comes back as a broken pipe end");
                        FdKind::Unsupported
                    }
                    Some(r) if r.fd == f.fd => {
                        let at = s.queued.len() as u64;
                        match sockets::pipe_queued(f.fd, &mut s.queued) {
                            Ok(len) => set_data(s, i, at, len),
                            Err(why) => warn(&f, s, why),
                        }
                        FdKind::Pipe
                    }
                    Some(_) => FdKind::Pipe,
                }
            }
            Some(FdKind::SocketPair) => {
                let peer = f.params[2];
                if all.iter().any(|o| o.kind == f.kind && o.file.ino == peer) {
                    let at = s.queued.len() as u64;
                    match sockets::queued(f.fd, f.params[1] != libc::SOCK_STREAM as u64, &mut s.queued) {
                        Ok(len) => set_data(s, i, at, len),
                        Err(why) => warn(&f, s, why),
                    }
                    FdKind::SocketPair
                } else {
                    warn(&f, s, "it is connected outside the process; it comes back as a connection reset by the peer");
                    FdKind::Reset
                }
            }
            Some(FdKind::Reset) => {
                warn(&f, s, "it is connected outside the process; it comes back as a connection reset by the peer");
                FdKind::Reset
            }
            Some(FdKind::Unsupported) => {
                warn(&f, s, "it is not supported; it comes back as a broken pipe end");
                FdKind::Unsupported
            }
            _ => continue,
        };
        s.fds.as_mut_slice()[i].kind = kind as u32;
    }
    Ok(())
}

/// Descriptor `i`'s blob is `len` bytes of `s.queued` from `at`.
fn set_data(s: &mut Snapshot, i: usize, at: u64, len: u64) {
    let r = &mut s.fds.as_mut_slice()[i];
    r.data_off = at;
    r.data_len = len;
}

fn warn(f: &FdRecord, s: &Snapshot, why: &str) {
    let what = s.strings.bytes.as_slice();
    let what = what.get(f.file.path.off as usize..(f.file.path.off + f.file.path.len) as usize).unwrap_or(&[]);
    msg().s("warning: descriptor ").num(f.fd as u64).s(" (").bytes(what).s("): ").s(why).emit();
}
