//! The control channel with the `mig` command (async-signal-safe).
//!
//! `mig checkpoint` listens on an abstract UNIX socket named `mig/<pid>/<nonce>` and
//! sends the checkpoint signal with `sigqueue`, the nonce as the signal's value. The
//! handler connects to that socket, checks with `SO_PEERCRED` that its listener
//! belongs to this process's user or to root, and reads the request: `to=<path>` (where
//! the image goes), `exit=1`, `portable=1`, and for a stream the descriptor to write it
//! to, passed with `SCM_RIGHTS`. The outcome goes back on the same connection:
//! `writing=<file>` once the image file exists, then `status=ok`, `path=`, `bytes=`,
//! `stopped_us=`, or `status=error`, `reason=`.
//!
//! Nothing is kept in a shared directory: a request cannot be planted by another user
//! (only the process's own user or root may signal it, and the listener's owner is
//! checked), each command has its own connection and answer, and a request whose
//! command went away is gone with its socket.

#![allow(unsafe_code)]

use crate::runtime::FixedPath;
use crate::sys::{self, msg::Msg};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};
use mig_proto::{published, request};

/// What `mig checkpoint` reads from this process's memory (`mig_proto::published`).
#[repr(C)]
pub struct Published {
    magic: [u8; 8],
    /// The request signal (0: none free).
    pub request_signal: AtomicU32,
    version: u32,
    pub entry: AtomicU64,
    pub restorer: AtomicU64,
    /// The extended state of this process's signal frames (`tracer::note_frame`).
    pub sw_features: AtomicU64,
    pub sw_size: AtomicU32,
    pub checkpoint_signal: AtomicU32,
    /// A checkpoint handler runs (its threads block every signal meanwhile).
    pub busy: AtomicU32,
    pad: u32,
    /// The top of the area a request's frame written from outside goes in.
    pub frame_top: AtomicU64,
}

/// Where a request's signal frame written from outside goes (never on a program's
/// stack: a goroutine's is a few KiB).
#[repr(C, align(64))]
pub struct FrameArea(core::cell::UnsafeCell<[u8; FRAME_AREA]>);
const FRAME_AREA: usize = 32 << 10;
// SAFETY: only the kernel (rt_sigreturn) and whoever writes a frame from outside
// (`process_vm_writev`, or a copier sharing the memory) touch it.
unsafe impl Sync for FrameArea {}
impl FrameArea {
    pub const fn zeroed() -> FrameArea {
        FrameArea(core::cell::UnsafeCell::new([0; FRAME_AREA]))
    }
    /// The top of the area: a frame goes below it.
    pub fn top(&self) -> u64 {
        self.0.get() as u64 + FRAME_AREA as u64
    }
}
/// `mig checkpoint`'s: one request at a time, the command writes one only while no
/// checkpoint runs, holding a lock of its own.
static REQUEST_FRAME: FrameArea = FrameArea::zeroed();

#[unsafe(no_mangle)]
pub static MIG_CONTROL: Published = Published {
    magic: published::MAGIC,
    request_signal: AtomicU32::new(0),
    version: 2,
    entry: AtomicU64::new(0),
    restorer: AtomicU64::new(0),
    sw_features: AtomicU64::new(0),
    sw_size: AtomicU32::new(0),
    checkpoint_signal: AtomicU32::new(0),
    busy: AtomicU32::new(0),
    pad: 0,
    frame_top: AtomicU64::new(0),
};

/// Publishes how to reach the checkpoint handler (at start, once the runtime is set).
pub fn publish() {
    let rt = crate::runtime::get();
    MIG_CONTROL.entry.store(rt.checkpoint_entry, Relaxed);
    MIG_CONTROL.restorer.store(rt.restorer, Relaxed);
    MIG_CONTROL.checkpoint_signal.store(rt.settings.checkpoint_signal, Relaxed);
    MIG_CONTROL.frame_top.store(REQUEST_FRAME.top(), Relaxed);
}
const _: () = assert!(size_of::<Published>() == published::LEN);

/// `si_code` of a signal sent with `sigqueue`.
const SI_QUEUE: i32 = -1;
/// How long the handler waits for the command at either end of the connection.
const WAIT_MS: u64 = 2000;

/// What `mig checkpoint` asked for.
#[derive(Clone, Copy)]
pub struct Request {
    /// The connection the outcome is reported on.
    pub conn: i32,
    pub to: Option<FixedPath>,
    pub exit: bool,
    pub portable: bool,
    /// The descriptor to stream the image to (-1: a file).
    pub stream: i32,
    /// One process of a job saved whole (`mig_proto::request::Request::held`).
    pub held: bool,
    /// ... that may pre-copy first (`mig_proto::request::Request::pre`).
    pub pre: bool,
}

