//! Terminals: reattached to the restoring process's terminal, with the saved modes
//! (the kernel `struct termios`, in `extra`) applied by the blob at the end.

use crate::failure::Failure;
use crate::files::Strings;
use crate::scratch::List;
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
    rec.params = TtyParams { role, index, winsize, output: 0 }.encode();
    Ok(())
}

/// Bytes waiting in terminal `fd` to be read (`FIONREAD`; of a slave in canonical
/// mode, those of whole lines).
pub fn unread(fd: i32) -> u64 {
    sys::ioctl_get(fd, libc::FIONREAD).map_or(0, |n| n as u32 as u64)
}

/// Kernel `struct termios` offsets: `c_iflag`, `c_oflag`, `c_lflag`, `c_cc`.
const IFLAG: usize = 0;
const OFLAG: usize = 4;
const LFLAG: usize = 12;
const CC: usize = 17;

fn flag(t: &[u8; 64], at: usize) -> u32 {
    u32::from_ne_bytes([0, 1, 2, 3].map(|i| t.get(at + i).copied().unwrap_or(0)))
}

fn set_flag(t: &mut [u8; 64], at: usize, v: u32) {
    if let Some(f) = t.get_mut(at..at + 4) {
        f.copy_from_slice(&v.to_ne_bytes());
    }
}

/// A descriptor of the slave of pseudo-terminal `master`, read-write and non-blocking.
fn peer(master: i32) -> Option<i32> {
    sys::pty_peer(master, libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC).ok()
}

/// Reads from `fd` into `out` what `FIONREAD` says waits there.
fn take(fd: i32, out: &mut List<u8>) -> Result<u64, &'static str> {
    let start = out.len();
    loop {
        let n = unread(fd) as usize;
        if n == 0 {
            return Ok((out.len() - start) as u64);
        }
        let room = out.spare();
        let room = room.get_mut(..n.min(room.len())).filter(|r| !r.is_empty()).ok_or("too many bytes wait in it to save")?;
        match sys::read(fd, room) {
            Ok(k) if k > 0 => out.grow(k),
            _ => return Err("cannot read the bytes waiting in it"),
        }
    }
}

/// The bytes waiting in the pseudo-terminal whose master is `master` (the process is
/// stopped), appended to `out`: what its slave wrote for the master to read, then what
/// the master wrote for the slave to read (with the line being typed, in canonical
/// mode); put back at once, as they were, for the process goes on (through a
/// descriptor of its slave of our own, non-blocking). Returns the length of the first
/// part and of both.
pub fn queued(master: i32, out: &mut List<u8>) -> Result<(u64, u64), &'static str> {
    let mut modes = [0u8; 64];
    sys::tcgets(master, &mut modes).map_err(|_| "cannot read its modes")?;
    let Some(slave) = peer(master) else {
        // Its slave cannot be opened (still locked: never opened yet).
        return if unread(master) == 0 { Ok((0, 0)) } else { Err("cannot open its slave to save the bytes waiting in it") };
    };
    let start = out.len();
    let mut output = None;
    let taken = (|| {
        output = Some(take(master, out)?);
        // Out of canonical mode, a line being typed can be read too.
        let mut raw = modes;
        set_flag(&mut raw, LFLAG, flag(&modes, LFLAG) & !libc::ICANON);
        for c in [libc::VMIN, libc::VTIME] {
            if let Some(b) = raw.get_mut(CC + c) {
                *b = 0;
            }
        }
        if sys::tcsets(master, &raw).is_err() {
            return Err("cannot read the line being typed in it");
        }
        take(slave, out).map(drop)
    })();
    let all = out.as_slice().get(start..).unwrap_or_default();
    let split = output.map_or(all.len(), |n| (n as usize).min(all.len()));
    let put = put_back(master, slave, &modes, all.split_at(split));
    sys::close(slave);
    taken?;
    put.then_some((split as u64, all.len() as u64)).ok_or("the bytes waiting in it could not all be put back")
}

