//! `mig run`: start a program with the library preloaded.
//!
//! mig execs the program: the process keeps mig's pid, its standard streams, its
//! parent and its exit status, exactly as if it had been started directly.

use crate::util;
use crate::{Fail, Result};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// Start a program under mig, so that it can be checkpointed.
///
/// mig sets LD_PRELOAD to libmig.so (beside the mig executable, or $MIG_LIB) and then
/// replaces itself with the program (exec): the program keeps mig's pid, standard
/// streams and parent, and its exit status is the program's own.
///
/// Programs the dynamic loader cannot preload into are refused with a reason:
/// statically linked executables (no ELF interpreter) and setuid or setgid ones. A
/// script is judged by its interpreter.
#[derive(clap::Args)]
#[command(after_long_help = "\
EXAMPLES:
  mig run -- ./simulation --steps 1000000
  mig run --image /var/tmp/sim.mig --interval 600 -- ./simulation
  mig run --resume $SCRATCH/job.mig --checkpoint-on USR1,TERM --then requeue -- ./job.sh

With --resume or --checkpoint-on, mig stays the job's parent (batch mode, see
docs/slurm.md): it restores the job or starts it, checkpoints the whole job on the
signals given (and every --interval, itself), then ends, requeues or continues it,
and exits with the job's status, or 75 once the job was saved and ended.

Then `mig checkpoint <pid>` (or `kill -USR1 <pid>`) writes an image.")]
pub struct Args {
    /// Where the process writes its images (sets MIG_IMAGE, made absolute). Default:
    /// <exe-name>.<pid>.mig in the directory it was started in.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Also checkpoint every SECS seconds (decimals allowed), by itself: the process
    /// rewrites its image periodically (sets MIG_INTERVAL).
    #[arg(long, value_name = "SECS", value_parser = crate::checkpoint::parse_secs)]
    pub interval: Option<std::time::Duration>,
    /// For a batch job: restore the job from IMAGE when it exists and is intact, else
    /// start the program with IMAGE as its image path. mig then stays the job's parent
    /// (see --checkpoint-on).
    #[arg(long, value_name = "IMAGE")]
    pub resume: Option<PathBuf>,
    /// When one of these signals (comma-separated: USR1,TERM) comes to mig or to the
    /// job's processes, checkpoint the whole job instead of passing it on (the
    /// processes ignore them meanwhile, where they leave them at their default).
    #[arg(long, value_name = "SIGNALS", value_delimiter = ',')]
    pub checkpoint_on: Vec<String>,
    /// After such a checkpoint: end the job and exit with status 75 (exit), requeue it
    /// through Slurm first (requeue: `scontrol requeue $SLURM_JOB_ID`), or let it go on.
    #[arg(long, value_enum, default_value = "exit", value_name = "requeue|exit|continue")]
    pub then: crate::batch::Then,
    /// Batch mode: the job's standard output goes to PATH, appended (and mig's own
    /// standard output too); on resume PATH is cut back to its length at the checkpoint,
    /// so that nothing the job writes again is there twice. Default: mig's standard
    /// output, cut back likewise when it is a file.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// A damaged image to resume from: stop with status 125 (nothing runs), or set it
    /// aside as IMAGE.damaged and start afresh.
    #[arg(long, value_enum, default_value = "stop", value_name = "stop|fresh")]
    pub if_damaged: crate::batch::IfDamaged,
    /// The program and its arguments (put them after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "PROG ARGS")]
    pub command: Vec<OsString>,
}

