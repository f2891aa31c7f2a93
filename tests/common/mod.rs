//! Test driver: compiles the C subjects in `c-tests/`, runs them under the library,
//! checkpoints, kills, restarts, and compares with an uninterrupted run.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/libmig.so`, built by cargo alongside the tests (or the one in
/// `$MIG_TEST_BUILD`, see `build_under_test`).
pub fn lib() -> PathBuf {
    if let Some(dir) = build_under_test() {
        let lib = dir.join("libmig.so");
        assert!(lib.exists(), "{} not built", lib.display());
        return lib;
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let lib = profile_dir.join("libmig.so");
    assert!(lib.exists(), "{} not built", lib.display());
    lib
}

/// A fresh, empty directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles `c-tests/<name>.c` once per test process; returns the binary.
pub fn compile(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let src = repo().join("c-tests").join(format!("{name}.c"));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.{}", std::process::id()));
    let text = std::fs::read_to_string(&src).unwrap();
    let mut cmd = Command::new("cc");
    cmd.args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o"]).arg(&out).arg(&src);
    if text.starts_with("// cflags: -pthread") {
        cmd.arg("-pthread");
    }
    let st = cmd.status().expect("cc");
    assert!(st.success(), "compiling {name} failed");
    built.insert(name.into(), out.clone());
    out
}

/// `c-tests/<name>/`, a Go program (with cgo, so that it is dynamically linked), built
/// with `go build`. Fails, naming it, where `go` is missing (./scripts/setup.sh
/// installs it).
pub fn compile_go(name: &str) -> PathBuf {
    let src = repo().join("c-tests").join(name);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.{}", std::process::id()));
    let st = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("CGO_ENABLED", "1")
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("path"))
        .env("GOFLAGS", "-mod=mod")
        .status()
        .unwrap_or_else(|e| panic!("go build of {name}: {e} (is golang-go installed? ./scripts/setup.sh installs it)"));
    assert!(st.success(), "go build of {name} failed");
    out
}

/// The real Python 3 binary (not a pyenv shim script).
pub fn python3() -> Option<PathBuf> {
    let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().ok()?;
    let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    p.exists().then_some(p)
}

/// A running subject whose stdout lines arrive on a channel.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    /// Next stdout line, or `None` at end of output.
    pub fn line(&mut self) -> Option<String> {
        let l = self.lines.recv_timeout(TIMEOUT).ok()?;
        self.seen.push(l.clone());
        Some(l)
    }
    /// Next stdout line if one comes within `wait` (`None`: none yet, or the end).
    pub fn line_within(&mut self, wait: Duration) -> Option<String> {
        let l = self.lines.recv_timeout(wait).ok()?;
        self.seen.push(l.clone());
        Some(l)
    }
    /// Reads until a line starts with `prefix`.
    pub fn until(&mut self, prefix: &str) -> String {
        loop {
            match self.line() {
                Some(l) if l.starts_with(prefix) => return l,
                Some(_) => {}
                None => panic!("no line starting with {prefix:?}; saw {:?}", self.seen),
            }
        }
    }
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }
    /// SIGKILL; returns everything it printed (the pipe is drained to its end).
    pub fn kill(mut self) -> Vec<String> {
        self.signal(libc::SIGKILL);
        self.child.wait().unwrap();
        while self.line().is_some() {}
        std::mem::take(&mut self.seen)
    }
    /// Reads everything until the end of output, then the exit status.
    pub fn finish(mut self) -> (Vec<String>, ExitStatus, String) {
        while self.line().is_some() {}
        let status = wait_timeout(&mut self.child);
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut err).unwrap();
        }
        (std::mem::take(&mut self.seen), status, err)
    }
}

