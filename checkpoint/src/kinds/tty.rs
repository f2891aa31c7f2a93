//! Terminals: reattached to the restoring process's terminal, with the saved modes
//! (the kernel `struct termios`, in `extra`) applied by the blob at the end.

use crate::failure::Failure;
use crate::files::Strings;
use crate::sys;
use mig_image::{FdRecord, Params, TERMIOS_LEN, TTY_PTY_MASTER, TTY_PTY_SLAVE, TTY_TERMINAL, TtyParams};

/// The kernel `struct termios` of `fd` if it is a terminal (a character device that
/// answers `TCGETS`).
pub fn probe(fd: i32, st: &libc::stat) -> Option<[u8; 64]> {
    let mut termios = [0u8; 64];
    let tty = st.st_mode & libc::S_IFMT == libc::S_IFCHR && sys::tcgets(fd, &mut termios).is_ok();
    tty.then_some(termios)
}

/// A terminal whose modes `probe` read; a pseudo-terminal's end says which pair it is
/// of (`fds::link` decides whether the process holds that pair's master).
pub fn save(fd: i32, st: &libc::stat, termios: &[u8; 64], rec: &mut FdRecord, strings: &mut Strings) -> Result<(), Failure> {
    rec.extra = strings.add(termios.get(..TERMIOS_LEN).unwrap_or_default())?;
    let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    let (role, index) = match major {
        // /dev/ptmx (or /dev/pts/ptmx): its number from the kernel.
        5 if minor == 2 => (TTY_PTY_MASTER, sys::ioctl_get(fd, libc::TIOCGPTN).unwrap_or(u64::MAX) as u32),
        // UNIX 98 slaves: majors 136 to 143.
        136..=143 => (TTY_PTY_SLAVE, (major - 136) * 256 + minor),
        _ => (TTY_TERMINAL, 0),
    };
    let ws = sys::ioctl_get(fd, libc::TIOCGWINSZ).unwrap_or(0);
    let winsize = [ws as u16, (ws >> 16) as u16, (ws >> 32) as u16, (ws >> 48) as u16];
    rec.params = TtyParams { role, index, winsize }.encode();
    Ok(())
}

/// Bytes waiting in terminal `fd` to be read (`FIONREAD`).
pub fn unread(fd: i32) -> u64 {
    sys::ioctl_get(fd, libc::FIONREAD).map_or(0, |n| n as u32 as u64)
}

/// A copy of the restoring process's terminal (`/dev/null` with a warning if none);
/// an end of a pseudo-terminal the process held the master of: an end of a new pair,
/// made once per saved pair, its window size set back (its modes, as a terminal's, by
/// the blob).
#[cfg(feature = "restore")]
pub fn restore(f: &FdRecord, cx: &mut super::Shared) -> std::io::Result<i32> {
    use super::os::*;
    let p = TtyParams::decode(&f.params);
    // A slave whose master is neither here nor the job's is a terminal's.
    let own_pair = p.role == TTY_PTY_MASTER || cx.ptys.contains_key(&p.index) || cx.all.iter().any(|o| is_master_of(o, p.index));
    if p.role != TTY_TERMINAL && own_pair {
        let master = match cx.ptys.get(&p.index) {
            Some(&m) => m,
            None => {
                let m = pty_master(&p)?;
                let m = raise_fd(m, cx.base).map_err(Error::other)?;
                cx.ptys.insert(p.index, m);
                m
            }
        };
        let fd = if p.role == TTY_PTY_MASTER { dup(master)? } else { pty_slave(master, f.flags as i32)? };
        return set_status(fd, f.flags);
    }
    if let Some(t) = cx.terminal {
        return dup(t);
    }
    let t = match (0..3).find(|&fd| isatty(fd)) {
        Some(fd) => dup(fd)?,
        None => open_raw(b"/dev/tty", libc::O_RDWR | libc::O_NOCTTY, 0).or_else(|_| {
            eprintln!("mig: warning: descriptor {} was a terminal, and this process has none; it is /dev/null now", f.fd);
            open_raw(b"/dev/null", libc::O_RDWR, 0)
        })?,
    };
    let t = raise_fd(t, cx.base).map_err(Error::other)?;
    cx.terminal = Some(t);
    dup(t)
}

/// A new pseudo-terminal's master, unlocked, with the saved window size.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn pty_master(p: &TtyParams) -> std::io::Result<i32> {
    use super::os::*;
    let m = open_raw(b"/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY, 0)?;
    let unlock: i32 = 0;
    let [ws_row, ws_col, ws_xpixel, ws_ypixel] = p.winsize;
    let ws = libc::winsize { ws_row, ws_col, ws_xpixel, ws_ypixel };
    // SAFETY: ioctls on the master just opened, with valid arguments.
    unsafe {
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) != 0 {
            let e = Error::last_os_error();
            close(m);
            return Err(e);
        }
        libc::ioctl(m, libc::TIOCSWINSZ, &ws);
    }
    Ok(m)
}

/// An open file description of the slave of pseudo-terminal `master` (`TIOCGPTPEER`),
/// with the access mode of `flags`.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
fn pty_slave(master: i32, flags: i32) -> std::io::Result<i32> {
    use super::os::*;
    // SAFETY: an ioctl on our master; it returns a new descriptor.
    last_error(unsafe { libc::ioctl(master, libc::TIOCGPTPEER, (flags & libc::O_ACCMODE) | libc::O_NOCTTY | libc::O_CLOEXEC) })
}

/// Whether record `o` is the master of pseudo-terminal `index`.
#[cfg(feature = "restore")]
fn is_master_of(o: &FdRecord, index: u32) -> bool {
    let q = TtyParams::decode(&o.params);
    o.kind == mig_image::FdKind::Tty as u32 && q.role == TTY_PTY_MASTER && q.index == index
}

/// Makes the slave of pseudo-terminal `master` the controlling terminal of this
/// process, if it leads its session (nothing otherwise). The descriptor it takes is
/// closed again: the terminal stays the session's.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn take_controlling(master: i32) -> std::io::Result<()> {
    use super::os::*;
    // SAFETY: plain calls on our own descriptors.
    unsafe {
        if libc::getsid(0) != libc::getpid() {
            return Ok(());
        }
        let slave = last_error(libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC))?;
        let r = last_error::<i32>(libc::ioctl(slave, libc::TIOCSCTTY, 0)).map(drop);
        close(slave);
        r
    }
}
