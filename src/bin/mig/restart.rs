//! `mig restart`: start a process from an image.
//!
//! mig checks the whole image first (so a damaged one is refused before anything
//! starts), then execs the image's executable with MIG_RESTORE and LD_PRELOAD in the
//! image's working directory: the restored process replaces `mig restart` (same pid,
//! same standard streams).

use crate::compress::{self, Stop};
use crate::terminal_proxy::Proxy;
use crate::util;
use crate::{Fail, Result};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// What `--confirm` prints on stderr as soon as it runs, for `mig migrate`.
pub const READY: &str = "mig-restart: ready";
/// What `--confirm` prints once the restored process runs: `<this> <pid>`.
pub const RUNNING: &str = "mig-restart: running";
/// What `--detach` prints: `<this> <file>`, where the restored process's output goes
/// once the connection that started it is gone.
pub const LOG: &str = "mig-restart: output after a disconnect goes to";

/// Start a process from an image (a file, or `-` for standard input).
///
/// The image's structure is checked first (a stream or compressed image: every byte):
/// a damaged or truncated image is refused (exit status 125) before anything starts.
/// Then mig becomes the image's executable,
/// started in the image's working directory with the library preloaded, and the
/// library puts the saved process back: its memory, registers, open files and
/// command line. The restored process has its saved pid where pids may be chosen (root,
/// or CAP_CHECKPOINT_RESTORE) and it is free: mig then waits for it, passes on the
/// signals it gets and ends with its status; elsewhere it has mig's pid. It has mig's
/// standard streams.
///
/// From `-`, the image is read into memory (a memfd: no file on disk) and handed to
/// the library as /proc/self/fd/<n>. A zstd-compressed image (from `mig checkpoint
/// --compress zstd`, a file or a stream) is recognised by its first bytes and
/// decompressed into such a memfd first. Such images are restored eagerly; a file is
/// restored lazily (its big regions loaded while the process runs, each block checked
/// before the process sees it, the process killed if one is damaged) unless
/// MIG_RESTORE_EAGER=1.
#[derive(clap::Args)]
#[command(after_long_help = "\
EXAMPLES:
  mig restart job.mig
  ssh otherhost 'mig checkpoint 4242 --exit --to -' | mig restart -

The executable, the libraries and the files the process had open must be where they
were, unchanged. If the restore itself fails, the library says why on stderr and the
process exits with status 125 (refused: nothing was replaced).")]
pub struct Args {
    /// The image, or `-` to read it from standard input.
    #[arg(value_name = "IMAGE|-")]
    pub image: PathBuf,
    /// Where the restored process writes its next images (sets MIG_IMAGE). Default:
    /// MIG_IMAGE as set for mig, else <exe-name>.<pid>.mig in the working directory.
    #[arg(long, value_name = "PATH")]
    pub image_out: Option<PathBuf>,
    /// Restore an image even if it is another user's file or others could have
    /// written to it (such images are refused otherwise: an image is code, run with
    /// your rights). Also MIG_TRUST_IMAGE=1.
    #[arg(long)]
    pub trust_image: bool,
    /// For `mig migrate`: report on stderr when mig starts and when the restored
    /// process runs.
    #[arg(long, hide = true)]
    pub confirm: bool,
    /// For `mig migrate`: the restored process does not depend on the connection that
    /// started it: its output passes through a relay of its own, which writes to a file
    /// once the connection is gone; its standard input is /dev/null.
    #[arg(long, hide = true)]
    pub detach: bool,
}

