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
        save_files: std::env::var(env::SAVE_FILES).ok().and_then(|v| save_files(&v)).unwrap_or(SAVE_FILES_DEFAULT),
        owner_pid: std::process::id(),
        job_root: job_root(),
        supervised: std::env::var(env::CHECKPOINT_ON)
            .map(|v| v.split(',').filter_map(|s| signal::parse(s.trim())).fold(0u64, |m, s| m | 1 << (s - 1)))
            .unwrap_or(0),
        parent_guard: std::env::var(env::PARENT_GUARD).is_ok_and(|v| v == "1"),
    }
}

/// The parent, if it runs the library with the same `MIG_IMAGE` as this process (which
/// inherited both): this process is a member of the parent's job.
fn job_root() -> u32 {
    let Some(image) = std::env::var_os(env::IMAGE).filter(|v| !v.is_empty()) else { return 0 };
    let parent = std::os::unix::process::parent_id();
    // `mig restart`, which started this process with its saved pid and waits for it, is
    // no member of a job, whatever its environment says.
    if std::fs::read_link(format!("/proc/{parent}/exe")).is_ok_and(|e| e.file_name().is_some_and(|n| n == "mig")) {
        return 0;
    }
    let Ok(environ) = std::fs::read(format!("/proc/{parent}/environ")) else { return 0 };
    let mut same_image = false;
    let mut preloaded = false;
    for var in environ.split(|&c| c == 0) {
        if let Some(v) = var.strip_prefix(format!("{}=", env::IMAGE).as_bytes()) {
            same_image = v == image.as_encoded_bytes();
        }
        if let Some(v) = var.strip_prefix(b"LD_PRELOAD=") {
            preloaded = v.windows(9).any(|w| w == b"libmig.so");
        }
    }
    if same_image && preloaded { parent } else { 0 }
}

/// Files open for writing up to 1 MiB have their contents saved unless told otherwise.
pub const SAVE_FILES_DEFAULT: u64 = 1 << 20;

/// `MIG_SAVE_FILES`: `none`, `all`, or a size (`1M`, `512K`, `2G`, bytes).
pub fn save_files(v: &str) -> Option<u64> {
    let v = v.trim();
    match v.to_ascii_lowercase().as_str() {
        "none" | "0" => return Some(0),
        "all" => return Some(u64::MAX),
        _ => {}
    }
    let (digits, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => v.split_at(i),
        None => (v, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    #[test]
    fn save_files_takes_words_and_sizes() {
        use super::save_files;
        assert_eq!(save_files("none"), Some(0));
        assert_eq!(save_files("ALL"), Some(u64::MAX));
        assert_eq!(save_files("1M"), Some(1 << 20));
        assert_eq!(save_files("512k"), Some(512 << 10));
        assert_eq!(save_files("4096"), Some(4096));
        assert_eq!(save_files("lots"), None);
        assert_eq!(save_files("1T"), None);
    }
}
