//! mig's side of the checkpoint protocol with the library (see `checkpoint.rs`): the
//! control directory, request and result files, the checkpoint signal, and what
//! `/proc` says about the target process.

use crate::{Fail, Result};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// `/tmp/mig-<uid>/`, created with mode 0700 if missing; refused if it is not a
/// directory of ours that only we can enter (the library trusts what is in it).
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

/// The files of one checkpoint of `pid`.
pub struct Files {
    pub req: PathBuf,
    pub req_tmp: PathBuf,
    pub done: PathBuf,
    pub fifo: PathBuf,
}

impl Files {
    pub fn new(dir: &Path, pid: i32) -> Self {
        Files {
            req: dir.join(format!("{pid}.req")),
            req_tmp: dir.join(format!("{pid}.req.tmp")),
            done: dir.join(format!("{pid}.done")),
            fifo: dir.join(format!("{pid}.fifo")),
        }
    }
}

/// Removes `p`; a missing file is fine.
pub fn remove(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Fail::new(format!("cannot remove {}: {e}", p.display()))),
    }
}

/// Writes the request atomically: `<pid>.req.tmp`, then renamed to `<pid>.req`.
/// `to`: where the image goes (none: the process's own MIG_IMAGE).
pub fn write_request(f: &Files, to: Option<&Path>, opts: crate::checkpoint::Options) -> Result<()> {
    let mut text = String::new();
    if let Some(to) = to {
        let s = to.to_str().filter(|s| !s.contains('\n')).ok_or_else(|| Fail::new(format!("unusable image path {}", to.display())))?;
        text.push_str(&format!("to={s}\n"));
    }
    if opts.exit {
        text.push_str("exit=1\n");
    }
    if opts.portable {
        text.push_str("portable=1\n");
    }
    let err = |e: std::io::Error| Fail::new(format!("cannot write the request {}: {e}", f.req_tmp.display()));
    remove(&f.req_tmp)?;
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&f.req_tmp).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    drop(file);
    fs::rename(&f.req_tmp, &f.req).map_err(|e| Fail::new(format!("cannot put the request in place at {}: {e}", f.req.display())))
}

/// What the library wrote to `<pid>.done`.
#[derive(Debug)]
pub enum Done {
    Ok { path: PathBuf, bytes: u64, stopped_us: u64 },
    Error { reason: String },
}

/// The result file, if it is there yet (it appears by rename, whole).
pub fn read_done(p: &Path) -> Option<Done> {
    let text = fs::read_to_string(p).ok()?;
    Some(parse_done(&text))
}

pub fn parse_done(text: &str) -> Done {
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('='))).map(str::trim_end);
    match get("status") {
        Some("ok") => Done::Ok {
            path: PathBuf::from(get("path").unwrap_or("")),
            bytes: get("bytes").and_then(|v| v.parse().ok()).unwrap_or(0),
            stopped_us: get("stopped_us").and_then(|v| v.parse().ok()).unwrap_or(0),
        },
        Some("error") => Done::Error { reason: get("reason").unwrap_or("no reason given").to_string() },
        _ => Done::Error { reason: format!("unreadable result file: {:?}", text.lines().next().unwrap_or("")) },
    }
}

/// The checkpoint signal: `$MIG_SIGNAL` (a number, `SIGUSR1` or `USR1`), else SIGUSR1.
pub fn checkpoint_signal() -> Result<i32> {
    match std::env::var("MIG_SIGNAL") {
        Ok(v) if !v.is_empty() => parse_signal(&v).ok_or_else(|| Fail::bad(format!("MIG_SIGNAL={v} is not a signal"))),
        _ => Ok(libc::SIGUSR1),
    }
}

pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let table = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("CONT", libc::SIGCONT),
        ("TSTP", libc::SIGTSTP),
        ("WINCH", libc::SIGWINCH),
        ("PWR", libc::SIGPWR),
        ("SYS", libc::SIGSYS),
        ("URG", libc::SIGURG),
        ("IO", libc::SIGIO),
        ("PROF", libc::SIGPROF),
        ("VTALRM", libc::SIGVTALRM),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
    ];
    if let Some(&(_, n)) = table.iter().find(|(n, _)| *n == name) {
        return Some(n);
    }
    // RTMIN+n, RTMAX-n
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let off: i32 = if rest.is_empty() { 0 } else { rest.parse().ok()? };
        let n = base + sign * off;
        (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n).then_some(n)
    };
    if let Some(r) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), r.trim_start_matches('+'), 1);
    }
    if let Some(r) = name.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), r.trim_start_matches('-'), -1);
    }
    None
}

/// Sends `sig` to `pid`.
pub fn send(pid: i32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) has no memory preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Is `pid` a live process (not gone, not a zombie)?
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state is the first field after the command name, which ends with the last ')'.
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | Some("x") | None)
}

/// The command name of `pid`, for messages.
pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_else(|_| "?".into())
}

/// Refuses, with a reason, a pid that does not exist or does not run the library.
pub fn check_target(pid: i32) -> Result<()> {
    if pid <= 0 {
        return Err(Fail::bad(format!("{pid} is not a process id")));
    }
    if !alive(pid) {
        return Err(Fail::new(format!("no process with pid {pid}")));
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

/// A file the process has open whose name ends with `.tmp.<pid>`: the image being
/// written. Returns its path and current size.
pub fn image_in_progress(pid: i32) -> Option<(PathBuf, u64)> {
    let suffix = format!(".tmp.{pid}");
    for e in fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let Ok(target) = fs::read_link(e.path()) else { continue };
        if target.to_str().is_some_and(|t| t.ends_with(&suffix)) {
            let len = fs::metadata(e.path()).map(|m| m.len()).unwrap_or(0);
            return Some((target, len));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGUSR1"), Some(libc::SIGUSR1));
        assert_eq!(parse_signal("usr2"), Some(libc::SIGUSR2));
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("SIGFOO"), None);
        assert_eq!(parse_signal("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
    }

    #[test]
    fn done_files() {
        match parse_done("status=ok\npath=/a/b.mig\nbytes=8192\nstopped_us=1234\n") {
            Done::Ok { path, bytes, stopped_us } => {
                assert_eq!(path, Path::new("/a/b.mig"));
                assert_eq!((bytes, stopped_us), (8192, 1234));
            }
            d => panic!("{d:?}"),
        }
        match parse_done("status=error\nreason=no space left\n") {
            Done::Error { reason } => assert_eq!(reason, "no space left"),
            d => panic!("{d:?}"),
        }
        assert!(matches!(parse_done(""), Done::Error { .. }));
    }

    #[test]
    fn library_in_maps() {
        let m = "7f00-7f10 r-xp 00000000 08:01 12 /work/target/release/libmig.so\n";
        assert!(maps_have_library(m));
        assert!(!maps_have_library("7f00-7f10 r-xp 00000000 08:01 12 /usr/lib/libmigx.so\n"));
    }
}