pub fn main(a: Args) -> Result<u8> {
    if a.confirm {
        eprintln!("{READY}");
    }
    let from_stdin = a.image.as_os_str() == "-";
    // A compressed image is decompressed into a memfd, checked whole and restored
    // eagerly, like one from standard input.
    let (file, restore_path, shown, in_memory) = if from_stdin {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            return Err(Fail::refused("refusing to read an image from a terminal (pipe one in, or give its path)"));
        }
        let shown = "standard input".to_string();
        let f = stdin_to_memfd(&shown)?;
        let p = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
        (f, p, shown, true)
    } else {
        let abs = util::absolute(&a.image)?;
        let mut f = File::open(&abs).map_err(|e| Fail::refused(format!("cannot restart from {}: cannot open it: {e}", abs.display())))?;
        let shown = abs.display().to_string();
        let trusted = a.trust_image || std::env::var(mig_proto::env::TRUST_IMAGE).is_ok_and(|v| v == "1");
        if !trusted {
            check_owner(&f).map_err(|why| Fail::refused(format!("cannot restart from {shown}: {why}")))?;
        }
        let head = compress::peek(&mut f).map_err(|e| Fail::refused(format!("cannot restart from {shown}: cannot read it: {e}")))?;
        if compress::is_zstd(&head) {
            let m = unpack_all(std::io::Cursor::new(head).chain(f), &shown)?;
            let p = PathBuf::from(format!("/proc/self/fd/{}", m.as_raw_fd()));
            (m, p, shown, true)
        } else {
            (f, abs.clone(), shown, false)
        }
    };
    let (exe, cwd) = check_image(&file, in_memory).map_err(|why| Fail::refused(format!("cannot restart from {shown}: {why}")))?;
    if !exe.is_file() {
        return Err(Fail::refused(format!("cannot restart from {shown}: its executable {} is missing", exe.display())));
    }
    if std::fs::metadata(&exe).is_ok_and(|m| m.mode() & (libc::S_ISUID | libc::S_ISGID) != 0) {
        return Err(Fail::refused(format!(
            "cannot restart from {shown}: its executable {} is setuid or setgid now: the loader would ignore libmig.so and the program would start from its beginning",
            exe.display()
        )));
    }
    if !cwd.is_dir() {
        return Err(Fail::refused(format!("cannot restart from {shown}: its working directory {} is missing", cwd.display())));
    }
    let lib = util::library().map_err(|f| Fail::refused(f.msg))?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg0(&exe).current_dir(&cwd).env(mig_proto::env::RESTORE, &restore_path).env(mig_proto::env::PRELOAD, util::preload_value(&lib));
    if in_memory {
        // Loading lazily from the memfd would keep the whole image in memory meanwhile.
        cmd.env(mig_proto::env::RESTORE_EAGER, "1");
    }
    if a.trust_image {
        cmd.env(mig_proto::env::TRUST_IMAGE, "1");
    }
    if let Some(out) = &a.image_out {
        cmd.env(mig_proto::env::IMAGE, util::absolute(out)?);
    }
    if a.detach {
        relay_output()?;
    }
    if let Some(status) = with_saved_pid(&file, &exe, &mut cmd).map_err(|why| Fail::refused(format!("cannot restart from {shown}: {why}")))? {
        return Ok(status);
    }
    // Here, in the process that becomes the restored one (a job's root is a child).
    if a.confirm {
        watch_restore()?;
    }
    // The memfd (from stdin or a compressed image) must stay open across exec: it was
    // made without close-on-exec, and `file` is not dropped before exec.
    let e = cmd.exec();
    drop(file);
    Err(Fail::refused(format!("cannot start {}: {e}", exe.display())))
}

