//! Pages handed over into an address space: `UFFDIO_COPY` of a checked block, or zeros
//! where nothing was saved.
#![allow(unsafe_code)]

use super::uffd::{UFFDIO_COPY, UFFDIO_WAKE, UFFDIO_ZEROPAGE};
use super::{Block, Loader, errno};
use mig_image::PAGE;

static ZEROS: [u8; PAGE as usize] = [0; PAGE as usize];

/// What a copy into an address space came to.
enum Copied {
    /// Everything asked is there.
    All,
    /// The address space is changing (an event not read yet): try again after reading.
    Later,
    /// The address space is gone (the process ended or executed another program).
    Gone,
}

impl Loader {
    /// Hands block `b` (in `buf`) to every address space that still needs a page of it.
    /// Returns false if some could not take it yet.
    pub(super) fn deliver(&mut self, b: u32) -> bool {
        let Block { g0, g1, .. } = self.block(b);
        let mut complete = true;
        for m in 0..self.mms.len() {
            let pieces: Vec<(u64, u64, u64)> = self.mms[m].pieces(g0, g1).collect();
            'pieces: for (addr, g, n) in pieces {
                // Runs of pages it does not have yet.
                let mut i = 0;
                while i < n {
                    if self.mms[m].gone {
                        break 'pieces;
                    }
                    if self.mms[m].is_done(g + i) {
                        i += 1;
                        continue;
                    }
                    let mut j = i + 1;
                    while j < n && !self.mms[m].is_done(g + j) {
                        j += 1;
                    }
                    let src = self.buf[((g + i - g0) * PAGE) as usize..].as_ptr();
                    match self.copy(m, addr + i * PAGE, src, g + i, j - i) {
                        Copied::All => {}
                        Copied::Later => complete = false,
                        Copied::Gone => break 'pieces,
                    }
                    i = j;
                }
            }
        }
        complete
    }

    /// `UFFDIO_COPY` of `pages` pages from `src` to `dst` in address space `m`, saved
    /// pages `g..`; every page that is there afterwards is marked done.
    fn copy(&mut self, m: usize, dst: u64, src: *const u8, g: u64, pages: u64) -> Copied {
        let mut at = 0;
        // A page at a time once a run was found to cross mappings (an `mprotect` since
        // the restore split them; a copy stays within one).
        let mut single = false;
        while at < pages {
            let n = if single { 1 } else { pages - at };
            let mut arg = [dst + at * PAGE, src as u64 + at * PAGE, n * PAGE, 0, 0];
            // SAFETY: UFFDIO_COPY reads `struct uffdio_copy` (5 × u64) and the source
            // bytes, which lie in `buf`.
            let r = unsafe { libc::ioctl(self.mms[m].uffd, UFFDIO_COPY as _, arg.as_mut_ptr()) };
            let e = if r < 0 { errno() } else { 0 };
            let copied = (arg[4] as i64).max(0) as u64 / PAGE;
            for k in at..at + copied {
                self.mms[m].set_done(g + k);
            }
            self.loaded += copied * PAGE;
            at += copied;
            match e {
                0 if at == pages => return Copied::All,
                0 => {}
                libc::EAGAIN if copied > 0 => {}
                libc::EAGAIN => return Copied::Later,
                // The page is there already (a fault beat us to it, or it was never taken
                // away): it stays as it is.
                libc::EEXIST => {
                    self.mms[m].set_done(g + at);
                    at += 1;
                }
                libc::ESRCH => {
                    self.mms[m].gone = true;
                    return Copied::Gone;
                }
                libc::ENOENT | libc::EINVAL if !single => single = true,
                // Not registered there (any more): nothing to deliver to.
                libc::ENOENT | libc::EINVAL => {
                    self.mms[m].set_done(g + at);
                    at += 1;
                }
                e => {
                    self.fatal(m, &format!("cannot hand over its memory (errno {e})"));
                    return Copied::Gone;
                }
            }
        }
        Copied::All
    }

    /// A page with nothing saved: zeros (a fresh page for a write, the zero page for a
    /// read, as the kernel does without a userfaultfd). Returns false to try again later.
    pub(super) fn zero(&mut self, m: usize, page: u64, write: bool) -> bool {
        let uffd = self.mms[m].uffd;
        let (r, e) = if write {
            let mut arg = [page, ZEROS.as_ptr() as u64, PAGE, 0, 0];
            // SAFETY: UFFDIO_COPY of one page from `ZEROS`.
            let r = unsafe { libc::ioctl(uffd, UFFDIO_COPY as _, arg.as_mut_ptr()) };
            (r, errno())
        } else {
            let mut arg = [page, PAGE, 0, 0];
            // SAFETY: UFFDIO_ZEROPAGE reads `struct uffdio_zeropage` (4 × u64).
            let r = unsafe { libc::ioctl(uffd, UFFDIO_ZEROPAGE as _, arg.as_mut_ptr()) };
            (r, errno())
        };
        if r >= 0 {
            return true;
        }
        match e {
            libc::EAGAIN => false,
            libc::ESRCH => {
                self.mms[m].gone = true;
                true
            }
            _ => {
                // There already (EEXIST), or not registered: the thread only has to retry.
                let range = [page, PAGE];
                // SAFETY: UFFDIO_WAKE reads a `struct uffdio_range`.
                unsafe { libc::ioctl(uffd, UFFDIO_WAKE as _, range.as_ptr()) };
                true
            }
        }
    }
}
