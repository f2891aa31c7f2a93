//! A lazily restored process: its memory is complete only once the restore's loader
//! (`loader`, a process of its own) has handed over every saved page and ended. Who the
//! loader is, and waiting for it: a checkpoint does, before it looks at the memory (a
//! page not handed over yet is missing from the page map, and the pre-copy's own
//! userfaultfd cannot register memory the loader's still covers). Async-signal-safe.
#![allow(unsafe_code)]

use crate::sys;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// The loader's pid (0: none, or it ended) and start time (with the pid, who it is).
static LOADER: AtomicU32 = AtomicU32::new(0);
static STARTED: AtomicU64 = AtomicU64::new(0);

/// How long `finish` waits for the loader at most.
const WAIT_MS: u64 = 300_000;

/// After a restore: the loader of this process's memory (pid 0: none, eager restore).
pub fn set_loader(pid: u32, start_time: u64) {
    STARTED.store(start_time, Relaxed);
    LOADER.store(pid, Relaxed);
}

/// Field 22 of `/proc/<pid>/stat`: when it started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let mut num = sys::msg::Msg::<16>::new();
    num.num(pid as u64);
    let path = sys::CPath::join(&[b"/proc/", num.as_bytes(), b"/stat"])?;
    let mut buf = [0u8; 1024];
    let n = sys::read_file(&path, &mut buf).ok()?;
    let stat = buf.get(..n)?;
    let after = stat.iter().rposition(|&c| c == b')')?;
    let field = stat.get(after + 2..)?.split(|&c| c == b' ').nth(22 - 3)?;
    field.iter().try_fold(0u64, |v, &c| c.is_ascii_digit().then(|| v.wrapping_mul(10).wrapping_add((c - b'0') as u64)))
}

/// Waits until the loader has loaded everything and ended, asking it to hurry (its
/// background reads then go at the disk's ordinary priority, not idle). True at once if
/// there is none; false if it did not end within `WAIT_MS`.
pub fn finish() -> bool {
    let pid = LOADER.load(Relaxed);
    if pid == 0 {
        return true;
    }
    let Ok(fd) = sys::pidfd_open(pid) else {
        LOADER.store(0, Relaxed);
        return true;
    };
    // Ended long ago, and the pid taken since: not ours.
    if start_time(pid) != Some(STARTED.load(Relaxed)) {
        sys::close(fd);
        LOADER.store(0, Relaxed);
        return true;
    }
    let _ = sys::pidfd_send_signal(fd, libc::SIGUSR1);
    let t0 = sys::clock_monotonic_ns();
    let ended = loop {
        if sys::wait_readable(fd, 100) {
            break true;
        }
        if sys::clock_monotonic_ns() - t0 > WAIT_MS * 1_000_000 {
            break false;
        }
    };
    sys::close(fd);
    if ended {
        LOADER.store(0, Relaxed);
    }
    ended
}