/// Where this process may choose pids: starts the image's process (a job's root) with
/// its saved pid (`clone3` with `set_tid`), in its saved session or group (a job's), and
/// waits for it, passing on the signals it gets; returns its status as `mig
/// restart`'s (128 + a signal's number). `None`: this process execs the image's
/// process itself (the pid is taken, or not this process's to choose; for a job the
/// library then says which pids changed, and so does this for its root).
fn with_saved_pid(file: &File, exe: &Path, cmd: &mut std::process::Command) -> std::result::Result<Option<u8>, String> {
    // SAFETY: read-only private mapping of the image just checked.
    let Ok(map) = (unsafe { memmap2::Mmap::map(file) }) else { return Ok(None) };
    let hasher = crc32fast::Hasher::new();
    let mut led_a_terminal = false;
    let (root, job) = if mig_image::tree::is_tree(&map) {
        let Ok(header) = mig_image::tree::TreeHeader::read(&map, &hasher) else { return Ok(None) };
        let Some(&root) = header.members().first() else { return Ok(None) };
        let image = map.get(root.off as usize..(root.off + root.len) as usize).and_then(|b| mig_image::Image::open(b, &hasher).ok());
        led_a_terminal = root.sid == root.pid && image.is_some_and(|i| i.process().ctty != 0);
        (root, true)
    } else {
        let Ok(img) = mig_image::Image::open(&map, &hasher) else { return Ok(None) };
        let pid = img.header.pid;
        // Its session and group stay this process's, as when it execs in place.
        (mig_image::tree::Member { pid, ppid: 0, pgid: 0, sid: 0, ..Default::default() }, false)
    };
    drop(map);
    if root.pid as i32 == std::process::id() as i32 {
        return Ok(None);
    }
    // A root that led its own session on a terminal: on a new one of its own, which
    // this command relays to its terminal.
    let proxy = if job && led_a_terminal { Proxy::open() } else { None };
    // SAFETY: mig restart has one thread.
    let pid = match unsafe { mig_sys::fork_with_freed_pid(root.pid as i32) } {
        Ok(p) => p as i64,
        Err(e) => {
            let mut why = mig_sys::pid_refusal(e).to_string();
            if e.0 == libc::EEXIST {
                why.push_str(&format!(" by process {} ({})", root.pid, crate::control::comm(root.pid as i32)));
            }
            // The same program, running: a second copy would share its pids' users (its
            // image, its files) and, for a job, have none of its pids.
            if job
                && e.0 == libc::EEXIST
                && std::fs::read_link(format!("/proc/{}/exe", root.pid)).is_ok_and(|e| e == exe)
                && crate::control::runs_library(root.pid as i32)
            {
                return Err(format!(
                    "{why}, which runs the job's program with mig: the job is running already (restored from this image, or never ended); end it first"
                ));
            }
            if job || e.0 == libc::EEXIST {
                let what = if job { "the job's root" } else { "the process" };
                eprintln!("mig: warning: {what} comes back as process {} instead of {}: {why}", std::process::id(), root.pid);
            } else {
                crate::util::debug(|| format!("the process comes back as process {} instead of {}: {why}", std::process::id(), root.pid));
            }
            -1
        }
    };
    match pid {
        0 => {
            // The root, about to exec: its session and group as they were; it ends with
            // this command (as when it execs in place), unless the image says otherwise.
            // SAFETY: plain system calls.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                if job && root.sid == root.pid {
                    libc::setsid();
                } else if job && root.pgid == root.pid {
                    libc::setpgid(0, 0);
                }
            }
            if let Some(p) = &proxy {
                p.take_in_child();
            }
            cmd.env(mig_proto::env::PARENT_GUARD, "1");
            Ok(None)
        }
        pid if pid < 0 => {
            if let Some(p) = proxy {
                p.discard();
            }
            Ok(None)
        }
        pid => {
            let pid = pid as i32;
            // Signals meant for the job reach it, not mig: passed on to the root.
            ROOT.store(pid, std::sync::atomic::Ordering::Relaxed);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGCONT] {
                // SAFETY: a handler that only calls kill(2), async-signal-safe.
                unsafe { libc::signal(sig, pass_on as *const () as libc::sighandler_t) };
            }
            // A job in a group of its own, started from the terminal's foreground: the
            // terminal is its, as it was the job's when a shell ran it.
            let own_group = job && root.pgid == root.pid && root.sid != root.pid;
            let tty = if own_group { foreground_terminal() } else { None };
            if let Some(fd) = tty {
                // SAFETY: plain system calls; the group is made here too, so that it
                // exists whichever of the two runs first.
                unsafe {
                    libc::setpgid(pid, pid);
                    libc::tcsetpgrp(fd, pid);
                }
            }
            let running = proxy.map(Proxy::relay);
            let status = wait_job(pid, tty).map_err(|f| f.msg);
            if let Some(fd) = tty {
                take_terminal(fd);
            }
            if let Some(r) = running {
                r.finish();
            }
            status
        }
    }
}

/// A terminal on standard input, output or error whose foreground group is this
/// process's.
fn foreground_terminal() -> Option<i32> {
    // SAFETY: isatty, tcgetpgrp and getpgrp on our own descriptors.
    (0..=2).find(|&fd| unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) == libc::getpgrp() })
}

/// Makes this process's group the terminal's foreground again (from the background,
/// where SIGTTOU would stop it).
fn take_terminal(fd: i32) {
    // SAFETY: plain system calls on our own terminal.
    unsafe {
        let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(fd, libc::getpgrp());
        libc::signal(libc::SIGTTOU, old);
    }
}