/// Puts `output` (for the master to read) and `input` (for the slave to read, its lines
/// as they were) into the pseudo-terminal of `master`, through `slave`, and leaves its
/// modes `modes`. Waits (≤ 1 s) until the kernel has taken them in.
fn put_back(master: i32, slave: i32, modes: &[u8; 64], (output, input): (&[u8], &[u8])) -> bool {
    let mut ok = true;
    if !output.is_empty() || !input.is_empty() {
        // Neither translated, nor echoed, nor taken as signals again: they were on
        // their way already. Flow control stays as it was (what it takes was taken
        // then; a change would be news to a master in packet mode).
        let lflag = flag(modes, LFLAG);
        let canon = lflag & libc::ICANON != 0;
        let cc = |c: usize| modes.get(CC + c).copied().unwrap_or(0);
        // A canonical queue keeps an end-of-file character as a NUL that ends a line:
        // written back as that character, in effect, so that it ends its line again
        // (a NUL typed as such, rarer, comes back as an end of file too). A literal
        // one (quoted) and the quoting character are quoted.
        let (eof, lnext) = (cc(libc::VEOF), if lflag & libc::IEXTEN != 0 { cc(libc::VLNEXT) } else { 0 });
        let eofs = canon && eof != 0;
        let mut plain = *modes;
        set_flag(&mut plain, IFLAG, flag(modes, IFLAG) & (libc::IXON | libc::IXOFF | libc::IXANY));
        set_flag(&mut plain, OFLAG, 0);
        set_flag(&mut plain, LFLAG, lflag & (libc::ICANON | libc::IEXTEN | libc::EXTPROC));
        for c in [libc::VEOF, libc::VERASE, libc::VKILL, libc::VWERASE, libc::VREPRINT, libc::VLNEXT, libc::VDISCARD] {
            let keep = eofs && (c == libc::VEOF || c == libc::VLNEXT);
            if let Some(b) = plain.get_mut(CC + c).filter(|_| !keep) {
                *b = 0;
            }
        }
        ok = sys::tcsets(master, &plain).is_ok() && sys::write_all(slave, output).is_ok();
        let special = |b: &u8| eofs && (*b == 0 || (lnext != 0 && (*b == eof || *b == lnext)));
        let mut rest = input;
        while let Some(i) = rest.iter().position(special) {
            let (run, tail) = rest.split_at(i);
            let Some((&b, tail)) = tail.split_first() else { break };
            let (quoted, plain_eof) = ([lnext, b], [eof]);
            ok &= sys::write_all(master, run).is_ok() && sys::write_all(master, if b == 0 { &plain_eof[..] } else { &quoted[..] }).is_ok();
            rest = tail;
        }
        ok &= sys::write_all(master, rest).is_ok();
        // What `FIONREAD` counts once they are in: all, or up to the end of the last
        // whole line (an end of file not counted).
        let ends = |c: &u8| *c == b'\n' || (*c == 0 && eofs) || (*c != 0 && (*c == cc(libc::VEOL) || (lflag & libc::IEXTEN != 0 && *c == cc(libc::VEOL2))));
        let whole = if canon { input.iter().rposition(ends).map_or(0, |i| i + 1) } else { input.len() };
        let lines = input.get(..whole).unwrap_or_default().iter().filter(|&&c| !(eofs && c == 0)).count();
        ok &= (0..1000).any(|_| {
            // A poll that finds nothing to read waits until the kernel has taken in
            // what was written.
            sys::readable(slave);
            sys::readable(master);
            let done = unread(master) >= output.len() as u64 && unread(slave) >= lines as u64;
            if !done {
                sys::sleep_ms(1);
            }
            done
        });
    }
    sys::tcsets(master, modes).is_ok() && ok
}

/// The bytes the pseudo-terminal of master record `f` held, put back into the new one
/// whose master is `master`, and its modes set.
#[cfg(feature = "restore")]
pub fn refill(master: i32, f: &FdRecord, img: &mig_image::Image) -> std::io::Result<()> {
    if f.data_len == 0 {
        return Ok(());
    }
    let mut modes = [0u8; 64];
    let saved = img.str(f.extra);
    modes.get_mut(..saved.len()).ok_or_else(|| std::io::Error::other("its saved modes are malformed"))?.copy_from_slice(saved);
    let data = img.data(f.data_off, f.data_len);
    let split = data.split_at((TtyParams::decode(&f.params).output as usize).min(data.len()));
    let slave = peer(master).ok_or_else(std::io::Error::last_os_error)?;
    let put = put_back(master, slave, &modes, split);
    sys::close(slave);
    put.then_some(()).ok_or_else(|| std::io::Error::other("the bytes waiting in it could not all be put back"))
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
                if let Some(owner) = cx.all.iter().find(|o| is_master_of(o, p.index) && o.data_len > 0) {
                    refill(m, owner, cx.img).map_err(|e| Error::other(format!("its pseudo-terminal's waiting bytes: {e}")))?;
                }
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
