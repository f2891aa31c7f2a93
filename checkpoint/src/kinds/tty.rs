//! Terminals: reattached to the restoring process's terminal, with the saved modes
//! (the kernel `struct termios`, in `extra`) applied by the blob at the end.

use crate::failure::Failure;
use crate::files::Strings;
use crate::sys;
use mig_image::{FdRecord, TERMIOS_LEN};

/// The kernel `struct termios` of `fd` if it is a terminal (a character device that
/// answers `TCGETS`).
pub fn probe(fd: i32, st: &libc::stat) -> Option<[u8; 64]> {
    let mut termios = [0u8; 64];
    let tty = st.st_mode & libc::S_IFMT == libc::S_IFCHR && sys::tcgets(fd, &mut termios).is_ok();
    tty.then_some(termios)
}

/// A terminal whose modes `probe` read.
pub fn save(termios: &[u8; 64], rec: &mut FdRecord, strings: &mut Strings) -> Result<(), Failure> {
    rec.extra = strings.add(termios.get(..TERMIOS_LEN).unwrap_or_default())?;
    Ok(())
}

/// A copy of the restoring process's terminal (`/dev/null` with a warning if none).
#[cfg(feature = "restore")]
pub fn restore(f: &FdRecord, cx: &mut super::Shared) -> std::io::Result<i32> {
    use super::os::*;
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
