//! Blocks of the image read and checked against their CRCs: at once for a fault, or in
//! the background, ahead of the program, without waiting for the disk.
#![allow(unsafe_code)]

use super::start::{IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE};
use super::{Block, Loader, errno};

/// How far ahead of the background loading the disk is asked to read.
const READ_AHEAD: u64 = 8 << 20;
const RWF_NOWAIT: i32 = 8;

impl Loader {
    /// Reads block `b` into `buf`: at once (`wait`), or only if the page cache has it
    /// (`Ok(false)` if not). `Err(())`: its CRC does not match.
    pub(super) fn read(&mut self, b: u32, wait: bool) -> Result<bool, ()> {
        let Block { off, len, .. } = self.block(b);
        let buf = &mut self.buf[..len as usize];
        let mut done = 0usize;
        while done < buf.len() {
            let rest = &mut buf[done..];
            let iov = libc::iovec { iov_base: rest.as_mut_ptr().cast(), iov_len: rest.len() };
            let flags = if wait { 0 } else { RWF_NOWAIT };
            // SAFETY: preadv2 into `rest`, which the iovec describes.
            let n = unsafe { libc::syscall(libc::SYS_preadv2, self.fd, &iov as *const libc::iovec, 1, (off + done as u64) as i64, 0, flags) };
            match n {
                n if n > 0 => done += n as usize,
                0 => return Err(()), // the image is shorter than its header says: damaged
                _ => match errno() {
                    libc::EINTR => {}
                    libc::EAGAIN if !wait => return Ok(false),
                    libc::EOPNOTSUPP | libc::EINVAL if !wait => return self.read(b, true),
                    _ => return Err(()),
                },
            }
        }
        let mut h = crc32fast::Hasher::new();
        h.update(buf);
        if h.finalize() != self.crcs[b as usize] {
            return Err(());
        }
        Ok(true)
    }

    /// Loads the next block in the background, if it can without waiting for the disk.
    /// Returns whether to poll again at once (true) or wait a moment for the disk or an
    /// event (false); `None` when there is nothing left to load.
    pub(super) fn background(&mut self) -> Option<bool> {
        // Past the end with pages still missing (a copy that had to wait): once more.
        if self.cursor == self.order.len() && self.order.iter().any(|&b| !self.bad[b as usize] && self.needed(b)) {
            self.cursor = 0;
        }
        while let Some(&b) = self.order.get(self.cursor) {
            if self.bad[b as usize] || !self.needed(b) {
                self.cursor += 1;
                continue;
            }
            let off = self.block(b).off;
            self.set_class(if self.hurry { IOPRIO_CLASS_BE } else { IOPRIO_CLASS_IDLE });
            // The disk reads ahead of what is loaded, half a window at a time.
            let (start, end) = self.read_ahead;
            if !(start..end.saturating_sub(READ_AHEAD / 2)).contains(&off) {
                let from = if (start..end).contains(&off) { end } else { off };
                // SAFETY: readahead on the image's descriptor, plain integers.
                unsafe { libc::readahead(self.fd, from as i64, (off + READ_AHEAD - from) as usize) };
                self.read_ahead = (if (start..end).contains(&off) { start } else { off }, off + READ_AHEAD);
            }
            return match self.read(b, self.hurry) {
                Ok(false) => Some(false),
                // Not all of it taken: an event to read first (or a fork still copying the
                // address space, whose event comes when it is done).
                Ok(true) if !self.deliver(b) => Some(false),
                Ok(true) => {
                    self.cursor += 1;
                    Some(true)
                }
                Err(()) => {
                    self.damaged(b, None);
                    self.cursor += 1;
                    Some(true)
                }
            };
        }
        None
    }
}
