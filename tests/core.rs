//! Issue 2: checkpoint on SIGUSR1, SIGKILL, resume in a fresh process, compare with an
//! uninterrupted run; rollback with SIGUSR2; every bad image refused cleanly.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[test]
fn heap_churn() {
    subject("heap_churn", 6);
}

#[test]
fn globals_data_and_bss() {
    subject("globals", 6);
}

#[test]
fn deep_recursion() {
    subject("recursion", 4);
}

/// Guard pages (`MADV_GUARD_INSTALL`) fault on any access: a checkpoint never reads
/// them (forked, stopped or pre-copied), says that they come back as ordinary pages,
/// and the restored program goes on.
#[test]
fn guard_pages_are_never_read_and_are_named() {
    for (name, env) in [("forked", None), ("stopped", Some(("MIG_FORK", "0"))), ("precopied", Some(("MIG_PRECOPY", "1")))] {
        let dir = tempdir(&format!("guard_pages_{name}"));
        let mut l = Launch::new(&compile("guard_pages"), &dir);
        if let Some((k, v)) = env {
            l = l.clone_with(k, Path::new(v));
        }
        let (warned, _) = checkpoint_kill_restart_warnings(l, 5);
        assert!(warned.contains("guard pages (MADV_GUARD_INSTALL)") && warned.contains("not saved"), "{name}: the loss is said: {warned}");
    }
}

#[test]
fn floating_point_loop_without_syscalls() {
    subject("fp_loop", 5);
}

#[test]
fn private_shared_readonly_and_guard_mappings() {
    subject("mappings", 12);
}

#[test]
fn files_raw_and_stdio_read_and_append() {
    subject("files", 7);
}

#[test]
fn own_signal_handlers_and_blocked_mask() {
    subject("signals", 5);
}

#[test]
fn alarm_fires_after_restart() {
    subject("alarm", 3);
}

#[test]
fn deleted_file_comes_back_unlinked() {
    let dir = tempdir("deleted_file");
    subject_in(&dir, "deleted_file", 6);
    assert!(!dir.join("scratch.dat").exists(), "the deleted file must stay deleted");
}

fn subject_in(dir: &Path, name: &str, at: u32) {
    checkpoint_kill_restart(Launch::new(&compile(name), dir), at);
}

#[test]
fn quiet_by_default_and_image_is_private() {
    let dir = tempdir("quiet");
    let l = Launch::new(&compile("chain"), &dir).arg("12");
    let image = dir.join("q.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    let (_, st, err) = p.finish();
    assert!(st.success());
    assert_eq!(err, "", "a successful checkpoint prints nothing without MIG_LOG=debug");
    let mode = std::fs::metadata(&image).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "images hold the whole memory of the process");
}

#[test]
fn never_signalled_program_is_unchanged() {
    let dir = tempdir("unchanged");
    let err = same_as_without_mig(&Launch::new(&compile("busy"), &dir));
    assert_eq!(err, "");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(leftovers.is_empty(), "nothing written without a signal: {leftovers:?}");
}

#[test]
fn default_image_name_is_exe_and_pid_in_start_directory() {
    let dir = tempdir("default_name");
    let bin = compile("chain");
    let mut p = Launch::new(&bin, &dir).arg("12").start();
    let image = dir.join(format!("{}.{}.mig", bin.file_name().unwrap().to_str().unwrap(), p.pid()));
    checkpoint_at(&mut p, 2, &image);
    p.kill();
}

#[test]
fn python3_script() {
    let Some(py) = python3() else { panic!("python3 is required for this test") };
    let dir = tempdir("python");
    let l = Launch::new(&py, &dir).arg(repo().join("c-tests/steps.py").to_str().unwrap());
    checkpoint_kill_restart(l, 8);
}

#[test]
fn perl_script() {
    let dir = tempdir("perl");
    let l = Launch::new(Path::new("/usr/bin/perl"), &dir).arg(repo().join("c-tests/steps.pl").to_str().unwrap());
    checkpoint_kill_restart(l, 8);
}

