//! epoll sets: made empty by the restore planner; their registrations (`EpollEntry`s
//! in the record's `extra`) are made by the restore blob once every descriptor is at
//! its saved number, and tried beforehand on scratch sets (`dry_run`).

use crate::failure::Failure;
use crate::fdinfo::{lines, value};
use crate::files::Strings;
use crate::maps::{dec, hex};
use crate::sys::{self, msg::msg};
use mig_image::{EPOLL_THROUGH_COPY, EpollEntry, StrRef, bytes_of};

/// The registrations of epoll set `fd`, from its `fdinfo` `text`.
pub fn save(fd: i32, text: &[u8], strings: &mut Strings) -> Result<StrRef, Failure> {
    let start = strings.bytes.len();
    for line in lines(text).filter(|l| l.starts_with(b"tfd:")) {
        let e = EpollEntry {
            fd: value(line, b"tfd:").and_then(dec).unwrap_or(0) as i32,
            events: value(line, b"events:").and_then(hex).unwrap_or(0) as u32,
            data: value(line, b"data:").and_then(hex).unwrap_or(0),
        };
        // Registered under a number that now names another file (or none): its file
        // lives on through another descriptor of the process (the kernel drops the
        // registration with the file's last descriptor), made again through a copy of
        // that one. The number is the kernel's key only: the program cannot use it.
        let ino = value(line, b"ino:").and_then(hex).unwrap_or(0);
        let e = if sys::fstat(e.fd).map(|st| st.st_ino) == Ok(ino) {
            e
        } else {
            match holder(fd, e.fd) {
                Some(via) => EpollEntry { fd: via, events: e.events | EPOLL_THROUGH_COPY, data: e.data },
                None => {
                    msg()
                        .s("warning: epoll descriptor ")
                        .num(fd as u64)
                        .s(" watches a closed descriptor ")
                        .num(e.fd as u64)
                        .s("; that registration is dropped")
                        .emit();
                    continue;
                }
            }
        };
        strings.bytes.extend(bytes_of(&e))?;
    }
    if let Some(saved) = strings.bytes.as_mut_slice().get_mut(start..) {
        ready_first(fd, saved);
    }
    Ok(StrRef { off: start as u32, len: (strings.bytes.len() - start) as u32 })
}

/// A descriptor of the process whose file is the one epoll set `epfd` watches under
/// number `tfd` (`kcmp` `KCMP_EPOLL_TFD`), the lowest.
fn holder(epfd: i32, tfd: i32) -> Option<i32> {
    // struct kcmp_epoll_slot: efd, tfd, toff (the first registration under that number).
    let slot = [epfd as u32, tfd as u32, 0u32];
    (0..sys::max_fd()).find(|&c| c != epfd && sys::kcmp_epoll_target(c, &slot))
}

/// At most this many registrations are put in ready order.
const ORDERED: usize = 256;

/// Orders the saved registrations `entries` (`EpollEntry`s) of set `fd` so that the
/// ready ones come first, in the order the set reports them: the restore registers
/// them in this order, and a registration ready as it is made joins the end of the
/// ready list, so the restored set reports them in the same order. Only where reading
/// that order changes nothing — every registration level-triggered (a report puts it
/// back at the end, in order) — and where each one's data tells it apart.
fn ready_first(fd: i32, entries: &mut [u8]) {
    const SIZE: usize = size_of::<EpollEntry>();
    let n = entries.len() / SIZE;
    let entry = |b: &[u8], i: usize| mig_image::read_record::<EpollEntry>(b, i).unwrap_or_default();
    if !(2..=ORDERED).contains(&n) {
        return;
    }
    let once = (libc::EPOLLET | libc::EPOLLONESHOT) as u32;
    if (0..n).any(|i| entry(entries, i).events & once != 0) || (0..n).any(|i| (i + 1..n).any(|j| entry(entries, i).data == entry(entries, j).data)) {
        return;
    }
    let mut ready = [libc::epoll_event { events: 0, u64: 0 }; ORDERED];
    let Ok(got) = sys::epoll_wait(fd, ready.get_mut(..n).unwrap_or(&mut []), 0) else { return };
    let mut before = [0u8; ORDERED * SIZE];
    let Some(before) = before.get_mut(..entries.len()) else { return };
    before.copy_from_slice(entries);
    let mut at = 0;
    let mut put = |e: EpollEntry, entries: &mut [u8]| {
        if let Some(dst) = entries.get_mut(at..at + SIZE) {
            dst.copy_from_slice(bytes_of(&e));
        }
        at += SIZE;
    };
    let first = ready.get(..got).unwrap_or(&[]);
    for ev in first {
        let data = ev.u64;
        if let Some(e) = (0..n).map(|i| entry(before, i)).find(|e| e.data == data) {
            put(e, entries);
        }
    }
    for e in (0..n).map(|i| entry(before, i)).filter(|e| !first.iter().any(|ev| { ev.u64 } == e.data)) {
        put(e, entries);
    }
}

