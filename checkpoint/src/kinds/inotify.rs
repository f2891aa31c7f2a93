//! inotify instances: made again with their watches under the same watch numbers
//! (the paths come from the `inotify_add_watch` hook: the kernel does not tell them).

use crate::failure::Failure;
use crate::fdinfo::{lines, value};
use crate::files::Strings;
use crate::maps::hex;
use crate::sys::msg::msg;
use mig_image::{InotifyWatch, StrRef, bytes_of};

/// The most `inotify_add_watch` calls a restore makes to bring watch numbers back:
/// bounds the time a forged watch number can cost.
pub const TRIES: u32 = 100_000;

/// The watches of inotify instance `fd`, from its `fdinfo` `text`: paths first (the
/// hook's), then the entries.
pub fn save(fd: i32, text: &[u8], strings: &mut Strings) -> Result<StrRef, Failure> {
    let watches = || {
        lines(text).filter(|l| l.starts_with(b"inotify ")).map(|l| {
            let wd = value(l, b"wd:").and_then(hex).unwrap_or(0) as i32;
            let mask = value(l, b"mask:").and_then(hex).unwrap_or(0) as u32;
            (wd, mask, crate::intent::watch_path(fd, wd))
        })
    };
    let mut at = strings.bytes.len();
    for (wd, _, path) in watches() {
        match path {
            Some(p) => drop(strings.bytes.extend(p)?),
            None => {
                msg().s("warning: inotify descriptor ").num(fd as u64).s(": the path of watch ").num(wd as u64).s(" is unknown; that watch is dropped").emit()
            }
        }
    }
    let start = strings.bytes.len();
    for (wd, mask, path) in watches() {
        let Some(p) = path else { continue };
        let w = InotifyWatch { wd, mask, path: StrRef { off: at as u32, len: p.len() as u32 } };
        at += p.len();
        strings.bytes.extend(bytes_of(&w))?;
    }
    Ok(StrRef { off: start as u32, len: (strings.bytes.len() - start) as u32 })
}

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn restore(f: &mig_image::FdRecord, cx: &mut super::Shared) -> std::io::Result<i32> {
    use super::os::*;
    // SAFETY: creating an inotify instance.
    let fd = last_error(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })?;
    let mut watches: Vec<InotifyWatch> = cx.img.records(f.extra).collect();
    watches.sort_by_key(|w| w.wd);
    for w in watches {
        let path = cx.img.str(w.path);
        let Ok(c) = CString::new(path) else { continue };
        // Watch numbers are handed out in increasing order: add, drop and add again
        // until the saved number comes up.
        let mut got = -1;
        while cx.inotify_tries > 0 {
            cx.inotify_tries -= 1;
            // SAFETY: a valid path and mask on our inotify instance.
            got = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), w.mask) };
            if got < 0 || got >= w.wd {
                break;
            }
            // SAFETY: removing the watch just added.
            unsafe { libc::inotify_rm_watch(fd, got) };
        }
        if got != w.wd {
            eprintln!(
                "mig: warning: descriptor {}: watch {} on {} cannot be made again ({}); its events are lost",
                f.fd,
                w.wd,
                String::from_utf8_lossy(path),
                if got < 0 { Error::last_os_error().to_string() } else { format!("it is watch {got} now") }
            );
        }
    }
    // The dance above queued IN_IGNORED events: the program never asked for them.
    drain(fd);
    set_status(fd, (f.flags & !(libc::O_NONBLOCK as u32)) | nonblock(f.flags) as u32)
}

/// Reads away the events queued on inotify instance `fd` (without waiting, whatever
/// its flags): what the restore itself caused, the program never saw.
#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn drain(fd: i32) {
    let mut buf = [0u8; 4096];
    loop {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD into a valid int, then a read of at most our buffer.
        let more = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) == 0 && queued > 0 && libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) > 0 };
        if !more {
            return;
        }
    }
}
