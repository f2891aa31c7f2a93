//! `mig migrate`: move a running process (with its children: its whole job) to another
//! host over ssh.
//!
//! 1. ssh runs `cd <cwd> && <remote-mig> restart --confirm -` on the host; that
//!    prints `mig-restart: ready` at once. Until then nothing has happened to the
//!    process: if ssh or the remote mig fails here, the process keeps running.
//! 2. The process is checkpointed with --exit, streamed (`--to -`) into ssh, and
//!    at the same time into a local copy of the image in the control directory.
//! 3. The remote mig checks the image and becomes the restored process; a watcher
//!    there prints `mig-restart: running <pid>` once the restore is past its point of
//!    no return. Then the local copy is deleted and the downtime reported. If
//!    anything fails before that, the local copy is kept and mig says how to resume.
//! 4. mig stays connected, passing on the process's output, until it exits; its
//!    status is mig's.

use crate::checkpoint::{self, Dest};
use crate::compress::{self, Compressor, Method};
use crate::restart::{LOG, READY, RUNNING};
use crate::util::{self, sh_quote};
use crate::{Fail, Result, control, interrupt};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Move a running process, with its children (its whole job), to another host.
///
/// The process is checkpointed with --exit and its image streamed through ssh into
/// `mig restart -` on HOST, in the same working directory, with no image file on
/// either side. The image is portable (it carries the program's and libraries' code)
/// unless --no-portable: the executable must exist at the same path on HOST, but it
/// and the libraries may differ; files the process has open must exist there; CPU
/// features and kernel must match. With --compress zstd (or MIG_COMPRESS=zstd) the
/// image travels zstd-compressed. mig then stays
/// connected, passing on the process's standard output and error, until it exits.
///
/// Nothing happens to the process until `mig` answers on HOST. If the move fails
/// after the checkpoint, the image is kept in /tmp/mig-<uid>/ and mig prints the
/// command that resumes the process here.
#[derive(clap::Args)]
#[command(after_long_help = "\
EXAMPLES:
  mig migrate 4242 otherhost
  mig migrate 4242 alice@otherhost --remote-mig /opt/mig/bin/mig
  mig migrate 4242 otherhost --ssh 'ssh -p 2222 -i ~/.ssh/migkey'

EXIT STATUS:
  the migrated process's exit status once it ends on HOST; 1 if the move failed.")]
pub struct Args {
    /// The process to move.
    pub pid: i32,
    /// Where to: a host name for ssh, with an optional user.
    #[arg(value_name = "[USER@]HOST")]
    pub host: String,
    /// The mig command on HOST.
    #[arg(long, value_name = "PATH", default_value = "mig")]
    pub remote_mig: String,
    /// The ssh command, split on spaces (for options such as -p or -F). Default:
    /// $MIG_SSH, else ssh.
    #[arg(long, value_name = "COMMAND")]
    pub ssh: Option<String>,
    /// Give up after this many seconds without progress (connecting, checkpointing,
    /// restarting).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = checkpoint::parse_secs)]
    pub timeout: Duration,
    /// Send a plain image (smaller): HOST must have the same executable and libraries.
    #[arg(long)]
    pub no_portable: bool,
    /// Compress the image with zstd on its way (zstd, zstd:LEVEL, or none): for slow
    /// links. The mig on HOST decompresses it. Default: $MIG_COMPRESS, else none.
    #[arg(long, value_name = "zstd[:LEVEL]|none", value_parser = compress::parse)]
    pub compress: Option<Method>,
}

enum Event {
    Ready,
    Running(String),
    /// ssh's stderr ended (it exited or closed it).
    Closed,
}

