//! Compressed images: one zstd frame holding the normal image bytes.
//!
//! The library always writes plain images. mig compresses what it receives from the
//! process (`mig checkpoint --to - | FILE --compress zstd`, `mig migrate`), and
//! `mig restart` and `mig inspect` recognise a compressed image by the zstd magic
//! number and decompress it into a memfd before anything else looks at it.

use crate::{Fail, Result};
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;

/// The first four bytes of a zstd frame (0xFD2FB528, little-endian).
pub const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Fast, and most of what a slower level would gain on memory images.
pub const DEFAULT_LEVEL: i32 = 1;
const MAX_LEVEL: i32 = 19;

/// How mig writes an image it passes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    None,
    /// zstd at this level.
    Zstd(i32),
}

/// `zstd`, `zstd:LEVEL` (1–19), or `none`.
pub fn parse(s: &str) -> std::result::Result<Method, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "none" | "off" | "no" | "0" => return Ok(Method::None),
        "zstd" | "yes" | "on" | "1" => return Ok(Method::Zstd(DEFAULT_LEVEL)),
        _ => {}
    }
    match t.split_once(':') {
        Some((m, l)) if m.eq_ignore_ascii_case("zstd") => match l.trim().parse::<i32>() {
            Ok(v) if (1..=MAX_LEVEL).contains(&v) => Ok(Method::Zstd(v)),
            _ => Err(format!("'{s}': the zstd level must be a number from 1 to {MAX_LEVEL}")),
        },
        _ => Err(format!("'{s}' is not a compression (zstd, zstd:LEVEL or none)")),
    }
}

/// The compression to use: `given` (a command-line option), else `$MIG_COMPRESS`,
/// else none.
pub fn choose(given: Option<Method>) -> Result<Method> {
    if let Some(m) = given {
        return Ok(m);
    }
    match std::env::var_os(mig_proto::env::COMPRESS) {
        Some(v) if !v.is_empty() => parse(&v.to_string_lossy()).map_err(|e| Fail::bad(format!("MIG_COMPRESS: {e}"))),
        _ => Ok(Method::None),
    }
}

/// `zstd-compressed to Y (R:1)`, for an image of `bytes` bytes.
pub fn describe(bytes: u64, packed: u64) -> String {
    format!("zstd-compressed to {} ({})", crate::util::size(packed), ratio(bytes, packed))
}

/// `3.2:1`.
pub fn ratio(bytes: u64, packed: u64) -> String {
    format!("{:.1}:1", bytes as f64 / packed.max(1) as f64)
}

/// A writer that counts what passes through it.
pub struct Counted<W: Write> {
    pub inner: W,
    pub bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compresses everything written to it into one zstd frame (with its content
/// checksum) written to `W`.
pub struct Compressor<W: Write> {
    enc: zstd::stream::write::Encoder<'static, Counted<W>>,
}

impl<W: Write> Compressor<W> {
    pub fn new(w: W, level: i32) -> Result<Self> {
        let err = |e: io::Error| Fail::new(format!("cannot set up zstd compression: {e}"));
        let mut enc = zstd::stream::write::Encoder::new(Counted { inner: w, bytes: 0 }, level).map_err(err)?;
        enc.include_checksum(true).map_err(err)?;
        Ok(Compressor { enc })
    }

    /// Ends the frame; returns the writer and the compressed size.
    pub fn finish(self) -> io::Result<(W, u64)> {
        let c = self.enc.finish()?;
        Ok((c.inner, c.bytes))
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.enc.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.enc.flush()
    }
}

/// Reads up to 4 bytes: the start of `r`, to look for the magic number.
pub fn peek(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
}

pub fn is_zstd(head: &[u8]) -> bool {
    head.starts_with(&MAGIC)
}

/// A new memfd, without close-on-exec: `exec` passes it on to the restored process.
pub fn memfd() -> Result<File> {
    let name: &CStr = c"mig-image";
    // SAFETY: a valid NUL-terminated name; flags 0: no close-on-exec, on purpose.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    if fd < 0 {
        return Err(Fail::new(format!("cannot create a memfd: {}", io::Error::last_os_error())));
    }
    // SAFETY: `fd` was just created and belongs to nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Why decompressing stopped early.
pub enum Stop {
    /// Reading the compressed data failed (standard input, the file).
    Source(io::Error),
    /// The compressed data is damaged, cut off, or followed by something else.
    Damaged(String),
    /// Writing the decompressed image failed (out of memory).
    Dest(io::Error),
}

/// What decompressing gave.
pub struct Unpacked {
    /// The decompressed image so far (all of it unless `stop`), at offset 0..len.
    pub file: File,
    pub len: u64,
    pub stop: Option<Stop>,
}

/// A reader that remembers whether it failed (to tell a failing source from damaged
/// data in the decoder's errors).
struct Source<R> {
    inner: R,
    error: Option<io::ErrorKind>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.error = Some(e.kind());
                }
                Err(e)
            }
        }
    }
}