/// Waits for the job's root `pid` to end; returns its status as `mig restart`'s. With
/// the terminal `tty` the job's: a job stopped from the terminal (Ctrl-Z) stops this
/// process too, with the terminal back, so that the shell sees it stopped; continued
/// (`fg`), this process gives the terminal back to the job and continues it.
fn wait_job(pid: i32, tty: Option<i32>) -> Result<Option<u8>> {
    let mut st = 0;
    loop {
        // SAFETY: waiting for our child.
        if unsafe { libc::waitpid(pid, &mut st, libc::WUNTRACED) } < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Fail::new(format!("cannot wait for the job's root {pid}: {}", std::io::Error::last_os_error())));
        }
        if libc::WIFEXITED(st) {
            return Ok(Some(libc::WEXITSTATUS(st) as u8));
        }
        if libc::WIFSIGNALED(st) {
            return Ok(Some(128 + libc::WTERMSIG(st) as u8));
        }
        if let Some(fd) = tty {
            take_terminal(fd);
            // SAFETY: stopping ourselves, then handing the terminal back and continuing
            // the job's group once continued.
            unsafe {
                libc::raise(libc::SIGSTOP);
                libc::tcsetpgrp(fd, pid);
                libc::kill(-pid, libc::SIGCONT);
            }
        }
    }
}

/// The job's root, while `mig restart` waits for it.
static ROOT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn pass_on(sig: libc::c_int) {
    let root = ROOT.load(std::sync::atomic::Ordering::Relaxed);
    if root > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(root, sig) };
    }
}

/// Whether the image at `path` can be restored by this user: its owner, and every byte
/// of it intact (`mig run --resume`).
pub fn check_path(path: &Path) -> std::result::Result<(), String> {
    let f = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    check_owner(&f)?;
    let (exe, cwd) = check_image(&f, true)?;
    if !exe.is_file() {
        return Err(format!("its executable {} is missing", exe.display()));
    }
    if !cwd.is_dir() {
        return Err(format!("its working directory {} is missing", cwd.display()));
    }
    Ok(())
}

/// Refuses an image file that is not this user's own, or that others can write to
/// (the library checks the same; here it is said before anything starts).
fn check_owner(f: &File) -> std::result::Result<(), String> {
    let m = f.metadata().map_err(|e| format!("cannot look at it: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(format!("it belongs to user {}, not to you ({me}); an image is code: give --trust-image if you trust where it comes from", m.uid()));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!("others can write to it (mode {:o}); make it private (chmod go-w) or give --trust-image", m.mode() & 0o7777));
    }
    Ok(())
}

/// Checks the image (`full`: every byte; else its structure, the library checks the
/// rest); returns its executable and working directory.
fn check_image(file: &File, full: bool) -> std::result::Result<(PathBuf, PathBuf), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len == 0 {
        return Err(mig_image::ImageError::Empty.to_string());
    }
    // SAFETY: a read-only private mapping; mig only reads it. If another process
    // truncated the file meanwhile, reading could fault (SIGBUS); images are private
    // files of their owner (mode 0600) or our own memfd.
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| format!("cannot map it: {e}"))?;
    if mig_image::tree::is_tree(&map) {
        return check_job(&map, full);
    }
    check_one(&map, full)
}

/// Checks a job's image: each process's image as `check_one` does, and that their
/// executables and directories exist; returns the root's.
fn check_job(map: &[u8], full: bool) -> std::result::Result<(PathBuf, PathBuf), String> {
    let header = mig_image::tree::TreeHeader::read(map, &crc32fast::Hasher::new()).map_err(|e| e.to_string())?;
    let mut root = None;
    for m in header.members().iter().filter(|m| !m.exited()) {
        let (exe, cwd) = check_one(&map[m.off as usize..(m.off + m.len) as usize], full).map_err(|e| format!("process {} of the job: {e}", m.pid))?;
        if !exe.is_file() {
            return Err(format!("the executable {} of process {} of the job is missing", exe.display(), m.pid));
        }
        if !cwd.is_dir() {
            return Err(format!("the working directory {} of process {} of the job is missing", cwd.display(), m.pid));
        }
        root.get_or_insert((exe, cwd));
    }
    root.ok_or_else(|| "the job's image holds no process".into())
}

/// Checks the image of one process (see `check_image`).
fn check_one(map: &[u8], full: bool) -> std::result::Result<(PathBuf, PathBuf), String> {
    let check = if full { mig_image::Image::verify } else { mig_image::Image::open };
    let img = check(map, &crc32fast::Hasher::new()).map_err(|e| match e {
        mig_image::ImageError::BlobCrc { index } => format!("{e}{}", blob_owner(map, index)),
        e => e.to_string(),
    })?;
    let p = img.process();
    let exe = PathBuf::from(OsStr::from_bytes(img.str(p.exe.path)));
    let cwd = PathBuf::from(OsStr::from_bytes(img.str(p.cwd)));
    if exe.as_os_str().is_empty() || !exe.is_absolute() {
        return Err("the image names no executable".into());
    }
    let cwd = if cwd.as_os_str().is_empty() { PathBuf::from("/") } else { cwd };
    Ok((exe, cwd))
}

