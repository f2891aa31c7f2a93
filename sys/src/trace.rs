//! `ptrace` of another process's threads (a helper stops the threads that block the
//! stop signal, see the checkpoint's `tracer`), and writing into another process's
//! memory.

use crate::SysResult;

/// `ptrace(req, tid, addr, data)` for requests that pass values, not addresses.
pub fn ptrace(req: u32, tid: u32, addr: usize, data: usize) -> SysResult {
    sc!(libc::SYS_ptrace, req, tid, addr, data)
}
/// `ptrace(req, tid, addr, out)` for requests that fill `out` (`PTRACE_GETREGS`,
/// `PTRACE_GETSIGMASK` with `addr` its size, `PTRACE_GETREGSET` with an `iovec`).
///
/// # Safety
/// `out` must be writable for as many bytes as `req` writes.
pub unsafe fn ptrace_out(req: u32, tid: u32, addr: usize, out: *mut u8) -> SysResult {
    sc!(libc::SYS_ptrace, req, tid, addr, out)
}
/// `ptrace(req, tid, addr, data)` for requests that read `data` (`PTRACE_SETREGS`,
/// `PTRACE_SETSIGMASK`).
pub fn ptrace_in<T>(req: u32, tid: u32, addr: usize, data: &T) -> SysResult {
    sc!(libc::SYS_ptrace, req, tid, addr, data as *const T)
}
/// Waits for a change of state of `tid` (traced by this process; `__WALL`); returns
/// the raw status.
pub fn wait_traced(tid: u32) -> SysResult<i32> {
    let mut status: i32 = 0;
    loop {
        match sc!(libc::SYS_wait4, tid, &mut status as *mut i32, libc::__WALL, 0) {
            Err(crate::Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
            Ok(_) => return Ok(status),
        }
    }
}
/// Writes `data` at `addr` in process `pid`'s memory (`process_vm_writev`): an address
/// that is not mapped writable gives false instead of a fault.
pub fn write_other(pid: u32, addr: u64, data: &[u8]) -> bool {
    let local = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: data.len() };
    matches!(sc!(libc::SYS_process_vm_writev, pid, &local as *const libc::iovec, 1, &remote as *const libc::iovec, 1, 0), Ok(n) if n == data.len())
}
