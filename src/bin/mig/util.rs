//! Small helpers: sizes, dates, durations, quoting, the library's location.

use crate::{Fail, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `1536` → `1.5 KiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A duration for people: `850 µs`, `12.3 ms`, `4.56 s`.
pub fn duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Nanoseconds since the epoch → `2024-05-01 12:34:56.789 UTC`.
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `p` made absolute against the current directory (not resolving symlinks).
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Fail::new(format!("cannot make {} absolute: {e}", p.display())))
}

/// The preload library: `$MIG_LIB`, else `libmig.so` beside this executable (or in
/// `../lib/mig/` for an installed layout).
pub fn library() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(mig_proto::env::LIB).filter(|v| !v.is_empty()) {
        let p = absolute(Path::new(&p))?;
        if !p.is_file() {
            return Err(Fail::new(format!("MIG_LIB names {}, which is not a file", p.display())));
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().map_err(|e| Fail::new(format!("cannot find the mig executable: {e}")))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates = [dir.join("libmig.so"), dir.join("../lib/mig/libmig.so")];
    for c in &candidates {
        if c.is_file() {
            return std::fs::canonicalize(c).map_err(|e| Fail::new(format!("{}: {e}", c.display())));
        }
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(Fail::new(format!("cannot find libmig.so: looked at {} (install with scripts/install.sh, or set MIG_LIB to its path)", looked.join(" and "))))
}

/// `LD_PRELOAD` with the library first and whatever was preloaded already after it.
pub fn preload_value(lib: &Path) -> std::ffi::OsString {
    let mut v = lib.as_os_str().to_os_string();
    if let Some(old) = std::env::var_os(mig_proto::env::PRELOAD).filter(|o| !o.is_empty()) {
        let dup = old.to_string_lossy().split([':', ' ']).any(|e| Path::new(e) == lib);
        if !dup {
            v.push(":");
            v.push(old);
        }
    }
    v
}

/// Creates `<dst>.tmp.<random>` (mode 0600) exclusively, never through a link, and
/// locks it while it is written, as the library does its own image files (its sweep
/// of files left by dead writers then leaves this one alone).
pub fn create_beside(dst: &Path) -> Result<(PathBuf, std::fs::File)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    for _ in 0..8 {
        let mut b = [0u8; 8];
        // SAFETY: writing 8 bytes into `b`.
        unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, libc::GRND_NONBLOCK) };
        let mut tmp = dst.as_os_str().to_os_string();
        tmp.push(format!(".tmp.{:016x}", u64::from_le_bytes(b) ^ std::process::id() as u64));
        let tmp = PathBuf::from(tmp);
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&tmp) {
            Ok(f) => {
                // SAFETY: flock on a descriptor we own.
                unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                return Ok((tmp, f));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Fail::new(format!("cannot create {}: {e}", tmp.display()))),
        }
    }
    Err(Fail::new(format!("cannot find a free name beside {}", dst.display())))
}

/// An I/O error as a person reads it: "No such file or directory", without Rust's
/// "(os error 2)".
pub fn io_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Is standard error a terminal?
pub fn stderr_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Says what `what` makes on stderr, with `MIG_LOG=debug` only.
pub fn debug(what: impl FnOnce() -> String) {
    if std::env::var(mig_proto::env::LOG).is_ok_and(|v| v == "debug") {
        eprintln!("mig: [debug] {}", what());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_000_000_000), "2000-02-29 00:00:00.000 UTC");
        assert_eq!(utc(1_700_000_000_123_000_000), "2023-11-14 22:13:20.123 UTC");
    }

    #[test]
    fn sizes_and_quotes() {
        assert_eq!(size(10), "10 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(sh_quote("/a/b"), "/a/b");
        assert_eq!(sh_quote("it's here"), "'it'\\''s here'");
        assert_eq!(json_str("a\"b\n\u{1}"), "\"a\\\"b\\n\\u0001\"");
    }
}
