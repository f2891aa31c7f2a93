//! `mig checkpoint`: ask a process for an image and wait until it is complete. The
//! request goes through the channel described in `request.rs`.

use crate::compress::{self, Compressor, Method};
use crate::control;
use crate::job;
use crate::reach;
use crate::request::{self, Channel, Done, Reply, Target};
use crate::stream::{self, Progress, Step};
use crate::util;
use crate::{Fail, Result};
use std::io::{IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Ask a running process for a checkpoint and wait until its image is complete.
///
/// The process must run under mig (started with `mig run`, or restarted with
/// `mig restart`). It stops only while it writes the image and then goes on, unless
/// --exit is given. When the image is complete, mig prints where it is, its size and
/// how long the process was stopped.
#[derive(clap::Args)]
#[command(after_long_help = "\
EXAMPLES:
  mig checkpoint 4242                      # to the process's own MIG_IMAGE
  mig checkpoint 4242 --to /var/tmp/a.mig  # elsewhere
  mig checkpoint 4242 --exit --to - | ssh host 'mig restart -'
  mig checkpoint 4242 --to - --compress zstd | ssh host 'cat > a.mig'

With --compress (or MIG_COMPRESS=zstd), mig compresses the image it receives from
the process into one zstd frame; `mig restart` and `mig inspect` recognise it.

The request reaches the process through its checkpoint signal and an abstract UNIX
socket only mig and the process's user can use (no files).
Exit status 0 means the image is complete; on any failure the process keeps running
(also with --exit) and mig says why.")]
pub struct Args {
    /// The process to checkpoint.
    pub pid: i32,
    /// End the process once its image is complete (it exits with status 0).
    #[arg(long)]
    pub exit: bool,
    /// Where to write the image instead of the process's own image path (its
    /// MIG_IMAGE); `-` streams it to standard output with no file on disk.
    #[arg(long, value_name = "PATH|-")]
    pub to: Option<PathBuf>,
    /// Give up after this many seconds without the process answering or the image
    /// growing.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Make a portable image: it also carries the program's and libraries' code, so it
    /// restores where those files differ or are missing (same CPU features and kernel
    /// needed). Larger. Also MIG_PORTABLE=1 in the process's environment.
    #[arg(long)]
    pub portable: bool,
    /// Compress the image with zstd (default level 1; zstd:LEVEL for 1 to 19), or
    /// not (none). Only for --to: a process writing its own MIG_IMAGE writes it
    /// uncompressed. Default: $MIG_COMPRESS, else none. Only `mig restart` and `mig
    /// inspect` read compressed images (not MIG_RESTORE).
    #[arg(long, value_name = "zstd[:LEVEL]|none", value_parser = compress::parse)]
    pub compress: Option<Method>,
}

pub fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

/// Where the image goes.
pub enum Dest<'a> {
    /// The process's own MIG_IMAGE.
    Own,
    File(PathBuf),
    /// Through a FIFO into this writer. A write error stops the stream (the process
    /// then sees its write fail, reports an error and does not exit).
    Stream(&'a mut dyn Write),
}

pub struct Outcome {
    pub path: PathBuf,
    pub bytes: u64,
    pub stopped: Duration,
    /// When the signal was sent.
    pub signalled: Instant,
    /// How many processes the image holds (more than one: a job's image).
    pub processes: usize,
    /// How many of a job's processes were pre-copied.
    pub pre_copied: usize,
}

pub fn main(mut a: Args) -> Result<u8> {
    a.pid = job::restored_by(a.pid);
    let comm = control::comm(a.pid);
    // Named in the outcome if it is a job's (before it may end).
    let root = job::root_of(a.pid);
    let root_comm = control::comm(root);
    let streaming = a.to.as_deref() == Some(Path::new("-"));
    let opts = Options { exit: a.exit, portable: a.portable, held: false, pre: false };
    if a.to.is_none() && matches!(a.compress, Some(Method::Zstd(_))) {
        return Err(Fail::bad("--compress needs --to PATH or --to - (a process writes its own image uncompressed)"));
    }
    let method = if a.to.is_some() { compress::choose(a.compress)? } else { Method::None };
    // (the outcome, the compressed size)
    let (out, packed) = if streaming {
        let mut stdout = std::io::stdout().lock();
        if stdout.is_terminal() {
            return Err(Fail::bad("refusing to write an image to a terminal (redirect standard output, or give --to PATH)"));
        }
        let stdout_err = |e: std::io::Error| Fail::new(format!("writing the image to standard output: {e}"));
        let r = match method {
            Method::None => (take(a.pid, Dest::Stream(&mut stdout), opts, a.timeout)?, None),
            Method::Zstd(level) => {
                let mut z = Compressor::new(&mut stdout, level)?;
                let o = take(a.pid, Dest::Stream(&mut z), opts, a.timeout)?;
                let (_, n) = z.finish().map_err(stdout_err)?;
                (o, Some(n))
            }
        };
        stdout.flush().map_err(stdout_err)?;
        r
    } else {
        match (&a.to, method) {
            (Some(p), Method::Zstd(level)) => {
                let (o, n) = take_compressed(a.pid, &destination(p)?, level, opts, a.timeout)?;
                (o, Some(n))
            }
            (Some(p), Method::None) => (take(a.pid, Dest::File(destination(p)?), opts, a.timeout)?, None),
            (None, _) => (take(a.pid, Dest::Own, opts, a.timeout)?, None),
        }
    };
    if a.exit && out.processes <= 1 {
        // "Has exited" is true once said: a restart right after finds the connections
        // it takes over, and its pid, free.
        wait_ended(a.pid);
    }
    let wher = if streaming { "streamed to standard output".to_string() } else { format!("written to {}", out.path.display()) };
    let size = match packed {
        Some(n) => format!("{}, {}", util::size(out.bytes), compress::describe(out.bytes, n)),
        None => util::size(out.bytes),
    };
    let stopped = util::duration(out.stopped);
    let mut line = if out.processes > 1 {
        let pre = if out.pre_copied > 0 { format!(", {} pre-copied", out.pre_copied) } else { String::new() };
        format!("checkpoint of job {root} ({root_comm}, {} processes{pre}) {wher}: {size}, processes stopped for {stopped}", out.processes)
    } else {
        format!("checkpoint of process {} ({comm}) {wher}: {size}, process stopped for {stopped}", a.pid)
    };
    if a.exit {
        line.push_str(if out.processes > 1 { "; the job has ended" } else { "; the process has exited" });
    }
    if streaming {
        eprintln!("mig: {line}");
    } else {
        println!("{line}");
    }
    Ok(0)
}

/// A checkpoint streamed through mig into a compressed file at `dst`: written aside
/// (`<dst>.tmp.<random>`, mode 0600, created exclusively), synced, renamed into place, like the
/// library's own images. Returns the outcome (its `path` is `dst`) and the file's size.
fn take_compressed(pid: i32, dst: &Path, level: i32, opts: Options, timeout: Duration) -> Result<(Outcome, u64)> {
    let (tmp, file) = util::create_beside(dst)?;
    let r = (|| {
        let mut z = Compressor::new(std::io::BufWriter::with_capacity(1 << 20, file), level)?;
        let mut o = take(pid, Dest::Stream(&mut z), opts, timeout)?;
        let err = |e: std::io::Error| Fail::new(format!("writing the image to {}: {e}", tmp.display()));
        let (w, n) = z.finish().map_err(err)?;
        let file = w.into_inner().map_err(|e| err(e.into_error()))?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, dst).map_err(|e| Fail::new(format!("cannot rename {} to {}: {e}", tmp.display(), dst.display())))?;
        if let Some(dir) = dst.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        o.path = dst.to_path_buf();
        Ok((o, n))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// `--to PATH` checked and made absolute.
fn destination(p: &Path) -> Result<PathBuf> {
    let abs = util::absolute(p)?;
    if abs.is_dir() {
        return Err(Fail::bad(format!("{} is a directory; give the image's file name", abs.display())));
    }
    let parent = abs.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        return Err(Fail::new(format!("cannot write an image to {}: no directory {}", abs.display(), parent.display())));
    }
    Ok(abs)
}

pub use crate::request::Options;

/// Writes the request into a thread of `pid` (`reach::inject_request`) where no signal
/// can carry it: the library has no request signal (the program took every one), or
/// the request signal sent a second ago still waits, blocked in every thread. Not while
/// a checkpoint runs (its threads block every signal then; the request is tried again
/// a second later, and a copy that comes late finds no one to answer it), nor when
/// mig's own `MIG_SIGNAL` chose the signal.
fn write_in(pid: i32, sig: i32, own_signal: bool, chan: &Channel) -> Result<()> {
    let Some(p) = reach::published(pid).filter(|p| !own_signal && !p.busy) else { return Ok(()) };
    if p.request_signal != 0 && !(p.request_signal == sig && reach::waits_blocked(pid, sig)) {
        return Ok(());
    }
    // The process has one area for such a frame: one command at a time writes it.
    let Some(_one_at_a_time) = reach::writer_lock(pid) else { return Ok(()) };
    chan.inject(&p)
        .map_err(|e| Fail::new(format!("no signal reaches process {pid} (it took or blocks them), and it cannot be traced to take the request: {e}")))
}

/// Runs one checkpoint of `pid` to `dest` and waits for its result.
pub fn take(pid: i32, dest: Dest<'_>, opts: Options, timeout: Duration) -> Result<Outcome> {
    // A process with children is saved with them, as one job; a request to a member
    // of a job saves the whole job into the job's image.
    let root = job::root_of(pid);
    if root != pid || job::has_children(root) {
        return job::checkpoint(root, dest, opts, timeout, &mut || None);
    }
    match alone(pid, dest, opts, timeout)? {
        Ok(outcome) => Ok(outcome),
        // It started a child since: a job after all.
        Err(dest) => job::checkpoint(root, dest, opts, timeout, &mut || None),
    }
}

/// [`take`] of a process without children; `Err(dest)` back if, stopped, it had one.
fn alone<'a>(pid: i32, dest: Dest<'a>, opts: Options, timeout: Duration) -> Result<std::result::Result<Outcome, Dest<'a>>> {
    let (path, stream, write_end, sink) = match dest {
        Dest::Stream(w) => {
            let (r, wr) = request::pipe()?;
            (None, Some(r), Some(wr), Some(w))
        }
        Dest::File(p) => (Some(p), None, None, None),
        Dest::Own => (None, None, None, None),
    };
    let target = match (&path, &write_end) {
        (_, Some(w)) => Target::Stream(w.as_raw_fd()),
        (Some(p), None) => Target::File(p),
        (None, None) => Target::Own,
    };
    let (mut conn, signalled) = connect(pid, timeout)?;
    request::send(&conn, &target, opts)?;
    drop(write_end);
    conn.set_nonblocking(true).map_err(|e| Fail::new(format!("{e}")))?;
    let streaming = stream.is_some();
    let mut w = Waiter { pid, timeout, stream, sink, streamed: 0, progress: Progress::new(format!("mig: checkpoint of {pid}")), warnings: vec![] };
    let done = w.wait(&mut conn);
    w.progress.finish();
    // Whatever the outcome, the person who asked hears what could not be saved.
    for warning in &w.warnings {
        eprintln!("mig: warning: {warning}");
    }
    let done = done?;
    match done {
        (Done::Ok { path, bytes, stopped_us }, _) => {
            if streaming && w.streamed != bytes {
                return Err(Fail::new(format!("the stream ended after {} bytes, but the image has {bytes}", w.streamed)));
            }
            Ok(Ok(Outcome { path, bytes, stopped: Duration::from_micros(stopped_us), signalled, processes: 1, pre_copied: 0 }))
        }
        (Done::Error { reason }, None) if reason == mig_proto::request::HAS_CHILDREN && w.streamed == 0 => Ok(Err(match (w.sink.take(), path) {
            (Some(sink), _) => Dest::Stream(sink),
            (None, Some(p)) => Dest::File(p),
            (None, None) => Dest::Own,
        })),
        (Done::Error { reason }, sink_error) => {
            let mut m = format!("process {pid} could not write its checkpoint: {reason}");
            if let Some(e) = sink_error {
                m.push_str(&format!(" (the stream's destination failed first: {e})"));
            }
            // A process whose stream broke may die of the SIGPIPE it got.
            std::thread::sleep(Duration::from_millis(100));
            m.push_str(if control::alive(pid) { "; it keeps running" } else { "; the process has ended" });
            Err(Fail::new(m))
        }
    }
}

