//! Pre-copied checkpoints (`MIG_PRECOPY`): a copier sharing the program's memory
//! writes the image while the program runs on, tracks the pages it writes and
//! rewrites them in later rounds; the program stops only at the end, briefly. The
//! image must still be one moment of the program. `MIG_PRECOPY=0` turns it off,
//! `MIG_PRECOPY=1` forces it, unset it is automatic (only from 64 MiB of private
//! anonymous memory resident). Under `MIG_LOG=debug` a pre-copied checkpoint says
//! `pre-copied` in its `checkpoint written to …` line.
//!
//! The main subject, `c-tests/precopy_churn.c`, rewrites a 48 MiB array all the time
//! and maps, unmaps, grows and shrinks blocks, moves brk and has the kernel read()
//! into its memory while the image is being written.
//!
//! Runs are given more steps than they ever print and killed once they have shown
//! what is needed: a checkpoint that takes long (the copier runs at a low priority,
//! CI machines are busy) finds the program still running, never ended. A restored
//! run is followed for `FOLLOW` steps, each of whose digests covers all the
//! subject's state, and compared with an uninterrupted run of as many steps.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};

/// What a pre-copied checkpoint's debug line says.
const MARKER: &str = "pre-copied";

/// What mig says (`MIG_LOG=debug`) when the program's mremap ends a pre-copy.
const ABANDONED: &str = "pre-copy abandoned";

/// Steps given to every subject: more than any run here prints.
const ENDLESS: &str = "100000";

/// Steps a restored run is followed for.
const FOLLOW: usize = 16;

fn churn(dir: &Path) -> Launch {
    Launch::new(&compile("precopy_churn"), dir).arg(ENDLESS)
}

/// The first `n` lines of an uninterrupted run of `l` (its first argument the number
/// of steps): a step's line does not depend on how many steps follow.
fn reference_upto(l: &Launch, n: u32) -> Vec<String> {
    let mut bare = l.clone_bare();
    bare.cmd[1] = n.to_string();
    let mut lines = reference(&bare);
    lines.pop(); // done
    lines
}

/// `reference_upto` of `churn`, shared by the tests (run again, longer, when one needs
/// more).
fn churn_reference_upto(n: u32) -> Vec<String> {
    static REF: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut r = REF.lock().unwrap_or_else(|e| e.into_inner());
    if r.len() < n as usize {
        *r = reference_upto(&churn(&tempdir("precopy_reference")), n.max(60));
    }
    r[..n as usize].to_vec()
}

/// `l` with `MIG_PRECOPY=<mode>` and `MIG_LOG=debug`.
fn with_precopy(l: Launch, mode: &str) -> Launch {
    l.clone_with("MIG_PRECOPY", Path::new(mode)).clone_with("MIG_LOG", Path::new("debug"))
}

/// `bin` preloaded, with `MIG_PRECOPY` removed from the environment whatever the
/// test runner has (automatic mode), and `MIG_LOG=debug`: started through `env -u`,
/// which execs it (the pid is the subject's).
fn without_precopy_setting(bin: &Path, dir: &Path) -> Launch {
    Launch::new(Path::new("env"), dir)
        .bare()
        .arg("-u")
        .arg("MIG_PRECOPY")
        .arg(&format!("LD_PRELOAD={}", lib().display()))
        .arg(bin.to_str().unwrap())
        .clone_with("MIG_LOG", Path::new("debug"))
}

