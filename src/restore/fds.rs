//! Restore, descriptors (normal code, before anything is replaced): every saved
//! descriptor is made again here, at a number above all saved ones: files reopened,
//! pipes and socket pairs recreated with the bytes they held, event fds, timers, epoll
//! sets, inotify instances, listening sockets, terminals and memory files rebuilt from
//! their records. The blob then only moves them onto their saved numbers (`dup3`) and
//! does what needs those numbers (epoll registrations) or must wait for the point of
//! no return (terminal modes).
#![allow(unsafe_code)]

use mig_image::*;
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::Error;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Descriptors ready to be placed, and what follows placement.
#[derive(Default)]
pub struct FdPlan {
    /// (prepared descriptor, saved number, close-on-exec).
    pub place: Vec<(i32, i32, bool)>,
    /// Memory shared through a file (memfd, `/dev/shm`, deleted file), read-write, by
    /// (dev, ino) as saved: what `SharedObject` regions map.
    pub objects: HashMap<(u64, u64), i32>,
    /// (epoll descriptor's saved number, registration).
    pub epoll: Vec<(i32, EpollEntry)>,
    /// (saved number, kernel `struct termios`) to apply to a terminal.
    pub termios: Vec<(i32, Vec<u8>)>,
}

fn last_error<T>(r: i32) -> std::io::Result<T>
where
    T: From<i32>,
{
    if r < 0 { Err(Error::last_os_error()) } else { Ok(T::from(r)) }
}

pub fn open_raw(path: &[u8], flags: i32, mode: u32) -> std::io::Result<i32> {
    let c = CString::new(path).map_err(|_| Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    last_error(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) })
}

/// What a path must name when it is opened again.
#[derive(Clone, Copy, PartialEq)]
pub enum Expect {
    /// A regular file (a file mapping, `FdKind::File`).
    Regular,
    /// A regular file or a directory (`FdKind::File`).
    FileOrDir,
    /// A character or block device (`FdKind::Device`).
    Device,
}

/// Opens `path` as `open_raw` does, without waiting: a FIFO or a device put where the
/// saved file was makes `open` wait for its other end, forever. Refuses what is not
/// the `want`ed type; `O_NONBLOCK` is as `flags` asked.
pub fn open_expecting(path: &[u8], flags: i32, want: Expect) -> std::io::Result<i32> {
    let fd = open_raw(path, flags | libc::O_NONBLOCK, 0)?;
    // SAFETY: `stat` is plain old data, filled by fstat on the descriptor just opened.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let ty = if unsafe { libc::fstat(fd, &mut st) } == 0 { st.st_mode & libc::S_IFMT } else { 0 };
    let fits = match want {
        Expect::Regular => ty == libc::S_IFREG,
        Expect::FileOrDir => ty == libc::S_IFREG || ty == libc::S_IFDIR,
        Expect::Device => ty == libc::S_IFCHR || ty == libc::S_IFBLK,
    };
    // SAFETY: fcntl on the descriptor just opened.
    let restored = fits && (flags & libc::O_NONBLOCK != 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } == 0);
    if restored {
        return Ok(fd);
    }
    let e = if fits { Error::last_os_error() } else { Error::other(format!("it is not a {} any more", want.name())) };
    close(fd);
    Err(e)
}

impl Expect {
    fn name(self) -> &'static str {
        match self {
            Expect::Regular => "regular file",
            Expect::FileOrDir => "regular file or directory",
            Expect::Device => "device",
        }
    }
}

/// Moves `fd` to the lowest free number at or above `base` (close-on-exec).
pub fn raise_fd(fd: i32, base: i32) -> Result<i32, String> {
    // SAFETY: plain fcntl/close on a descriptor the caller owns.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, base) };
    // SAFETY: as above.
    unsafe { libc::close(fd) };
    if high < 0 { Err(format!("cannot allocate a descriptor: {}", Error::last_os_error())) } else { Ok(high) }
}

