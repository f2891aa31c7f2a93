//! What the loader says and does when the memory it serves cannot be complete: a block
//! that does not match its CRC, or a copy that failed.

use super::Loader;
use crate::sys;

impl Loader {
    /// Block `b` does not match its CRC: say so (the whole line first), then kill the
    /// restored process, and `victim` (an address space that faulted on it) if another.
    pub(super) fn damaged(&mut self, b: u32, victim: Option<usize>) {
        self.bad[b as usize] = true;
        let what = format!("saved data is corrupted (CRC mismatch in blob {})", self.regions[self.block(b).region].blob);
        if !self.killed {
            self.killed = true;
            self.say(&format!("mig: {} is damaged ({what}): the process restored from it ({}) was killed\n", self.image, self.restored));
            self.kill_main();
        }
        if let Some(m) = victim.filter(|&m| !self.mms[m].main) {
            let tid = self.mms[m].tid;
            if tid != 0 {
                self.say(&format!("mig: {} is damaged ({what}): process {tid}, forked from the one restored from it, was killed\n", self.image));
                let _ = sys::kill(tid, libc::SIGKILL);
            }
        }
    }

    /// Something went wrong that leaves the memory of address space `m` incomplete.
    pub(super) fn fatal(&mut self, m: usize, why: &str) {
        self.say(&format!("mig: the process restored from {} ({}) was killed: the lazy restore {why}\n", self.image, self.restored));
        if self.mms[m].main {
            self.kill_main();
        } else if self.mms[m].tid != 0 {
            let _ = sys::kill(self.mms[m].tid, libc::SIGKILL);
        }
        self.mms[m].gone = true;
    }

    pub(super) fn kill_main(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd, libc::SIGKILL);
    }

    /// Writes a whole line with one `write`.
    pub(super) fn say(&self, line: &str) {
        let _ = sys::write_all(2, line.as_bytes());
    }
}
