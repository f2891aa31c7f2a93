//! Batch jobs (issue 19): `mig run --resume IMAGE --checkpoint-on SIGNALS --then ...`,
//! as a Slurm job script runs it, without Slurm: the signals a batch system sends, a
//! requeue (a fake `scontrol` on the PATH records it), the job started again with the
//! same command, its output appended to one file as Slurm's `--open-mode=append` does.
//! The job is a parent and child over two pipes (`pipe_pair`), run under a reaper so
//! that its pids are free again once it is killed (see `c-tests/reaper.c`).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `reaper mig run ARGS -- pipe_pair 60`, in `dir`, its output appended to `out` and
/// its messages to `err`, with `env` added.
fn batch(dir: &Path, args: &[&str], out: &Path, err: &Path, env: &[(&str, &str)]) -> Child {
    let append = |p: &Path| std::fs::OpenOptions::new().append(true).create(true).open(p).unwrap();
    let mut c = Command::new(compile("reaper"));
    c.arg(mig()).arg("run").args(args).arg("--").arg(compile("pipe_pair")).arg("60").current_dir(dir);
    for k in ["LD_PRELOAD", "MIG_IMAGE", "MIG_RESTORE", "MIG_LOG", "MIG_TRUST_IMAGE", "MIG_CHECKPOINT_ON"] {
        c.env_remove(k);
    }
    c.env("MIG_LIB", lib());
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).stdout(append(out)).stderr(append(err));
    c.spawn().unwrap()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect()
}

/// Waits until `out` holds the line `step <n> ...`.
fn until_step(out: &Path, n: u32) {
    wait_until(&format!("step {n}"), Duration::from_secs(20), || lines(out).iter().any(|l| step_of(l) == Some(n)).then_some(()));
}

/// The job's processes: mig (the reaper's child) and everything under it.
fn job_under(reaper: &Child) -> Vec<i32> {
    let mut all: Vec<i32> = children_of(reaper.id() as i32);
    let mut i = 0;
    while let Some(&p) = all.get(i) {
        all.extend(children_of(p));
        i += 1;
    }
    all
}

fn signal_all(pids: &[i32], sig: i32) {
    for &p in pids {
        // SAFETY: kill(2) on the test's own subjects.
        unsafe { libc::kill(p, sig) };
    }
}

fn reference(dir: &Path) -> Vec<String> {
    let out = Command::new(compile("pipe_pair")).arg("60").current_dir(dir).env_remove("LD_PRELOAD").output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

struct Setup {
    dir: PathBuf,
    image: String,
    out: PathBuf,
    err: PathBuf,
}

fn setup(name: &str) -> Setup {
    let dir = tempdir(name);
    Setup { image: dir.join("job.mig").display().to_string(), out: dir.join("job.out"), err: dir.join("job.err"), dir }
}

/// Slurm's preemption or time limit: SIGTERM to every process of the job. The job is
/// saved and ends (mig exits 75); the same command resumes it, and the output file
/// holds the run as one never interrupted: no line lost, none twice.
#[test]
fn a_job_saved_on_sigterm_ends_and_the_same_command_resumes_it() {
    require_root("the job's processes get their saved pids back only where pids may be chosen");
    let s = setup("batch_term");
    let args = ["--resume", &s.image, "--checkpoint-on", "USR1,TERM", "--then", "exit"];
    let mut r = batch(&s.dir, &args, &s.out, &s.err, &[]);
    until_step(&s.out, 10);
    signal_all(&job_under(&r), libc::SIGTERM);
    let st = r.wait().unwrap();
    let err = std::fs::read_to_string(&s.err).unwrap();
    assert_eq!(st.code(), Some(75), "mig exits 75 once the job is saved and ended: {err}");
    assert!(err.contains("on SIGTERM written to") && err.contains("2 processes"), "{err}");
    let st = batch(&s.dir, &args, &s.out, &s.err, &[]).wait().unwrap();
    let err = std::fs::read_to_string(&s.err).unwrap();
    assert!(st.success(), "the resumed job ends well: {err}");
    assert_eq!(lines(&s.out), reference(&s.dir), "{err}");
}

/// `--signal=B:USR1@120` signals only the batch shell (mig): with `--then continue`
/// the job is saved and goes on to its end; `--then requeue` asks Slurm (`scontrol
/// requeue $SLURM_JOB_ID`) before it ends the job.
#[test]
fn usr1_to_mig_saves_the_job_which_goes_on_or_is_requeued() {
    require_root("the job's processes get their saved pids back only where pids may be chosen");
    let s = setup("batch_usr1");
    let args = ["--resume", &s.image, "--checkpoint-on", "USR1", "--then", "continue"];
    let mut r = batch(&s.dir, &args, &s.out, &s.err, &[]);
    until_step(&s.out, 5);
    let mig_pid = children_of(r.id() as i32)[0];
    signal_all(&[mig_pid], libc::SIGUSR1);
    wait_for_file(Path::new(&s.image));
    assert!(r.wait().unwrap().success(), "{}", std::fs::read_to_string(&s.err).unwrap());
    assert_eq!(lines(&s.out), reference(&s.dir));
    // Requeue, through a fake scontrol that records its arguments.
    let s = setup("batch_requeue");
    let bin = s.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("scontrol");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$@\" > {}/scontrol.args\n", s.dir.display())).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let env = [("PATH", path.as_str()), ("SLURM_JOB_ID", "4242")];
    let args = ["--resume", &s.image, "--checkpoint-on", "USR1", "--then", "requeue"];
    let mut r = batch(&s.dir, &args, &s.out, &s.err, &env);
    until_step(&s.out, 5);
    signal_all(&children_of(r.id() as i32)[..1], libc::SIGUSR1);
    assert_eq!(r.wait().unwrap().code(), Some(75));
    assert_eq!(std::fs::read_to_string(s.dir.join("scontrol.args")).unwrap().trim(), "requeue 4242");
    assert!(batch(&s.dir, &args, &s.out, &s.err, &env).wait().unwrap().success());
    assert_eq!(lines(&s.out), reference(&s.dir), "{}", std::fs::read_to_string(&s.err).unwrap());
}

