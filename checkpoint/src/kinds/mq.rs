//! POSIX message queues (`mq_open`): opened again by name; made again, with their
//! attributes and messages, where the name is gone (another machine, a reboot, or
//! removed by `mq_unlink` while the process held it). The messages are read by taking
//! each one and putting it back at once, in order: a queue has no peek.

use crate::scratch::List;
use crate::sys::{self, Errno};
use mig_image::{FdRecord, MqParams, Params, Queue};

/// `statfs.f_type` of the mqueue file system.
const MQUEUE_MAGIC: i64 = 0x1980_0202;

/// Whether `fd` is a POSIX message queue.
pub fn is_mq(fd: i32) -> bool {
    sys::fs_type(fd) == Ok(MQUEUE_MAGIC)
}

/// Its attributes.
pub fn save(fd: i32, st: &libc::stat, rec: &mut FdRecord) {
    let [_, maxmsg, msgsize, _] = sys::mq_attr(fd).unwrap_or([0, 10, 8192, 0]);
    rec.params = MqParams { maxmsg: maxmsg as u64, msgsize: msgsize as u64, deleted: st.st_nlink == 0 }.encode();
}

/// Appends the messages of queue `fd` (opened for reading) to `out`, each with its
/// priority (`Queue::prioritized`), by taking them and putting them back in the same
/// order. Refused where that would show: a notification registered (`mq_notify`),
/// which the first message put back into the emptied queue would fire.
pub fn queued(fd: i32, out: &mut List<u8>) -> Result<u64, &'static str> {
    if notified(fd) {
        return Err("a notification is registered on it (mq_notify): its messages are not saved, and the registration does not come back");
    }
    // Taken, each must go back: read-write only.
    if sys::fcntl(fd, libc::F_GETFL, 0).map_or(true, |fl| fl as i32 & libc::O_ACCMODE != libc::O_RDWR) {
        return Err("its messages are not saved: no descriptor of it is open for reading and writing");
    }
    let [_, _, msgsize, count] = sys::mq_attr(fd).map_err(|_| "cannot read its attributes")?;
    if (out.spare().len() as u64) < count as u64 * (Queue::PRIO_HEAD as u64 + msgsize as u64) {
        return Err("too many messages queued to save");
    }
    let start = out.len();
    for _ in 0..count {
        let (head, body) = out.spare().split_at_mut(Queue::PRIO_HEAD);
        match sys::mq_take(fd, body.get_mut(..msgsize as usize).unwrap_or_default()) {
            Ok((n, prio)) => {
                head.copy_from_slice(&Queue::prio_head(n, prio));
                out.grow(Queue::PRIO_HEAD + n);
            }
            Err(Errno(libc::EINTR)) => {}
            Err(_) => break,
        }
    }
    // Back, in the order taken: the queue orders by priority, then by arrival.
    let mut rest = out.as_slice().get(start..).unwrap_or_default();
    let mut lost = false;
    while let Some((prio, msg, taken)) = Queue::prioritized(rest) {
        lost |= sys::mq_put(fd, msg, prio).is_err();
        rest = rest.get(taken..).unwrap_or_default();
    }
    if lost {
        return Err("messages taken to be saved could not all be put back");
    }
    Ok((out.len() - start) as u64)
}

/// Whether a notification is registered on queue `fd`: reading the queue's descriptor
/// gives `QSIZE:… NOTIFY:… SIGNO:… NOTIFY_PID:…`, `NOTIFY_PID` 0 for none.
fn notified(fd: i32) -> bool {
    let mut text = [0u8; 128];
    let n = sys::pread(fd, &mut text, 0).unwrap_or(0);
    let text = text.get(..n).unwrap_or_default();
    let Some(at) = text.windows(11).position(|w| w == b"NOTIFY_PID:") else { return false };
    text.get(at + 11..).unwrap_or_default().iter().skip_while(|c| **c == b' ').take_while(|c| c.is_ascii_digit()).any(|&c| c != b'0')
}

#[cfg(feature = "restore")]
pub use restore::{restore, unlink};

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::{Shared, os::*};
    use mig_image::{FdKind, FdRecord, MqParams, Params, Queue};
    use std::ffi::CString;

    /// Opens queue `f.file.path` with the record's access mode and `O_NONBLOCK`; the
    /// queue is made again first (by the first record of it) if its name is gone, or
    /// was removed at checkpoint time (then under a temporary name, removed with the
    /// scaffolding).
    pub fn restore(f: &FdRecord, cx: &mut Shared) -> std::io::Result<i32> {
        let p = MqParams::decode(&f.params);
        let name = match cx.mqueues.get(&f.file.ino) {
            Some((name, _)) => name.clone(),
            None => {
                let saved = CString::new(cx.img.str(f.file.path)).map_err(|_| Error::other("a message queue's name holds a NUL"))?;
                let made = if p.deleted {
                    let temp = CString::new(format!("/mig-{}-{}", std::process::id(), f.file.ino)).unwrap_or_default();
                    make(&temp, f, cx)?;
                    (temp, true)
                } else if open(&saved, libc::O_RDONLY).map(close).is_ok() {
                    // There still: as it is now, like a file reopened by its path.
                    (saved, false)
                } else {
                    make(&saved, f, cx)?;
                    (saved, false)
                };
                cx.mqueues.insert(f.file.ino, made.clone());
                made.0
            }
        };
        open(&name, f.flags as i32 & (libc::O_ACCMODE | libc::O_NONBLOCK))
    }

    /// Removes queue name `name`.
    pub fn unlink(name: &CString) {
        // SAFETY: a valid name.
        unsafe { libc::mq_unlink(name.as_ptr()) };
    }

    fn open(name: &CString, flags: i32) -> std::io::Result<i32> {
        // SAFETY: a valid name; no O_CREAT, so no further arguments are read.
        last_error(unsafe { libc::mq_open(name.as_ptr(), flags | libc::O_CLOEXEC) })
    }

    /// Makes queue `name` with the saved mode and attributes, and puts its saved
    /// messages back (those of the first record of it that holds them).
    fn make(name: &CString, f: &FdRecord, cx: &Shared) -> std::io::Result<()> {
        let p = MqParams::decode(&f.params);
        // SAFETY: `mq_attr` is plain old data.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = p.maxmsg as i64;
        attr.mq_msgsize = p.msgsize as i64;
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: a valid name, mode and attributes, as O_CREAT reads them.
        let fd = last_error(unsafe { libc::mq_open(name.as_ptr(), flags, (f.file.mode & 0o777) as libc::mode_t, &attr as *const libc::mq_attr) })
            .map_err(|e| Error::other(format!("cannot make it again ({} messages of {} bytes at most): {e}", p.maxmsg, p.msgsize)))?;
        let holder = cx.all.iter().find(|o| o.kind == FdKind::PosixMq as u32 && o.file.ino == f.file.ino && o.data_len > 0);
        let mut rest = holder.map_or(&[][..], |h| cx.img.data(h.data_off, h.data_len));
        let mut sent = Ok(());
        while let Some((prio, msg, taken)) = Queue::prioritized(rest) {
            // SAFETY: sending `msg` on the queue just made.
            if unsafe { libc::mq_send(fd, msg.as_ptr().cast(), msg.len(), prio) } != 0 {
                sent = Err(Error::other(format!("its messages cannot be put back: {}", Error::last_os_error())));
                break;
            }
            rest = rest.get(taken..).unwrap_or_default();
        }
        close(fd);
        if sent.is_err() {
            unlink(name);
        }
        sent
    }
}