#[cfg(feature = "restore")]
pub use restore::{dry_run, restore};

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::{Shared, os::*};
    use mig_image::{EPOLL_THROUGH_COPY, EpollEntry, FdRecord};

    /// An empty set; its registrations go to the plan.
    pub fn restore(f: &FdRecord, cx: &mut Shared) -> std::io::Result<i32> {
        // SAFETY: creating a new epoll instance.
        let fd = last_error(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        cx.epoll.extend(cx.img.records::<EpollEntry>(f.extra).map(|e| (f.fd, e)));
        Ok(fd)
    }

    /// Makes every epoll registration once on scratch sets, in the order the restore
    /// blob will, so that one the kernel refuses there (a set that would watch itself
    /// through another, nesting too deep, the same descriptor twice) refuses the
    /// restore now instead of failing after the point of no return. A registration
    /// the plan drops with a warning (a descriptor that cannot be watched any more) is
    /// left out, as there. `made`: saved number → descriptor made for it.
    pub fn dry_run(entries: &[(i32, EpollEntry)], made: &HashMap<i32, i32>) -> Result<(), String> {
        let mut owned: Vec<i32> = Vec::new();
        let r = (|| {
            // SAFETY: creating a scratch epoll set (closed below, with everything in `owned`).
            let probe = last_error::<i32>(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(|e| e.to_string())?;
            owned.push(probe);
            // One scratch set per epoll set (by the descriptor made for it: copies share
            // it), and per saved number a descriptor of what it names: a registration is
            // keyed by (file, number).
            let mut sets: HashMap<i32, i32> = HashMap::new();
            let mut numbers: HashMap<i32, i32> = HashMap::new();
            let made_for = |saved: i32| made.get(&saved).copied().or((0..=2).contains(&saved).then_some(saved));
            for &(ep, _) in entries {
                let Some(set) = made_for(ep) else { continue };
                if let std::collections::hash_map::Entry::Vacant(v) = sets.entry(set) {
                    // SAFETY: as above.
                    let scratch = last_error::<i32>(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(|e| e.to_string())?;
                    owned.push(scratch);
                    v.insert(scratch);
                }
            }
            for &(ep, e) in entries {
                let (Some(set), Some(target)) = (made_for(ep).and_then(|s| sets.get(&s).copied()), made_for(e.fd)) else { continue };
                let through_copy = e.events & EPOLL_THROUGH_COPY != 0;
                let mut ev = libc::epoll_event { events: e.events & !EPOLL_THROUGH_COPY, u64: e.data };
                // SAFETY: epoll_ctl on our scratch set with a valid event.
                if unsafe { libc::epoll_ctl(probe, libc::EPOLL_CTL_ADD, target, &mut ev) } < 0 && Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                    continue; // dropped by the plan, with a warning
                }
                let what = match sets.get(&target) {
                    Some(&scratch) => scratch,
                    // Its own number, as the blob makes it.
                    None if through_copy => {
                        let fd = dup(target).map_err(|err| format!("descriptor {ep} (epoll): {err}"))?;
                        owned.push(fd);
                        fd
                    }
                    None => match numbers.get(&e.fd) {
                        Some(&fd) => fd,
                        None => {
                            let fd = dup(target).map_err(|err| format!("descriptor {ep} (epoll): {err}"))?;
                            owned.push(fd);
                            numbers.insert(e.fd, fd);
                            fd
                        }
                    },
                };
                // SAFETY: as above, on the scratch set of `ep`.
                if unsafe { libc::epoll_ctl(set, libc::EPOLL_CTL_ADD, what, &mut ev) } < 0 {
                    return Err(format!("descriptor {ep} (epoll): its registration of descriptor {} cannot be made again ({})", e.fd, Error::last_os_error()));
                }
            }
            Ok(())
        })();
        owned.into_iter().for_each(close);
        r
    }
}