/// A second descriptor of the same open file description.
fn dup(fd: i32) -> std::io::Result<i32> {
    // SAFETY: duplicating a descriptor we own.
    last_error(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor this module opened and no longer uses.
    unsafe { libc::close(fd) };
}

/// Sets the status flags that `F_SETFL` can change (`O_NONBLOCK`, `O_APPEND`, …).
fn set_status(fd: i32, flags: u32) -> std::io::Result<i32> {
    // SAFETY: fcntl on a descriptor we own.
    last_error::<i32>(unsafe { libc::fcntl(fd, libc::F_SETFL, flags as i32) }).map(|_| fd)
}

fn write_all(fd: i32, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: `fd` is ours; `ManuallyDrop` keeps the `File` from closing it.
    let f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    std::io::Write::write_all(&mut &*f, data)
}

fn isatty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Status flags that can be given to `open` again.
const REOPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DIRECT
    | libc::O_NOATIME
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECTORY
    | libc::O_LARGEFILE;

/// Makes every saved descriptor again, above `base`. Fails with the reason a restore
/// has to be refused; what can only be approximated is said in a warning.
pub fn prepare(img: &Image, base: i32) -> Result<FdPlan, String> {
    let mut b = Builder { img, base, plan: FdPlan::default(), pipes: HashMap::new(), ends: HashMap::new(), terminal: None, inotify_tries: INOTIFY_TRIES };
    let mut made: HashMap<i32, i32> = HashMap::new();
    let records: Vec<FdRecord> = (0..img.count(Table::Fds)).map(|i| img.fd(i)).collect();
    for f in &records {
        let what = |why: String| format!("descriptor {} ({}): {why}", f.fd, String::from_utf8_lossy(img.str(f.file.path)));
        if f.fd <= 2 {
            // A terminal on a standard descriptor: the restoring process's own one
            // stays, and gets the saved modes if it is a terminal too.
            if isatty(f.fd) {
                made.insert(f.fd, f.fd);
                b.plan.termios.push((f.fd, img.str(f.extra).to_vec()));
            }
            continue;
        }
        let fd = match made.get(&f.dup_of) {
            Some(&original) => original,
            None => {
                let fd = b.make(f, &records).map_err(|e| what(e.to_string()))?;
                let fd = raise_fd(fd, base)?;
                if f.kind == FdKind::Tty as u32 && isatty(fd) {
                    b.plan.termios.push((f.fd, img.str(f.extra).to_vec()));
                }
                fd
            }
        };
        made.insert(f.fd, fd);
        b.plan.place.push((fd, f.fd, f.fd_flags & libc::FD_CLOEXEC as u32 != 0));
    }
    b.fill_socket_pairs(&records)?;
    epoll_dry_run(&b.plan.epoll, &made)?;
    for (_, [r, w]) in b.pipes.drain() {
        close(r);
        if w >= 0 {
            close(w);
        }
    }
    for (_, fd) in b.ends.drain() {
        close(fd);
    }
    b.shared_objects()?;
    Ok(b.plan)
}

struct Builder<'a> {
    img: &'a Image<'a>,
    base: i32,
    plan: FdPlan,
    /// Pipes by saved inode: [read end, write end (-1 once closed)].
    pipes: HashMap<u64, [i32; 2]>,
    /// Socket pair ends by saved inode.
    ends: HashMap<u64, i32>,
    terminal: Option<i32>,
    /// `inotify_add_watch` calls left for bringing watch numbers back, in all.
    inotify_tries: u32,
}

/// The most `inotify_add_watch` calls a restore makes to bring watch numbers back:
/// bounds the time a forged watch number can cost.
const INOTIFY_TRIES: u32 = 100_000;

