//! The loader's watchdog, a process of its own.
#![allow(unsafe_code)]

use super::start::close_all_but;
use super::{close, pipe};
use crate::sys;

/// Starts a watchdog: should the loader end before it is done (killed, or a bug), the
/// memory it serves would become plain anonymous memory, zeros where saved data
/// belongs, once the last copy of the userfaultfd `uffd` is closed. The watchdog keeps
/// one, so that the restored process's faults wait instead, and kills it, saying so.
/// Returns what the loader writes a byte to once it is done (-1: no watchdog).
pub(super) fn watchdog(pidfd: i32, uffd: i32, image: &str, restored: u32) -> i32 {
    let Ok([r, w]) = pipe() else { return -1 };
    match sys::fork_quiet() {
        Ok(0) => {
            close_all_but(&mut [2, pidfd, r, uffd]);
            // SAFETY: prctl with a NUL-terminated name.
            unsafe { libc::prctl(libc::PR_SET_NAME, c"mig-watchdog".as_ptr()) };
            let mut fds = [libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 }, libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 }];
            loop {
                // SAFETY: poll on the array above.
                if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 || fds[0].revents != 0 {
                    sys::exit_group(0); // the restored process ended
                }
                if fds[1].revents != 0 {
                    let mut byte = [0u8];
                    if sys::read(r, &mut byte) != Ok(1) {
                        let line = format!(
                            "mig: the loader of the memory of the process restored from {image} ({restored}) ended before it was done: the process was killed\n"
                        );
                        let _ = sys::write_all(2, line.as_bytes());
                        let _ = sys::pidfd_send_signal(pidfd, libc::SIGKILL);
                        // Its memory unregisters with the last copy of `uffd`: not before
                        // it is gone.
                        let mut gone = [libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 }];
                        // SAFETY: poll on the array above.
                        unsafe { libc::poll(gone.as_mut_ptr(), 1, 5000) };
                    }
                    sys::exit_group(0);
                }
            }
        }
        Ok(_) => {
            close(r);
            w
        }
        Err(_) => {
            close(r);
            close(w);
            -1
        }
    }
}