/// What the checkpoint signal carried.
#[allow(clippy::large_enum_variant, reason = "a signal handler cannot box")]
pub enum Asked {
    /// A plain signal (`kill`, the interval timer): the default checkpoint.
    Plain,
    /// A request of `mig checkpoint`.
    Request(Request),
    /// A request that cannot be served (its command is gone, or the listener is not
    /// this user's): no checkpoint at all.
    Withdrawn,
}

/// Descriptors of the library's own during a checkpoint, which the image leaves out.
static OWN: [AtomicI32; 2] = [const { AtomicI32::new(-1) }; 2];

/// Whether `fd` is one of the checkpoint's own (the connection, the stream).
pub fn is_own(fd: i32) -> bool {
    OWN.iter().any(|o| o.load(Relaxed) == fd)
}

/// A pre-copied process of a job at its final stop (its request was served by the
/// copier meanwhile): `conn`, its own copy of the connection, is the checkpoint's own
/// again, and the process is saved as one of the job's.
pub fn rejoin(conn: i32) {
    OWN[0].store(conn, Relaxed);
    IN_JOB.store(true, Relaxed);
}

/// Reads the request a signal carries. `code`, `uid` and `value` are the signal's
/// `si_code`, `si_uid` and `si_value`.
pub fn take(code: i32, uid: u32, value: u64) -> Asked {
    if code != SI_QUEUE {
        return Asked::Plain;
    }
    // Only this user and root can signal this process; the kernel checks that, but a
    // queued signal's sender fields are the sender's to fill: the listener is checked.
    if !trusted(uid) {
        return Asked::Withdrawn;
    }
    match connect(value) {
        Some(req) => {
            IN_JOB.store(req.held, Relaxed);
            OWN[0].store(req.conn, Relaxed);
            OWN[1].store(req.stream, Relaxed);
            Asked::Request(req)
        }
        None => Asked::Withdrawn,
    }
}

fn trusted(uid: u32) -> bool {
    uid == 0 || uid == sys::getuid() || uid == sys::geteuid()
}

fn connect(nonce: u64) -> Option<Request> {
    let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).ok()?;
    let req = (|| {
        let mut name = [0u8; 48];
        sys::connect_abstract(fd, request::address(sys::getpid(), nonce, &mut name)).ok()?;
        let (_, uid) = sys::peer_cred(fd).ok()?;
        if !trusted(uid) {
            return None;
        }
        sys::socket_timeouts(fd, WAIT_MS);
        read_request(fd)
    })();
    if req.is_none() {
        sys::close(fd);
    }
    req
}

/// The request's text, up to the empty line that ends it, and the descriptor a stream
/// comes with.
fn read_request(fd: i32) -> Option<Request> {
    // Two paths (the image's, the job's) and a few short lines.
    let mut buf = [0u8; 8600];
    let mut len = 0;
    let mut stream = -1;
    while !request::Request::complete(buf.get(..len)?) {
        let (n, passed) = sys::recv_with_fd(fd, buf.get_mut(len..)?).ok()?;
        if passed >= 0 {
            if stream >= 0 {
                sys::close(passed);
            } else {
                stream = passed;
            }
        }
        if n == 0 {
            break;
        }
        len += n;
    }
    let parsed = buf.get(..len).and_then(request::Request::parse);
    // A command that died half way through its request asked for nothing; a stream
    // comes with its descriptor, and only a stream does.
    let Some(r) = parsed.filter(|r| r.stream == (stream >= 0)) else {
        if stream >= 0 {
            sys::close(stream);
        }
        return None;
    };
    let to = match r.to {
        Some(p) => Some(FixedPath::new(p)?),
        None => None,
    };
    let job = match r.job {
        Some(p) => FixedPath::new(p)?,
        None => FixedPath::EMPTY,
    };
    // SAFETY: see `JobImage`: only the checkpoint handler, one at a time.
    unsafe { *JOB_IMAGE.0.get() = job };
    Some(Request { conn: fd, to, exit: r.exit, portable: r.portable, stream, held: r.held, pre: r.pre })
}

/// This checkpoint saves one process of a job (set while a held request is served):
/// what it shares with the job's other processes is theirs too, not lost.
static IN_JOB: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether this checkpoint saves one process of a job.
pub fn in_job() -> bool {
    IN_JOB.load(Relaxed)
}