impl Builder<'_> {
    fn make(&mut self, f: &FdRecord, all: &[FdRecord]) -> std::io::Result<i32> {
        let img = self.img;
        let path = img.str(f.file.path);
        let flags = f.flags as i32 & REOPEN_FLAGS;
        let seek = |fd: i32| {
            // SAFETY: seeking a descriptor we own; a failure (a device) is harmless.
            unsafe { libc::lseek(fd, f.offset, libc::SEEK_SET) };
            fd
        };
        let nonblock = if f.flags as i32 & libc::O_NONBLOCK != 0 { libc::O_NONBLOCK } else { 0 };
        let p = f.params;
        let fd = match FdKind::from_u32(f.kind).unwrap_or(FdKind::Unsupported) {
            FdKind::File => open_expecting(path, flags, Expect::FileOrDir).map(seek)?,
            FdKind::Device => open_expecting(path, flags | libc::O_NOCTTY, Expect::Device).or_else(|e| {
                eprintln!("mig: warning: descriptor {}: {} cannot be reopened ({e}); it is /dev/null now", f.fd, String::from_utf8_lossy(path));
                open_raw(b"/dev/null", f.flags as i32 & libc::O_ACCMODE, 0)
            })?,
            FdKind::Deleted | FdKind::Memfd | FdKind::Shm => {
                let object = self.file_object(f)?;
                open_raw(format!("/proc/self/fd/{object}").as_bytes(), flags, 0).map(seek)?
            }
            FdKind::Pipe => self.pipe_end(f, all)?,
            FdKind::SocketPair => {
                let end = match self.ends.get(&f.file.ino) {
                    Some(&end) => end,
                    None => {
                        let mut sv = [0i32; 2];
                        // SAFETY: `sv` is a valid out-array of two descriptors.
                        last_error::<i32>(unsafe { libc::socketpair(p[0] as i32, p[1] as i32 | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) })?;
                        self.ends.insert(f.file.ino, sv[0]);
                        self.ends.insert(p[2], sv[1]);
                        sv[0]
                    }
                };
                set_status(dup(end)?, f.flags)?
            }
            FdKind::Reset | FdKind::Unsupported => set_status(broken_end(f.kind == FdKind::Reset as u32, f.flags as i32 & libc::O_ACCMODE)?, f.flags)?,
            FdKind::Socket => self.socket(f)?,
            FdKind::Epoll => {
                // SAFETY: creating a new epoll instance.
                let fd = last_error(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
                self.plan.epoll.extend(img.records::<EpollEntry>(f.extra).map(|e| (f.fd, e)));
                fd
            }
            FdKind::EventFd => {
                let sem = if p[1] != 0 { libc::EFD_SEMAPHORE } else { 0 };
                // SAFETY: creating a new eventfd.
                let fd = last_error(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | sem | nonblock) })?;
                if p[0] > 0 {
                    write_all(fd, &p[0].to_ne_bytes())?;
                }
                fd
            }
            FdKind::SignalFd => {
                // SAFETY: `sigset_t` is plain old data; the kernel reads its first 8 bytes.
                let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
                // SAFETY: `set` has room for at least 8 bytes.
                unsafe { std::ptr::write_unaligned((&mut set as *mut libc::sigset_t).cast::<u64>(), p[0]) };
                // SAFETY: a new signalfd with a valid mask.
                last_error(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | nonblock) })?
            }
            FdKind::TimerFd => timerfd(p, nonblock)?,
            FdKind::Inotify => self.inotify(f, nonblock)?,
            FdKind::Tty => dup(self.terminal(f.fd)?)?,
        };
        Ok(fd)
    }

    /// The terminal of the restoring process (`/dev/null` with a warning if none).
    fn terminal(&mut self, saved: i32) -> std::io::Result<i32> {
        if let Some(t) = self.terminal {
            return Ok(t);
        }
        let t = match (0..3).find(|&fd| isatty(fd)) {
            Some(fd) => dup(fd)?,
            None => open_raw(b"/dev/tty", libc::O_RDWR | libc::O_NOCTTY, 0).or_else(|_| {
                eprintln!("mig: warning: descriptor {saved} was a terminal, and this process has none; it is /dev/null now");
                open_raw(b"/dev/null", libc::O_RDWR, 0)
            })?,
        };
        let t = raise_fd(t, self.base).map_err(Error::other)?;
        self.terminal = Some(t);
        Ok(t)
    }

    /// The recreated file behind a saved descriptor, read-write (made once per file).
    fn file_object(&mut self, f: &FdRecord) -> std::io::Result<i32> {
        let key = (f.file.dev, f.file.ino);
        if let Some(&fd) = self.plan.objects.get(&key) {
            return Ok(fd);
        }
        let path = self.img.str(f.file.path);
        let mode = f.file.mode & 0o7777;
        let fd = match FdKind::from_u32(f.kind) {
            Some(FdKind::Memfd) => memfd(path, f.params[0] != 0)?,
            Some(FdKind::Shm) => {
                let fd = open_raw(path, libc::O_RDWR | libc::O_CREAT, mode)?;
                // SAFETY: truncating a file we opened read-write.
                last_error::<i32>(unsafe { libc::ftruncate(fd, 0) })?;
                fd
            }
            _ => {
                let dir = Path::new(std::ffi::OsStr::from_bytes(path)).parent().filter(|d| d.is_dir()).unwrap_or(Path::new("/tmp"));
                open_raw(dir.as_os_str().as_bytes(), libc::O_TMPFILE | libc::O_RDWR, mode)
                    .or_else(|_| open_raw(b"/tmp", libc::O_TMPFILE | libc::O_RDWR, mode))?
            }
        };
        write_all(fd, self.img.data(f.data_off, f.data_len))?;
        if f.kind == FdKind::Memfd as u32 && f.params[0] != 0 {
            // SAFETY: fcntl on the memfd we just made.
            last_error::<i32>(unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, f.params[0] as i32) })?;
        }
        let fd = raise_fd(fd, self.base).map_err(Error::other)?;
        self.plan.objects.insert(key, fd);
        Ok(fd)
    }

    /// Memory files that only mappings refer to (their descriptor was closed): made
    /// again, empty, as large as the mappings need; the regions' saved pages fill them.
    fn shared_objects(&mut self) -> Result<(), String> {
        for i in 0..self.img.count(Table::Regions) {
            let r = self.img.region(i);
            if r.kind != RegionKind::SharedObject as u32 {
                continue;
            }
            let key = (r.file.dev, r.file.ino);
            let path = self.img.str(r.file.path);
            let fd = match self.plan.objects.get(&key) {
                Some(&fd) => fd,
                None if r.flags & REGION_DATA_IN_FD != 0 => return Err(format!("mapping {:#x}: its file's descriptor is not in the image", r.start)),
                None => {
                    let made = if path.starts_with(b"/dev/shm/") { open_raw(path, libc::O_RDWR | libc::O_CREAT, 0o600) } else { memfd(path, false) };
                    let fd = made.map_err(|e| format!("mapping {:#x}: cannot make {} again: {e}", r.start, String::from_utf8_lossy(path)))?;
                    let fd = raise_fd(fd, self.base)?;
                    self.plan.objects.insert(key, fd);
                    fd
                }
            };
            let need = r.file_off + (r.end - r.start);
            // SAFETY: fstat/ftruncate on a descriptor we own; `st` is plain old data.
            let grown = unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstat(fd, &mut st) == 0 && (st.st_size as u64 >= need || libc::ftruncate(fd, need as i64) == 0)
            };
            if !grown {
                return Err(format!("mapping {:#x}: cannot size {}: {}", r.start, String::from_utf8_lossy(path), Error::last_os_error()));
            }
        }
        Ok(())
    }

    /// An end of a recreated pipe, holding the bytes it held.
    fn pipe_end(&mut self, f: &FdRecord, all: &[FdRecord]) -> std::io::Result<i32> {
        let ino = f.file.ino;
        let ends = match self.pipes.get(&ino) {
            Some(&ends) => ends,
            None => {
                let mut p = [0i32; 2];
                // SAFETY: `p` is a valid out-array of two descriptors.
                last_error::<i32>(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
                if f.params[0] > 0 {
                    // SAFETY: resizing the pipe we just made; a failure keeps the default.
                    unsafe { libc::fcntl(p[1], libc::F_SETPIPE_SZ, f.params[0] as i32) };
                }
                let same = all.iter().filter(|o| o.kind == FdKind::Pipe as u32 && o.file.ino == ino);
                for o in same.clone().filter(|o| o.data_len > 0) {
                    write_all(p[1], self.img.data(o.data_off, o.data_len))
                        .map_err(|e| Error::other(format!("the {} bytes it held do not fit a new pipe ({e})", o.data_len)))?;
                }
                for end in p {
                    set_status(end, 0)?;
                }
                // Nobody in the process writes to it: readers see the rest, then the end.
                if !same.clone().any(|o| o.flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32) {
                    close(p[1]);
                    p[1] = -1;
                }
                self.pipes.insert(ino, p);
                p
            }
        };
        let end = match f.flags as i32 & libc::O_ACCMODE {
            libc::O_RDONLY => ends[0],
            libc::O_WRONLY => ends[1],
            _ => return open_raw(format!("/proc/self/fd/{}", ends[0]).as_bytes(), f.flags as i32 & REOPEN_FLAGS, 0),
        };
        set_status(dup(end)?, f.flags)
    }

    /// Puts back the bytes each socket pair end had queued, sent from its peer.
    fn fill_socket_pairs(&self, all: &[FdRecord]) -> Result<(), String> {
        for f in all.iter().filter(|f| f.kind == FdKind::SocketPair as u32 && f.data_len > 0) {
            let Some(&from) = self.ends.get(&f.params[2]) else { continue };
            let peer_sndbuf = all.iter().find(|o| o.file.ino == f.params[2]).map_or(0, |o| o.params[3] as i32);
            let data = self.img.data(f.data_off, f.data_len);
            let datagrams = f.params[1] != libc::SOCK_STREAM as u64;
            let fail = |e: Error| format!("descriptor {}: the {} bytes it had queued cannot be put back: {e}", f.fd, f.data_len);
            // SAFETY: setsockopt on our end with a valid int.
            unsafe { libc::setsockopt(from, libc::SOL_SOCKET, libc::SO_SNDBUF, (&peer_sndbuf as *const i32).cast(), 4) };
            let mut rest = data;
            while !rest.is_empty() {
                let (msg, next) = if datagrams {
                    let len = u32::from_le_bytes(rest.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(|| fail(Error::other("bad queue record")))?) as usize;
                    (rest.get(4..4 + len).ok_or_else(|| fail(Error::other("bad queue record")))?, 4 + len)
                } else {
                    (rest, rest.len())
                };
                // SAFETY: sending from a buffer of `msg.len()` bytes on our socket.
                let n = unsafe { libc::send(from, msg.as_ptr().cast(), msg.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
                if n < 0 {
                    return Err(fail(Error::last_os_error()));
                }
                let n = if datagrams { next } else { n as usize };
                rest = &rest[n..];
            }
        }
        Ok(())
    }

    /// A socket made again from its settings: bound where it was, listening again.
    fn socket(&mut self, f: &FdRecord) -> std::io::Result<i32> {
        let p = f.params;
        let (domain, ty, proto, backlog) = (p[0] as i32, p[1] as i32, p[2] as i32, p[3] as i32);
        let addrs = self.img.str(f.extra);
        let (bound, peer) = addrs.split_at((p[4] as usize).min(addrs.len()));
        // SAFETY: creating a socket.
        let fd = last_error(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
        let on = |level, name| {
            let one: i32 = 1;
            // SAFETY: setsockopt with a valid int on our socket.
            unsafe { libc::setsockopt(fd, level, name, (&one as *const i32).cast(), 4) };
        };
        for (bit, level, name) in [
            (SOCKOPT_REUSEPORT, libc::SOL_SOCKET, libc::SO_REUSEPORT),
            (SOCKOPT_KEEPALIVE, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            (SOCKOPT_NODELAY, libc::IPPROTO_TCP, libc::TCP_NODELAY),
            (SOCKOPT_V6ONLY, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
        ] {
            if p[6] & bit != 0 {
                on(level, name);
            }
        }
        if domain != libc::AF_UNIX {
            // Connections of the previous life may linger in TIME_WAIT on the port.
            on(libc::SOL_SOCKET, libc::SO_REUSEADDR);
        }
        if is_bound(domain, bound) {
            if domain == libc::AF_UNIX {
                clear_stale_unix_path(bound, ty)?;
            }
            // SAFETY: `bound` holds a socket address of `bound.len()` bytes as saved.
            let r = unsafe { libc::bind(fd, bound.as_ptr().cast(), bound.len() as u32) };
            if r < 0 {
                let e = Error::last_os_error();
                close(fd);
                return Err(Error::other(format!("cannot bind {} again: {e} (is the original process still running?)", show_addr(bound))));
            }
        }
        if backlog > 0 {
            // SAFETY: listen on our socket.
            last_error::<i32>(unsafe { libc::listen(fd, backlog) })?;
        }
        if !peer.is_empty() {
            // SAFETY: `peer` holds a socket address of `peer.len()` bytes as saved.
            if unsafe { libc::connect(fd, peer.as_ptr().cast(), peer.len() as u32) } < 0 {
                eprintln!("mig: warning: descriptor {}: cannot connect to {} again ({}); it is unconnected", f.fd, show_addr(peer), Error::last_os_error());
            }
        }
        set_status(fd, f.flags)
    }

    fn inotify(&mut self, f: &FdRecord, nonblock: i32) -> std::io::Result<i32> {
        // SAFETY: creating an inotify instance.
        let fd = last_error(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })?;
        let mut watches: Vec<InotifyWatch> = self.img.records(f.extra).collect();
        watches.sort_by_key(|w| w.wd);
        for w in watches {
            let path = self.img.str(w.path);
            let Ok(c) = CString::new(path) else { continue };
            // Watch numbers are handed out in increasing order: add, drop and add again
            // until the saved number comes up.
            let mut got = -1;
            while self.inotify_tries > 0 {
                self.inotify_tries -= 1;
                // SAFETY: a valid path and mask on our inotify instance.
                got = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), w.mask) };
                if got < 0 || got >= w.wd {
                    break;
                }
                // SAFETY: removing the watch just added.
                unsafe { libc::inotify_rm_watch(fd, got) };
            }
            if got != w.wd {
                eprintln!(
                    "mig: warning: descriptor {}: watch {} on {} cannot be made again ({}); its events are lost",
                    f.fd,
                    w.wd,
                    String::from_utf8_lossy(path),
                    if got < 0 { Error::last_os_error().to_string() } else { format!("it is watch {got} now") }
                );
            }
        }
        // The dance above queued IN_IGNORED events: the program never asked for them.
        let mut buf = [0u8; 4096];
        // SAFETY: reading into our buffer from our non-blocking descriptor.
        while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        set_status(fd, (f.flags & !(libc::O_NONBLOCK as u32)) | nonblock as u32)
    }
}

/// Makes every epoll registration once on scratch sets, in the order the restore blob
/// will, so that one the kernel refuses there (a set that would watch itself through
/// another, nesting too deep, the same descriptor twice) refuses the restore now
/// instead of failing after the point of no return. A registration the plan drops with
/// a warning (a descriptor that cannot be watched any more) is left out, as there.
/// `made`: saved number → descriptor made for it.
fn epoll_dry_run(entries: &[(i32, EpollEntry)], made: &HashMap<i32, i32>) -> Result<(), String> {
    let mut owned: Vec<i32> = Vec::new();
    let r = (|| {
        // SAFETY: creating a scratch epoll set (closed below, with everything in `owned`).
        let probe = last_error::<i32>(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(|e| e.to_string())?;
        owned.push(probe);
        // One scratch set per epoll set (by the descriptor made for it: copies share it),
        // and per saved number a descriptor of what it names: a registration is keyed
        // by (file, number).
        let mut sets: HashMap<i32, i32> = HashMap::new();
        let mut numbers: HashMap<i32, i32> = HashMap::new();
        let made_for = |saved: i32| made.get(&saved).copied().or((0..=2).contains(&saved).then_some(saved));
        for &(ep, _) in entries {
            let Some(set) = made_for(ep) else { continue };
            if let std::collections::hash_map::Entry::Vacant(v) = sets.entry(set) {
                // SAFETY: as above.
                let scratch = last_error::<i32>(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(|e| e.to_string())?;
                owned.push(scratch);
                v.insert(scratch);
            }
        }
        for &(ep, e) in entries {
            let (Some(set), Some(target)) = (made_for(ep).and_then(|s| sets.get(&s).copied()), made_for(e.fd)) else { continue };
            let mut ev = libc::epoll_event { events: e.events, u64: e.data };
            // SAFETY: epoll_ctl on our scratch set with a valid event.
            if unsafe { libc::epoll_ctl(probe, libc::EPOLL_CTL_ADD, target, &mut ev) } < 0 && Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                continue; // dropped by the plan, with a warning
            }
            let what = match sets.get(&target) {
                Some(&scratch) => scratch,
                None => match numbers.get(&e.fd) {
                    Some(&fd) => fd,
                    None => {
                        let fd = dup(target).map_err(|err| format!("descriptor {ep} (epoll): {err}"))?;
                        owned.push(fd);
                        numbers.insert(e.fd, fd);
                        fd
                    }
                },
            };
            // SAFETY: as above, on the scratch set of `ep`.
            if unsafe { libc::epoll_ctl(set, libc::EPOLL_CTL_ADD, what, &mut ev) } < 0 {
                return Err(format!("descriptor {ep} (epoll): its registration of descriptor {} cannot be made again ({})", e.fd, Error::last_os_error()));
            }
        }
        Ok(())
    })();
    owned.into_iter().for_each(close);
    r
}

fn memfd(path: &[u8], sealable: bool) -> std::io::Result<i32> {
    let name = path.strip_prefix(b"/memfd:").unwrap_or(path.rsplit(|&c| c == b'/').next().unwrap_or(b"mig"));
    let name = CString::new(name).unwrap_or_default();
    let flags = libc::MFD_CLOEXEC | if sealable { libc::MFD_ALLOW_SEALING } else { 0 };
    // SAFETY: a valid name and flags.
    last_error(unsafe { libc::memfd_create(name.as_ptr(), flags) })
}

fn timerfd(p: [u64; 8], nonblock: i32) -> std::io::Result<i32> {
    // SAFETY: creating a timerfd on the saved clock.
    let fd = last_error(unsafe { libc::timerfd_create(p[0] as i32, libc::TFD_CLOEXEC | nonblock) })?;
    let interval = libc::timespec { tv_sec: p[4] as i64, tv_nsec: p[5] as i64 };
    // A periodic timer that had just expired shows no time left: its next expiry is
    // one interval away.
    let left = if p[2] == 0 && p[3] == 0 { interval } else { libc::timespec { tv_sec: p[2] as i64, tv_nsec: p[3] as i64 } };
    let spec = libc::itimerspec { it_interval: interval, it_value: left };
    if spec.it_value.tv_sec != 0 || spec.it_value.tv_nsec != 0 {
        // SAFETY: arming our timerfd with a valid relative time.
        last_error::<i32>(unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) })?;
    }
    if p[1] > 0 {
        const TFD_IOC_SET_TICKS: u64 = 0x4008_5400;
        // SAFETY: the ioctl reads one u64.
        if unsafe { libc::ioctl(fd, TFD_IOC_SET_TICKS, &p[1]) } < 0 {
            eprintln!("mig: warning: a timerfd had {} unread expirations; they are lost ({})", p[1], Error::last_os_error());
        }
    }
    Ok(fd)
}