/// A subject's stderr, line by line as it comes.
struct Stderr {
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Stderr {
    fn of(p: &mut Proc) -> Stderr {
        let e = p.child.stderr.take().expect("stderr is piped");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(e).lines() {
                if tx.send(l.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        Stderr { lines: rx, seen: vec![] }
    }

    /// Waits for the debug line that reports a written checkpoint (it comes once the
    /// image is in place); panics on a failed checkpoint or at the end of output.
    fn report(&mut self) -> String {
        loop {
            let l = self.lines.recv_timeout(TIMEOUT).unwrap_or_else(|_| panic!("no `checkpoint written to` line on stderr; saw {:#?}", self.seen));
            self.seen.push(l.clone());
            if l.contains("checkpoint written to") {
                return l;
            }
            assert!(!(l.contains("checkpoint to") && l.contains("failed")), "the checkpoint failed: {:#?}", self.seen);
        }
    }

    /// The rest, to the end of output (call once the subject is gone).
    fn all(mut self) -> String {
        while let Ok(l) = self.lines.recv_timeout(TIMEOUT) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }
}

/// A run checkpointed once and killed.
struct Checkpointed {
    image: PathBuf,
    /// The checkpoint's debug line.
    report: String,
    /// Everything the run printed on stderr.
    err: String,
    /// Everything it printed on stdout.
    before: Vec<String>,
}

/// Starts `l` with its image at `<cwd>/subject.mig`, checkpoints it by SIGUSR1 once
/// `step <at>` is out, waits for the checkpoint's debug report, lets one more line
/// come and kills it.
fn checkpoint_and_kill(l: &Launch, at: u32) -> Checkpointed {
    let image = l.cwd.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let mut err = Stderr::of(&mut p);
    checkpoint_at(&mut p, at, &image);
    let report = err.report();
    p.line().expect("the subject keeps running after a checkpoint");
    let before = p.kill();
    Checkpointed { image, report, err: err.all(), before }
}

/// Restores `image` (with `env` too), reads its first `FOLLOW` lines and kills it.
fn restore_prefix(l: &Launch, image: &Path, env: &[(&str, &str)]) -> Vec<String> {
    let mut r = l.clone_with("MIG_RESTORE", image);
    for (k, v) in env {
        r = r.clone_with(k, Path::new(v));
    }
    let mut p = r.start();
    let err = Stderr::of(&mut p);
    for _ in 0..FOLLOW {
        if p.line().is_none() {
            break;
        }
    }
    let lines = p.kill();
    let err = err.all();
    assert!(lines.len() >= FOLLOW && lines.iter().all(|l| step_of(l).is_some()), "restore of {} {env:?} printed {lines:?}\nstderr: {err}", image.display());
    lines
}

fn last_step(lines: &[String]) -> u32 {
    lines.iter().filter_map(|l| step_of(l)).max().unwrap_or(0)
}

/// The first step of `lines`, which must be the uninterrupted run's lines from there
/// on.
fn assert_prefix(reference: &[String], lines: &[String], what: &str) -> u32 {
    let first = step_of(&lines[0]).unwrap_or_else(|| panic!("{what} starts with {:?}", lines[0]));
    assert!(reference.len() >= last_step(lines) as usize, "reference too short for {what}");
    let at = reference.iter().position(|l| step_of(l) == Some(first)).expect("first step in reference");
    assert_eq!(&reference[at..at + lines.len()], lines, "{what} differs from the uninterrupted run");
    first
}

/// `before` (a run checkpointed after step `at`, then killed) printed what the
/// uninterrupted run did, and `restored` (restored from that image) goes on as it
/// did, from after step `at` and from no later than where `before` stopped.
fn assert_restored(reference: &[String], before: &[String], restored: &[String], at: u32) {
    assert_eq!(&reference[..before.len()], before, "the checkpointed run differs from the uninterrupted one");
    let first = assert_prefix(reference, restored, "the restored run");
    let stopped = last_step(before);
    assert!(at < first && first <= stopped + 1, "asked for after step {at}, killed after step {stopped}, restored at step {first}");
}

#[test]
fn churning_process_restores_after_a_precopied_checkpoint() {
    let dir = tempdir("precopy_churn");
    let l = with_precopy(churn(&dir), "1");
    let c = checkpoint_and_kill(&l, 4);
    assert!(c.report.contains(MARKER), "MIG_PRECOPY=1 pre-copies: {:?}\n{}", c.report, c.err);
    assert_eq!(c.err.matches("checkpoint written to").count(), 1, "one checkpoint: {}", c.err);
    let restored = restore_prefix(&l, &c.image, &[]);
    let reference = churn_reference_upto(last_step(&c.before).max(last_step(&restored)));
    assert_restored(&reference, &c.before, &restored, 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn several_precopied_checkpoints_in_one_run_restore_lazily_and_eagerly() {
    let dir = tempdir("precopy_several");
    let l = with_precopy(churn(&dir), "1");
    let mut p = l.start();
    let mut err = Stderr::of(&mut p);
    // One after the other (`mig checkpoint` waits for each), the program running on;
    // each asked for once the program has printed a step after the previous one.
    let images: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("n{i}.mig"))).collect();
    let mut asked_after = vec![];
    p.until("step 3 ");
    for image in &images {
        p.line().expect("the program runs on");
        asked_after.push(last_step(&p.seen));
        let out = mig_cmd(&["checkpoint", &p.pid().to_string(), "--to", image.to_str().unwrap()]).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "mig checkpoint: {said}{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains(&format!("written to {}", image.display())), "{said}");
    }
    let reports: Vec<String> = images.iter().map(|_| err.report()).collect();
    p.line().expect("the program runs on");
    let before = p.kill();
    let err = err.all();
    assert!(reports.iter().all(|r| r.contains(MARKER)), "every checkpoint pre-copied:\n{err}");
    // Each image is one moment of the program: restored mapped from the image
    // (default) or read in with every CRC checked first, it goes on as the
    // uninterrupted run did.
    let restored: Vec<(Vec<String>, Vec<String>)> =
        images.iter().map(|image| (restore_prefix(&l, image, &[]), restore_prefix(&l, image, &[("MIG_RESTORE_EAGER", "1")]))).collect();
    let last = restored.iter().map(|(a, b)| last_step(a).max(last_step(b))).chain([last_step(&before)]).max().unwrap();
    let reference = churn_reference_upto(last);
    let mut previous = 0;
    for ((image, (lazy, eager)), &asked) in images.iter().zip(&restored).zip(&asked_after) {
        let name = image.file_name().unwrap().to_str().unwrap();
        assert_restored(&reference, &before, lazy, asked);
        let first = assert_prefix(&reference, lazy, &format!("lazy restore of {name}"));
        assert_eq!(assert_prefix(&reference, eager, &format!("eager restore of {name}")), first, "{name}: one image, one moment");
        assert!(first >= previous, "{name} resumes at step {first}, the image before it at {previous}");
        previous = first;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Blocks grown by mremap (and realloc, which glibc does with mremap) while the
/// image is written: pages move to another address. A block the program maps next to
/// one the copier tracks does not merge with it, so an mremap across both fails:
/// mig then ends the pre-copy (`pre-copy abandoned`) and the checkpoint forks; when no
/// such mremap comes, the checkpoint is pre-copied. Either way the image is one moment
/// of the program and restores lazily (in a lazily restored process, mremap works on
/// memory mapped from the image as on anonymous memory) and eagerly. `precopy_churn`
/// prints the same with or without mremap.
#[test]
fn mremap_during_a_precopied_checkpoint_restores_lazily_and_eagerly() {
    let dir = tempdir("precopy_mremap");
    let l = with_precopy(churn(&dir).arg("48").arg("mremap"), "1");
    let c = checkpoint_and_kill(&l, 4);
    assert!(c.report.contains(MARKER) || c.err.contains(ABANDONED), "MIG_PRECOPY=1 pre-copies, unless an mremap ends the pre-copy: {:?}\n{}", c.report, c.err);
    let lazy = restore_prefix(&l, &c.image, &[]);
    let eager = restore_prefix(&l, &c.image, &[("MIG_RESTORE_EAGER", "1")]);
    let reference = churn_reference_upto(last_step(&c.before).max(last_step(&lazy)).max(last_step(&eager)));
    assert_restored(&reference, &c.before, &lazy, 4);
    assert_restored(&reference, &c.before, &eager, 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `precopy_split`, pre-copied (forced), checkpointed once `step 3` is out, killed
/// after one more line: `checkpoint_and_kill`, but waiting for the report rather than
/// the image (should the subject's mremap fail, it exits and the panic shows its `FAIL`
/// at once). Asserts that the subject's mremap ended the pre-copy and that one
/// checkpoint was written the usual way.
fn split_abandoned(dir: &Path) -> (Launch, Checkpointed) {
    let l = with_precopy(Launch::new(&compile("precopy_split"), dir).arg(ENDLESS), "1");
    let image = dir.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let mut err = Stderr::of(&mut p);
    p.until("step 3 ");
    p.signal(libc::SIGUSR1);
    let report = err.report();
    assert!(image.exists(), "{report}");
    p.line().expect("the subject keeps running after a checkpoint");
    let c = Checkpointed { image, report, before: p.kill(), err: err.all() };
    assert!(!c.before.iter().any(|s| s.starts_with("FAIL")), "{:?}\n{}", c.before, c.err);
    assert!(c.err.contains(ABANDONED), "the mremap ends the pre-copy:\n{}", c.err);
    assert!(!c.report.contains(MARKER), "the checkpoint is not pre-copied once abandoned: {:?}\n{}", c.report, c.err);
    assert_eq!(c.err.matches("checkpoint written to").count(), 1, "one checkpoint: {}", c.err);
    // The usual way is a fork: the subject shares no memory (the copier's window on its
    // own file is not the program's shared memory).
    assert!(!c.err.contains("stays stopped"), "the checkpoint after the copier forks:\n{}", c.err);
    (l, c)
}

/// `precopy_split` maps a block right after one the copier tracks (mapped before the
/// checkpoint) and mremaps the two as one range, every step: without mig's help that
/// fails (EFAULT, the subject prints `FAIL`). mig ends the pre-copy and retries; the
/// checkpoint is written the forked way, and restores. Restored lazily, the block is
/// mapped from the image and its new neighbour is anonymous: the same mremap must work
/// there too, and go on working (the block, made anonymous, merges with later ones).
#[test]
fn mremap_across_a_tracked_mapping_ends_the_precopy() {
    let dir = tempdir("precopy_split");
    let (l, c) = split_abandoned(&dir);
    let lazy = restore_prefix(&l, &c.image, &[]);
    let eager = restore_prefix(&l, &c.image, &[("MIG_RESTORE_EAGER", "1")]);
    let reference = reference_upto(&l, last_step(&c.before).max(last_step(&lazy)).max(last_step(&eager)));
    assert_restored(&reference, &c.before, &lazy, 3);
    assert_restored(&reference, &c.before, &eager, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The checkpoint made after a pre-copy was given up saves the program, not the
/// copier: neither its window on its own (deleted) file nor its 2 GiB scratch, which
/// are mapped in the program's address space until the copier ends. `precopy_split`'s
/// largest mapping is its 96 MiB array.
#[test]
fn an_abandoned_precopy_leaves_nothing_of_the_copier_in_the_image() {
    let dir = tempdir("precopy_split_leftovers");
    let (_, c) = split_abandoned(&dir);
    let out = mig_cmd(&["inspect", "--json", c.image.to_str().unwrap()]).output().unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "inspect: {json}{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}):\n{json}"));
    for r in v["regions"].as_array().unwrap() {
        let copier = r["path"].as_str().unwrap().contains(".mig.tmp") || r["size"].as_u64().unwrap() > 128 << 20;
        assert!(!copier, "a mapping of the copier is in the image: {r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn threads(name: &str, at: u32) {
    let dir = tempdir(&format!("precopy_{name}"));
    let l = with_precopy(Launch::new(&compile(name), &dir).arg(ENDLESS), "1");
    let c = checkpoint_and_kill(&l, at);
    assert!(c.report.contains(MARKER), "MIG_PRECOPY=1 pre-copies a threaded process: {:?}\n{}", c.report, c.err);
    let restored = restore_prefix(&l, &c.image, &[]);
    let reference = reference_upto(&l, last_step(&c.before).max(last_step(&restored)));
    assert_restored(&reference, &c.before, &restored, at);
}

/// Threads created and joined (new stacks, malloc arenas) while the image is written.
#[test]
fn threads_come_and_go_during_a_precopied_checkpoint() {
    threads("threads_churn", 4);
}

/// Four workers writing a shared array in lock step while the image is written.
#[test]
fn threads_write_memory_during_a_precopied_checkpoint() {
    threads("threads_barrier", 5);
}

#[test]
fn inspect_checks_a_precopied_image() {
    let dir = tempdir("precopy_inspect");
    let c = checkpoint_and_kill(&with_precopy(churn(&dir), "1"), 3);
    assert!(c.report.contains(MARKER), "{:?}\n{}", c.report, c.err);
    let image = c.image.to_str().unwrap();

    let out = mig_cmd(&["inspect", image]).output().unwrap();
    let (text, e) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "inspect: {e}\n{text}");
    assert!(text.contains("integrity:   ok"), "{text}");
    assert!(text.contains(&format!("executable:  {}", compile("precopy_churn").display())), "{text}");

    let out = mig_cmd(&["inspect", "--json", image]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}):\n{json}"));
    assert_eq!(v["intact"], true, "{json}");
    assert_eq!(v["damage"].as_array().unwrap().len(), 0, "{json}");
    let regions = v["regions"].as_array().unwrap();
    assert!(regions.iter().all(|r| r["crc"] == "ok" || r["crc"] == "-"), "{json}");
    assert!(v["descriptors"].as_array().unwrap().iter().all(|d| d["crc"] == "ok" || d["crc"] == "-"), "{json}");
    // The 48 MiB array, every page touched, is in it.
    let array = 48u64 << 20;
    assert!(v["header"]["data_len"].as_u64().unwrap() >= array, "{json}");
    // And the format crate agrees.
    let bytes = std::fs::read(&c.image).unwrap();
    mig_image::Image::verify(&bytes, &crc32fast::Hasher::new()).unwrap_or_else(|e| panic!("{e:?}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn precopy_0_does_not_precopy_and_the_image_restores() {
    let dir = tempdir("precopy_off");
    let l = with_precopy(churn(&dir), "0");
    let c = checkpoint_and_kill(&l, 4);
    assert!(!c.report.contains(MARKER), "MIG_PRECOPY=0: {:?}", c.report);
    assert!(!c.err.contains(MARKER), "{}", c.err);
    let restored = restore_prefix(&l, &c.image, &[]);
    let reference = churn_reference_upto(last_step(&c.before).max(last_step(&restored)));
    assert_restored(&reference, &c.before, &restored, 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn automatic_mode_leaves_a_small_process_alone() {
    let dir = tempdir("precopy_auto_small");
    let bin = compile("no_children");
    // 8 MiB of heap: far below the 64 MiB from which pre-copy is automatic.
    let l = without_precopy_setting(&bin, &dir).arg(ENDLESS);
    let c = checkpoint_and_kill(&l, 4);
    assert!(!c.report.contains(MARKER), "a small process is not pre-copied: {:?}", c.report);
    assert!(!c.err.contains(MARKER), "{}", c.err);
    let restored = restore_prefix(&l, &c.image, &[]);
    let reference = reference_upto(&Launch::new(&bin, &dir).arg(ENDLESS), last_step(&c.before).max(last_step(&restored)));
    assert_restored(&reference, &c.before, &restored, 4);
}

#[test]
fn automatic_mode_precopies_a_large_process() {
    let dir = tempdir("precopy_auto_large");
    let bin = compile("precopy_churn");
    // An 80 MiB array: above the 64 MiB from which pre-copy is automatic. Calm: what
    // it writes while the image is written stays well under the 64 MiB beyond which
    // the final stop would be too long and the checkpoint forks instead.
    let l = without_precopy_setting(&bin, &dir).arg(ENDLESS).arg("80").arg("calm");
    let c = checkpoint_and_kill(&l, 3);
    assert!(c.report.contains(MARKER), "80 MiB of private memory is pre-copied automatically: {:?}\n{}", c.report, c.err);
    let restored = restore_prefix(&l, &c.image, &[]);
    let reference = reference_upto(&Launch::new(&bin, &dir).arg(ENDLESS).arg("80").arg("calm"), last_step(&c.before).max(last_step(&restored)));
    assert_restored(&reference, &c.before, &restored, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The copier's files in `dir` (`<image>.tmp.<copier's pid>`).
fn copier_files(dir: &Path) -> Vec<PathBuf> {
    let all = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path());
    all.filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("subject.mig.tmp.")).collect()
}

/// A program killed during a pre-copy and not reaped stays a zombie, on which
/// `kill(pid, 0)` still succeeds: its copier must see that it ended all the same,
/// remove its file and end, not wait for a final stop for ever.
#[test]
fn a_copier_whose_program_died_unreaped_ends() {
    let dir = tempdir("precopy_zombie");
    let image = dir.join("subject.mig");
    // 256 MiB: the copier is still at it when the program is killed.
    let l = with_precopy(Launch::new(&compile("precopy_churn"), &dir).arg(ENDLESS).arg("256"), "1").clone_with("MIG_IMAGE", &image);
    let mut p = l.start();
    p.until("step 2");
    p.signal(libc::SIGUSR1);
    let t0 = std::time::Instant::now();
    while copier_files(&dir).is_empty() {
        assert!(t0.elapsed() < TIMEOUT, "no copier started");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // Killed, not reaped: `p` is waited for only at the end.
    p.signal(libc::SIGKILL);
    let t0 = std::time::Instant::now();
    while !copier_files(&dir).is_empty() {
        assert!(t0.elapsed() < TIMEOUT, "the copier still waits for its dead program: {:?}", copier_files(&dir));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!image.exists(), "no image of a program that died before its final stop");
    p.kill();
}

/// Issue 14: the copier is no child of the program, while it copies or once it has
/// ended; the next checkpoint (which waits for it) works, and leaves no child either.
#[test]
fn a_precopied_checkpoint_leaves_the_program_no_child() {
    let dir = tempdir("precopy_no_child");
    let image = dir.join("subject.mig");
    let mut p = with_precopy(churn(&dir), "1").clone_with("MIG_IMAGE", &image).start();
    let mut err = Stderr::of(&mut p);
    p.until("step 2 ");
    p.signal(libc::SIGUSR1);
    let mut copier = None;
    while !image.exists() {
        if copier.is_none() {
            copier = files_starting(&dir, "subject.mig.tmp.").pop().and_then(|f| holder_of("mig-copier", &f));
        }
        // Within a stop, the helper that starts the copier (or a writer) is a child for a
        // moment, and reaped before the program runs again: never the copier itself.
        for c in children_of(p.pid()) {
            assert_ne!(Some(c), copier, "the copier is a child of the program");
            wait_until("a child that stays", std::time::Duration::from_secs(5), || (!children_of(p.pid()).contains(&c)).then_some(()));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let report = err.report();
    assert!(report.contains(MARKER), "not pre-copied: {report}");
    assert!(children_of(p.pid()).is_empty(), "a child after a pre-copied checkpoint: {:?}", children_of(p.pid()));
    if let Some(c) = copier {
        let ppid = std::fs::read_to_string(format!("/proc/{c}/status"))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PPid:")).map(|v| v.trim().to_string()));
        assert_ne!(ppid, Some(p.pid().to_string()), "the copier is no child of the program");
    }
    let again = dir.join("again.mig");
    let out = mig_cmd(&["checkpoint", &p.pid().to_string(), "--to", again.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "the next checkpoint: {}", String::from_utf8_lossy(&out.stderr));
    assert!(children_of(p.pid()).is_empty(), "a child after the next checkpoint: {:?}", children_of(p.pid()));
    p.line().expect("the program goes on");
    p.kill();
    inspect_intact(&image);
    inspect_intact(&again);
}