/// ` (region START-END KIND)` or ` (descriptor N)`: what a damaged blob belongs to.
fn blob_owner(bytes: &[u8], index: u32) -> String {
    let Ok(img) = mig_image::Image::open(bytes, &crc32fast::Hasher::new()) else { return String::new() };
    for i in 0..img.count(mig_image::Table::Regions) {
        let r = img.region(i);
        if r.blob == index {
            let kind = mig_image::RegionKind::from_u32(r.kind).map_or("?", |k| k.name());
            return format!(": region {i} ({:#x}-{:#x} {kind})", r.start, r.end);
        }
    }
    for i in 0..img.count(mig_image::Table::Fds) {
        let f = img.fd(i);
        if f.blob == index {
            return format!(": the saved contents of descriptor {}", f.fd);
        }
    }
    String::new()
}

/// Reads standard input to its end into a memfd that exec will pass on (decompressed
/// if it is a compressed image).
fn stdin_to_memfd(shown: &str) -> Result<File> {
    let mut stdin = std::io::stdin().lock();
    let read_err = |e: std::io::Error| Fail::refused(format!("reading the image from standard input: {e}"));
    let head = compress::peek(&mut stdin).map_err(read_err)?;
    if compress::is_zstd(&head) {
        return unpack_all(std::io::Cursor::new(head).chain(stdin), shown);
    }
    let mut f = compress::memfd()?;
    f.write_all(&head).map_err(|e| Fail::refused(format!("cannot hold the image in memory: {e}")))?;
    std::io::copy(&mut stdin, &mut f).map_err(read_err)?;
    f.flush().map_err(|e| Fail::refused(format!("{e}")))?;
    Ok(f)
}

/// Decompresses a whole compressed image into a memfd; refuses a damaged one.
fn unpack_all(src: impl Read, shown: &str) -> Result<File> {
    let u = compress::unpack(src, compress::memfd()?);
    match u.stop {
        None => Ok(u.file),
        Some(Stop::Damaged(why)) => Err(Fail::refused(format!("cannot restart from {shown}: {why}"))),
        Some(Stop::Source(e)) => Err(Fail::refused(format!("cannot restart from {shown}: reading it failed: {e}"))),
        Some(Stop::Dest(e)) => {
            Err(Fail::refused(format!("cannot restart from {shown}: cannot hold the decompressed image in memory ({} so far): {e}", util::size(u.len))))
        }
    }
}

/// For `--detach`: the restored process's standard output and error become pipes to a
/// relay (a process of its own, in a session of its own, not a child of the restored
/// one) that passes them on to this process's standard output and error — the ssh
/// connection of `mig migrate` — and, once writing there fails, to a file in the
/// control directory. Standard input becomes /dev/null (the image was read from it).
fn relay_output() -> Result<()> {
    let dir = crate::control::control_dir().map_err(|f| Fail::refused(f.msg))?;
    let log = dir.join(format!("{}.out", std::process::id()));
    eprintln!("{LOG} {}", log.display());
    let pipe = || -> Result<(i32, i32)> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is an array of two ints, as pipe2 requires.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Fail::refused(format!("cannot create a pipe: {}", std::io::Error::last_os_error())));
        }
        Ok((fds[0], fds[1]))
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // SAFETY: this process is single-threaded; the children run the relay (plain reads
    // and writes, then _exit) and never return here.
    match unsafe { libc::fork() } {
        -1 => return Err(Fail::refused(format!("cannot fork: {}", std::io::Error::last_os_error()))),
        0 => {
            // SAFETY: as above: a new session, then the relay in a grandchild.
            unsafe {
                libc::setsid();
                if libc::fork() == 0 {
                    libc::close(out_w);
                    libc::close(err_w);
                    relay(out_r, err_r, &log);
                }
                libc::_exit(0)
            }
        }
        child => {
            let mut status = 0;
            // SAFETY: reaping our own child; moving our pipe ends into place.
            unsafe {
                libc::waitpid(child, &mut status, 0);
                libc::close(out_r);
                libc::close(err_r);
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::close(null);
                }
                libc::dup2(out_w, 1);
                libc::dup2(err_w, 2);
                libc::close(out_w);
                libc::close(err_w);
            }
        }
    }
    Ok(())
}

