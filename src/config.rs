//! `MIG_*` environment variables → `Settings`. Normal code (constructor, restore plan).

use crate::runtime::{FixedPath, Precopy, Settings};
use mig_proto::{env, signal};
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
    std::fs::read_link("/proc/self/exe").ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "process".into())
}

/// Settings for this process: `MIG_IMAGE` (default `<exe-name>.<pid>.mig` in the
/// directory the process started in), `MIG_LOG` and the others.
pub fn settings() -> Settings {
    let image = match std::env::var_os(env::IMAGE) {
        Some(p) if !p.is_empty() => absolute(Path::new(&p)),
        _ => absolute(Path::new(&format!("{}.{}.mig", exe_name(), std::process::id()))),
    };
    Settings {
        image: fixed(&image),
        debug: std::env::var(env::LOG).is_ok_and(|v| v.eq_ignore_ascii_case("debug")),
        interval_ms: std::env::var(env::INTERVAL)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(0, |s| (s * 1000.0).max(1.0) as u64),
        checkpoint_signal: std::env::var(env::SIGNAL).ok().and_then(|v| signal::parse(&v)).unwrap_or(libc::SIGUSR1 as u32),
        thread_signal: std::env::var(env::THREAD_SIGNAL).ok().and_then(|v| signal::parse(&v)),
        portable: std::env::var(env::PORTABLE).is_ok_and(|v| v == "1"),
        fork: std::env::var(env::FORK).map_or(true, |v| v != "0"),
        precopy: match std::env::var(env::PRECOPY).as_deref() {
            Ok("0") => Precopy::Off,
            Ok("1") => Precopy::On,
            _ => Precopy::Auto,
        },
    }
}
