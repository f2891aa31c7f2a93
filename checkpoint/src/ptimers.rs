//! POSIX timers (`timer_create`), from `/proc/self/timers` and `timer_gettime`.
//! Async-signal-safe.
// TODO(kinds): removed by the kinds rewrite
#![allow(clippy::indexing_slicing)]

use super::collect::Failure;
use super::fdinfo::{lines, value};
use super::maps::{dec, hex};
use super::scratch::List;
use crate::sys::{self, msg::msg};
use mig_image::TimerRecord;

/// Appends a record for each of the program's timers (not the `MIG_INTERVAL` one).
pub fn collect(text: &[u8], out: &mut List<TimerRecord>) -> Result<(), Failure> {
    let own = super::timer::own_id();
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
            let tid = v.iter().position(|&c| c == b'.').and_then(|i| dec(&v[i + 1..])).unwrap_or(0);
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
