//! mig's side of the checkpoint request channel (`mig_proto::request` is the protocol,
//! the library's side `src/checkpoint/control.rs`): listen, signal with the nonce (and
//! again every second until the process connects: a busy process, or a pre-copy of
//! another checkpoint, may not take it at once, and a standard signal does not queue),
//! accept only the process itself (`SO_PEERCRED`: its pid, its user), send the request,
//! read the answer.
//!
//! No file is involved: another user can neither plant a request nor read an answer,
//! and a request whose mig went away (Ctrl-C) is gone with its socket.

use crate::{Fail, Result};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the request asks besides the destination.
#[derive(Clone, Copy, Default)]
pub struct Options {
    /// End the process once the image is complete.
    pub exit: bool,
    pub portable: bool,
    /// One process of a job: held stopped until the whole job is (`job.rs`).
    pub held: bool,
    /// ... pre-copied first (`job.rs`).
    pub pre: bool,
}

/// Where the process writes the image.
pub enum Target<'a> {
    /// Its own MIG_IMAGE.
    Own,
    File(&'a Path),
    /// This descriptor (the write end of a pipe mig reads).
    Stream(RawFd),
    /// A process of a job: its image to `part`, which goes into the job's image `job`
    /// (if the job's image is a file).
    Part {
        part: &'a Path,
        job: Option<&'a Path>,
    },
}

/// A request waiting for its process.
pub struct Channel {
    listener: UnixListener,
    nonce: u64,
    pid: i32,
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // getrandom never fails for 8 bytes once the kernel is seeded; the clock is a
    // fallback for a name that only has to be unused.
    // SAFETY: writing 8 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, libc::GRND_NONBLOCK) };
    if n == 8 { u64::from_le_bytes(b) } else { Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64 }
}

impl Channel {
    /// Listens for process `pid`.
    pub fn open(pid: i32) -> Result<Channel> {
        for _ in 0..8 {
            let nonce = random_u64();
            let mut name = [0u8; 48];
            let name = mig_proto::request::address(pid as u32, nonce, &mut name);
            let addr = SocketAddr::from_abstract_name(name).map_err(|e| Fail::new(format!("bad socket name: {e}")))?;
            match UnixListener::bind_addr(&addr) {
                Ok(listener) => {
                    listener.set_nonblocking(true).map_err(|e| Fail::new(format!("cannot set up the request socket: {e}")))?;
                    return Ok(Channel { listener, nonce, pid });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(Fail::new(format!("cannot listen for process {pid}: {e}"))),
            }
        }
        Err(Fail::new("cannot find a free name to listen on"))
    }

    /// Has a thread of the process run the checkpoint handler with the request.
    pub fn inject(&self, p: &crate::reach::Published) -> io::Result<()> {
        crate::reach::inject_request(self.pid, p, self.nonce)
    }

    /// Sends `sig` with the request's nonce.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        let value = libc::sigval { sival_ptr: self.nonce as usize as *mut libc::c_void };
        // SAFETY: sigqueue(3) with plain values.
        if unsafe { libc::sigqueue(self.pid, sig, value) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    /// The process's connection, if it has made it within `wait`; connections from
    /// anyone else are closed unanswered.
    pub fn accept(&self, wait: Duration) -> Option<UnixStream> {
        let until = Instant::now() + wait;
        loop {
            match self.listener.accept() {
                Ok((conn, _)) => {
                    if peer(&conn).is_some_and(|(pid, uid)| pid == self.pid && uid == process_euid(self.pid).unwrap_or(u32::MAX)) {
                        return Some(conn);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    let mut pfd = libc::pollfd { fd: self.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, 50) as i32) };
                }
                Err(_) => return None,
            }
        }
    }
}

/// (pid, effective uid) of the process at the other end of `conn`.
pub fn peer(conn: &UnixStream) -> Option<(i32, u32)> {
    let mut c = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt(SO_PEERCRED) into a `ucred` of the length given.
    let r = unsafe { libc::getsockopt(conn.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut c as *mut libc::ucred).cast(), &mut len) };
    (r == 0).then_some((c.pid, c.uid))
}

/// The effective uid of `pid` (`/proc/<pid>/status`).
fn process_euid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Sends the request on `conn`.
fn path_bytes(p: &Path) -> Result<&[u8]> {
    let b = p.as_os_str().as_bytes();
    if b.contains(&b'\n') { Err(Fail::new(format!("unusable image path {}", p.display()))) } else { Ok(b) }
}