impl Drop for Proc {
    /// A subject still running when its test lets go of it (a failed assertion) is
    /// killed, not left behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_timeout(child: &mut Child) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("subject did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How to start a subject.
#[derive(Clone)]
pub struct Launch {
    pub cmd: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub preload: bool,
    /// Run as this user (uid and gid, no supplementary groups) instead of the tests'.
    pub user: Option<u32>,
    /// Run without CAP_NET_ADMIN, though as root.
    pub no_net_admin: bool,
}

impl Launch {
    pub fn new(bin: &Path, dir: &Path) -> Self {
        Launch { cmd: vec![bin.display().to_string()], cwd: dir.to_path_buf(), env: vec![], preload: true, user: None, no_net_admin: false }
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.cmd.push(a.into());
        self
    }
    pub fn env(mut self, k: &str, v: impl AsRef<Path>) -> Self {
        self.env.push((k.into(), v.as_ref().display().to_string()));
        self
    }
    pub fn bare(mut self) -> Self {
        self.preload = false;
        self
    }
    /// Runs as user `uid` (group `uid`, no supplementary groups): see `Sandbox`.
    pub fn run_as(mut self, uid: u32) -> Self {
        self.user = Some(uid);
        self
    }
    /// Runs without CAP_NET_ADMIN (dropped from the bounding set: root's inheritable
    /// set is empty), so that the kernel's TCP repair mode is refused.
    pub fn without_net_admin(mut self) -> Self {
        self.no_net_admin = true;
        self
    }
    /// The subject's command: its arguments, directory and environment.
    fn command(&self) -> Command {
        let mut c = Command::new(&self.cmd[0]);
        c.args(&self.cmd[1..]).current_dir(&self.cwd);
        for k in ["MIG_IMAGE", "MIG_RESTORE", "MIG_LOG", "LD_PRELOAD", "MIG_TRUST_IMAGE"] {
            c.env_remove(k);
        }
        if self.preload {
            c.env("LD_PRELOAD", lib());
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
    pub fn start(&self) -> Proc {
        let mut c = self.command();
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Only 0, 1 and 2: whatever the test runner inherited is not the subject's.
        let (user, no_net_admin) = (self.user, self.no_net_admin);
        // SAFETY: close_range, prctl, setgroups, setgid and setuid are async-signal-safe,
        // as pre_exec requires.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                const CAP_NET_ADMIN: libc::c_ulong = 12;
                if no_net_admin && libc::prctl(libc::PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                match user {
                    Some(uid) => become_user(uid),
                    None => Ok(()),
                }
            });
        }
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.cmd));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                if tx.send(l.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines: rx, seen: vec![] }
    }
}

/// Waits until `path` exists (an image appears by rename, all at once).
pub fn wait_for_file(path: &Path) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(t0.elapsed() < TIMEOUT, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends SIGUSR1 once `step <at>` has been printed and waits for the image; the
/// subject keeps running. Returns the image path.
pub fn checkpoint_at(p: &mut Proc, at: u32, image: &Path) {
    let _ = std::fs::remove_file(image);
    p.until(&format!("step {at} "));
    p.signal(libc::SIGUSR1);
    wait_for_file(image);
}

/// The step number of a `step <n> <digest>` line.
pub fn step_of(line: &str) -> Option<u32> {
    line.strip_prefix("step ")?.split(' ').next()?.parse().ok()
}

/// Asserts that `restored` (the whole output of a restarted run) continues `before`
/// (what the first run printed before it was killed) exactly as `reference` (an
/// uninterrupted run) goes on: no step missing, none different, same end.
pub fn assert_continues(reference: &[String], before: &[String], restored: &[String]) {
    assert!(!restored.is_empty(), "the restored run printed nothing");
    let first = step_of(&restored[0]).unwrap_or_else(|| panic!("restored run starts with {:?}", restored[0]));
    let last_before = before.iter().rev().find_map(|l| step_of(l)).unwrap_or(0);
    assert!(first <= last_before + 1, "restored run skipped steps: resumed at {first}, killed after {last_before}");
    let at = reference.iter().position(|l| step_of(l) == Some(first)).expect("first restored step in reference");
    assert_eq!(&reference[at..], restored, "restored run differs from the uninterrupted one");
    assert_eq!(&reference[..at], &before[..at.min(before.len())], "first run differs from the uninterrupted one");
}

/// The uninterrupted run's output (also checks it exits 0).
pub fn reference(l: &Launch) -> Vec<String> {
    let (lines, st, err) = l.start().finish();
    assert!(st.success(), "uninterrupted run failed: {st:?} {err}");
    assert!(lines.last().is_some_and(|l| l.starts_with("done")), "no done line: {lines:?}");
    lines
}

/// Runs `l` with the library, never signalled, and checks it prints what it prints
/// without (and succeeds); returns its stderr.
pub fn same_as_without_mig(l: &Launch) -> String {
    let bare = reference(&l.clone_bare());
    let (lines, st, err) = l.start().finish();
    assert!(st.success(), "{st:?} {lines:?} {err}");
    assert_eq!(lines, bare, "{err}");
    err
}

/// `checkpoint_kill_restart` of `c-tests/<name>.c` in a fresh directory, checkpointed at
/// step `at`.
pub fn subject(name: &str, at: u32) -> String {
    let dir = tempdir(name);
    checkpoint_kill_restart(Launch::new(&compile(name), &dir), at)
}

/// The core scenario: run, checkpoint at `at`, let it go on, SIGKILL, restart from
/// the image, and compare with an uninterrupted run. Returns the restarted stderr.
pub fn checkpoint_kill_restart(l: Launch, at: u32) -> String {
    let reference = reference(&l.clone_bare());
    let image = l.cwd.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, at, &image);
    p.line().expect("the subject keeps running after a checkpoint");
    let before = p.kill();
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert!(st.success(), "restored run failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert_continues(&reference, &before, &restored);
    err
}

impl Launch {
    pub fn clone_with(&self, k: &str, v: &Path) -> Launch {
        self.clone().env(k, v)
    }
    pub fn clone_bare(&self) -> Launch {
        self.clone().bare()
    }
}

// ---- Added for the descriptor tests (tests/fds.rs) ----

impl Proc {
    /// Collects the subject's stderr on a thread (so a chatty subject never blocks on
    /// it); the handle yields everything once the subject is gone.
    pub fn stderr_collector(&mut self) -> std::thread::JoinHandle<String> {
        let mut e = self.child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
            s
        })
    }
}