/// A request signalled to a process, waiting for its handler to connect.
pub struct Asking {
    pid: i32,
    chan: Channel,
    sig: i32,
    signals: bool,
    own_signal: bool,
    /// When the signal went.
    pub signalled: Instant,
    last_signal: Instant,
}

/// Readies a request of its own for `pid` (`Asking::send` sends it): what a job's
/// checkpoint does for every process before it signals any, so that they stop together.
pub fn ask(pid: i32) -> Result<Asking> {
    control::check_target(pid)?;
    let published = reach::published(pid);
    let sig = control::checkpoint_signal(pid, published.as_ref())?;
    let own_signal = std::env::var_os(mig_proto::env::SIGNAL).is_some_and(|v| !v.is_empty());
    // With no request signal the checkpoint signal is likely the program's: not sent.
    let signals = own_signal || published.as_ref().is_none_or(|p| p.request_signal != 0);
    let chan = Channel::open(pid)?;
    Ok(Asking { pid, chan, sig, signals, own_signal, signalled: Instant::now(), last_signal: Instant::now() })
}

impl Asking {
    /// Signals the process with the request (or writes it into a thread, where no
    /// signal reaches it).
    pub fn send(&mut self) -> Result<()> {
        self.signalled = Instant::now();
        self.last_signal = self.signalled;
        if self.signals {
            self.chan.signal(self.sig).map_err(|e| Fail::new(format!("cannot signal process {}: {e}", self.pid)))
        } else {
            write_in(self.pid, self.sig, self.own_signal, &self.chan)
        }
    }

