//! Streams: reading the pipe a checkpoint is streamed through, and a progress line on
//! stderr.

use std::fs::File;
use std::io::{self, Read};
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

/// A progress bar on stderr, shown only on a terminal and only once an operation takes
/// more than a moment: bytes written (of the expected total, once known), rate and
/// time left.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: String,
    start: Instant,
}

impl Progress {
    pub fn new(what: impl Into<String>) -> Self {
        Progress { bar: None, what: what.into(), start: Instant::now() }
    }

    /// `bytes` done of `total` (0: not known).
    pub fn update(&mut self, bytes: u64, total: u64) {
        if self.bar.is_none() {
            if !crate::util::stderr_is_tty() || self.start.elapsed() < Duration::from_millis(400) {
                return;
            }
            let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr_with_hz(10));
            bar.set_message(self.what.clone());
            self.bar = Some(bar);
        }
        let Some(bar) = &self.bar else { return };
        let style = if total > 0 {
            bar.set_length(total.max(bytes));
            "{msg}: {bytes}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec}, {eta} left"
        } else {
            "{msg}: {bytes} ({binary_bytes_per_sec}, {elapsed})"
        };
        if let Ok(s) = indicatif::ProgressStyle::with_template(style) {
            bar.set_style(s.progress_chars("=> "));
        }
        bar.set_position(bytes);
    }

    /// Clears the bar, if one was shown.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