/// `checkpoint_kill_restart`, also returning what the first run printed on stderr
/// (the checkpoint's warnings): `(checkpoint stderr, restored stderr)`.
pub fn checkpoint_kill_restart_warnings(l: Launch, at: u32) -> (String, String) {
    let reference = reference(&l.clone_bare());
    let image = l.cwd.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let first_err = p.stderr_collector();
    checkpoint_at(&mut p, at, &image);
    p.line().expect("the subject keeps running after a checkpoint");
    let before = p.kill();
    let first_err = first_err.join().unwrap();
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert!(st.success(), "restored run failed: {st:?}\nstderr: {err}\nstdout: {restored:?}\ncheckpoint stderr: {first_err}");
    assert_continues(&reference, &before, &restored);
    (first_err, err)
}

/// Whether `err` has a mig warning naming descriptor `fd` ("descriptor 5 ", "descriptor 5 (",
/// not "descriptor 50").
pub fn warns_about_fd(err: &str, fd: i32) -> bool {
    let key = format!("descriptor {fd}");
    err.lines().any(|l| l.contains("warning") && l.match_indices(&key).any(|(i, _)| !l[i + key.len()..].starts_with(|c: char| c.is_ascii_digit())))
}

/// Checkpoint at step `at`, roll back in place with SIGUSR2 once step `roll_at` is
/// printed, and check that the same process goes on from the checkpoint exactly as an
/// uninterrupted run. Returns the process's stderr.
pub fn checkpoint_rollback(l: &Launch, at: u32, roll_at: u32) -> String {
    let reference = reference(&l.clone_bare());
    let image = l.cwd.join("rollback.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let err = p.stderr_collector();
    checkpoint_at(&mut p, at, &image);
    p.until(&format!("step {roll_at} "));
    p.signal(libc::SIGUSR2);
    let mut last = roll_at;
    let rolled_from = loop {
        let Some(s) = p.line().as_deref().and_then(step_of) else {
            p.signal(libc::SIGKILL);
            panic!("no rollback before the run ended; saw {:?}\nstderr:\n{}", p.seen, err.join().unwrap());
        };
        // The first step back: the image may hold a step or two more than `at` (the
        // program runs on until the checkpoint stops it).
        if s <= last && s <= at + 3 {
            break p.seen.len() - 1;
        }
        last = s;
    };
    let (all, st, _) = p.finish();
    let err = err.join().unwrap();
    assert!(st.success(), "rolled-back run failed: {st:?}\nstderr: {err}\nstdout: {all:?}");
    assert_eq!(&all[..rolled_from], &reference[..rolled_from], "the run before the rollback differs");
    let first = step_of(&all[rolled_from]).unwrap();
    assert!((at..=at + 3).contains(&first), "rolled back to step {first}, the checkpoint was at step {at}");
    let i = reference.iter().position(|r| step_of(r) == Some(first)).unwrap();
    assert_eq!(&reference[i..], &all[rolled_from..], "the rolled-back run must go on as the original did");
    err
}

/// A new pseudo-terminal: (master, slave).
pub fn openpty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty fills in two new descriptors; null name/termios/winsize are allowed.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are fresh descriptors we own.
    unsafe { (std::os::fd::OwnedFd::from_raw_fd(m), std::os::fd::OwnedFd::from_raw_fd(s)) }
}

