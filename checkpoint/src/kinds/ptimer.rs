//! POSIX timers (`timer_create`): saved from `/proc/self/timers` and `timer_gettime`,
//! created again under their saved ids (so the ids the program holds keep working),
//! armed by the restore blob at the end with the time they had left.

use crate::failure::Failure;
use crate::fdinfo::{lines, value};
use crate::maps::{dec, hex};
use crate::scratch::List;
use crate::sys::{self, msg::msg};
use mig_image::TimerRecord;

/// Appends a record for each of the program's timers (not the `MIG_INTERVAL` one),
/// from the text of `/proc/self/timers`.
pub fn save(text: &[u8], out: &mut List<TimerRecord>) -> Result<(), Failure> {
    let own = crate::timer::own_id();
    let pid = sys::getpid() as u64;
    let mut t: Option<TimerRecord> = None;
    // Each timer is an `ID:` line followed by its `signal:`, `notify:`, `ClockID:` lines.
    for line in lines(text).chain(core::iter::once(&b"ID: -1"[..])) {
        if let Some(id) = value(line, b"ID:") {
            if let Some(done) = t.take().filter(|d| Some(d.id) != own) {
                finish(done, out)?;
            }
            t = dec(id).map(|id| TimerRecord { id: id as i32, ..TimerRecord::default() });
            continue;
        }
        let Some(rec) = t.as_mut() else { continue };
        if let Some(v) = value(line, b"signal:") {
            let (signo, val) = v.split_at(v.iter().position(|&c| c == b'/').unwrap_or(v.len()));
            rec.signo = dec(signo).unwrap_or(0) as i32;
            rec.sigval = val.get(1..).and_then(hex).unwrap_or(0);
        } else if let Some(v) = value(line, b"notify:") {
            // `signal/pid.N`, `none/pid.N`, `signal/tid.N`.
            rec.notify = if v.starts_with(b"none") { libc::SIGEV_NONE } else { libc::SIGEV_SIGNAL };
            let tid = v.iter().position(|&c| c == b'.').and_then(|i| v.get(i + 1..)).and_then(dec).unwrap_or(0);
            if v.windows(4).any(|w| w == b"/tid") {
                if tid == pid {
                    rec.notify |= libc::SIGEV_THREAD_ID;
                } else {
                    msg().s("warning: POSIX timer ").num(rec.id as u64).s(" notifies one thread; after a restore it notifies the process").emit();
                }
            }
        } else if let Some(v) = value(line, b"ClockID:") {
            rec.clock = dec(v).unwrap_or(0) as i32;
        }
    }
    Ok(())
}

fn finish(mut t: TimerRecord, out: &mut List<TimerRecord>) -> Result<(), Failure> {
    t.spec = sys::timer_gettime(t.id).map_err(|e| Failure::Sys("timer_gettime", e))?;
    out.push(t)?;
    Ok(())
}

#[cfg(feature = "restore")]
pub use restore::restore;

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
mod restore {
    use super::super::os::*;
    use mig_image::TimerRecord;

    /// `prctl` of Linux 6.17: the next `timer_create` calls take the id they are given.
    const PR_TIMER_CREATE_RESTORE_IDS: i32 = 77;

    /// Creates `timers` (disarmed) under their ids; returns (id, {interval, value})
    /// to arm.
    pub fn restore(timers: &[TimerRecord]) -> Result<Vec<(i32, [i64; 4])>, String> {
        if timers.is_empty() {
            return Ok(Vec::new());
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) } != 0 {
            return Err(format!("the process has POSIX timers, and this kernel cannot create them under their saved ids ({})", Error::last_os_error()));
        }
        // SAFETY: getpid cannot fail; the restored main thread is this thread.
        let tid = unsafe { libc::getpid() };
        let result = timers
            .iter()
            .map(|t| {
                let ev = mig_sys::Sigevent { value: t.sigval, signo: t.signo, notify: t.notify, tid }.to_bytes();
                // The kernel reads the id to create from `id`.
                let mut id: i32 = t.id;
                // SAFETY: a valid clock, sigevent and id slot.
                let r = unsafe { libc::syscall(libc::SYS_timer_create, t.clock, ev.as_ptr(), &mut id as *mut i32) };
                if r != 0 || id != t.id {
                    return Err(format!("POSIX timer {} cannot be created again ({})", t.id, Error::last_os_error()));
                }
                Ok((t.id, t.spec))
            })
            .collect();
        // SAFETY: as above.
        unsafe { libc::prctl(PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0) };
        result
    }
}
