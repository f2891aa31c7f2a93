//! `mig run` in a batch job (`--resume`, `--checkpoint-on`, `--then`): mig stays the
//! job's parent and answers the batch system's signals.
//!
//! - `--resume IMAGE`: an intact IMAGE is restored (`mig restart`, a child of mig);
//!   without one the program starts and IMAGE is where its images go. A damaged IMAGE
//!   stops mig (status 125; nothing runs, no work is lost) or, with `--if-damaged
//!   fresh`, is set aside and the program starts afresh.
//! - `--checkpoint-on SIGNALS`: such a signal, to mig or to every process of the job (a
//!   batch system's SIGTERM before it kills the job), saves the whole job into IMAGE
//!   (`job::checkpoint`). The job's processes ignore those signals meanwhile where they
//!   leave them at their default action (`MIG_CHECKPOINT_ON`, see the library's
//!   `held_signals`).
//! - `--then exit|requeue|continue`: after such a checkpoint the job ends (stopped
//!   since its image was taken: it writes nothing more) and mig exits with
//!   `EXIT_CHECKPOINTED`; `requeue` first asks Slurm to requeue the job (`scontrol
//!   requeue $SLURM_JOB_ID`); `continue` lets it go on.
//! - The job's standard output, when it is a file (`--output`, or mig's own standard
//!   output as Slurm's `--open-mode=append` opens it), is cut back on resume to its
//!   length when the job was stopped for its image (which records it): lines the job wrote after its last checkpoint, which it
//!   writes again, are not there twice.
//!
//! Other signals mig gets are passed on to the job's root; mig ends with its status.

use crate::job;
use crate::request::Options;
use crate::{Fail, Result};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What follows a checkpoint asked for by a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Then {
    /// Ask the batch system to requeue the job (Slurm: `scontrol requeue`), then end it.
    Requeue,
    /// End the job; mig exits with status 75.
    Exit,
    /// Let the job go on.
    Continue,
}

/// What a damaged image to resume from does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IfDamaged {
    /// Stop with status 125: nothing runs, the image stays for a look.
    Stop,
    /// Set the image aside (IMAGE.damaged) and start the program afresh.
    Fresh,
}

/// mig's status once the job is saved and ended (`--then exit|requeue`): sysexits'
/// EX_TEMPFAIL, "try again later" (HTCondor's `checkpoint_exit_code`).
pub const EXIT_CHECKPOINTED: u8 = 75;

pub struct Batch {
    pub image: PathBuf,
    pub resume: bool,
    pub checkpoint_on: Vec<i32>,
    pub then: Then,
    pub if_damaged: IfDamaged,
    /// Periodic checkpoints of the whole job, taken by mig.
    pub interval: Option<Duration>,
}

/// Runs the job (`fresh`: the program, environment set) under mig until it ends.
pub fn run(fresh: Command, b: Batch) -> Result<u8> {
    let mask = signal_set(&b.checkpoint_on);
    // SAFETY: blocking signals in this (single-threaded) process; they are taken with
    // sigtimedwait below. The job gets the mask it would have had (pre_exec).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
    let names: Vec<String> = b.checkpoint_on.iter().map(|s| s.to_string()).collect();
    let resume_from = if b.resume && b.image.exists() { usable(&b.image, b.if_damaged)? } else { None };
    let mut cmd = match &resume_from {
        Some(img) => {
            cut_output_back(img);
            let me = std::env::current_exe().map_err(|e| Fail::new(format!("cannot find mig itself: {e}")))?;
            let mut c = Command::new(me);
            c.arg("restart").arg(img);
            c
        }
        None => fresh,
    };
    cmd.env(mig_proto::env::IMAGE, &b.image).env(mig_proto::env::CHECKPOINT_ON, names.join(","));
    // SAFETY: sigprocmask is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &mask, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Fail::new(format!("cannot start the job: {e}")))?;
    let pid = child.id() as i32;
    let mut next = b.interval.map(|i| std::time::Instant::now() + i);
    loop {
        let wait = next.map_or(Duration::from_millis(500), |t| t.saturating_duration_since(std::time::Instant::now()).min(Duration::from_millis(500)));
        let sig = take_signal(&mask, wait);
        if let Some(st) = child.try_wait().map_err(|e| Fail::new(format!("cannot wait for the job: {e}")))? {
            use std::os::unix::process::ExitStatusExt;
            return Ok(st.code().map_or_else(|| 128 + st.signal().unwrap_or(0) as u8, |c| c as u8));
        }
        if let Some(t) = next
            && std::time::Instant::now() >= t
        {
            next = b.interval.map(|i| std::time::Instant::now() + i);
            if let Some(root) = job_root(pid) {
                let _ = save(root, &b.image, false, "its interval");
            }
        }
        let Some(sig) = sig else { continue };
        if sig == libc::SIGCHLD {
            continue;
        }
        let Some(root) = job_root(pid) else { continue };
        if !b.checkpoint_on.contains(&sig) {
            // SAFETY: kill(2) of the job's root, mig's descendant.
            unsafe { libc::kill(root, sig) };
            continue;
        }
        let why = mig_proto::signal::name(sig as u32).map_or(format!("signal {sig}"), |n| format!("SIG{n}"));
        let end = b.then != Then::Continue;
        if !save(root, &b.image, end, &why) {
            continue;
        }
        if !end {
            continue;
        }
        let _ = child.wait();
        if b.then == Then::Requeue {
            requeue();
        }
        return Ok(EXIT_CHECKPOINTED);
    }
}