/// Decompresses the single zstd frame that `src` holds (from its first byte) into
/// `dest`; stops at the first problem and says which. Nothing may follow the frame.
pub fn unpack(src: impl Read, mut dest: File) -> Unpacked {
    let mut source = Source { inner: src, error: None };
    let mut len = 0u64;
    let stop = (|| {
        let mut dec = match zstd::stream::read::Decoder::new(&mut source) {
            Ok(d) => d.single_frame(),
            Err(e) => return Some(Stop::Damaged(format!("cannot set up zstd decompression: {e}"))),
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The error of the source itself passes through the decoder.
                    if dec.get_ref().get_ref().error.is_some() {
                        return Some(Stop::Source(e));
                    }
                    return Some(Stop::Damaged(if e.kind() == io::ErrorKind::UnexpectedEof {
                        "the compressed image is cut off".to_string()
                    } else {
                        format!("the compressed image is damaged ({e})")
                    }));
                }
            };
            if let Err(e) = dest.write_all(&buf[..n]) {
                return Some(Stop::Dest(e));
            }
            len += n as u64;
        }
        // The frame is complete (its checksum held); nothing may follow it.
        let mut rest = dec.finish();
        let mut one = [0u8; 1];
        loop {
            return match rest.read(&mut one) {
                Ok(0) => None,
                Ok(_) => Some(Stop::Damaged("something follows the compressed image".into())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Some(Stop::Source(e)),
            };
        }
    })();
    let stop = stop.or_else(|| dest.flush().err().map(Stop::Dest));
    Unpacked { file: dest, len, stop }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    #[test]
    fn methods() {
        assert_eq!(parse("zstd"), Ok(Method::Zstd(DEFAULT_LEVEL)));
        assert_eq!(parse("ZSTD:7"), Ok(Method::Zstd(7)));
        assert_eq!(parse("none"), Ok(Method::None));
        assert!(parse("zstd:0").is_err());
        assert!(parse("zstd:20").is_err());
        assert!(parse("gzip").is_err());
    }

    fn packed(data: &[u8]) -> Vec<u8> {
        let mut c = Compressor::new(Vec::new(), 3).unwrap_or_else(|f| panic!("{}", f.msg));
        c.write_all(data).unwrap();
        let (v, n) = c.finish().unwrap();
        assert_eq!(n, v.len() as u64);
        v
    }

    fn unpacked(z: &[u8]) -> (Vec<u8>, Option<String>) {
        let u = unpack(z, memfd().unwrap_or_else(|f| panic!("{}", f.msg)));
        let mut f = u.file;
        f.rewind().unwrap();
        let mut out = Vec::new();
        f.read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, u.len);
        let why = u.stop.map(|s| match s {
            Stop::Damaged(m) => m,
            Stop::Source(e) | Stop::Dest(e) => panic!("unexpected I/O error {e}"),
        });
        (out, why)
    }

    #[test]
    fn round_trip_and_damage() {
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8 ^ (i >> 13) as u8).collect();
        let z = packed(&data);
        assert!(is_zstd(&z) && z.len() < data.len() / 4);
        assert_eq!(unpacked(&z), (data.clone(), None));
        // Cut off.
        let (_, why) = unpacked(&z[..z.len() - 10]);
        assert_eq!(why.as_deref(), Some("the compressed image is cut off"));
        // Something after the frame.
        let mut more = z.clone();
        more.extend_from_slice(&z);
        assert_eq!(unpacked(&more).1.as_deref(), Some("something follows the compressed image"));
        // A flipped byte in the middle: zstd or its checksum notices.
        let mut bad = z.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        let (_, why) = unpacked(&bad);
        assert!(why.is_some_and(|w| w.starts_with("the compressed image is damaged")));
    }
}
