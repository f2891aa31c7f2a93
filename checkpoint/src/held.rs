//! `mig checkpoint --exit`: the connections the checkpoint saved whole outlive the
//! process in `mig hold` (`mig_proto::held`), each in repair mode with a socket filter
//! that drops every segment, so that a peer that sends while the process is down
//! (data, a window update, an acknowledgement) gets no reset; a restore on this host
//! asks `mig hold` to close them (silently) just before it makes them again.
#![allow(unsafe_code)]

use crate::kinds::tcp;
use crate::runtime;
use crate::sys::{self, CPath, msg::Msg};

/// Starts `mig hold <pid> <n>` with the `n` connections on descriptors 3.. and the
/// write end of a pipe on `3 + n` (as an orphan: nobody's child), and waits (at most
/// 2 s) until it answers to its name; nothing if there are none or no `mig` beside the
/// library (they then close with the process, silently). Runs in the checkpoint
/// handler (every catchable signal blocked), after `tcp::hold`.
pub fn hand_over() {
    let mut fds = [0i32; 4096];
    let mut n = 0;
    for (slot, fd) in fds.iter_mut().zip(tcp::saved()) {
        *slot = fd;
        n += 1;
    }
    let mig = runtime::get().mig;
    if n == 0 || mig.as_bytes().is_empty() {
        return;
    }
    let held = fds.get(..n).unwrap_or(&[]);
    for &fd in held {
        let _ = sys::attach_filter(fd, &mig_proto::held::DROP_ALL);
    }
    let (mut pid, mut count) = (Msg::<16>::new(), Msg::<16>::new());
    pid.num(sys::getpid() as u64);
    count.num(n as u64);
    let (Some(exe), Some(pid), Some(count), Some(null)) =
        (CPath::new(mig.as_bytes()), CPath::new(pid.as_bytes()), CPath::new(count.as_bytes()), CPath::new(b"/dev/null"))
    else {
        return;
    };
    let argv: [*const u8; 5] = [c"mig".as_ptr().cast(), c"hold".as_ptr().cast(), pid.ptr(), count.ptr(), core::ptr::null()];
    let envp: [*const u8; 1] = [core::ptr::null()];
    // Its write end goes to `mig hold`, which closes it once it answers to its name:
    // until then the new process may hold every descriptor of this one (a listener a
    // restart must bind again) and a restart would not find it.
    let Ok([ready, ready_w]) = sys::pipe2(libc::O_CLOEXEC) else { return };
    // SAFETY: in the checkpoint handler, every catchable signal is blocked.
    match unsafe { sys::spawn_orphan() } {
        Ok(0) => {}
        Ok(_) => {
            sys::close(ready_w);
            let _ = sys::wait_readable(ready, 2000);
            sys::close(ready);
            return;
        }
        Err(_) => return,
    }
    {
        // The connections onto 3.., the pipe's end after them, by way of copies above
        // them all; nothing else kept but /dev/null on 0-2 (a pipe's reader must see
        // its end when the process ends).
        let first = 4 + n as u32;
        let mut copies = [0i32; 4097];
        for (c, &fd) in copies.iter_mut().zip(held.iter().chain([ready_w].iter())) {
            *c = sys::fcntl(fd, libc::F_DUPFD, first as usize).map_or(-1, |c| c as i32);
        }
        for (i, &c) in copies.iter().take(n + 1).enumerate() {
            let _ = sys::dup2(c, 3 + i as i32);
        }
        // Closed by the exec: the copies, and every other descriptor.
        sys::cloexec_from(first);
        if let Ok(fd) = sys::open(&null, libc::O_RDWR, 0) {
            for std in 0..3 {
                let _ = sys::dup2(fd, std);
            }
            sys::close(fd);
        }
        let _ = sys::setsid();
        // SAFETY: both arrays are NULL-terminated arrays of NUL-terminated strings.
        let _ = unsafe { sys::execve(&exe, argv.as_ptr(), envp.as_ptr()) };
        sys::exit_group(1);
    }
}