/// The job's image the last held request's image goes into (empty: none, or a stream).
struct JobImage(core::cell::UnsafeCell<FixedPath>);
// SAFETY: written and read only by the checkpoint handler, which runs once at a time
// with every signal blocked.
unsafe impl Sync for JobImage {}
static JOB_IMAGE: JobImage = JobImage(core::cell::UnsafeCell::new(FixedPath::EMPTY));

/// For a checkpoint of one process of a job: the job's image file its image goes into.
pub fn job_image() -> Option<FixedPath> {
    // SAFETY: see `JobImage`.
    let p = unsafe { *JOB_IMAGE.0.get() };
    (in_job() && !p.as_bytes().is_empty()).then_some(p)
}

/// How long a held process waits for the command's next word: long enough for the
/// job's largest image to be written (the command may keep a process it is about to
/// end stopped meanwhile); a command that went away ends the wait at once.
const HOLD_MS: u64 = 3_600_000;

/// Says on `conn` that this held process reached `stage`, and waits for the command's
/// next line; true if it is `word`. A command gone, or silent for an hour, is a no.
pub fn hold(conn: i32, stage: &[u8], word: &[u8]) -> bool {
    held(conn, stage, &mut [0; 16]) == Some(word)
}

/// Says on `conn` that this held process reached `stage`; the command's next line.
pub fn held<'a>(conn: i32, stage: &[u8], line: &'a mut [u8; 16]) -> Option<&'a [u8]> {
    say_held(conn, stage).then_some(())?;
    next_line(conn, line)
}

/// Says on `conn` that this held process reached `stage`; whether it could.
pub fn say_held(conn: i32, stage: &[u8]) -> bool {
    let mut m = Msg::<64>::new();
    request::answer::held(stage, |b| {
        m.bytes(b);
    });
    sys::send_all(conn, m.as_bytes()).is_ok()
}

/// The command's next line on `conn` (newline included); none if the command went
/// away, or said nothing for an hour. Read a byte at a time: the line after it (the
/// command may say `stop` and `go` at once) is for whoever reads next.
pub fn next_line(conn: i32, line: &mut [u8; 16]) -> Option<&[u8]> {
    let deadline = sys::clock_monotonic_ns() + HOLD_MS * 1_000_000;
    let mut len = 0;
    while sys::clock_monotonic_ns() < deadline {
        let rest = line.get_mut(len..len + 1)?;
        match sys::read(conn, rest) {
            Ok(0) => return None,
            Ok(n) => {
                len += n;
                if line.get(..len).is_some_and(|l| l.ends_with(b"\n")) {
                    return line.get(..len);
                }
            }
            Err(sys::Errno(libc::EAGAIN)) => {
                sys::wait_readable(conn, 1000);
            }
            Err(sys::Errno(libc::EINTR)) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Tells the command which file the image is being written to, and about how large it
/// will be (for its progress).
pub fn writing(conn: i32, tmp: &[u8], total: u64) {
    if conn >= 0 {
        let mut m = Msg::<4200>::new();
        request::answer::writing(tmp, total, |b| {
            m.bytes(b);
        });
        let _ = sys::send_all(conn, m.as_bytes());
    }
}

/// Reports the outcome of the checkpoint on `conn`, after its warnings (the caller
/// closes it).
pub fn report(conn: i32, outcome: Result<u64, &Msg<960>>, path: &[u8], stopped_us: u64) {
    if conn < 0 {
        return;
    }
    // The warnings first, each on its own (the outcome never overflows behind them).
    for w in sys::msg::warnings().split(|&c| c == b'\n').filter(|w| !w.is_empty()) {
        let mut line = Msg::<1200>::new();
        request::answer::warning(w, |b| {
            line.bytes(b);
        });
        let _ = sys::send_all(conn, line.as_bytes());
    }
    let mut m = Msg::<8192>::new();
    request::answer::outcome(outcome.map_err(|why| why.as_bytes()), path, stopped_us, |b| {
        m.bytes(b);
    });
    let _ = sys::send_all(conn, m.as_bytes());
}

/// The checkpoint is over in this process (its copies of the request's descriptors are
/// closed, or handed to the writer that reports).
pub fn done_here(req: Option<&Request>) {
    if let Some(r) = req {
        for fd in [r.conn, r.stream] {
            if fd >= 0 {
                sys::close(fd);
            }
        }
    }
    for o in &OWN {
        o.store(-1, Relaxed);
    }
    IN_JOB.store(false, Relaxed);
}
