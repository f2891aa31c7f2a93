//! Step 7: descriptors on their saved numbers, everything else of ours closed; then
//! what needs the saved numbers: epoll registrations, terminal modes, which must not
//! change before the point of no return, and file locks.
#![allow(unsafe_code)]

use super::super::blob::CHECK_OK;
use super::super::fds::FdPlan;
use super::program::Program;
use mig_image::{EPOLL_THROUGH_COPY, Image, LOCK_FLOCK, LOCK_LEASE, LOCK_OFD, Table, slice_bytes};

/// The lowest descriptor number the restore may use for its own: above every saved one
/// (and the standard three), so that none is in the way when they are placed.
pub(super) fn base(img: &Image) -> i32 {
    let max_fd = (0..img.count(Table::Fds)).map(|i| img.fd(i).fd).max().unwrap_or(2);
    max_fd.max(2) + 1
}

pub(super) fn place(prog: &mut Program, prepared: &FdPlan) {
    for &(fd, target, cloexec) in &prepared.place {
        let flags = if cloexec { libc::O_CLOEXEC as u64 } else { 0 };
        prog.op(libc::SYS_dup3, &[fd as u64, target as u64, flags], CHECK_OK, "placing a descriptor");
    }
    let targets: Vec<i32> = prepared.place.iter().map(|f| f.1).collect();
    let open_now: Vec<i32> =
        std::fs::read_dir("/proc/self/fd").map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()).unwrap_or_default();
    for fd in open_now.into_iter().filter(|fd| *fd > 2 && !targets.contains(fd)) {
        prog.op(libc::SYS_close, &[fd as u64], 0, "closing a descriptor");
    }
    register_epoll(prog, prepared);
    for (fd, termios) in &prepared.termios {
        let at = prog.arena.bytes(termios);
        prog.op(libc::SYS_ioctl, &[*fd as u64, libc::TCSETS, at], CHECK_OK, "setting the terminal modes");
    }
    take_locks(prog, prepared);
}

/// The file locks, on the saved numbers, now that nothing else of this process is open
/// (closing a descriptor drops the process's POSIX locks on its file). `prepare`
/// checked that no other process holds one in the way.
fn take_locks(prog: &mut Program, prepared: &FdPlan) {
    for (fd, l) in &prepared.locks {
        let fd = *fd as u64;
        if l.kind == LOCK_LEASE {
            // Tried when it was prepared; a failure now leaves the process without it.
            let ty = if l.write == 1 { libc::F_WRLCK } else { libc::F_RDLCK } as u64;
            prog.op(libc::SYS_fcntl, &[fd, libc::F_SETLEASE as u64, ty], 0, "taking back a lease");
            continue;
        }
        if l.kind == LOCK_FLOCK {
            let op = if l.write == 1 { libc::LOCK_EX } else { libc::LOCK_SH } | libc::LOCK_NB;
            prog.op(libc::SYS_flock, &[fd, op as u64], CHECK_OK, "taking back a flock lock");
            continue;
        }
        // struct flock: l_type and l_whence (SEEK_SET, 0) as shorts, l_start, l_len, l_pid.
        let ty = if l.write == 1 { libc::F_WRLCK } else { libc::F_RDLCK } as u64;
        let at = prog.arena.bytes(slice_bytes(&[ty, l.start, l.len, 0u64]));
        let cmd = if l.kind == LOCK_OFD { libc::F_OFD_SETLK } else { libc::F_SETLK };
        prog.op(libc::SYS_fcntl, &[fd, cmd as u64, at], CHECK_OK, "taking back a file lock");
    }
}

/// The epoll registrations, on the saved numbers. Each is tried first on a scratch
/// epoll set: a descriptor that came back as something else (a terminal as /dev/null)
/// may not be pollable, and the blob must not fail past the point of no return.
fn register_epoll(prog: &mut Program, prepared: &FdPlan) {
    let spare = prepared.place.iter().map(|p| p.1).max().unwrap_or(2).max(2) + 1;
    // SAFETY: creating a scratch epoll set, closed below.
    let scratch_ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    for (epfd, e) in &prepared.epoll {
        // The standard descriptors are the restoring process's own.
        let placed = prepared.place.iter().find(|p| p.1 == e.fd).map(|p| p.0);
        let Some(fd) = placed.or((0..=2).contains(&e.fd).then_some(e.fd)) else {
            eprintln!("mig: warning: epoll descriptor {epfd} watched descriptor {}, which is not in the image; that registration is dropped", e.fd);
            continue;
        };
        let through_copy = e.events & EPOLL_THROUGH_COPY != 0;
        let events = e.events & !EPOLL_THROUGH_COPY;
        let mut probe = libc::epoll_event { events, u64: e.data };
        // SAFETY: epoll_ctl on our scratch set with a valid event.
        let r = unsafe { libc::epoll_ctl(scratch_ep, libc::EPOLL_CTL_ADD, fd, &mut probe) };
        let err = std::io::Error::last_os_error();
        if r < 0 && err.raw_os_error() != Some(libc::EEXIST) {
            eprintln!("mig: warning: epoll descriptor {epfd}: descriptor {} cannot be watched any more ({err}); that registration is dropped", e.fd);
            continue;
        }
        // `struct epoll_event` is packed on x86_64: events, then data.
        let mut ev = [0u8; 12];
        ev[..4].copy_from_slice(&events.to_le_bytes());
        ev[4..].copy_from_slice(&e.data.to_le_bytes());
        let at = prog.arena.bytes(&ev);
        if through_copy {
            // A number no saved descriptor has, free once everything else is closed.
            let copy = spare as u64;
            prog.op(libc::SYS_dup3, &[e.fd as u64, copy, libc::O_CLOEXEC as u64], CHECK_OK, "copying a descriptor to register it with epoll");
            prog.op(libc::SYS_epoll_ctl, &[*epfd as u64, libc::EPOLL_CTL_ADD as u64, copy, at], CHECK_OK, "registering a descriptor with epoll");
            prog.op(libc::SYS_close, &[copy], 0, "closing a copy of a descriptor");
            continue;
        }
        prog.op(libc::SYS_epoll_ctl, &[*epfd as u64, libc::EPOLL_CTL_ADD as u64, e.fd as u64, at], CHECK_OK, "registering a descriptor with epoll");
    }
    // SAFETY: closing the scratch set.
    unsafe { libc::close(scratch_ep) };
}