#[test]
fn chain_of_three_generations() {
    let dir = tempdir("chain3");
    let l = Launch::new(&compile("chain"), &dir);
    let reference = reference(&l.clone_bare());
    let mut before = Vec::new();
    let mut restore_from: Option<PathBuf> = None;
    // Generation g is checkpointed at step 8 + 8g, killed, and restored by g + 1.
    for g in 0..3u32 {
        let image = dir.join(format!("gen{g}.mig"));
        let mut launch = l.clone_with("MIG_IMAGE", &image);
        if let Some(prev) = &restore_from {
            launch = launch.clone_with("MIG_RESTORE", prev);
        }
        let mut p = launch.start();
        checkpoint_at(&mut p, 8 + 8 * g, &image);
        p.line().unwrap();
        let seen = p.kill();
        if g == 0 {
            before = seen;
        } else {
            // Each restored generation continued its parent exactly.
            let first = step_of(&seen[0]).unwrap();
            let at = reference.iter().position(|r| step_of(r) == Some(first)).unwrap();
            assert_eq!(&reference[at..at + seen.len()], &seen[..], "generation {g} diverged");
        }
        restore_from = Some(image);
    }
    let (restored, st, err) = l.clone_with("MIG_RESTORE", restore_from.as_ref().unwrap()).start().finish();
    assert!(st.success(), "{err}");
    assert!(step_of(&restored[0]).unwrap() >= 24, "the last generation resumes after its parents");
    let at = reference.iter().position(|r| step_of(r) == step_of(&restored[0])).unwrap();
    assert_eq!(&reference[at..], &restored[..]);
    assert!(!before.is_empty());
}

