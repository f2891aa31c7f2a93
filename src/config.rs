//! `MIG_*` environment variables → `Settings`. Normal code (constructor, restore plan).

use crate::runtime::{FixedPath, Precopy, Settings};
use std::path::{Path, PathBuf};

/// Makes `p` absolute against the current directory.
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn fixed(p: &Path) -> FixedPath {
    FixedPath::new(p.as_os_str().as_encoded_bytes()).unwrap_or(FixedPath::EMPTY)
}

/// The executable's file name, for the default image name.
pub fn exe_name() -> String {
    std::fs::read_link("/proc/self/exe")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "process".into())
}

/// Settings for this process: `MIG_IMAGE` (default `<exe-name>.<pid>.mig` in the
/// directory the process started in), `MIG_LOG` and the others.
pub fn settings() -> Settings {
    let image = match std::env::var_os("MIG_IMAGE") {
        Some(p) if !p.is_empty() => absolute(Path::new(&p)),
        _ => absolute(Path::new(&format!("{}.{}.mig", exe_name(), std::process::id()))),
    };
    Settings {
        image: fixed(&image),
        debug: std::env::var("MIG_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug")),
        interval_ms: std::env::var("MIG_INTERVAL")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(0, |s| (s * 1000.0).max(1.0) as u64),
        checkpoint_signal: std::env::var("MIG_SIGNAL").ok().and_then(|v| parse_signal(&v)).unwrap_or(libc::SIGUSR1 as u32),
        thread_signal: std::env::var("MIG_THREAD_SIGNAL").ok().and_then(|v| parse_signal(&v)),
        portable: std::env::var("MIG_PORTABLE").is_ok_and(|v| v == "1"),
        fork: std::env::var("MIG_FORK").map_or(true, |v| v != "0"),
        precopy: match std::env::var("MIG_PRECOPY").as_deref() {
            Ok("0") => Precopy::Off,
            Ok("1") => Precopy::On,
            _ => Precopy::Auto,
        },
    }
}

/// A signal by number (`40`) or name (`SIGRTMIN+3`, `RTMAX-1`, `USR1`).
pub fn parse_signal(v: &str) -> Option<u32> {
    let v = v.trim();
    let name = v.strip_prefix("SIG").unwrap_or(v);
    let rel = |base: i32, rest: &str| -> Option<u32> {
        let off: i32 = if rest.is_empty() { 0 } else { rest.parse().ok()? };
        u32::try_from(base + off).ok()
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        rel(libc::SIGRTMIN(), rest)?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        rel(libc::SIGRTMAX(), rest)?
    } else {
        match name {
            "USR1" => libc::SIGUSR1 as u32,
            "USR2" => libc::SIGUSR2 as u32,
            _ => name.parse().ok()?,
        }
    };
    (1..=64).contains(&n).then_some(n)
}