/// Copies `out` to standard output and `err` to standard error until both end; once
/// writing there fails (the connection is gone), everything goes to `log` instead.
fn relay(out: i32, err: i32, log: &Path) -> ! {
    // SAFETY: the relay's own signal dispositions: a lost connection is not its end.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut open = [(out, 1), (err, 2)];
    let mut to_log: Option<File> = None;
    let mut buf = vec![0u8; 64 << 10];
    while open.iter().any(|&(r, _)| r >= 0) {
        let mut fds: Vec<libc::pollfd> = open.iter().filter(|(r, _)| *r >= 0).map(|&(fd, _)| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
        // SAFETY: a vector of valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue;
        }
        for (r, w) in open.iter_mut() {
            if *r < 0 || !fds.iter().any(|p| p.fd == *r && p.revents != 0) {
                continue;
            }
            // SAFETY: reading into our buffer.
            let n = unsafe { libc::read(*r, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    // SAFETY: closing our own end.
                    unsafe { libc::close(*r) };
                    *r = -1;
                }
                continue;
            }
            let data = &buf[..n as usize];
            if to_log.is_none() {
                // SAFETY: writing our buffer to the connection's descriptor.
                let sent = unsafe { libc::write(*w, data.as_ptr().cast(), data.len()) };
                if sent == n {
                    continue;
                }
                use std::os::unix::fs::OpenOptionsExt;
                to_log = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(log).ok();
            }
            if let Some(f) = to_log.as_mut() {
                let _ = f.write_all(data);
            }
        }
    }
    // SAFETY: ending the relay.
    unsafe { libc::_exit(0) }
}

/// For `--confirm`: a detached watcher that prints `RUNNING <pid>` on stderr once the
/// restored process is past the point of no return.
///
/// The watcher holds the read end of a pipe whose write end this process keeps across
/// exec. The library's restore closes every descriptor it does not restore, after it
/// has checked everything; a refused restore exits instead. So when the pipe reports
/// end-of-file, the process either runs the restored program (it still has an
/// address space) or has exited (it has none left: `statm` reads all zeroes).
fn watch_restore() -> Result<()> {
    let target = std::process::id() as i32;
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is an array of two ints, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Fail::refused(format!("cannot create a pipe: {}", std::io::Error::last_os_error())));
    }
    let (r, w) = (fds[0], fds[1]);
    // SAFETY: clears close-on-exec on our own write end.
    unsafe { libc::fcntl(w, libc::F_SETFD, 0) };
    // Double fork, so that the restored process never has a child it does not know of.
    // SAFETY: this process is single-threaded; the children only make system calls and
    // format into a stack buffer before _exit.
    match unsafe { libc::fork() } {
        -1 => Err(Fail::refused(format!("cannot fork: {}", std::io::Error::last_os_error()))),
        0 => {
            // SAFETY: as above.
            if unsafe { libc::fork() } == 0 {
                watcher(r, target);
            }
            // SAFETY: leaving the intermediate child without running destructors.
            unsafe { libc::_exit(0) }
        }
        child => {
            let mut status = 0;
            // SAFETY: reaping our own child; closing our copy of the read end.
            unsafe {
                libc::waitpid(child, &mut status, 0);
                libc::close(r);
            }
            Ok(())
        }
    }
}

fn watcher(r: i32, target: i32) -> ! {
    // SAFETY: in the forked watcher: keep stderr and the read end only (the write end
    // and the memfd must not be held open here), then block until end-of-file.
    unsafe {
        libc::dup2(r, 0);
        libc::close(1);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::setsid();
        let mut b = [0u8; 16];
        loop {
            let n = libc::read(0, b.as_mut_ptr().cast(), b.len());
            if n == 0 || (n < 0 && *libc::__errno_location() != libc::EINTR) {
                break;
            }
        }
    }
    if has_address_space(target) {
        let line = format!("{RUNNING} {target}\n");
        // SAFETY: writing a buffer we own to stderr.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }
    // SAFETY: ending the watcher.
    unsafe { libc::_exit(0) }
}

fn has_address_space(pid: i32) -> bool {
    std::fs::read_to_string(Path::new(&format!("/proc/{pid}/statm"))).is_ok_and(|s| s.split_whitespace().next().is_some_and(|v| v != "0"))
}