/// Copies the image to the local file and to ssh; ssh failing is noted, not fatal.
struct Tee {
    file: File,
    remote: Option<ChildStdin>,
    remote_error: Option<std::io::Error>,
    /// Bytes passed on.
    sent: u64,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write_all(buf)?;
        self.sent += buf.len() as u64;
        if let Some(r) = self.remote.as_mut()
            && let Err(e) = r.write_all(buf)
        {
            self.remote_error = Some(e);
            self.remote = None;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

pub fn main(a: Args) -> Result<u8> {
    let pid = crate::job::restored_by(a.pid);
    control::check_target(pid)?;
    let method = compress::choose(a.compress)?;
    let cwd = control::cwd(pid)?;
    let cwd = cwd.to_str().ok_or_else(|| Fail::new("the working directory is not valid UTF-8"))?.to_string();
    let ssh = a.ssh.clone().or_else(|| std::env::var(mig_proto::env::SSH).ok().filter(|s| !s.trim().is_empty())).unwrap_or_else(|| "ssh".into());
    let mut words = ssh.split_whitespace();
    let ssh_prog = words.next().ok_or_else(|| Fail::bad("--ssh is empty"))?;
    let remote_cmd = format!("cd {} && exec {} restart --confirm --detach -", sh_quote(&cwd), sh_quote(&a.remote_mig));
    interrupt::catch();
    let mut child = Command::new(ssh_prog)
        .args(words)
        .arg("-T")
        .arg(&a.host)
        .arg(&remote_cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Fail::new(format!("cannot run {ssh_prog}: {e}")))?;
    let (events, last_lines) = watch_stderr(&mut child);

    // 1. Wait for the remote mig.
    match wait_event(&events, a.timeout) {
        Some(Event::Ready) => {}
        other => {
            let why = if other.is_none() { "no answer".to_string() } else { exit_reason(&mut child, &last_lines) };
            let _ = child.kill();
            let _ = child.wait();
            return Err(Fail::new(format!(
                "cannot start `{} restart` on {}: {why}; process {pid} was not touched and keeps running here",
                a.remote_mig, a.host
            )));
        }
    }

    // 2. Checkpoint into ssh and a local copy.
    let dir = control::control_dir()?;
    let keep = dir.join(format!("{}.{pid}.mig", control::comm(pid).replace('/', "_")));
    // A copy kept by an earlier failed move of the same pid is replaced; the directory
    // is this user's alone (`control_dir`), and nothing is opened through a link.
    let _ = std::fs::remove_file(&keep);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&keep)
        .map_err(|e| Fail::new(format!("cannot create the local copy {}: {e}", keep.display())))?;
    let mut tee = Tee { file, remote: child.stdin.take(), remote_error: None, sent: 0 };
    let opts = checkpoint::Options { exit: true, portable: !a.no_portable, held: false, pre: false };
    // Failing to end the compressed stream is failing to keep the local copy: the
    // process has exited by then, and the remote side gets a cut-off image.
    let (taken, finished) = match method {
        Method::None => (checkpoint::take(pid, Dest::Stream(&mut tee), opts, a.timeout), Ok(())),
        Method::Zstd(level) => match Compressor::new(&mut tee, level) {
            Ok(mut z) => {
                let taken = checkpoint::take(pid, Dest::Stream(&mut z), opts, a.timeout);
                let finished = if taken.is_ok() { z.finish().map(drop) } else { Ok(()) };
                (taken, finished)
            }
            Err(f) => (Err(f), Ok(())),
        },
    };
    let out = match taken {
        Ok(o) => o,
        Err(f) => {
            drop(tee);
            let _ = child.kill();
            let _ = child.wait();
            if control::alive(pid) {
                let _ = std::fs::remove_file(&keep);
                return Err(Fail::new(format!("migration of process {pid} failed: {}; it keeps running here", f.msg)));
            }
            return Err(Fail::new(format!(
                "migration of process {pid} failed: {}; the process has ended here: what it wrote of its image is kept at {} (check it with mig inspect, resume it with mig restart)",
                f.msg,
                keep.display()
            )));
        }
    };
    let Tee { file, remote, remote_error, sent } = tee;
    drop(remote); // end of the image for the remote side
    let kept = finished.and_then(|()| file.sync_all());

    // 3. Wait for the restored process.
    let fail = |why: String| -> Fail {
        let how = match &kept {
            Ok(()) => format!(
                "process {pid} stopped here after its checkpoint; its image is kept at {}; resume it here with: mig restart {}",
                keep.display(),
                sh_quote(&keep.display().to_string())
            ),
            Err(e) => format!("process {pid} stopped here and its local image could not be saved either ({e})"),
        };
        Fail::new(format!("migration to {} failed: {why}; {how}", a.host))
    };
    loop {
        match wait_event(&events, a.timeout) {
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "no word from the remote mig within {} of the end of the image (the process may have started there: check before resuming it here)",
                    util::duration(a.timeout)
                )));
            }
            Some(Event::Running(remote_pid)) => {
                let downtime = out.signalled.elapsed();
                let _ = std::fs::remove_file(&keep);
                let packed = match method {
                    Method::Zstd(_) => format!(", sent {}", compress::describe(out.bytes, sent)),
                    Method::None => String::new(),
                };
                let what = if out.processes > 1 { format!("the job of process {pid} ({} processes)", out.processes) } else { format!("process {pid}") };
                eprintln!(
                    "mig: {what} moved to {} (pid {remote_pid} there): downtime {}, stopped for the checkpoint {}{packed}, image {}",
                    a.host,
                    util::duration(downtime),
                    util::duration(out.stopped),
                    util::size(out.bytes)
                );
                break;
            }
            Some(Event::Ready) => {}
            Some(Event::Closed) => {
                let mut why = exit_reason(&mut child, &last_lines);
                if let Some(e) = remote_error {
                    why.push_str(&format!(" (sending the image failed: {e})"));
                }
                return Err(fail(why));
            }
        }
    }

    // 4. Stay with the process until it ends, or until interrupted: the process does
    // not depend on this command (its output passes through a relay of its own there).
    loop {
        let ended = child.try_wait().map_err(|e| Fail::new(format!("waiting for ssh: {e}")))?;
        // ssh gets the same Ctrl-C and ends too: the interrupt is what happened.
        if ended.is_some() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let (Some(status), false) = (ended, interrupt::caught()) {
            return Ok(status.code().map_or(1, |c| c.clamp(0, 255) as u8));
        }
        if interrupt::caught() {
            let _ = child.kill();
            let _ = child.wait();
            let log = last_lines.lock().unwrap_or_else(|p| p.into_inner()).log.clone();
            eprintln!(
                "mig: interrupted: process {pid} goes on on {} without this command{}",
                a.host,
                log.map(|l| format!("; its output from now on goes to {l} there")).unwrap_or_default()
            );
            return Ok(130);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the remote side said on stderr that is not passed on yet.
#[derive(Default)]
struct Remote {
    /// Until the restored process runs, ssh's and the remote mig's lines are held
    /// back: a failure is then reported in mig's own line, with the last of them.
    held: Vec<String>,
    passing: bool,
    /// Where the process's output goes there once the connection is gone.
    log: Option<String>,
}

type Shared = Arc<Mutex<Remote>>;

/// Reads ssh's stderr: markers become events, everything else is held or passed on.
fn watch_stderr(child: &mut Child) -> (Receiver<Event>, Shared) {
    let (tx, rx) = channel();
    let shared: Shared = Arc::default();
    let remote = shared.clone();
    let err = child.stderr.take();
    std::thread::spawn(move || {
        if let Some(err) = err {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut r = remote.lock().unwrap_or_else(|p| p.into_inner());
                if line == READY {
                    let _ = tx.send(Event::Ready);
                } else if let Some(p) = line.strip_prefix(LOG) {
                    r.log = Some(p.trim().to_string());
                } else if let Some(p) = line.strip_prefix(RUNNING) {
                    for l in r.held.drain(..) {
                        eprintln!("{l}");
                    }
                    r.passing = true;
                    let _ = tx.send(Event::Running(p.trim().to_string()));
                } else if r.passing {
                    eprintln!("{line}");
                } else {
                    r.held.push(line);
                }
            }
        }
        let _ = tx.send(Event::Closed);
    });
    (rx, shared)
}

fn wait_event(rx: &Receiver<Event>, timeout: Duration) -> Option<Event> {
    let until = Instant::now() + timeout;
    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        Ok(e) => Some(e),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => Some(Event::Closed),
    }
}

/// Why ssh ended: its status and the last thing the remote side said (anything it
/// said before that is passed on first).
fn exit_reason(child: &mut Child, remote: &Shared) -> String {
    let status = child.wait().ok();
    let held = std::mem::take(&mut remote.lock().unwrap_or_else(|p| p.into_inner()).held);
    let last = held.iter().rposition(|l| !l.trim().is_empty());
    for (i, l) in held.iter().enumerate() {
        if Some(i) != last {
            eprintln!("{l}");
        }
    }
    let st = match status.and_then(|s| s.code()) {
        Some(255) => "ssh failed (status 255)".to_string(),
        Some(127) => "the remote mig was not found (status 127; give its path on that host with --remote-mig)".to_string(),
        Some(c) => format!("the remote side exited with status {c}"),
        None => "ssh was killed".to_string(),
    };
    match last {
        Some(i) => format!("{st}: {}", held[i].trim()),
        None => st,
    }
}