impl Launch {
    /// Starts the subject on a new pseudo-terminal: the slave is its stdin, stdout,
    /// stderr and controlling terminal (new session). Lines read from the master
    /// (stdout and stderr mixed, `\r` kept) arrive through the returned `Proc`; the
    /// returned master writes to the subject's terminal input.
    pub fn start_on_pty(&self) -> (Proc, std::fs::File) {
        use std::os::fd::AsRawFd;
        assert!(self.user.is_none(), "start_on_pty runs as the tests' user");
        let (master, slave) = openpty();
        let mut c = self.command();
        c.stdin(Stdio::from(slave.try_clone().unwrap()));
        c.stdout(Stdio::from(slave.try_clone().unwrap()));
        c.stderr(Stdio::from(slave));
        // SAFETY: setsid, ioctl and close_range are async-signal-safe, as pre_exec requires.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                Ok(())
            });
        }
        let child = c.spawn().unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.cmd));
        drop(c); // our copies of the slave: the master sees EIO once the subject is gone
        assert!(master.as_raw_fd() > 2);
        let writer = std::fs::File::from(master.try_clone().unwrap());
        let reader = std::fs::File::from(master);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            loop {
                let mut buf = Vec::new();
                // EIO (no slave left) or end of file ends the output.
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    break;
                }
            }
        });
        (Proc { child, lines: rx, seen: vec![] }, writer)
    }
}