/// Periodic checkpoints (--interval, taken by mig for the whole job), then a SIGKILL
/// of everything between two: the same command resumes from the last image, and the
/// output file is cut back to where that image was taken, so the lines written since,
/// which the job writes again, are there once.
#[test]
fn a_job_killed_between_periodic_checkpoints_resumes_from_the_last_without_repeating_output() {
    require_root("the job's processes get their saved pids back only where pids may be chosen");
    let s = setup("batch_interval");
    let args = ["--resume", &s.image, "--checkpoint-on", "TERM", "--interval", "0.4"];
    let mut r = batch(&s.dir, &args, &s.out, &s.err, &[]);
    wait_for_file(Path::new(&s.image));
    until_step(&s.out, 25);
    signal_all(&job_under(&r), libc::SIGKILL);
    let _ = r.wait();
    let before = lines(&s.out).len();
    let st = batch(&s.dir, &args, &s.out, &s.err, &[]).wait().unwrap();
    let err = std::fs::read_to_string(&s.err).unwrap();
    assert!(st.success(), "{err}");
    assert!(err.contains("the job's output is cut back"), "{err}");
    assert_eq!(lines(&s.out), reference(&s.dir), "{before} lines before the kill; {err}");
}

/// A damaged image is never resumed silently: by default mig stops (125, nothing runs,
/// the image kept); with --if-damaged fresh it says so, keeps the image aside and
/// starts the program afresh.
#[test]
fn a_damaged_image_is_not_resumed_silently() {
    let s = setup("batch_damaged");
    let args = ["--resume", &s.image, "--checkpoint-on", "TERM"];
    let mut r = batch(&s.dir, &args, &s.out, &s.err, &[]);
    until_step(&s.out, 5);
    signal_all(&job_under(&r), libc::SIGTERM);
    assert_eq!(r.wait().unwrap().code(), Some(75));
    let mut bytes = std::fs::read(&s.image).unwrap();
    // A byte of the first process's header, which its CRC covers.
    bytes[4096 + 64] ^= 0x5a;
    std::fs::write(&s.image, &bytes).unwrap();
    let before = lines(&s.out).len();
    let st = batch(&s.dir, &args, &s.out, &s.err, &[]).wait().unwrap();
    let err = std::fs::read_to_string(&s.err).unwrap();
    assert_eq!(st.code(), Some(125), "{err}");
    assert!(err.contains(&format!("cannot resume from {}", s.image)), "{err}");
    assert_eq!(lines(&s.out).len(), before, "nothing ran");
    assert!(Path::new(&s.image).exists(), "the image is kept");
    let fresh = ["--resume", &s.image, "--checkpoint-on", "TERM", "--if-damaged", "fresh"];
    let st = batch(&s.dir, &fresh, &s.out, &s.err, &[]).wait().unwrap();
    let err = std::fs::read_to_string(&s.err).unwrap();
    assert!(st.success(), "{err}");
    assert!(err.contains("the program starts afresh"), "{err}");
    assert!(Path::new(&format!("{}.damaged", s.image)).exists());
    assert_eq!(lines(&s.out)[before..], reference(&s.dir)[..], "a whole fresh run follows");
}
