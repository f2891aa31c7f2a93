//! timerfd: made again on its clock with the time it had left, its interval and the
//! expirations not read yet.

use crate::fdinfo::{dec_field, pair_field};
use mig_image::{FdRecord, Params, TimerfdParams};

/// A timerfd, from its `fdinfo` `text`.
pub fn save(text: &[u8], rec: &mut FdRecord) {
    rec.params = TimerfdParams {
        clock: dec_field(text, b"clockid:").unwrap_or(0) as i32,
        ticks: dec_field(text, b"ticks:").unwrap_or(0),
        value: pair_field(text, b"it_value:").unwrap_or((0, 0)),
        interval: pair_field(text, b"it_interval:").unwrap_or((0, 0)),
    }
    .encode();
}

#[cfg(feature = "restore")]
#[allow(unsafe_code)]
pub fn restore(f: &FdRecord) -> std::io::Result<i32> {
    use super::os::*;
    let p = TimerfdParams::decode(&f.params);
    // SAFETY: creating a timerfd on the saved clock.
    let fd = last_error(unsafe { libc::timerfd_create(p.clock, libc::TFD_CLOEXEC | nonblock(f.flags)) })?;
    let interval = libc::timespec { tv_sec: p.interval.0 as i64, tv_nsec: p.interval.1 as i64 };
    // A periodic timer that had just expired shows no time left: its next expiry is
    // one interval away.
    let left = if p.value == (0, 0) { interval } else { libc::timespec { tv_sec: p.value.0 as i64, tv_nsec: p.value.1 as i64 } };
    let spec = libc::itimerspec { it_interval: interval, it_value: left };
    if spec.it_value.tv_sec != 0 || spec.it_value.tv_nsec != 0 {
        // SAFETY: arming our timerfd with a valid relative time.
        last_error::<i32>(unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) })?;
    }
    if p.ticks > 0 {
        const TFD_IOC_SET_TICKS: u64 = 0x4008_5400;
        // SAFETY: the ioctl reads one u64.
        if unsafe { libc::ioctl(fd, TFD_IOC_SET_TICKS, &p.ticks) } < 0 {
            eprintln!("mig: warning: a timerfd had {} unread expirations; they are lost ({})", p.ticks, Error::last_os_error());
        }
    }
    Ok(fd)
}
