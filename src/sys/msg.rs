//! Messages built in a fixed buffer and written to stderr with one `write`: usable in a
//! signal handler (no allocation, no formatting machinery, no panics).

use core::sync::atomic::{AtomicBool, Ordering};

/// `MIG_LOG=debug`: say what happens, not only what fails.
pub static DEBUG: AtomicBool = AtomicBool::new(false);

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
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.bytes(&digits[i..])
    }
    /// `v` in hexadecimal, without a prefix.
    pub fn hex(&mut self, v: u64) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut n = 0;
        let mut x = v;
        loop {
            digits[15 - n] = b"0123456789abcdef"[(x & 15) as usize];
            n += 1;
            x >>= 4;
            if x == 0 || n == 16 {
                break;
            }
        }
        self.bytes(&digits[16 - n..])
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
    /// Writes `mig: <message>\n` to stderr.
    pub fn emit(&mut self) {
        let mut line = Msg::<1024>::new();
        line.s("mig: ").bytes(self.as_bytes()).s("\n");
        let _ = super::write_all(2, line.as_bytes().as_ptr(), line.len);
    }
}

/// Starts a message: `msg().s("…").num(3).emit()`.
pub fn msg() -> Msg<960> {
    Msg::new()
}