    /// The process's connection, if it connects within `wait`; an error once it cannot
    /// (gone, stopped, silent for `timeout`). A standard signal does not queue: one that
    /// came while the process was busy with another checkpoint is sent again each second.
    pub fn answer(&mut self, wait: Duration, timeout: Duration) -> Result<Option<std::os::unix::net::UnixStream>> {
        let pid = self.pid;
        if let Some(c) = self.chan.accept(wait) {
            return Ok(Some(c));
        }
        if !control::alive(pid) {
            return Err(Fail::new(format!("process {pid} ended before it took the checkpoint request")));
        }
        // Stopped meanwhile: mig goes, and with it the request (the signal the process
        // finds when it goes on finds no one to connect to).
        if control::is_stopped(pid) {
            return Err(control::stopped(pid));
        }
        if self.signalled.elapsed() > timeout {
            return Err(Fail::new(format!(
                "timed out after {}: process {pid} did not take the checkpoint request (is the checkpoint signal blocked or taken by the program, or is it a version of libmig.so without checkpoint requests?)",
                util::duration(timeout)
            )));
        }
        if self.last_signal.elapsed() >= Duration::from_secs(1) {
            if self.signals {
                let _ = self.chan.signal(self.sig);
            }
            write_in(pid, self.sig, self.own_signal, &self.chan)?;
            self.last_signal = Instant::now();
        }
        Ok(None)
    }
}

