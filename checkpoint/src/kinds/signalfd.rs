//! signalfd: made again with its mask (pending signals are the process's own state).

use crate::fdinfo::hex_field;
use mig_image::{FdRecord, Params, SignalfdParams};

/// A signalfd, from its `fdinfo` `text`.
pub fn save(text: &[u8], rec: &mut FdRecord) {
    rec.params = SignalfdParams { mask: hex_field(text, b"sigmask:").unwrap_or(0) }.encode();
}

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn restore(f: &FdRecord) -> std::io::Result<i32> {
    use super::os::*;
    let mask = SignalfdParams::decode(&f.params).mask;
    // SAFETY: `sigset_t` is plain old data; the kernel reads its first 8 bytes.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` has room for at least 8 bytes.
    unsafe { std::ptr::write_unaligned((&mut set as *mut libc::sigset_t).cast::<u64>(), mask) };
    // SAFETY: a new signalfd with a valid mask.
    last_error(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | nonblock(f.flags)) })
}
