//! Pre-copied checkpoints (`MIG_PRECOPY`): a helper sharing the program's memory
//! writes the image while the program runs on, tracks the pages it writes and
//! rewrites them in later rounds; the program stops only at the end, briefly. The
//! image must still be one moment of the program. `MIG_PRECOPY=0` turns it off,
//! `MIG_PRECOPY=1` forces it, unset it is automatic (only from 64 MiB of private
//! anonymous memory resident). Under `MIG_LOG=debug` a pre-copied checkpoint says
//! `pre-copied` in its `checkpoint written to …` line.
//!
//! The main subject, `c-tests/precopy_churn.c`, rewrites a 48 MiB array all the time
//! and maps, unmaps, grows and shrinks blocks and has the kernel read() into its
//! memory while the image is being written.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};

/// What a pre-copied checkpoint's debug line says.
const MARKER: &str = "pre-copied";

/// Steps of a `precopy_churn` run that goes to its end (~17 ms each here, ~2.6 s):
/// a pre-copied checkpoint asked for near the start must be complete long before.
const CHURN_STEPS: u32 = 150;

/// Steps of a run that is killed, never ended: it outlasts any number of checkpoints.
const ENDLESS: &str = "100000";

fn churn(dir: &Path, steps: &str) -> Launch {
    Launch::new(&compile("precopy_churn"), dir).arg(steps)
}

/// The uninterrupted `precopy_churn` run of `CHURN_STEPS`, once for the whole file.
fn churn_reference() -> &'static [String] {
    static REF: OnceLock<Vec<String>> = OnceLock::new();
    REF.get_or_init(|| reference(&churn(&tempdir("precopy_reference"), &CHURN_STEPS.to_string()).bare()))
}

/// The `step` lines of an uninterrupted run of `l` (its first argument the number of
/// steps) up to step `n`: a step's line does not depend on how many steps follow.
fn reference_upto(l: &Launch, n: u32) -> Vec<String> {
    let mut bare = l.clone_bare();
    bare.cmd[1] = n.to_string();
    let mut lines = reference(&bare);
    lines.pop(); // done
    lines
}

/// `reference_upto` for `precopy_churn` with its default array: the shared run when
/// it is long enough.
fn churn_reference_upto(dir: &Path, n: u32) -> Vec<String> {
    if n <= CHURN_STEPS {
        return churn_reference()[..n as usize].to_vec();
    }
    reference_upto(&churn(dir, ENDLESS), n)
}

/// `l` with `MIG_PRECOPY=<mode>` and `MIG_LOG=debug`.
fn with_precopy(l: Launch, mode: &str) -> Launch {
    l.clone_with("MIG_PRECOPY", Path::new(mode)).clone_with("MIG_LOG", Path::new("debug"))
}

/// `bin` preloaded, with `MIG_PRECOPY` removed from the environment whatever the
/// test runner has (automatic mode): started through `env -u`, which execs it (the
/// pid is the subject's).
fn without_precopy_setting(bin: &Path, dir: &Path) -> Launch {
    Launch::new(Path::new("env"), dir)
        .bare()
        .arg("-u")
        .arg("MIG_PRECOPY")
        .arg(&format!("LD_PRELOAD={}", lib().display()))
        .arg(bin.to_str().unwrap())
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
            let l = self
                .lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("no `checkpoint written to` line on stderr; saw {:#?}", self.seen));
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

/// One checkpoint by SIGUSR1 once `step <at>` is out; waits for its debug report,
/// lets the subject print one more line, kills it, restores it (with `restore_env`
/// too) and checks the restored run against `reference` to its end. Returns the
/// report line and the checkpointed run's whole stderr.
fn checkpoint_kill_restart_reported(l: &Launch, reference: &[String], at: u32, restore_env: &[(&str, &str)]) -> (String, String) {
    let image = l.cwd.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let mut err = Stderr::of(&mut p);
    checkpoint_at(&mut p, at, &image);
    let report = err.report();
    p.line().expect("the subject keeps running after a checkpoint");
    let before = p.kill();
    let first_err = err.all();
    let mut r = l.clone_with("MIG_RESTORE", &image);
    for (k, v) in restore_env {
        r = r.clone_with(k, Path::new(v));
    }
    let (restored, st, err) = r.start().finish();
    assert!(st.success(), "restored run failed: {st:?}\nstderr: {err}\nstdout: {restored:?}\ncheckpoint stderr: {first_err}");
    let first = step_of(&restored[0]).unwrap_or_else(|| panic!("restored run starts with {:?}", restored[0]));
    assert!(first > at, "the image was asked for after step {at}, the restored run starts at step {first}");
    assert_continues(reference, &before, &restored);
    (report, first_err)
}