pub fn main(a: Args) -> Result<u8> {
    let name = &a.command[0];
    let prog = find_program(name)?;
    check_preloadable(&prog, 0)?;
    let lib = util::library()?;
    let mut cmd = std::process::Command::new(&prog);
    cmd.arg0(name).args(&a.command[1..]);
    cmd.env(mig_proto::env::PRELOAD, util::preload_value(&lib)).env_remove(mig_proto::env::RESTORE);
    if let Some(image) = &a.image {
        let abs = util::absolute(image)?;
        check_image_path(&abs)?;
        cmd.env(mig_proto::env::IMAGE, abs);
    } else if is_script(&prog) && std::env::var_os(mig_proto::env::IMAGE).is_none() {
        // The library names images after the executable, here the interpreter: name
        // them after the script (unless MIG_IMAGE names the image already). The
        // program keeps mig's pid (exec).
        let file = prog.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "script".into());
        let here = std::env::current_dir().map_err(|e| Fail::new(format!("cannot read the working directory: {e}")))?;
        cmd.env(mig_proto::env::IMAGE, here.join(format!("{file}.{}.mig", std::process::id())));
    }
    if a.resume.is_some() || !a.checkpoint_on.is_empty() {
        return batch(a, cmd, &prog);
    }
    if a.output.is_some() {
        return Err(Fail::bad("--output is for batch mode (with --resume or --checkpoint-on)"));
    }
    if let Some(every) = a.interval {
        cmd.env(mig_proto::env::INTERVAL, every.as_secs_f64().to_string());
    }
    let e = cmd.exec();
    Err(Fail::new(format!("cannot run {}: {e}", prog.display())))
}

/// Batch mode: mig stays the job's parent (`batch.rs`).
fn batch(a: Args, cmd: std::process::Command, prog: &Path) -> Result<u8> {
    let image = match (&a.resume, &a.image) {
        (Some(r), Some(i)) if util::absolute(r)? != util::absolute(i)? => {
            return Err(Fail::bad("--resume and --image name two images: the job resumes from the one it writes (give one of them)"));
        }
        (Some(p), _) | (None, Some(p)) => util::absolute(p)?,
        (None, None) => {
            let file = prog.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "job".into());
            let here = std::env::current_dir().map_err(|e| Fail::new(format!("cannot read the working directory: {e}")))?;
            here.join(format!("{file}.{}.mig", std::process::id()))
        }
    };
    check_image_path(&image)?;
    if let Some(out) = &a.output {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(out)
            .map_err(|e| Fail::new(format!("--output {}: {}", out.display(), util::io_error(&e))))?;
        // SAFETY: dup2 of a descriptor we own onto standard output.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&f), 1) } < 0 {
            return Err(Fail::new(format!("--output {}: {}", out.display(), std::io::Error::last_os_error())));
        }
    }
    let mut checkpoint_on = vec![];
    for s in &a.checkpoint_on {
        let sig = mig_proto::signal::parse(s).filter(|&n| n != libc::SIGKILL as u32 && n != libc::SIGSTOP as u32);
        checkpoint_on.push(sig.ok_or_else(|| Fail::bad(format!("--checkpoint-on {s}: not a signal mig can take")))? as i32);
    }
    crate::batch::run(
        cmd,
        crate::batch::Batch { image, resume: a.resume.is_some(), checkpoint_on, then: a.then, if_damaged: a.if_damaged, interval: a.interval },
    )
}

/// Refuses at once an image path the process could never write: a directory, a missing
/// directory, or one this user cannot write to.
fn check_image_path(abs: &Path) -> Result<()> {
    if abs.is_dir() {
        return Err(Fail::bad(format!("--image {} is a directory; give the image's file name", abs.display())));
    }
    let dir = abs.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(Fail::new(format!("--image {}: there is no directory {}", abs.display(), dir.display())));
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| Fail::bad("bad image path"))?;
    // SAFETY: access(2) with a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(Fail::new(format!("--image {}: cannot write to the directory {}: {}", abs.display(), dir.display(), std::io::Error::last_os_error())));
    }
    Ok(())
}

fn is_script(prog: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(prog).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == *b"#!"
}

/// `name` as the shell would find it: a path if it has a slash, else through $PATH.
pub fn find_program(name: &OsStr) -> Result<PathBuf> {
    let p = Path::new(name);
    if name.as_encoded_bytes().contains(&b'/') {
        return if p.exists() { Ok(p.to_path_buf()) } else { Err(Fail::new(format!("{}: no such file", p.display()))) };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let c = dir.join(p);
        if c.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Ok(c);
        }
    }
    Err(Fail::new(format!("{}: command not found", p.display())))
}

