//! The loader's loop: wait for the blob's word, the restored process's end, a
//! checkpoint's hurry and the userfaultfds' events; load the rest in between; end when
//! every address space is complete or gone.
#![allow(unsafe_code)]

use super::start::IOPRIO_CLASS_BE;
use super::{Loader, close};
use crate::sys;

/// For this long after the restore handed over, the loader only serves faults: the
/// restored process's first steps (the rest of the restore, the hand-off, what it does
/// first) get the CPU before the background loading.
const START_DELAY_NS: u64 = 5_000_000;

impl Loader {
    /// Closes the userfaultfd of every address space that is gone or complete (its
    /// memory is plain anonymous memory from then on).
    pub(super) fn retire(&mut self) {
        let mut i = 0;
        while i < self.mms.len() {
            let m = &self.mms[i];
            if m.gone || (self.ready && m.left == 0) {
                if m.main && !m.gone && self.debug {
                    let ms = (sys::clock_monotonic_ns() - self.t0) / 1_000_000;
                    let (kib, faults, zeros, events) = (self.loaded >> 10, self.faults, self.zeros, self.events);
                    self.say(&format!("mig: lazy restore: the memory of {} is complete in {ms} ms: {kib} KiB loaded, {faults} faults on saved pages, {zeros} on others, {events} events\n", self.restored));
                }
                close(m.uffd);
                self.pending.retain(|f| f.uffd != m.uffd);
                self.mms.remove(i);
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn serve(&mut self) {
        let mut next = None;
        loop {
            let mut fds = vec![
                libc::pollfd { fd: if self.ended { -1 } else { self.pidfd }, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.sigfd, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: if self.ready { -1 } else { self.ready_fd }, events: libc::POLLIN, revents: 0 },
            ];
            fds.extend(self.mms.iter().map(|m| libc::pollfd { fd: m.uffd, events: libc::POLLIN, revents: 0 }));
            let timeout = match next {
                Some(true) => 0,
                Some(false) => 1,
                None if !self.pending.is_empty() => 1,
                None => -1,
            };
            // SAFETY: poll on the array built above.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if fds[0].revents != 0 {
                // The restored process ended: its memory needs nothing more (a child's
                // may, still).
                self.ended = true;
                if let Some(m) = self.mms.iter_mut().find(|m| m.main) {
                    m.gone = true;
                }
            }
            if fds[1].revents != 0 {
                let mut info = [0u8; 128];
                let _ = sys::read(self.sigfd, &mut info);
                // A checkpoint waits for the whole memory: no more idling.
                self.hurry = true;
                self.set_class(IOPRIO_CLASS_BE);
            }
            if fds[2].revents != 0 {
                let mut byte = [0u8];
                match sys::read(self.ready_fd, &mut byte) {
                    Ok(1) => {
                        self.ready = true;
                        self.t0 = sys::clock_monotonic_ns();
                        close(self.ready_fd);
                    }
                    // The restore failed before it registered everything.
                    Ok(_) => return,
                    Err(_) => {}
                }
            }
            self.events();
            self.retire();
            if self.mms.is_empty() {
                return;
            }
            next = if !self.ready {
                None
            } else if sys::clock_monotonic_ns() < self.t0 + START_DELAY_NS {
                Some(false)
            } else {
                self.background()
            };
        }
    }

    /// Done: the watchdog (`done`) is told so, and the loader ends.
    pub(super) fn end(&mut self, done: i32) -> ! {
        for m in &self.mms {
            close(m.uffd);
        }
        if done >= 0 {
            let _ = sys::write_all(done, b"d");
        }
        sys::exit_group(0)
    }
}