/// Whether a saved socket address names something to bind to again (not the
/// unnamed UNIX address, not the wildcard address with port 0).
fn is_bound(domain: i32, addr: &[u8]) -> bool {
    match domain {
        libc::AF_UNIX => addr.len() > 2,
        libc::AF_INET => addr.get(2..8).is_some_and(|b| b.iter().any(|&c| c != 0)),
        libc::AF_INET6 => addr.get(2..4).is_some_and(|b| b != [0, 0]) || addr.get(8..24).is_some_and(|b| b.iter().any(|&c| c != 0)),
        _ => false,
    }
}

/// A UNIX socket path left behind by the previous life blocks `bind`: removed when
/// nobody listens there any more; refused when someone does.
fn clear_stale_unix_path(addr: &[u8], ty: i32) -> std::io::Result<()> {
    let path = &addr[2..];
    let path = &path[..path.iter().position(|&c| c == 0).unwrap_or(path.len())];
    if path.is_empty() {
        return Ok(()); // abstract name
    }
    let p = Path::new(std::ffi::OsStr::from_bytes(path));
    let Ok(meta) = std::fs::symlink_metadata(p) else { return Ok(()) };
    if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
        return Ok(());
    }
    // SAFETY: a probe socket, connected to the saved address and closed. Non-blocking:
    // a listener with a full backlog (EAGAIN) is alive too, and must not hold us up.
    let alive = unsafe {
        let probe = libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        let ok =
            probe >= 0 && (libc::connect(probe, addr.as_ptr().cast(), addr.len() as u32) == 0 || Error::last_os_error().raw_os_error() == Some(libc::EAGAIN));
        libc::close(probe);
        ok
    };
    if alive {
        return Err(Error::other(format!("{} is in use by another process", p.display())));
    }
    std::fs::remove_file(p)
}

