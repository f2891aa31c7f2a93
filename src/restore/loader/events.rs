//! What the userfaultfds report: page faults to serve, and the changes to an address
//! space (fork, `mremap`, `MADV_DONTNEED`, `munmap`) to follow.

use super::start::IOPRIO_CLASS_BE;
use super::uffd::{EVENT_FORK, EVENT_PAGEFAULT, EVENT_REMAP, EVENT_REMOVE, EVENT_UNMAP, MSG, MSG_ARGS, MSG_EVENT, PAGEFAULT_FLAG_WRITE};
use super::{Loader, Mm};
use crate::sys;
use mig_image::PAGE;

/// A pending fault the loader could not serve yet (`EAGAIN`).
#[derive(Clone, Copy)]
pub(super) struct Fault {
    pub(super) uffd: i32,
    pub(super) addr: u64,
    pub(super) write: bool,
    pub(super) tid: u32,
}

impl Loader {
    /// Reads and handles what every address space reports.
    pub(super) fn events(&mut self) {
        let mut m = 0;
        let mut buf = [0u8; MSG * 64];
        while m < self.mms.len() {
            if self.mms[m].gone {
                m += 1;
                continue;
            }
            let n = match sys::read(self.mms[m].uffd, &mut buf) {
                Ok(n) => n,
                Err(sys::Errno(libc::EINTR)) => continue,
                Err(_) => {
                    m += 1;
                    continue;
                }
            };
            for msg in buf[..n].chunks_exact(MSG) {
                let u64_at = |o: usize| msg.get(o..o + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_ne_bytes);
                let (a0, a1, a2) = (u64_at(MSG_ARGS), u64_at(MSG_ARGS + 8), u64_at(MSG_ARGS + 16));
                let event = msg[MSG_EVENT];
                self.events += matches!(event, EVENT_FORK | EVENT_REMAP | EVENT_REMOVE | EVENT_UNMAP) as u64;
                match event {
                    EVENT_PAGEFAULT => {
                        let f = Fault { uffd: self.mms[m].uffd, addr: a1, write: a0 & PAGEFAULT_FLAG_WRITE != 0, tid: a2 as u32 };
                        if !self.fault(m, f) {
                            self.pending.push(f);
                        }
                    }
                    EVENT_FORK => {
                        let child = Mm { uffd: a0 as u32 as i32, main: false, tid: 0, ..self.mms[m].clone() };
                        self.mms.push(child);
                    }
                    EVENT_REMAP => self.mms[m].remap(a0, a1, a2),
                    EVENT_REMOVE => self.mms[m].remove(a0, a1),
                    EVENT_UNMAP => self.mms[m].unmap(a0, a1),
                    _ => {}
                }
            }
            if n < buf.len() {
                m += 1;
            }
        }
        // Faults that met a changing address space, now that its events are read.
        let pending = std::mem::take(&mut self.pending);
        for f in pending {
            if let Some(m) = self.mms.iter().position(|mm| mm.uffd == f.uffd && !mm.gone)
                && !self.fault(m, f)
            {
                self.pending.push(f);
            }
        }
    }

    /// Serves a page fault in address space `m`; false to try again later.
    pub(super) fn fault(&mut self, m: usize, f: Fault) -> bool {
        let page = f.addr & !(PAGE - 1);
        if f.tid != 0 && !self.mms[m].main {
            self.mms[m].tid = f.tid;
        }
        let g = match self.mms[m].find(page) {
            Some(g) if !self.mms[m].is_done(g) => g,
            _ => {
                self.zeros += 1;
                return self.zero(m, page, f.write);
            }
        };
        self.faults += 1;
        let b = Self::block_in(&self.regions, g);
        // The program waits for it: the disk's ordinary priority.
        self.set_class(IOPRIO_CLASS_BE);
        if self.bad[b as usize] || self.read(b, true).is_err() {
            self.damaged(b, Some(m));
            return true;
        }
        self.deliver(b);
        self.mms[m].gone || self.mms[m].is_done(g)
    }
}
