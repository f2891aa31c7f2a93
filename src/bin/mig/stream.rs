//! Streams: reading the pipe a checkpoint is streamed through, and a progress line on
//! stderr.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// What one step of reading a stream gave.
pub enum Step {
    /// Nothing yet (no writer, or no data within the wait).
    Idle,
    Data(usize),
    /// The writer came and went: end of the stream.
    End,
}

/// Waits up to `wait` for data and reads what there is into `buf`.
pub fn read_step(fifo: &mut File, buf: &mut [u8], wait: Duration) -> io::Result<Step> {
    let mut pfd = libc::pollfd { fd: fifo.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: `pfd` is one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().min(i32::MAX as u128) as i32) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(Step::Idle) } else { Err(e) };
    }
    if n == 0 || pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
        return Ok(Step::Idle);
    }
    match fifo.read(buf) {
        Ok(0) if pfd.revents & libc::POLLHUP != 0 => Ok(Step::End),
        Ok(0) => Ok(Step::Idle),
        Ok(n) => Ok(Step::Data(n)),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(Step::Idle),
        Err(e) => Err(e),
    }
}

/// A progress line on stderr, shown only on a terminal and only once an operation
/// takes more than a moment.
pub struct Progress {
    enabled: bool,
    what: String,
    start: Instant,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    pub fn new(what: impl Into<String>) -> Self {
        Progress { enabled: crate::util::stderr_is_tty(), what: what.into(), start: Instant::now(), last: None, shown: false }
    }

    pub fn update(&mut self, bytes: u64) {
        if !self.enabled || self.start.elapsed() < Duration::from_millis(400) {
            return;
        }
        if self.last.is_some_and(|l| l.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last = Some(Instant::now());
        let secs = self.start.elapsed().as_secs_f64();
        let rate = bytes as f64 / secs.max(0.001);
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}: {} ({}/s, {:.1} s)", self.what, crate::util::size(bytes), crate::util::size(rate as u64), secs);
        let _ = err.flush();
        self.shown = true;
    }

    /// Clears the line, if one was shown.
    pub fn finish(&mut self) {
        if self.shown {
            let _ = write!(io::stderr(), "\r\x1b[K");
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