/// Builds `libstep.so` (with `factor`) and `uses_lib` in `dir`.
pub fn build_uses_lib(dir: &Path, factor: u32) -> PathBuf {
    let src = repo().join("c-tests");
    let ok = Command::new("cc")
        .args(["-O1", "-shared", "-fPIC", &format!("-DSTEP_FACTOR={factor}"), "-o"])
        .arg(dir.join("libstep.so"))
        .arg(src.join("libstep.c"))
        .status()
        .unwrap();
    assert!(ok.success());
    let bin = dir.join("uses_lib");
    if !bin.exists() {
        let ok = Command::new("cc")
            .args(["-O1", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&bin)
            .arg(src.join("uses_lib.c"))
            .arg(format!("-L{}", dir.display()))
            .args(["-lstep", "-Wl,-rpath,$ORIGIN"])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    bin
}

/// The `mig` binary, with `libmig.so` beside it (cargo does not build a cdylib for
/// integration tests: built here if `cargo build --release` was not run first).
pub fn mig() -> PathBuf {
    if let Some(dir) = build_under_test() {
        let bin = dir.join("mig");
        assert!(bin.exists() && dir.join("libmig.so").exists(), "{} has no mig and libmig.so", dir.display());
        return bin;
    }
    static LIB: std::sync::Once = std::sync::Once::new();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mig"));
    LIB.call_once(|| {
        let lib = bin.parent().unwrap().join("libmig.so");
        if !lib.exists() {
            let mut c = Command::new(env!("CARGO"));
            c.args(["build", "--lib", "-p", "mig"]).current_dir(repo());
            if bin.parent().unwrap().ends_with("release") {
                c.arg("--release");
            }
            let st = c.status().expect("cargo build --lib");
            assert!(st.success() && lib.exists(), "building {} failed", lib.display());
        }
    });
    bin
}

/// `mig <args>`, with no MIG_* variables from the environment.
pub fn mig_cmd(args: &[&str]) -> Command {
    mig_cmd_of(&mig(), args)
}

/// `mig_cmd` of the `mig` binary at `bin`.
pub fn mig_cmd_of(bin: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args).stdin(Stdio::null());
    for k in ["MIG_IMAGE", "MIG_RESTORE", "MIG_LOG", "LD_PRELOAD", "MIG_INTERVAL", "MIG_SIGNAL", "MIG_SSH", "MIG_COMPRESS", "MIG_TRUST_IMAGE"] {
        c.env_remove(k);
    }
    c
}

// ---- The build under test, other users, what a process has (tests/security.rs) ----

/// `$MIG_TEST_BUILD`: a directory with another build's `mig` and `libmig.so` (e.g. an
/// older commit's `target/release`) that `lib()` and `mig()` then return, so that the
/// tests can be run against it: `MIG_TEST_BUILD=/old/target/release cargo test …`.
pub fn build_under_test() -> Option<PathBuf> {
    std::env::var_os("MIG_TEST_BUILD").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// In a child before exec: becomes user `uid` (group `uid`, no supplementary groups).
/// Async-signal-safe (for `pre_exec`).
pub fn become_user(uid: u32) -> std::io::Result<()> {
    // SAFETY: plain system calls; the order drops the groups while still allowed to.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(uid) != 0 || libc::setuid(uid) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `c` runs as user `uid` (group `uid`, no supplementary groups).
pub fn run_as(c: &mut Command, uid: u32) -> &mut Command {
    // SAFETY: become_user is async-signal-safe.
    unsafe { std::os::unix::process::CommandExt::pre_exec(c, move || become_user(uid)) }
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Fails (never skips) a test that needs root, saying why.
pub fn require_root(why: &str) {
    assert_eq!(euid(), 0, "this test must run as root ({why}); CI runs the tests as root");
}

/// The uids of /etc/passwd, the gids of /etc/group, and the real, effective, saved and
/// file-system uids of every process.
fn uids_in_use() -> std::collections::HashSet<u32> {
    let mut used = std::collections::HashSet::new();
    for f in ["/etc/passwd", "/etc/group"] {
        for l in std::fs::read_to_string(f).unwrap_or_default().lines() {
            if let Some(id) = l.split(':').nth(2).and_then(|v| v.parse().ok()) {
                used.insert(id);
            }
        }
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        if let Some(l) = status.lines().find(|l| l.starts_with("Uid:")) {
            used.extend(l.split_whitespace().skip(1).filter_map(|v| v.parse::<u32>().ok()));
        }
    }
    used
}

/// `n` uids (each also a gid) that no account, group, process or `/tmp/mig-<uid>`
/// has, from 50000 up, never the same twice in one test process.
pub fn unused_uids(n: usize) -> Vec<u32> {
    static TAKEN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let used = uids_in_use();
    let start = 50_000 + (std::process::id() % 20_000) * 8;
    let found: Vec<u32> =
        (start..start + 400_000).filter(|u| !used.contains(u) && !taken.contains(u) && !Path::new(&format!("/tmp/mig-{u}")).exists()).take(n).collect();
    assert_eq!(found.len(), n, "no {n} unused uids");
    taken.extend(&found);
    found
}

/// `(state, uid)` of a process from `/proc/<pid>/status` (`None`: gone).
pub fn proc_state(pid: i32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let state = s.lines().find_map(|l| l.strip_prefix("State:"))?.trim().chars().next()?;
    let uid = s.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((state, uid))
}

/// Is `pid` there and not a zombie?
/// The process restored under `pid`: the one a `mig restart` waits for (it started
/// it with its saved pid), else `pid` itself.
pub fn restored(pid: i32) -> i32 {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    match children_of(pid)[..] {
        [only] if comm.trim_end() == "mig" => only,
        _ => pid,
    }
}

pub fn alive(pid: i32) -> bool {
    proc_state(pid).is_some_and(|(s, _)| s != 'Z' && s != 'X')
}

/// The process named `name` (`mig-writer`, `mig-copier`) that has `file` open: how a
/// test finds a checkpoint's writer or copier, which is no child of the program.
pub fn holder_of(name: &str, file: &Path) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() != name).unwrap_or(true) {
            continue;
        }
        if std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten().any(|f| std::fs::read_link(f.path()).is_ok_and(|l| l == file)) {
            return Some(pid);
        }
    }
    None
}

/// The children of every thread of `pid` (`/proc/<pid>/task/*/children`): none of mig's
/// (its writers, copiers and loaders are no children of the program).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = vec![];
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let c = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(c.split_whitespace().filter_map(|v| v.parse::<i32>().ok()));
    }
    out
}

/// The abstract UNIX socket names (without the `@`) in `/proc/net/unix` starting
/// with `prefix`.
pub fn abstract_sockets(prefix: &str) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/net/unix").unwrap();
    text.lines().filter_map(|l| l.split_whitespace().nth(7)).filter_map(|p| p.strip_prefix('@')).filter(|p| p.starts_with(prefix)).map(String::from).collect()
}

/// Whether `sig` is set in the mask `field` (`SigBlk`, `SigPnd`, `ShdPnd`…) of process
/// `pid`'s status.
pub fn signal_in(pid: i32, field: &str, sig: i32) -> bool {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = s.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    mask.is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

/// Polls `f` every few milliseconds until it returns `Some`, or fails with `what`
/// after `limit`.
pub fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "{what} (waited {limit:?})");
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// The files in `dir` whose names start with `prefix`, sorted.
pub fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(prefix)).map(|e| e.path()).collect();
    v.sort();
    v
}