fn show_addr(addr: &[u8]) -> String {
    let family = addr.get(..2).map_or(0, |b| u16::from_ne_bytes([b[0], b[1]])) as i32;
    let port = |b: &[u8]| u16::from_be_bytes([b[2], b[3]]);
    match family {
        libc::AF_UNIX => {
            let p = &addr[2..];
            let p = &p[..p.iter().position(|&c| c == 0).unwrap_or(p.len())];
            if p.is_empty() { "an abstract UNIX address".into() } else { String::from_utf8_lossy(p).into_owned() }
        }
        libc::AF_INET if addr.len() >= 8 => format!("{}.{}.{}.{}:{}", addr[4], addr[5], addr[6], addr[7], port(addr)),
        libc::AF_INET6 if addr.len() >= 24 => {
            let ip: [u8; 16] = addr[8..24].try_into().unwrap_or([0; 16]);
            format!("[{}]:{}", std::net::Ipv6Addr::from(ip), port(addr))
        }
        _ => "a socket address".into(),
    }
}

/// A pipe or socket end whose peer is gone: reads see end of file, writes `EPIPE`
/// (`socket`: a stream socket, as a connection reset by its peer looks).
fn broken_end(socket: bool, accmode: i32) -> std::io::Result<i32> {
    let mut p = [0i32; 2];
    // SAFETY: `p` is a valid out-array of two descriptors.
    last_error::<i32>(unsafe {
        if socket || accmode == libc::O_RDWR {
            libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, p.as_mut_ptr())
        } else {
            libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC)
        }
    })?;
    let (keep, gone) = if accmode == libc::O_WRONLY && !socket { (p[1], p[0]) } else { (p[0], p[1]) };
    close(gone);
    Ok(keep)
}
