//! pidfds: one of the process itself is made again for the restored process; one of
//! another process cannot be (it comes back as a broken end, said).

use crate::fdinfo::field;
use crate::maps::dec;
use crate::sys;
use mig_image::{FdKind, FdRecord, Params, PidfdParams};

/// What a pidfd of another process becomes, said at checkpoint time.
pub const OTHER: &str = "it is a pidfd of another process (or of one that ended); it comes back as a broken pipe end";

/// The kind of a pidfd, from its `fdinfo` `text`.
pub fn save(text: &[u8], rec: &mut FdRecord) -> FdKind {
    if field(text, b"Pid:").and_then(dec) == Some(sys::getpid() as u64) {
        rec.params = PidfdParams { own: true }.encode();
        FdKind::Pidfd
    } else {
        FdKind::Unsupported
    }
}

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn restore(f: &FdRecord) -> std::io::Result<i32> {
    use super::os::*;
    let nonblock = if f.flags & libc::O_NONBLOCK as u32 != 0 { libc::O_NONBLOCK } else { 0 };
    // SAFETY: pidfd_open of this process.
    last_error(unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), nonblock) } as i32)
}