/// `mig inspect --json IMAGE` (as the tests' user): the parsed report; fails unless it
/// says the image is intact.
pub fn inspect_intact(image: &Path) -> serde_json::Value {
    let o = mig_cmd(&["inspect", "--json", image.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("mig inspect {}: not JSON ({e}): {text} {}", image.display(), String::from_utf8_lossy(&o.stderr)));
    assert!(o.status.success() && v["intact"] == true, "{} is not intact: {}", image.display(), String::from_utf8_lossy(&o.stderr));
    v
}

/// A directory under /tmp for tests with other users (every user can reach it, unlike
/// a checkout under a private home): `bin/` holds copies of the `mig` and `libmig.so`
/// under test and of the subjects; each user gets a private directory, and there is a
/// shared sticky one. Dropping it kills every process of its users (which nobody else
/// has: see `unused_uids`), removes their `/tmp/mig-<uid>` and the whole directory.
pub struct Sandbox {
    pub root: PathBuf,
    pub bin: PathBuf,
    pub uids: Vec<u32>,
}

impl Sandbox {
    /// A sandbox with `users` fresh users (needs root).
    pub fn new(name: &str, users: usize) -> Sandbox {
        use std::os::unix::fs::PermissionsExt;
        require_root("it runs processes as other users, made up for it");
        let root = PathBuf::from(format!("/tmp/mig-sec.{}.{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for d in [&root, &bin] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let from = mig();
        let sb = Sandbox { root, bin, uids: unused_uids(users) };
        for f in ["mig", "libmig.so"] {
            std::fs::copy(from.parent().unwrap().join(f), sb.bin.join(f)).unwrap();
        }
        sb
    }

    pub fn mig(&self) -> PathBuf {
        self.bin.join("mig")
    }

    /// `subject` in `dir` as user `uid`, preloaded with the sandbox's `libmig.so`.
    pub fn launch(&self, subject: &Path, dir: &Path, uid: u32) -> Launch {
        Launch::new(subject, dir).bare().clone_with("LD_PRELOAD", &self.bin.join("libmig.so")).run_as(uid)
    }

    /// `c-tests/<name>.c`, built, in `bin/` (mode 0755).
    pub fn subject(&self, name: &str) -> PathBuf {
        let p = self.bin.join(name);
        if !p.exists() {
            std::fs::copy(compile(name), &p).unwrap();
        }
        p
    }

    /// `<root>/u<uid>`: user `uid`'s own directory, `mode`, made on first use.
    pub fn home(&self, uid: u32, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let d = self.root.join(format!("u{uid}"));
        if !d.exists() {
            std::fs::create_dir(&d).unwrap();
            std::os::unix::fs::chown(&d, Some(uid), Some(uid)).unwrap();
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        d
    }

    /// `<root>/shared`: anyone may create files there, only their owner remove them
    /// (mode 1777, like /tmp).
    pub fn shared(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let d = self.root.join("shared");
        let _ = std::fs::create_dir(&d);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        d
    }

    /// `mig ARGS` (the sandbox's copy, no MIG_* from the environment), as `uid` if given.
    pub fn mig_as(&self, uid: Option<u32>, args: &[&str]) -> Command {
        let mut c = mig_cmd_of(&self.mig(), args);
        if let Some(u) = uid {
            run_as(&mut c, u);
        }
        c
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Every process of these users is one of this test's (or a child of one).
        let mine = |pid: i32| proc_state(pid).is_some_and(|(s, uid)| s != 'Z' && self.uids.contains(&uid));
        let pids = || -> Vec<i32> {
            std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter(|&p| mine(p)).collect()
        };
        let t0 = Instant::now();
        loop {
            let left = pids();
            if left.is_empty() || t0.elapsed() > Duration::from_secs(5) {
                break;
            }
            for p in left {
                // SAFETY: kill(2) of a process of this test's own users.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for u in &self.uids {
            let d = PathBuf::from(format!("/tmp/mig-{u}"));
            if std::fs::symlink_metadata(&d).is_ok_and(|m| self.uids.contains(&std::os::unix::fs::MetadataExt::uid(&m))) {
                let _ = std::fs::remove_dir_all(&d);
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Runs `c` to its end: its status, stdout and stderr.
pub fn output(c: &mut Command) -> (ExitStatus, String, String) {
    let std::process::Output { status, stdout, stderr } = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    (status, String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}