/// Restores `image` (with `env` too), reads its first `n` lines and kills it.
fn restore_prefix(l: &Launch, image: &Path, env: &[(&str, &str)], n: usize) -> Vec<String> {
    let mut r = l.clone_with("MIG_RESTORE", image);
    for (k, v) in env {
        r = r.clone_with(k, Path::new(v));
    }
    let mut p = r.start();
    let err = Stderr::of(&mut p);
    for _ in 0..n {
        if p.line().is_none() {
            break;
        }
    }
    let lines = p.kill();
    let err = err.all();
    assert!(
        lines.len() >= n && lines.iter().all(|l| step_of(l).is_some()),
        "restore of {} {env:?} printed {lines:?}\nstderr: {err}",
        image.display()
    );
    lines
}

/// The first step of `lines`, which must be the uninterrupted run's lines from there
/// on (every line covers all of the subject's memory).
fn assert_prefix(reference: &[String], lines: &[String], what: &str) -> u32 {
    let first = step_of(&lines[0]).unwrap_or_else(|| panic!("{what} starts with {:?}", lines[0]));
    let last = step_of(lines.last().unwrap()).unwrap();
    assert!(reference.len() >= last as usize, "reference too short for {what}");
    let at = reference.iter().position(|l| step_of(l) == Some(first)).expect("first step in reference");
    assert_eq!(&reference[at..at + lines.len()], lines, "{what} differs from the uninterrupted run");
    first
}