/// Signals `pid` with a request of its own and waits until its handler connects:
/// (the connection, when the signal went). Nobody else's connection is taken
/// afterwards (the listener goes).
pub fn connect(pid: i32, timeout: Duration) -> Result<(std::os::unix::net::UnixStream, Instant)> {
    let mut a = ask(pid)?;
    a.send()?;
    loop {
        if let Some(c) = a.answer(Duration::from_millis(50), timeout)? {
            return Ok((c, a.signalled));
        }
    }
}

struct Waiter<'w> {
    pid: i32,
    timeout: Duration,
    /// The read end of the stream's pipe, until its end.
    stream: Option<std::fs::File>,
    sink: Option<&'w mut dyn Write>,
    streamed: u64,
    progress: Progress,
    warnings: Vec<String>,
}

impl Waiter<'_> {
    /// Copies the stream (if any) and waits for the answer on `conn`.
    fn wait(&mut self, conn: &mut std::os::unix::net::UnixStream) -> Result<(Done, Option<std::io::Error>)> {
        let pid = self.pid;
        let mut reply = Reply::default();
        let mut sink_error = None;
        let mut buf = vec![0u8; 1 << 20];
        let mut deadline = Instant::now() + self.timeout;
        let mut last_size = 0u64;
        let mut conn_open = true;
        loop {
            let mut fds = vec![libc::pollfd { fd: conn.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
            if let Some(f) = &self.stream {
                fds.push(libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
            // SAFETY: `fds` is a vector of valid pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
            if let Some(f) = self.stream.as_mut() {
                match stream::read_step(f, &mut buf, Duration::ZERO) {
                    Ok(Step::Data(n)) => {
                        self.streamed += n as u64;
                        deadline = Instant::now() + self.timeout;
                        if let Some(s) = self.sink.as_mut()
                            && let Err(e) = s.write_all(&buf[..n])
                        {
                            // Stop reading: the process's write fails and it
                            // neither finishes nor exits.
                            sink_error = Some(e);
                            self.stream = None;
                        }
                        self.progress.update(self.streamed, reply.total());
                        continue;
                    }
                    Ok(Step::End) => self.stream = None,
                    Ok(Step::Idle) => {}
                    Err(e) => return Err(Fail::new(format!("reading the image stream: {e}"))),
                }
            }
            if conn_open {
                conn_open = reply.read(conn).map_err(|e| Fail::new(format!("reading the answer of process {pid}: {e}")))?;
                self.warnings = reply.warnings();
            }
            match reply.done() {
                Some(d @ Done::Error { .. }) => return Ok((d, sink_error)),
                Some(d @ Done::Ok { .. }) if self.stream.is_none() => {
                    if let Some(e) = sink_error {
                        return Err(Fail::new(format!("the image could not be passed on: {e}")));
                    }
                    return Ok((d, None));
                }
                Some(Done::Ok { .. }) => {}
                None if !conn_open => {
                    // Let a stream drain first: its writer may still be at it.
                    if self.stream.is_some() {
                        continue;
                    }
                    return Err(Fail::new(if control::alive(pid) {
                        format!(
                            "the writer of process {pid}'s checkpoint ended before it finished (was it killed?); no image was made, the process keeps running"
                        )
                    } else {
                        format!("process {pid} ended while writing its checkpoint; no image was made")
                    }));
                }
                None => {}
            }
            if let Some(p) = &reply.writing()
                && let Ok(m) = std::fs::metadata(p)
                && m.len() != last_size
            {
                last_size = m.len();
                deadline = Instant::now() + self.timeout;
                self.progress.update(last_size, reply.total());
            }
            if Instant::now() > deadline {
                return Err(Fail::new(format!("timed out after {} waiting for process {pid} to finish its checkpoint", util::duration(self.timeout))));
            }
            // Interrupted (`mig migrate`): a stream no longer read fails the checkpoint,
            // and the process goes on.
            if self.stream.is_some() && crate::interrupt::caught() {
                return Err(Fail::new("interrupted"));
            }
        }
    }
}

/// Waits (up to 5 s) until process `pid` has ended (it ends once its image is safe,
/// after its connections' peers acknowledged what they were sent).
fn wait_ended(pid: i32) {
    // SAFETY: pidfd_open of a pid; the descriptor is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return; // gone already
    }
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll on one valid pollfd, then close of our descriptor.
    unsafe {
        libc::poll(&mut p, 1, 5000);
        libc::close(fd);
    }
}
