//! Kernel AIO contexts (`io_setup`): made, fed and drained again after a restore.

use crate::SysResult;

/// `io_setup(nr, &ctx)`: a kernel AIO context for `nr` events; its id (its ring's address).
pub fn io_setup(nr: u32) -> SysResult<u64> {
    let mut ctx = 0u64;
    sc!(libc::SYS_io_setup, nr, &mut ctx as *mut u64).map(|_| ctx)
}
pub fn io_destroy(ctx: u64) {
    let _ = sc!(libc::SYS_io_destroy, ctx);
}
/// `io_submit(ctx, n, iocbs)` of 64-byte `struct iocb`s; how many were taken.
pub fn io_submit(ctx: u64, iocbs: &[*const [u64; 8]]) -> SysResult {
    sc!(libc::SYS_io_submit, ctx, iocbs.len(), iocbs.as_ptr())
}
/// `io_getevents(ctx, min, events.len(), events, NULL)` of 32-byte `struct io_event`s.
pub fn io_getevents(ctx: u64, min: usize, events: &mut [[u64; 4]]) -> SysResult {
    sc!(libc::SYS_io_getevents, ctx, min, events.len(), events.as_mut_ptr(), 0)
}
