//! File locks held through a descriptor: POSIX record locks, open file description
//! locks and `flock` locks, read from the descriptor's `fdinfo` (`LockEntry`s in the
//! record's `extra`). Taken again by the restore blob once every descriptor is at its
//! saved number and every other one is closed (closing any descriptor of a file drops
//! the process's POSIX locks on it); checked beforehand against other processes'
//! locks (`check`). Leases are taken again where they can be (`lease_free`); one being
//! broken at checkpoint time is not, and that is said then.

use crate::failure::Failure;
use crate::fdinfo::lines;
use crate::files::Strings;
use crate::maps::dec;
use crate::sys::msg::msg;
use mig_image::{LOCK_FLOCK, LOCK_LEASE, LOCK_OFD, LOCK_POSIX, LockEntry, StrRef, bytes_of};

/// One `lock:` line of an `fdinfo`, as the kernel prints it
/// (`lock:\t1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF`): `None` for what is
/// not a lock this module takes again, with the reason.
fn parse(line: &[u8]) -> Result<LockEntry, &'static str> {
    let mut t = line.split(|c| matches!(c, b' ' | b'\t')).filter(|w| !w.is_empty()).skip(2);
    let kind = match t.next() {
        Some(b"POSIX") => LOCK_POSIX,
        Some(b"OFDLCK") => LOCK_OFD,
        Some(b"FLOCK") => LOCK_FLOCK,
        Some(b"LEASE") => {
            return match (t.next(), t.next()) {
                (Some(b"ACTIVE"), Some(b"WRITE")) => Ok(LockEntry { kind: LOCK_LEASE, write: 1, start: 0, len: 0 }),
                (Some(b"ACTIVE"), Some(b"READ")) => Ok(LockEntry { kind: LOCK_LEASE, write: 0, start: 0, len: 0 }),
                _ => Err("a lease being broken"),
            };
        }
        Some(b"DELEG" | b"BREAKING" | b"BREAKER") => return Err("a lease being broken"),
        _ => return Err("a lock of an unknown kind"),
    };
    let write = match (t.next(), t.next()) {
        (Some(b"ADVISORY"), Some(b"WRITE")) => 1,
        (Some(b"ADVISORY"), Some(b"READ")) => 0,
        _ => return Err("a lock of an unknown kind"),
    };
    let mut t = t.skip(2); // pid, dev:ino
    let start = t.next().and_then(dec).ok_or("a lock of an unknown kind")?;
    let len = match t.next() {
        Some(b"EOF") => 0,
        Some(end) => dec(end).and_then(|e| e.checked_sub(start)).map(|n| n + 1).ok_or("a lock of an unknown kind")?,
        None => return Err("a lock of an unknown kind"),
    };
    Ok(LockEntry { kind, write, start, len })
}

/// The locks held through descriptor `fd`, from its `fdinfo` `text`.
pub fn save(fd: i32, text: &[u8], strings: &mut Strings) -> Result<StrRef, Failure> {
    let start = strings.bytes.len();
    for line in lines(text).filter(|l| l.starts_with(b"lock:")) {
        match parse(line) {
            Ok(l) => {
                strings.bytes.extend(bytes_of(&l))?;
            }
            Err(what) => msg().s("warning: descriptor ").num(fd as u64).s(" holds ").s(what).s(", which is not restored").emit(),
        }
    }
    Ok(StrRef { off: start as u32, len: (strings.bytes.len() - start) as u32 })
}