#[test]
fn sigusr2_rolls_back_in_place() {
    let dir = tempdir("rollback");
    let l = Launch::new(&compile("chain"), &dir).arg("30");
    let reference = reference(&l.clone_bare());
    let image = dir.join("r.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 5, &image);
    p.until("step 12 ");
    p.signal(libc::SIGUSR2);
    // After the rollback the same process prints steps from the checkpoint again.
    let mut after = Vec::new();
    loop {
        let l = p.line().expect("output after rollback");
        if step_of(&l).is_some_and(|s| s <= 7) {
            after.push(l);
            break;
        }
        assert!(step_of(&l).is_some_and(|s| s <= 14), "no rollback: {l}");
    }
    let (all, st, err) = p.finish();
    assert!(st.success(), "{err}");
    let rolled: Vec<String> = all[all.len() - (all.len() - all.iter().rposition(|l| *l == after[0]).unwrap())..].to_vec();
    let at = reference.iter().position(|r| *r == after[0]).unwrap();
    assert_eq!(&reference[at..], &rolled[..], "the rolled-back run must go on as the original did");
}

#[test]
fn rollback_without_image_is_ignored() {
    let dir = tempdir("rollback_none");
    let l = Launch::new(&compile("chain"), &dir).arg("10");
    let reference = reference(&l.clone_bare());
    let mut p = l.start();
    p.until("step 2 ");
    p.signal(libc::SIGUSR2);
    let (lines, st, err) = p.finish();
    assert!(st.success());
    assert_eq!(lines, reference);
    assert!(err.contains("no image"), "says why it ignored the rollback: {err}");
}

#[test]
fn restored_process_shows_original_command_line() {
    let dir = tempdir("cmdline");
    let bin = compile("chain");
    let l = Launch::new(&bin, &dir).arg("40");
    let image = dir.join("c.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    // Restarted with no arguments: the saved command line comes back.
    let mut r = Launch::new(&bin, &dir).clone_with("MIG_RESTORE", &image).start();
    r.line().unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", r.pid())).unwrap();
    assert_eq!(cmdline, format!("{}\x0040\x00", bin.display()).into_bytes());
    r.kill();
}

#[test]
fn pipe_with_both_ends_in_the_process_works_after_restore() {
    // Issue 5: a pipe whose ends are all in the process is saved with its contents and
    // recreated; no warning. (Unsupported descriptors: tests/fds.rs.)
    let dir = tempdir("pipe_end");
    let bin = compile("pipe_end");
    let image = dir.join("p.mig");
    let l = Launch::new(&bin, &dir).arg("10");
    assert_eq!(reference(&l.clone_bare()).last().unwrap(), "done pipe-works");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    let (_, st, err) = p.finish();
    assert!(st.success());
    assert!(!err.contains("warning"), "a pipe with both ends in the process is supported: {err}");
    let (out, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert!(st.success(), "{err}");
    assert_eq!(out.last().unwrap(), "done pipe-works", "stderr: {err}");
}

// ---- Bad images: refused before anything is replaced, one line, status 1..=127 ----

/// A good image of `chain` to damage.
fn good_image(dir: &Path) -> (PathBuf, Vec<u8>) {
    let bin = compile("chain");
    let image = dir.join("good.mig");
    let mut p = Launch::new(&bin, dir).arg("20").clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 2, &image);
    p.kill();
    let bytes = std::fs::read(&image).unwrap();
    (bin, bytes)
}

fn assert_refused(bin: &Path, dir: &Path, image: &Path, reason: &str) {
    assert_refused_by(Launch::new(bin, dir), image, reason);
}

fn assert_refused_by(l: Launch, image: &Path, reason: &str) {
    let (out, st, err) = l.clone_with("MIG_RESTORE", image).start().finish();
    let code = st.code().expect("exits, is not killed by a signal");
    assert_eq!(code, 125, "refused with status 125");
    assert!(out.is_empty(), "the program must not run: {out:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(&image.display().to_string()), "names the image: {err}");
    assert!(err.contains(reason), "expected {reason:?} in {err:?}");
}

fn damaged(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_images_are_refused() {
    let dir = tempdir("bad_images");
    let (bin, good) = good_image(&dir);
    let cases: Vec<(&str, Vec<u8>, &str)> = {
        let mut v = vec![
            ("empty", vec![], "empty"),
            ("truncated-header", good[..100].to_vec(), "truncated"),
            ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
            ("truncated-one-byte", good[..good.len() - 1].to_vec(), "truncated"),
            ("garbage", (0..20000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(), "not a mig image"),
        ];
        let mut version = good.clone();
        version[8] = 99;
        v.push(("version", version, "version 99"));
        let mut header = good.clone();
        header[100] ^= 1;
        v.push(("flip-header", header, "header is corrupted"));
        let mut tables = good.clone();
        tables[4096 + 300] ^= 0x40;
        v.push(("flip-tables", tables, "tables are corrupted"));
        let mut data = good.clone();
        let n = data.len();
        data[n - 4096 * 3] ^= 0x80;
        v.push(("flip-data", data, "corrupted"));
        let mut trailer = good.clone();
        trailer[n - 2] ^= 1;
        v.push(("flip-trailer", trailer, "corrupted"));
        v
    };
    for (name, bytes, reason) in cases {
        let image = damaged(&dir, &format!("{name}.mig"), &bytes);
        let mut l = Launch::new(&bin, &dir);
        if name == "flip-data" {
            // Damage in pages that a default (lazy) restore maps rather than reads is
            // found behind the running process (tests/lazy.rs); the eager restore
            // refuses it before anything is replaced.
            l = l.clone_with("MIG_RESTORE_EAGER", Path::new("1"));
        }
        assert_refused_by(l, &image, reason);
    }
    assert_refused(&bin, &dir, &dir.join("missing.mig"), "No such file");
}

#[test]
fn image_of_another_executable_is_refused() {
    let dir = tempdir("other_exe");
    let (_, good) = good_image(&dir);
    let image = damaged(&dir, "chain.mig", &good);
    assert_refused(&compile("busy"), &dir, &image, "the image is of");
}

#[test]
fn changed_executable_is_refused() {
    let dir = tempdir("changed_exe");
    let (bin, good) = good_image(&dir);
    let copy = dir.join("chain-copy");
    std::fs::copy(&bin, &copy).unwrap();
    // Same path, other contents: rebuild the image against the copy, then touch it.
    let image = dir.join("copy.mig");
    let mut p = Launch::new(&copy, &dir).arg("20").clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 2, &image);
    p.kill();
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes.extend_from_slice(b"\0changed");
    // The forked writer runs the executable until it exits, just after the image appears.
    let t0 = std::time::Instant::now();
    while let Err(e) = std::fs::write(&copy, &bytes) {
        assert!(e.raw_os_error() == Some(libc::ETXTBSY) && t0.elapsed() < TIMEOUT, "{e}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_refused(&copy, &dir, &image, "changed since the checkpoint");
    drop(good);
}

#[test]
fn shared_library_data_is_restored() {
    let dir = tempdir("uses_lib");
    let bin = build_uses_lib(&dir, 3);
    checkpoint_kill_restart(Launch::new(&bin, &dir), 6);
}

#[test]
fn changed_library_is_refused() {
    let dir = tempdir("changed_lib");
    let bin = build_uses_lib(&dir, 3);
    let image = dir.join("lib.mig");
    let mut p = Launch::new(&bin, &dir).clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    std::thread::sleep(std::time::Duration::from_millis(20)); // a distinct mtime, not a synchronisation
    build_uses_lib(&dir, 4);
    assert_refused(&bin, &dir, &image, "libstep.so");
}

#[test]
fn python3_threading() {
    let Some(py) = python3() else { panic!("python3 is required for this test") };
    let dir = tempdir("python_threads");
    let l = Launch::new(&py, &dir).arg(repo().join("c-tests/threads.py").to_str().unwrap());
    checkpoint_kill_restart(l, 12);
}

#[test]
fn periodic_checkpoints_with_mig_interval() {
    let dir = tempdir("interval");
    let l = Launch::new(&compile("chain"), &dir).arg("30");
    let reference = reference(&l.clone_bare());
    let image = dir.join("i.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).clone_with("MIG_INTERVAL", Path::new("0.2")).start();
    wait_for_file(&image);
    p.line().unwrap();
    let before = p.kill();
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert!(st.success(), "{err}");
    assert_continues(&reference, &before, &restored);
}

#[test]
fn own_sigusr1_handler_warns_and_mig_signal_moves_checkpoints() {
    let dir = tempdir("own_usr1");
    let l = Launch::new(&compile("own_usr1"), &dir).arg("20");
    // Default: the program takes SIGUSR1, mig says so once.
    let (_, st, err) = l.start().finish();
    assert!(st.success());
    assert_eq!(err.matches("MIG_SIGNAL").count(), 1, "one warning: {err}");
    // Moved: no warning, the program keeps its SIGUSR1, checkpoints come on SIGRTMIN+4.
    let moved = l.clone_with("MIG_SIGNAL", Path::new("SIGRTMIN+4"));
    let reference = reference(&l.clone_bare());
    let image = dir.join("u.mig");
    let mut p = moved.clone_with("MIG_IMAGE", &image).start();
    p.until("step 4 ");
    p.signal(libc::SIGRTMIN() + 4);
    wait_for_file(&image);
    p.line().unwrap();
    // `mig checkpoint` finds the signal in the process's environment.
    std::fs::remove_file(&image).unwrap();
    let mig = mig_cmd(&["checkpoint", &p.pid().to_string()]).env_remove("MIG_SIGNAL").output().unwrap();
    assert!(mig.status.success(), "{}", String::from_utf8_lossy(&mig.stderr));
    assert!(image.exists());
    p.line().unwrap();
    let before = p.kill();
    let (restored, st, err) = moved.clone_with("MIG_RESTORE", &image).start().finish();
    assert!(st.success(), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_continues(&reference, &before, &restored);
}

/// Reads an image's records through the format crate.
fn with_image<R>(path: &Path, f: impl FnOnce(&mig_image::Image) -> R) -> R {
    let bytes = std::fs::read(path).unwrap();
    let img = mig_image::Image::verify(&bytes, &crc32fast::Hasher::new()).unwrap();
    f(&img)
}

#[test]
fn image_records_intent_from_interposed_calls() {
    use mig_image::{REGION_BY_PROGRAM, Table};
    let dir = tempdir("intent");
    // files.c opens out.log with open(O_WRONLY|O_APPEND|O_CREAT): the flags are recorded.
    let image = dir.join("f.mig");
    let mut p = Launch::new(&compile("files"), &dir).clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    with_image(&image, |img| {
        let log = (0..img.count(Table::Fds)).map(|i| img.fd(i)).find(|f| img.str(f.file.path).ends_with(b"/out.log")).expect("out.log saved");
        let want = (libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT) as u32;
        assert_eq!(log.open_flags & want, want, "open flags {:#o}", log.open_flags);
    });
    // mappings.c maps memory itself: those regions, and not the heap or libc, say so.
    let image = dir.join("m.mig");
    let mut p = Launch::new(&compile("mappings"), &dir).clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    with_image(&image, |img| {
        let regions: Vec<_> = (0..img.count(Table::Regions)).map(|i| img.region(i)).collect();
        assert!(regions.iter().any(|r| r.flags & REGION_BY_PROGRAM != 0), "no region marked as the program's");
        for r in &regions {
            let path = img.str(r.file.path);
            if r.kind == mig_image::RegionKind::Heap as u32 || path.ends_with(b"libc.so.6") {
                assert_eq!(r.flags & REGION_BY_PROGRAM, 0, "{}", String::from_utf8_lossy(path));
            }
        }
    });
}
