//! A job whose root led its own session on a terminal (`setsid -c`, an ssh or Slurm
//! `--pty` session) needs a controlling terminal of its own again, and the terminal
//! `mig restart` runs on is its shell's. So the job gets a new pseudo-terminal, with
//! the modes and size of that terminal, as its controlling terminal and standard
//! descriptors, and `mig restart` relays between the two (its own terminal raw
//! meanwhile, so Ctrl-C and the like reach the job's terminal as typed), as `script`
//! does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The pseudo-terminal standing in for this command's terminal.
pub struct Proxy {
    master: i32,
    slave: i32,
    /// This command's terminal (standard input) and its modes before they were made raw.
    saved: libc::termios,
}

/// The relay, running.
pub struct Running {
    master: i32,
    saved: libc::termios,
    done: Arc<AtomicBool>,
    relay: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// A new pseudo-terminal like the terminal on standard input; none if standard
    /// input is no terminal.
    pub fn open() -> Option<Proxy> {
        // SAFETY: plain calls on our own descriptors; `termios` and `winsize` are plain
        // old data filled by the kernel.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::isatty(0) != 1 || libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            libc::ioctl(0, libc::TIOCGWINSZ, &mut ws);
            let (mut master, mut slave) = (-1, -1);
            if libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), &saved, &ws) != 0 {
                return None;
            }
            libc::fcntl(master, libc::F_SETFD, libc::FD_CLOEXEC);
            Some(Proxy { master, slave, saved })
        }
    }

    /// In the job's root, in a session of its own, before it execs: the slave is its
    /// controlling terminal, and its standard descriptors that were this command's
    /// terminal.
    pub fn take_in_child(&self) {
        // SAFETY: plain system calls (the child of a fork, before exec).
        unsafe {
            libc::ioctl(self.slave, libc::TIOCSCTTY, 0);
            for fd in 0..=2 {
                if libc::isatty(fd) == 1 {
                    libc::dup2(self.slave, fd);
                }
            }
            libc::close(self.slave);
            libc::close(self.master);
        }
    }

    /// Not needed after all (the root is this process).
    pub fn discard(self) {
        // SAFETY: our own descriptors.
        unsafe {
            libc::close(self.slave);
            libc::close(self.master);
        }
    }

    /// In this command, once the root runs: relays until `finish`.
    pub fn relay(self) -> Running {
        // SAFETY: closing our copy of the slave; this terminal made raw (put back by
        // `finish`).
        unsafe {
            libc::close(self.slave);
            let mut raw = self.saved;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSADRAIN, &raw);
        }
        let done = Arc::new(AtomicBool::new(false));
        let (master, stop) = (self.master, done.clone());
        let relay = std::thread::spawn(move || relay(master, &stop));
        Running { master: self.master, saved: self.saved, done, relay: Some(relay) }
    }
}

impl Running {
    /// Once the root ended: what the job still wrote is passed on, then this terminal
    /// gets its modes back.
    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(r) = self.relay.take() {
            let _ = r.join();
        }
        // SAFETY: our own descriptors; the modes saved before.
        unsafe {
            libc::close(self.master);
            libc::tcsetattr(0, libc::TCSADRAIN, &self.saved);
        }
    }
}

/// Copies standard input to `master` and `master` to standard output, and this
/// terminal's size to it when it changes, until `done` and nothing more comes from the
/// job (or every end of its terminal is closed).
fn relay(master: i32, done: &AtomicBool) {
    let mut buf = [0u8; 4096];
    let mut input = true;
    // SAFETY: `winsize` is plain old data.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    loop {
        let mut fds = [libc::pollfd { fd: master, events: libc::POLLIN, revents: 0 }, libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 }];
        let n = if input { 2 } else { 1 };
        // SAFETY: poll, read, write and ioctl on our descriptors with buffers we own.
        unsafe {
            let mut now: libc::winsize = std::mem::zeroed();
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut now) == 0 && (now.ws_row, now.ws_col) != (size.ws_row, size.ws_col) {
                size = now;
                libc::ioctl(master, libc::TIOCSWINSZ, &size);
            }
            let ready = libc::poll(fds.as_mut_ptr(), n, 50);
            if ready == 0 && done.load(Ordering::Relaxed) {
                return;
            }
            if fds[0].revents != 0 {
                let got = libc::read(master, buf.as_mut_ptr().cast(), buf.len());
                if got <= 0 {
                    return; // EIO: no process holds the terminal any more
                }
                write_all(1, &buf[..got as usize]);
            }
            if input && fds[1].revents != 0 {
                let got = libc::read(0, buf.as_mut_ptr().cast(), buf.len());
                if got <= 0 {
                    input = false;
                } else {
                    write_all(master, &buf[..got as usize]);
                }
            }
        }
    }
}

fn write_all(fd: i32, mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: writing bytes we hold.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        b = &b[n as usize..];
    }
}
