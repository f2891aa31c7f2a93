//! Messages built in a fixed buffer and written to stderr with one `write`: usable in a
//! signal handler (no allocation, no formatting machinery, no panics).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// `MIG_LOG=debug`: say what happens, not only what fails.
pub static DEBUG: AtomicBool = AtomicBool::new(false);

/// The warnings of the checkpoint being taken, one a line, for `mig checkpoint` (and
/// the image): every message that starts with `warning: ` is kept here too.
struct Warnings(UnsafeCell<Msg<16384>>);
// SAFETY: written only by the thread that takes a checkpoint (every other thread of the
// process is stopped, or the writer is a process of its own), read by it to report.
unsafe impl Sync for Warnings {}
static WARNINGS: Warnings = Warnings(UnsafeCell::new(Msg::new()));

/// Forgets the warnings of the last checkpoint (at the start of a new one).
pub fn clear_warnings() {
    // SAFETY: see `Warnings`.
    unsafe { (*WARNINGS.0.get()).len = 0 };
}

/// The warnings kept since `clear_warnings`, one a line (without `warning: `).
pub fn warnings() -> &'static [u8] {
    // SAFETY: see `Warnings`.
    unsafe { (*WARNINGS.0.get()).as_bytes() }
}

pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

pub struct Msg<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Default for Msg<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Msg<N> {
    pub const fn new() -> Self {
        Msg { buf: [0; N], len: 0, overflow: false }
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let room = N - self.len;
        let n = b.len().min(room);
        self.overflow |= n < b.len();
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), b.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.len += n;
        self
    }
    pub fn s(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    pub fn num(&mut self, mut v: u64) -> &mut Self {
        // Filled from the right; 20 digits hold any u64.
        let mut digits = [0u8; 20];
        let mut n = 0;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(digits.get(digits.len() - n..).unwrap_or(&[]))
    }
    /// `v` in decimal, with a `-` when negative.
    pub fn inum(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.s("-");
        }
        self.num(v.unsigned_abs())
    }
    /// `v` in hexadecimal, without a prefix.
    pub fn hex(&mut self, v: u64) -> &mut Self {
        // Filled from the right; 16 digits hold any u64.
        let mut digits = [0u8; 16];
        let mut n = 0;
        let mut x = v;
        for d in digits.iter_mut().rev() {
            let nibble = (x & 15) as u8;
            *d = if nibble < 10 { b'0' + nibble } else { b'a' + nibble - 10 };
            n += 1;
            x >>= 4;
            if x == 0 {
                break;
            }
        }
        self.bytes(digits.get(digits.len() - n..).unwrap_or(&[]))
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
    /// Writes `mig: <message>\n` to stderr (`mig: <UTC time> <message>` with
    /// `MIG_LOG=debug`).
    pub fn emit(&mut self) {
        let mut line = Msg::<1024>::new();
        line.s("mig: ");
        if debug_enabled() {
            let ms = super::clock_realtime_ns() / 1_000_000;
            let day_ms = ms % 86_400_000;
            let two = |m: &mut Msg<1024>, v: u64| {
                m.bytes(&[b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8]);
            };
            two(&mut line, day_ms / 3_600_000);
            line.s(":");
            two(&mut line, day_ms / 60_000 % 60);
            line.s(":");
            two(&mut line, day_ms / 1000 % 60);
            line.s(".");
            line.bytes(&[b'0' + (day_ms / 100 % 10) as u8, b'0' + (day_ms / 10 % 10) as u8, b'0' + (day_ms % 10) as u8]);
            line.s(" ");
        }
        line.bytes(self.as_bytes()).s("\n");
        if let Some(w) = self.as_bytes().strip_prefix(b"warning: ") {
            // SAFETY: see `Warnings`.
            let kept = unsafe { &mut *WARNINGS.0.get() };
            if kept.len + w.len() < kept.buf.len() {
                kept.bytes(w).s("\n");
            }
        }
        let _ = super::write_all(2, line.as_bytes());
    }
}

/// Starts a message: `msg().s("…").num(3).emit()`.
pub fn msg() -> Msg<960> {
    Msg::new()
}
