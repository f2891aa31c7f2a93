//! The control protocol with the `mig` command (async-signal-safe).
//!
//! Before signalling, `mig checkpoint` may leave a request in
//! `/tmp/mig-<uid>/<pid>.req` (`to=<path>` — a file, or a FIFO to stream into — and
//! `exit=1`, `portable=1`). The handler consumes it, and after the checkpoint reports in
//! `/tmp/mig-<uid>/<pid>.done` (`status=ok`, `path=`, `bytes=`, `stopped_us=`, or
//! `status=error`, `reason=`), written aside and renamed so it appears whole.

use crate::runtime::FixedPath;
use crate::sys::{self, msg::Msg, CPath};

pub struct Request {
    pub to: Option<FixedPath>,
    pub exit: bool,
    pub portable: bool,
}

fn control_path(of: u32, suffix: &[u8]) -> Option<CPath> {
    let mut uid = Msg::<16>::new();
    uid.num(sys::getuid() as u64);
    let mut pid = Msg::<16>::new();
    pid.num(of as u64);
    CPath::join(&[b"/tmp/mig-", uid.as_bytes(), b"/", pid.as_bytes(), suffix])
}

/// Takes (reads and removes) a pending request, if there is one.
pub fn take_request() -> Option<Request> {
    let path = control_path(sys::getpid(), b".req")?;
    let mut buf = [0u8; 4200];
    let n = sys::read_file(&path, &mut buf).ok()?;
    let _ = sys::unlink(&path);
    let mut req = Request { to: None, exit: false, portable: false };
    for line in buf[..n].split(|&c| c == b'\n') {
        if let Some(p) = line.strip_prefix(b"to=") {
            req.to = FixedPath::new(p).filter(|p| !p.is_empty());
        } else if line == b"exit=1" {
            req.exit = true;
        } else if line == b"portable=1" {
            req.portable = true;
        }
    }
    Some(req)
}

/// Reports the outcome of process `pid`'s checkpoint to whoever made the request.
pub fn report(pid: u32, outcome: Result<u64, &Msg<960>>, path: &[u8], stopped_us: u64) {
    let mut m = Msg::<8192>::new();
    match outcome {
        Ok(bytes) => {
            m.s("status=ok\npath=").bytes(path).s("\nbytes=").num(bytes).s("\nstopped_us=").num(stopped_us).s("\n");
        }
        Err(why) => {
            m.s("status=error\nreason=").bytes(why.as_bytes()).s("\n");
        }
    }
    let (Some(tmp), Some(done)) = (control_path(pid, b".done.tmp"), control_path(pid, b".done")) else { return };
    let Ok(fd) = sys::open(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o600) else { return };
    let ok = sys::write_all(fd, m.as_bytes().as_ptr(), m.as_bytes().len()).is_ok();
    sys::close(fd);
    if ok {
        let _ = sys::rename(&tmp, &done);
    }
}
