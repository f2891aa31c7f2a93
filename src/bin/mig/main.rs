//! `mig`: the command-line tool around the preload library `libmig.so`.
//!
//! Each subcommand lives in its own module; this file holds the command line (clap)
//! and turns every failure into one line on stderr and a non-zero exit status.
#![deny(unsafe_op_in_unsafe_fn)]

mod batch;
mod checkpoint;
mod compress;
mod control;
mod hold;
mod inspect;
mod interrupt;
mod job;
mod migrate;
mod ps;
mod reach;
mod request;
mod restart;
mod run;
mod stream;
mod terminal_proxy;
mod util;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

const LONG_ABOUT: &str = "\
mig checkpoints a running Linux process from inside it and brings it back later, \
in a fresh process on this machine or on another one.

The work is done by the preload library libmig.so, loaded into the program with \
LD_PRELOAD. `mig run` starts a program with the library; `mig checkpoint` asks it to \
write an image of itself (its memory, registers, open files, signal handlers) and \
waits until the image is complete; `mig restart` starts a new process from an image; \
`mig inspect` shows what an image holds and whether it is intact; `mig migrate` moves \
a running process to another host over ssh.";

const AFTER_LONG_HELP: &str = "\
ENVIRONMENT:
  MIG_LIB      Path of libmig.so. Default: libmig.so in the directory of the mig
               executable.
  MIG_SIGNAL   Signal that asks a process for a checkpoint, as a number or a name
               (SIGUSR1, USR1). Default: SIGUSR1.
  MIG_SSH      ssh command used by `mig migrate` (split on spaces). Default: ssh.
  MIG_COMPRESS zstd, zstd:LEVEL or none: the default of --compress, for the images
               `mig checkpoint --to` and `mig migrate` pass on. `mig restart` and
               `mig inspect` recognise compressed images by themselves.
  MIG_IMAGE, MIG_INTERVAL, MIG_RESTORE, MIG_LOG
               Read by the library itself; `mig run` and `mig restart` set them.

FILES:
  <exe-name>.<pid>.mig     Default image of a process, in the directory it started in.
  <image>.tmp.<random>     An image being written (renamed into place when complete;
                           one left by a writer that died is removed by the next
                           checkpoint to that image).
  /tmp/mig-<uid>/          Private directory (mode 0700, refused if another user owns
                           it) for images kept by a failed migration and the output
                           of a migrated process after its connection is gone.
  Checkpoint requests use no files: mig checkpoint listens on an abstract UNIX socket
  that only the process's user or root can answer, and signals the process.

EXIT STATUS:
  0    Success.
  1    The operation failed (the message says why; nothing was left half done).
  2    Bad usage, or (`mig inspect`) an image that is damaged or not an image.
  125  `mig restart` refused the image (missing, damaged, not the user's, its
       executable, files or working directory gone or changed, ...): nothing
       started. The library exits with 125 for the same refusals under MIG_RESTORE.
  127  The restore failed after the fresh process was replaced (should not happen:
       everything is checked first).
  `mig run` and `mig restart` become the program: its status is the program's.
  `mig migrate` ends with the status of the migrated process once it exits.

EXAMPLES:
  mig run --image /var/tmp/job.mig -- ./job --input data.txt
  mig checkpoint 4242                   # image at the process's MIG_IMAGE
  mig checkpoint 4242 --exit --to job.mig
  mig checkpoint 4242 --exit --to - | gzip > job.mig.gz
  zcat job.mig.gz | mig restart -
  mig checkpoint 4242 --to job.mig --compress zstd
  mig inspect job.mig
  mig migrate 4242 user@otherhost

Restoring needs the same files at the same paths and the same kernel interfaces. A
portable image (--portable, MIG_PORTABLE=1, the default of mig migrate) also carries the
program's and libraries' code, so it restores where those changed or are missing, on a
machine with the same CPU features.";

#[derive(Parser)]
#[command(
    name = "mig",
    version,
    about = "Checkpoint, restart and migrate Linux processes (with libmig.so)",
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    propagate_version = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Run(run::Args),
    Checkpoint(checkpoint::Args),
    Restart(restart::Args),
    Inspect(inspect::Args),
    Migrate(migrate::Args),
    Ps(ps::Args),
    Completions(Completions),
    #[command(hide = true)]
    Man(Man),
    #[command(hide = true)]
    Hold(hold::Args),
}

/// Print a shell completion script (bash, zsh, fish, elvish or powershell).
///
/// `scripts/install.sh` installs them; by hand, for example:
/// `mig completions bash > ~/.local/share/bash-completion/completions/mig`.
#[derive(clap::Args)]
struct Completions {
    shell: clap_complete::Shell,
}

/// Write the man pages (mig.1 and one per subcommand) into a directory.
#[derive(clap::Args)]
struct Man {
    dir: std::path::PathBuf,
}

/// `mig --version`: the program's and the image format's versions.
fn version() -> &'static str {
    let v = format!("{} (image format version {})", env!("CARGO_PKG_VERSION"), mig_image::VERSION);
    Box::leak(v.into_boxed_str())
}

fn command() -> clap::Command {
    Cli::command().version(version())
}

fn completions(c: Completions) -> Result<u8> {
    clap_complete::generate(c.shell, &mut command(), "mig", &mut std::io::stdout());
    Ok(0)
}

fn man(m: Man) -> Result<u8> {
    std::fs::create_dir_all(&m.dir).map_err(|e| Fail::new(format!("cannot create {}: {e}", m.dir.display())))?;
    clap_mangen::generate_to(command(), &m.dir).map_err(|e| Fail::new(format!("cannot write the man pages into {}: {e}", m.dir.display())))?;
    Ok(0)
}

/// A failure: the one line to print and the exit status.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub msg: String,
}

impl Fail {
    /// An operation that failed: status 1.
    pub fn new(msg: impl Into<String>) -> Self {
        Fail { code: 1, msg: msg.into() }
    }
    /// A damaged image or bad usage: status 2.
    pub fn bad(msg: impl Into<String>) -> Self {
        Fail { code: 2, msg: msg.into() }
    }
    /// A restore refused before anything started: `EXIT_REFUSED` (125), as the
    /// library's own refusal, never to be taken for the program's status.
    pub fn refused(msg: impl Into<String>) -> Self {
        Fail { code: mig_image::EXIT_REFUSED as u8, msg: msg.into() }
    }
}

pub type Result<T> = std::result::Result<T, Fail>;

fn main() -> ExitCode {
    let cli = match command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let r = match cli.cmd {
        Cmd::Run(a) => run::main(a),
        Cmd::Checkpoint(a) => checkpoint::main(a),
        Cmd::Restart(a) => restart::main(a),
        Cmd::Inspect(a) => inspect::main(a),
        Cmd::Migrate(a) => migrate::main(a),
        Cmd::Ps(a) => ps::main(a),
        Cmd::Completions(c) => completions(c),
        Cmd::Man(m) => man(m),
        Cmd::Hold(a) => hold::main(a),
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("mig: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

/// clap's own message, whole (it names what is wrong and how the command is used);
/// status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let _ = e.print();
    ExitCode::from(match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
        _ => 2,
    })
}
