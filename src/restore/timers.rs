//! Restore, POSIX timers (normal code): each saved timer is created again under its
//! saved id, so the ids the program holds keep working. They are armed by the blob,
//! at the end, with the time they had left.
#![allow(unsafe_code)]

use mig_image::{Image, Table, TimerRecord};

/// `prctl` of Linux 6.17: the next `timer_create` calls take the id they are given.
const PR_TIMER_CREATE_RESTORE_IDS: i32 = 77;

/// Creates the image's timers (disarmed); returns (id, {interval, value}) to arm.
pub fn create(img: &Image) -> Result<Vec<(i32, [i64; 4])>, String> {
    let timers: Vec<TimerRecord> = (0..img.count(Table::Timers)).map(|i| img.timer(i)).collect();
    if timers.is_empty() {
        return Ok(Vec::new());
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) } != 0 {
        return Err(format!("the process has POSIX timers, and this kernel cannot create them under their saved ids ({})", std::io::Error::last_os_error()));
    }
    let result = timers
        .iter()
        .map(|t| {
            // The kernel's `struct sigevent`: value, signo, notify, then the thread id.
            let mut ev = [0u8; 64];
            ev[..8].copy_from_slice(&t.sigval.to_le_bytes());
            ev[8..12].copy_from_slice(&t.signo.to_le_bytes());
            ev[12..16].copy_from_slice(&t.notify.to_le_bytes());
            // SAFETY: getpid cannot fail; the restored main thread is this thread.
            ev[16..20].copy_from_slice(&unsafe { libc::getpid() }.to_le_bytes());
            let mut id: i32 = t.id;
            // SAFETY: a valid clock, sigevent and id slot.
            let r = unsafe { libc::syscall(libc::SYS_timer_create, t.clock, ev.as_ptr(), &mut id as *mut i32) };
            if r != 0 || id != t.id {
                return Err(format!("POSIX timer {} cannot be created again ({})", t.id, std::io::Error::last_os_error()));
            }
            Ok((t.id, t.spec))
        })
        .collect();
    // SAFETY: as above.
    unsafe { libc::prctl(PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0) };
    result
}