pub fn send(conn: &UnixStream, target: &Target<'_>, opts: Options) -> Result<()> {
    let (to, job) = match target {
        Target::File(p) => (Some(path_bytes(p)?), None),
        Target::Part { part, job } => (Some(path_bytes(part)?), job.map(path_bytes).transpose()?),
        _ => (None, None),
    };
    let req = mig_proto::request::Request {
        to,
        exit: opts.exit,
        portable: opts.portable,
        stream: matches!(target, Target::Stream(_)),
        held: opts.held,
        pre: opts.pre,
        job,
    };
    let mut text = Vec::new();
    req.encode(|b| text.extend_from_slice(b));
    let fd = match target {
        Target::Stream(fd) => Some(*fd),
        _ => None,
    };
    send_with_fd(conn, &text, fd).map_err(|e| Fail::new(format!("cannot send the request: {e}")))
}

fn send_with_fd(conn: &UnixStream, bytes: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    // One `cmsghdr` and one descriptor, 8-byte aligned.
    let mut control = [0u64; 3];
    // SAFETY: `msghdr` is plain old data.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    if let Some(fd) = fd {
        m.msg_control = control.as_mut_ptr().cast();
        m.msg_controllen = 24;
        // SAFETY: the control buffer holds one header and one descriptor, as CMSG_LEN(4)
        // = 20 says; the macros compute inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        }
    }
    // SAFETY: sendmsg with the message built above; the whole request fits one call
    // on a fresh UNIX stream socket.
    let n = unsafe { libc::sendmsg(conn.as_raw_fd(), &m, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if (n as usize) < bytes.len() {
        (&*conn).write_all(&bytes[n as usize..])?;
    }
    Ok(())
}

/// What the process answered.
#[derive(Debug)]
pub enum Done {
    Ok { path: PathBuf, bytes: u64, stopped_us: u64 },
    Error { reason: String },
}

/// The answer as it arrives (read with `mig_proto::request::Answer`).
#[derive(Default)]
pub struct Reply {
    text: Vec<u8>,
}

impl Reply {
    /// Reads what is there on `conn` (non-blocking); returns false at end of file.
    pub fn read(&mut self, conn: &mut UnixStream) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => self.text.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn answer(&self) -> mig_proto::request::Answer<'_> {
        mig_proto::request::Answer::new(&self.text)
    }

    /// The image file being written, once the process said so.
    pub fn writing(&self) -> Option<PathBuf> {
        self.answer().writing().map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
    }

    /// The last stage a held process said it reached (`stopped`, `taken`).
    pub fn held(&self) -> Option<&[u8]> {
        self.answer().held()
    }

    /// About how large the image will be (0: not said yet).
    pub fn total(&self) -> u64 {
        self.answer().total()
    }

    /// The warnings of the checkpoint (what it could not save as it was).
    pub fn warnings(&self) -> Vec<String> {
        self.answer().warnings().map(|w| String::from_utf8_lossy(w).into_owned()).collect()
    }

    /// The outcome, once all of it has arrived.
    pub fn done(&self) -> Option<Done> {
        Some(match self.answer().outcome()? {
            mig_proto::request::Outcome::Ok { path, bytes, stopped_us } => {
                Done::Ok { path: PathBuf::from(std::ffi::OsStr::from_bytes(path)), bytes, stopped_us }
            }
            mig_proto::request::Outcome::Error { reason } => Done::Error { reason: String::from_utf8_lossy(reason).into_owned() },
        })
    }
}

/// A pipe for a streamed image: (read end, write end), both close-on-exec.
pub fn pipe() -> Result<(std::fs::File, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is an array of two ints, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(Fail::new(format!("cannot create a pipe: {}", io::Error::last_os_error())));
    }
    use std::os::fd::FromRawFd;
    // SAFETY: both descriptors were just made and are owned by nobody else. The
    // process writes blocking: only mig's read end is non-blocking.
    unsafe {
        let flags = libc::fcntl(fds[1], libc::F_GETFL);
        libc::fcntl(fds[1], libc::F_SETFL, flags & !libc::O_NONBLOCK);
        Ok((std::fs::File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}