/// Refuses what LD_PRELOAD cannot work on.
pub fn check_preloadable(prog: &Path, depth: u32) -> Result<()> {
    let meta = prog.metadata().map_err(|e| Fail::new(format!("{}: {e}", prog.display())))?;
    if !meta.is_file() {
        return Err(Fail::new(format!("{} is not a file", prog.display())));
    }
    let mode = meta.permissions().mode();
    // The program itself must be executable (an interpreter named by a script, too).
    if mode & 0o111 == 0 {
        return Err(Fail::new(format!("{} is not executable (chmod +x {0}, or run its interpreter: mig run -- sh {0})", prog.display())));
    }
    if mode & 0o6000 != 0 {
        let what = if mode & 0o4000 != 0 { "setuid" } else { "setgid" };
        return Err(Fail::new(format!("{} is {what}: the dynamic loader ignores LD_PRELOAD for it, so mig cannot work in it", prog.display())));
    }
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(prog).and_then(|f| f.take(4096).read_to_end(&mut head)).map_err(|e| Fail::new(format!("cannot read {}: {e}", prog.display())))?;
    if let Some(rest) = head.strip_prefix(b"#!") {
        if depth >= 4 {
            return Err(Fail::new(format!("{}: too many levels of script interpreters", prog.display())));
        }
        let line = rest.split(|&c| c == b'\n').next().unwrap_or(&[]);
        let interp = String::from_utf8_lossy(line);
        let Some(interp) = interp.split_whitespace().next() else {
            return Err(Fail::new(format!("{}: a script without an interpreter", prog.display())));
        };
        return check_preloadable(Path::new(interp), depth + 1);
    }
    match elf_kind(prog)? {
        Elf::Dynamic => Ok(()),
        Elf::Static => {
            Err(Fail::new(format!("{} is statically linked: it has no dynamic loader to preload libmig.so, so mig cannot work in it", prog.display())))
        }
        Elf::Not if looks_like_text(&head) => {
            Err(Fail::new(format!("{} has no #! line naming its interpreter: add one, or run the interpreter (mig run -- sh {0})", prog.display())))
        }
        Elf::Not => Err(Fail::new(format!("{} is neither an ELF executable nor a script (#!)", prog.display()))),
        Elf::Other(why) => Err(Fail::new(format!("{}: {why}", prog.display()))),
    }
}

/// Printable text (a script without `#!`), not some binary format.
fn looks_like_text(head: &[u8]) -> bool {
    !head.is_empty() && head.iter().all(|&c| c.is_ascii_graphic() || c.is_ascii_whitespace() || c >= 0x80)
}

enum Elf {
    Dynamic,
    Static,
    Not,
    Other(&'static str),
}

/// Whether `prog` has a program interpreter (`PT_INTERP`), i.e. is dynamically linked.
fn elf_kind(prog: &Path) -> Result<Elf> {
    let data = std::fs::read(prog).map_err(|e| Fail::new(format!("cannot read {}: {e}", prog.display())))?;
    Ok(elf_kind_of(&data))
}

fn elf_kind_of(data: &[u8]) -> Elf {
    const PT_INTERP: u32 = 3;
    if data.len() < 64 || data[..4] != *b"\x7fELF" {
        return Elf::Not;
    }
    if data[4] != 2 || data[5] != 1 {
        return Elf::Other("not a 64-bit little-endian ELF file, so it cannot load the x86_64 libmig.so");
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let machine = u16_at(18);
    if machine != 62 {
        return Elf::Other("not an x86_64 program");
    }
    let phoff = u64::from_le_bytes(data[32..40].try_into().unwrap_or([0; 8])) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    for i in 0..phnum {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        let Some(ph) = data.get(at..at.saturating_add(4)) else { return Elf::Other("its program headers are truncated") };
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == PT_INTERP {
            return Elf::Dynamic;
        }
    }
    Elf::Static
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_dynamic() {
        let me = std::env::current_exe().unwrap();
        assert!(matches!(elf_kind(&me).unwrap(), Elf::Dynamic));
        assert!(matches!(elf_kind_of(b"#!/bin/sh\n"), Elf::Not));
    }
}