#[test]
fn churning_process_restores_after_a_precopied_checkpoint() {
    let dir = tempdir("precopy_churn");
    let l = with_precopy(churn(&dir, &CHURN_STEPS.to_string()), "1");
    let (report, err) = checkpoint_kill_restart_reported(&l, churn_reference(), 4, &[]);
    assert!(report.contains(MARKER), "MIG_PRECOPY=1 pre-copies: {report:?}\n{err}");
    assert_eq!(err.matches("checkpoint written to").count(), 1, "one checkpoint: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn several_precopied_checkpoints_in_one_run_restore_lazily_and_eagerly() {
    let dir = tempdir("precopy_several");
    let l = with_precopy(churn(&dir, ENDLESS), "1");
    let mut p = l.start();
    let mut err = Stderr::of(&mut p);
    // One after the other (`mig checkpoint` waits for each), the program running on;
    // each asked for once the program has printed a step after the previous one.
    let images: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("n{i}.mig"))).collect();
    let mut asked_after = vec![];
    p.until("step 3 ");
    for image in &images {
        p.line().expect("the program runs on");
        asked_after.push(step_of(p.seen.last().unwrap()).unwrap());
        let out = mig_cmd(&["checkpoint", &p.pid().to_string(), "--to", image.to_str().unwrap()]).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "mig checkpoint: {said}{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains(&format!("written to {}", image.display())), "{said}");
    }
    let reports: Vec<String> = (0..images.len()).map(|_| err.report()).collect();
    let before = p.kill();
    let err = err.all();
    assert!(reports.iter().all(|r| r.contains(MARKER)), "every checkpoint pre-copied:\n{err}");
    // Each image is one moment of the program: restored mapped from the image
    // (default) or read in with every CRC checked first, it goes on as the
    // uninterrupted run did.
    let restored: Vec<(Vec<String>, Vec<String>)> = images
        .iter()
        .map(|image| (restore_prefix(&l, image, &[], 8), restore_prefix(&l, image, &[("MIG_RESTORE_EAGER", "1")], 8)))
        .collect();
    let last = restored.iter().flat_map(|(a, b)| a.iter().chain(b)).chain(&before).filter_map(|l| step_of(l)).max().unwrap();
    let reference = churn_reference_upto(&dir, last);
    assert_eq!(&reference[..before.len()], &before[..], "checkpoints changed what the program saw");
    let mut previous = 0;
    for ((image, (lazy, eager)), asked) in images.iter().zip(&restored).zip(&asked_after) {
        let name = image.file_name().unwrap().to_str().unwrap();
        let first = assert_prefix(&reference, lazy, &format!("lazy restore of {name}"));
        assert_eq!(assert_prefix(&reference, eager, &format!("eager restore of {name}")), first, "one image, one moment");
        assert!(first > *asked, "{name}, asked for after step {asked}, resumes at step {first}");
        assert!(first >= previous, "{name} resumes at step {first}, the image before it at {previous}");
        previous = first;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Blocks grown by mremap (and realloc, which glibc does with mremap) while the
/// image is written: pages move to another address. Restored eagerly: a lazily
/// restored process cannot mremap a range whose saved and untouched pages became
/// separate mappings. `precopy_churn` prints the same with or without mremap.
#[test]
fn mremap_during_a_precopied_checkpoint_restores_eagerly() {
    let dir = tempdir("precopy_mremap");
    let l = with_precopy(churn(&dir, &CHURN_STEPS.to_string()).arg("48").arg("mremap"), "1");
    let (report, err) = checkpoint_kill_restart_reported(&l, churn_reference(), 4, &[("MIG_RESTORE_EAGER", "1")]);
    assert!(report.contains(MARKER), "MIG_PRECOPY=1 pre-copies: {report:?}\n{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn threads(name: &str, at: u32) {
    let dir = tempdir(&format!("precopy_{name}"));
    let l = with_precopy(Launch::new(&compile(name), &dir).arg("20"), "1");
    let reference = reference(&l.clone_bare());
    let (report, err) = checkpoint_kill_restart_reported(&l, &reference, at, &[]);
    assert!(report.contains(MARKER), "MIG_PRECOPY=1 pre-copies a threaded process: {report:?}\n{err}");
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
    let l = with_precopy(churn(&dir, ENDLESS), "1");
    let image = dir.join("i.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let mut err = Stderr::of(&mut p);
    checkpoint_at(&mut p, 3, &image);
    let report = err.report();
    p.kill();
    assert!(report.contains(MARKER), "{report:?}\n{}", err.all());

    let out = mig_cmd(&["inspect", image.to_str().unwrap()]).output().unwrap();
    let (text, e) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "inspect: {e}\n{text}");
    assert!(text.contains("integrity:   ok"), "{text}");
    assert!(text.contains(&format!("executable:  {}", compile("precopy_churn").display())), "{text}");

    let out = mig_cmd(&["inspect", "--json", image.to_str().unwrap()]).output().unwrap();
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
    assert!(regions.iter().any(|r| r["saved"].as_u64().unwrap() >= array), "no region with the array saved: {json}");
    assert!(v["header"]["data_len"].as_u64().unwrap() >= array, "{json}");
    // And the format crate agrees.
    let bytes = std::fs::read(&image).unwrap();
    mig_image::Image::verify(&bytes, &crc32fast::Hasher::new()).unwrap_or_else(|e| panic!("{e:?}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn precopy_0_does_not_precopy_and_the_image_restores() {
    let dir = tempdir("precopy_off");
    let l = with_precopy(churn(&dir, &CHURN_STEPS.to_string()), "0");
    let (report, err) = checkpoint_kill_restart_reported(&l, churn_reference(), 4, &[]);
    assert!(!report.contains(MARKER), "MIG_PRECOPY=0: {report:?}");
    assert!(!err.contains(MARKER), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn automatic_mode_leaves_a_small_process_alone() {
    let dir = tempdir("precopy_auto_small");
    let bin = compile("no_children");
    let reference = reference(&Launch::new(&bin, &dir).arg("20").bare());
    // 8 MiB of heap: far below the 64 MiB from which pre-copy is automatic.
    let l = without_precopy_setting(&bin, &dir).arg("20").clone_with("MIG_LOG", Path::new("debug"));
    let (report, err) = checkpoint_kill_restart_reported(&l, &reference, 4, &[]);
    assert!(!report.contains(MARKER), "a small process is not pre-copied: {report:?}");
    assert!(!err.contains(MARKER), "{err}");
}

#[test]
fn automatic_mode_precopies_a_large_process() {
    let dir = tempdir("precopy_auto_large");
    let bin = compile("precopy_churn");
    // An 80 MiB array: above the 64 MiB from which pre-copy is automatic.
    let l = without_precopy_setting(&bin, &dir).arg(ENDLESS).arg("80").clone_with("MIG_LOG", Path::new("debug"));
    let image = dir.join("big.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let mut err = Stderr::of(&mut p);
    checkpoint_at(&mut p, 3, &image);
    let report = err.report();
    let before = p.kill();
    assert!(report.contains(MARKER), "80 MiB of private memory is pre-copied automatically: {report:?}\n{}", err.all());
    let lines = restore_prefix(&l, &image, &[], 6);
    let last = step_of(lines.last().unwrap()).unwrap().max(step_of(before.last().unwrap()).unwrap());
    let reference = reference_upto(&Launch::new(&bin, &dir).arg(ENDLESS).arg("80"), last);
    assert_eq!(&reference[..before.len()], &before[..]);
    assert!(assert_prefix(&reference, &lines, "the restored run") > 3);
    let _ = std::fs::remove_dir_all(&dir);
}
