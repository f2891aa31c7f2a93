//! What mig knows of a target process (`/proc`), the checkpoint signal, and the
//! control directory where a failed migration keeps its image.

use crate::{Fail, Result};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// `/tmp/mig-<uid>/`, created with mode 0700 if missing; refused if it is not a
/// directory of ours (another user may have made it first, or a link in its place).
pub fn control_dir() -> Result<PathBuf> {
    let dir = PathBuf::from(format!("/tmp/mig-{}", uid()));
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Fail::new(format!("cannot create the control directory {}: {e}", dir.display()))),
    }
    let m = fs::symlink_metadata(&dir).map_err(|e| Fail::new(format!("{}: {e}", dir.display())))?;
    if !m.is_dir() {
        return Err(Fail::new(format!("the control directory {} is not a directory", dir.display())));
    }
    if m.uid() != uid() {
        return Err(Fail::new(format!("the control directory {} belongs to another user", dir.display())));
    }
    if m.mode() & 0o077 != 0 {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| Fail::new(format!("cannot make {} private: {e}", dir.display())))?;
    }
    Ok(dir)
}

/// The signal that asks `pid` for a checkpoint: mig's own `MIG_SIGNAL` when set, else
/// the request signal the process's library publishes (always its own, whatever the
/// program does with signals), else the `MIG_SIGNAL` of the process's environment
/// (where the library read it when the process started), else SIGUSR1.
pub fn checkpoint_signal(pid: i32, published: Option<&crate::reach::Published>) -> Result<i32> {
    let own = std::env::var(mig_proto::env::SIGNAL).ok().filter(|v| !v.is_empty()).map(|v| (v, "mig's"));
    if own.is_none()
        && let Some(p) = published.filter(|p| p.request_signal != 0)
    {
        return Ok(p.request_signal);
    }
    let theirs = || {
        let env = environ(pid)?;
        env.into_iter().find_map(|(k, v)| (k == mig_proto::env::SIGNAL && !v.is_empty()).then_some((v, "the process's")))
    };
    match own.or_else(theirs) {
        Some((v, whose)) => {
            mig_proto::signal::parse(&v).map(|n| n as i32).ok_or_else(|| Fail::bad(format!("MIG_SIGNAL={v} in {whose} environment is not a signal")))
        }
        None => Ok(libc::SIGUSR1),
    }
}

/// The variables of `pid`'s environment as it started (or was restored); `None` if it
/// cannot be read.
pub fn environ(pid: i32) -> Option<Vec<(String, String)>> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    let vars = raw.split(|&c| c == 0).filter_map(|kv| {
        let s = String::from_utf8_lossy(kv);
        s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
    });
    Some(vars.collect())
}

/// What `/proc/<pid>/stat` says of the process's state (`R`, `S`, `T`, `Z`...).
fn state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state is the first field after the command name, which ends with the last ')'.
    stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).and_then(|s| s.chars().next())
}

/// Is `pid` a live process (not gone, not a zombie)?
pub fn alive(pid: i32) -> bool {
    !matches!(state(pid), Some('Z' | 'X' | 'x') | None)
}

/// The command name of `pid`, for messages.
pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_else(|_| "?".into())
}

/// Refuses, with a reason, a pid that does not exist, has exited, is stopped, or does
/// not run the library.
pub fn check_target(pid: i32) -> Result<()> {
    if pid <= 0 {
        return Err(Fail::bad(format!("{pid} is not a process id")));
    }
    match state(pid) {
        None => return Err(Fail::new(format!("no process with pid {pid}"))),
        Some('Z' | 'X' | 'x') => {
            return Err(Fail::new(format!("process {pid} ({}) has exited (its parent has not reaped it yet)", comm(pid))));
        }
        Some('T' | 't') => return Err(stopped(pid)),
        Some(_) => {}
    }
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| {
        if e.kind() == ErrorKind::PermissionDenied {
            Fail::new(format!("cannot look into process {pid} ({}): permission denied (is it another user's?)", comm(pid)))
        } else {
            Fail::new(format!("cannot read /proc/{pid}/maps: {e}"))
        }
    })?;
    if !maps_have_library(&maps) {
        if !alive(pid) {
            return Err(Fail::new(format!("no process with pid {pid}")));
        }
        return Err(Fail::new(format!(
            "process {pid} ({}) is not running under mig: libmig.so is not loaded in it (start programs with `mig run`)",
            comm(pid)
        )));
    }
    Ok(())
}

/// Whether `pid` is stopped (Ctrl-Z, SIGSTOP, a debugger).
pub fn is_stopped(pid: i32) -> bool {
    matches!(state(pid), Some('T' | 't'))
}

/// A stopped process runs no handler: a request would wait, and be taken at its next
/// `kill -CONT`, for a checkpoint nobody waits for any more. Said instead.
pub fn stopped(pid: i32) -> Fail {
    Fail::new(format!(
        "process {pid} ({}) is stopped (Ctrl-Z, SIGSTOP or a debugger): let it go on first (kill -CONT {pid}); nothing was asked of it",
        comm(pid)
    ))
}

/// Whether `pid` has the library loaded.
pub fn runs_library(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| maps_have_library(&m))
}

fn maps_have_library(maps: &str) -> bool {
    maps.lines().any(|l| {
        let path = l.split_whitespace().nth(5).unwrap_or("");
        Path::new(path).file_name().is_some_and(|n| n == "libmig.so")
    })
}

/// The working directory of `pid`.
pub fn cwd(pid: i32) -> Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).map_err(|e| Fail::new(format!("cannot read the working directory of process {pid}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_in_maps() {
        let m = "7f00-7f10 r-xp 00000000 08:01 12 /work/target/release/libmig.so\n";
        assert!(maps_have_library(m));
        assert!(!maps_have_library("7f00-7f10 r-xp 00000000 08:01 12 /usr/lib/libmigx.so\n"));
    }
}
