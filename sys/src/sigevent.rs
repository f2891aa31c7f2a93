//! The kernel's `struct sigevent` (`timer_create`'s second argument), built in one place.

/// What a POSIX timer does when it expires. The kernel reads 64 bytes: the value
/// handed to the handler, the signal, how to notify (`SIGEV_*`), then the thread to
/// notify for `SIGEV_THREAD_ID`; the rest is zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sigevent {
    pub value: u64,
    pub signo: i32,
    pub notify: i32,
    pub tid: i32,
}

impl Sigevent {
    /// Sends `signo` to the process (`SIGEV_SIGNAL`).
    pub const fn signal(signo: i32) -> Sigevent {
        Sigevent { value: 0, signo, notify: libc::SIGEV_SIGNAL, tid: 0 }
    }

    /// The bytes the kernel reads.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut ev = [0u8; 64];
        let fields = self.value.to_le_bytes().into_iter().chain(self.signo.to_le_bytes()).chain(self.notify.to_le_bytes()).chain(self.tid.to_le_bytes());
        for (b, v) in ev.iter_mut().zip(fields) {
            *b = v;
        }
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_as_the_kernel_reads() {
        let ev = Sigevent { value: 0x1122, signo: 10, notify: 4, tid: 77 }.to_bytes();
        assert_eq!(ev[..8], 0x1122u64.to_le_bytes());
        assert_eq!(ev[8..12], 10i32.to_le_bytes());
        assert_eq!(ev[12..16], 4i32.to_le_bytes());
        assert_eq!(ev[16..20], 77i32.to_le_bytes());
        assert!(ev[20..].iter().all(|&b| b == 0));
    }
}