#[cfg(feature = "restore")]
pub use restore::{Held, check, lease_free};

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::os::*;
    use mig_image::{LOCK_FLOCK, LOCK_OFD, LOCK_POSIX, LockEntry};

    /// Whether the lease `lock` can be taken through `fd`: tried, then let go (a lease
    /// is refused while another process has the file open in the way).
    pub fn lease_free(fd: i32, lock: &LockEntry) -> std::io::Result<()> {
        let ty = if lock.write == 1 { libc::F_WRLCK } else { libc::F_RDLCK };
        // SAFETY: fcntl with integer arguments on a descriptor the restore opened.
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, ty) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        Ok(())
    }

    /// Who holds a lock that stands in the way, for the refusal.
    pub enum Held {
        /// Another process, by pid.
        By(i64),
        /// An open file description lock, whose holder the kernel does not name.
        Unnamed,
    }

    /// Whether `lock` can be taken again through `fd` (a descriptor of the restored file,
    /// at any number), or another process holds one in its way. A POSIX or open file
    /// description lock asks the kernel (`F_GETLK`, `F_OFD_GETLK`); `flock` has no such
    /// question, and `/proc/locks` is read instead (this process's own, left from before
    /// a rollback, are closed before the lock is taken).
    pub fn check(fd: i32, lock: &LockEntry) -> Result<(), Held> {
        if lock.kind == LOCK_FLOCK {
            return flock_holder(fd, lock.write == 1);
        }
        // SAFETY: all-zero is a valid `struct flock`.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = if lock.write == 1 { libc::F_WRLCK } else { libc::F_RDLCK } as i16;
        fl.l_whence = libc::SEEK_SET as i16;
        fl.l_start = lock.start as i64;
        fl.l_len = lock.len as i64;
        let cmd = if lock.kind == LOCK_OFD { libc::F_OFD_GETLK } else { libc::F_GETLK };
        debug_assert!(matches!(lock.kind, LOCK_POSIX | LOCK_OFD));
        // SAFETY: `fl` is a valid, writable `struct flock`.
        let r = unsafe { libc::fcntl(fd, cmd, &mut fl) };
        match (r, fl.l_type as i32) {
            (0, libc::F_UNLCK) | (-1, _) => Ok(()),
            _ if fl.l_pid > 0 => Err(Held::By(fl.l_pid as i64)),
            // Ours, through a descriptor from before a rollback, closed before the lock
            // is taken again.
            _ if file_id(fd).is_some_and(|id| own_ofd_lock(&id)) => Ok(()),
            _ => Err(Held::Unnamed),
        }
    }

    /// The file of `fd` as `/proc/locks` and `fdinfo` name it (`maj:min:ino`, hex device).
    fn file_id(fd: i32) -> Option<String> {
        // SAFETY: all-zero is a valid `struct stat`.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid, writable `struct stat`.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return None;
        }
        Some(format!("{:02x}:{:02x}:{}", libc::major(st.st_dev), libc::minor(st.st_dev), st.st_ino))
    }

    /// Whether a descriptor this process has open holds an open file description lock
    /// on file `id`.
    fn own_ofd_lock(id: &str) -> bool {
        let Ok(dir) = std::fs::read_dir("/proc/self/fdinfo") else { return false };
        dir.flatten().any(|e| {
            let info = std::fs::read_to_string(e.path()).unwrap_or_default();
            info.lines().any(|l| l.starts_with("lock:") && l.contains("OFDLCK") && l.split_whitespace().any(|w| w == id))
        })
    }

    /// A `flock` lock on `fd`'s file that another process holds, in the way of ours.
    fn flock_holder(fd: i32, write: bool) -> Result<(), Held> {
        let Some(file) = file_id(fd) else { return Ok(()) };
        let me = std::process::id() as i64;
        let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        for l in locks.lines().filter(|l| !l.contains("->")) {
            let w: Vec<&str> = l.split_whitespace().collect();
            let [_, "FLOCK", _, mode, pid, id, ..] = w[..] else { continue };
            let pid: i64 = pid.parse().unwrap_or(0);
            if id == file && pid != me && (write || mode == "WRITE") {
                return Err(Held::By(pid));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lock_lines_of_fdinfo() {
        let posix = parse(b"lock:\t1: POSIX  ADVISORY  WRITE 19390 fe:00:10011013 10 29").unwrap();
        assert_eq!(posix, LockEntry { kind: LOCK_POSIX, write: 1, start: 10, len: 20 });
        let to_eof = parse(b"lock:\t2: POSIX  ADVISORY  READ 19390 fe:00:10011013 100 EOF").unwrap();
        assert_eq!(to_eof, LockEntry { kind: LOCK_POSIX, write: 0, start: 100, len: 0 });
        let ofd = parse(b"lock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:10011015 0 4").unwrap();
        assert_eq!(ofd, LockEntry { kind: LOCK_OFD, write: 1, start: 0, len: 5 });
        let flock = parse(b"lock:\t1: FLOCK  ADVISORY  READ 19390 fe:00:10011012 0 EOF").unwrap();
        assert_eq!(flock, LockEntry { kind: LOCK_FLOCK, write: 0, start: 0, len: 0 });
        assert_eq!(parse(b"lock:\t1: LEASE  ACTIVE    READ 19390 fe:00:10011012 0 EOF").unwrap(), LockEntry { kind: LOCK_LEASE, write: 0, start: 0, len: 0 });
        assert_eq!(parse(b"lock:\t1: LEASE  BREAKING  READ 19390 fe:00:10011012 0 EOF"), Err("a lease being broken"));
        assert!(parse(b"lock:\t1: POSIX  ADVISORY  WRITE 1 fe:00:1 10 9").is_err());
    }
}