/// The image to resume from, if it can be: an intact one; a damaged one stops mig, or
/// is set aside for a fresh start.
fn usable(image: &Path, if_damaged: IfDamaged) -> Result<Option<PathBuf>> {
    match crate::restart::check_path(image) {
        Ok(()) => Ok(Some(image.to_path_buf())),
        Err(why) if if_damaged == IfDamaged::Stop => Err(Fail::refused(format!(
            "cannot resume from {}: {why}; nothing was started and the image is kept (--if-damaged fresh starts the program afresh instead)",
            image.display()
        ))),
        Err(why) => {
            let aside = PathBuf::from(format!("{}.damaged", image.display()));
            std::fs::rename(image, &aside).map_err(|e| Fail::new(format!("cannot set the damaged image {} aside: {e}", image.display())))?;
            eprintln!("mig: warning: cannot resume from {}: {why}; it is kept as {} and the program starts afresh", image.display(), aside.display());
            Ok(None)
        }
    }
}

/// Saves the whole job of `root` into `image`; `end`: the job ends once it is safe.
/// Says what happened on stderr (the job's log); true if the image is safe.
fn save(root: i32, image: &Path, end: bool, why: &str) -> bool {
    // The output's length while every process of the job is stopped: all it wrote
    // before its image, nothing after.
    match job::checkpoint(
        root,
        crate::checkpoint::Dest::File(image.to_path_buf()),
        Options { exit: end, portable: false, held: false, pre: false },
        Duration::from_secs(600),
        &mut output_len,
    ) {
        Ok(o) => {
            let n = o.processes;
            eprintln!(
                "mig: checkpoint of the job ({n} process{}) on {why} written to {}: {}, stopped for {}{}",
                if n == 1 { "" } else { "es" },
                image.display(),
                crate::util::size(o.bytes),
                crate::util::duration(o.stopped),
                if end { "; the job ends" } else { "" }
            );
            true
        }
        Err(f) => {
            eprintln!("mig: the checkpoint on {why} failed: {}; the job goes on", f.msg);
            false
        }
    }
}

/// The job's root: the first process under mig's child that runs the library (the
/// child itself, or the root `mig restart` started with its saved pid).
fn job_root(child: i32) -> Option<i32> {
    job::members(child).into_iter().find(|p| !p.zombie && crate::control::runs_library(p.pid)).map(|p| p.pid)
}

/// `scontrol requeue $SLURM_JOB_ID`, where the job runs under Slurm.
fn requeue() {
    let Ok(id) = std::env::var("SLURM_JOB_ID") else {
        eprintln!("mig: --then requeue: not a Slurm job (no SLURM_JOB_ID); the job ends as with --then exit");
        return;
    };
    match Command::new("scontrol").args(["requeue", &id]).status() {
        Ok(st) if st.success() => eprintln!("mig: job {id} requeued"),
        Ok(st) => eprintln!(
            "mig: scontrol requeue {id} did not requeue the job ({st}): Slurm may be requeueing it already (a preemption, an administrator's requeue); if it does not, resubmit the job to resume it from its image"
        ),
        Err(e) => eprintln!("mig: cannot run scontrol to requeue job {id}: {e}; the image is safe: resubmit the job to resume it"),
    }
}

/// The length of mig's standard output, when it is a regular file.
fn output_len() -> Option<u64> {
    // SAFETY: fstat of descriptor 1 into a zeroed stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::fstat(1, &mut st) } == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(st.st_size as u64)
}

/// Cuts mig's standard output (a regular file) back to its length when `image` was
/// taken: what the job wrote after it, it writes again.
fn cut_output_back(image: &Path) {
    let Ok(file) = std::fs::File::open(image) else { return };
    // SAFETY: a read-only private mapping of an image mig checked just before.
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else { return };
    let Some(len) = mig_image::tree::TreeHeader::read(&map, &crc32fast::Hasher::new()).ok().and_then(|h| h.output_len()) else { return };
    if output_len().is_some_and(|now| now > len) {
        // SAFETY: truncating mig's own standard output, a regular file.
        if unsafe { libc::ftruncate(1, len as i64) } == 0 {
            eprintln!("mig: the job's output is cut back to where its image was taken ({len} bytes): what followed, it writes again");
        }
    }
}

/// The signals mig takes itself: those that ask for a checkpoint, the ones it passes
/// on, and SIGCHLD.
fn signal_set(checkpoint_on: &[i32]) -> libc::sigset_t {
    // SAFETY: building a sigset_t with the libc functions.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in checkpoint_on.iter().copied().chain([libc::SIGCHLD, libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2]) {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// A signal of `set` if one comes within `wait`.
fn take_signal(set: &libc::sigset_t, wait: Duration) -> Option<i32> {
    let ts = libc::timespec { tv_sec: wait.as_secs() as i64, tv_nsec: wait.subsec_nanos() as i64 };
    // SAFETY: sigtimedwait on a valid set and timeout, without siginfo.
    let s = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (s > 0).then_some(s)
}
