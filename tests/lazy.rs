//! Issue 6 and issue 13, lazy restore: big private regions come back as anonymous
//! memory that a loader process fills in, at once where the program faults and the
//! rest in the background, each 64 KiB block only once its CRC matched; a damaged block
//! kills the process before it sees a byte of it; such a process checkpoints again into
//! an image that no longer needs the first one.

mod common;
use common::*;
use mig_image::{RegionKind, Table};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A `chain` run with a 2 MiB buffer (regions with little saved data are read in even
/// lazily) checkpointed at step 3 and killed: (launch, reference, before, image).
fn chain_image(name: &str) -> (Launch, Vec<String>, Vec<String>, PathBuf) {
    let dir = tempdir(name);
    let l = Launch::new(&compile("chain"), &dir).arg("40").arg("2048");
    let reference = reference(&l.clone_bare());
    let image = dir.join("a.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    let before = p.kill();
    (l, reference, before, image)
}

fn maps_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap()
}

#[test]
fn lazy_restore_maps_nothing_of_the_image_and_eager_reads_it() {
    let (l, reference, before, image) = chain_image("lazy_maps");
    let mut p = l.clone_with("MIG_RESTORE", &image).start();
    p.line().expect("runs");
    assert!(!maps_of(p.pid()).contains(image.to_str().unwrap()), "lazy: nothing is mapped from the image");
    let (restored, st, err) = p.finish();
    assert!(st.success(), "{err}");
    assert_continues(&reference, &before, &restored);

    let mut p = l.clone_with("MIG_RESTORE", &image).clone_with("MIG_RESTORE_EAGER", Path::new("1")).start();
    p.line().expect("runs");
    assert!(!maps_of(p.pid()).contains(image.to_str().unwrap()), "eager: nothing is mapped from the image");
    std::fs::remove_file(&image).unwrap();
    let (restored, st, err) = p.finish();
    assert!(st.success(), "{err}");
    assert_continues(&reference, &before, &restored);
}

#[test]
fn lazily_restored_process_checkpoints_again_into_a_self_contained_image() {
    let (l, reference, _, first) = chain_image("lazy_again");
    let second = first.with_file_name("b.mig");
    let mut p = l.clone_with("MIG_RESTORE", &first).clone_with("MIG_IMAGE", &second).start();
    checkpoint_at(&mut p, 8, &second);
    let before = p.kill();
    std::fs::remove_file(&first).unwrap();
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &second).start().finish();
    assert!(st.success(), "{err}");
    let first_step = step_of(&before[0]).unwrap();
    let at = reference.iter().position(|s| step_of(s) == Some(first_step)).unwrap();
    assert_continues(&reference[at..], &before, &restored);
}

/// A copy of `image` with one byte of the buffer's saved pages flipped.
fn damaged_buffer(image: &Path) -> PathBuf {
    let mut bytes = std::fs::read(image).unwrap();
    let at = {
        let img = mig_image::Image::verify(&bytes, &crc32fast::Hasher::new()).unwrap();
        let buffer = (0..img.count(Table::Regions))
            .map(|i| img.region(i))
            .filter(|r| r.kind == RegionKind::Anon as u32)
            .max_by_key(|r| r.data_len)
            .expect("a saved buffer");
        assert!(buffer.data_len >= 2 << 20, "the buffer is saved whole");
        (buffer.data_off + buffer.data_len / 2) as usize
    };
    bytes[at] ^= 0x40;
    let out = image.with_file_name("damaged.mig");
    std::fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn damaged_lazy_data_kills_the_restored_process_and_eager_refuses_it() {
    let (l, _, _, image) = chain_image("lazy_damaged");
    let bad = damaged_buffer(&image);
    let (_, st, err) = l.clone_with("MIG_RESTORE", &bad).start().finish();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(libc::SIGKILL), "killed: {st:?} {err}");
    assert!(err.contains(bad.to_str().unwrap()) && err.contains("is damaged") && err.contains("was killed"), "{err}");

    let (out, st, err) = l.clone_with("MIG_RESTORE", &bad).clone_with("MIG_RESTORE_EAGER", Path::new("1")).start().finish();
    assert_eq!(st.code(), Some(125), "{err}");
    assert!(out.is_empty(), "refused before it runs: {out:?}");
    assert!(err.contains(bad.to_str().unwrap()), "{err}");
}

/// A `lazy_memory` run checkpointed at step 3 and killed: (launch, reference, before,
/// image). Its `madvise` and `mremap` calls come at steps 8 to 12.
fn lazy_memory_image(name: &str) -> (Launch, Vec<String>, Vec<String>, PathBuf) {
    let dir = tempdir(name);
    let l = Launch::new(&compile("lazy_memory"), &dir);
    let reference = reference(&l.clone_bare());
    let image = dir.join("a.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    let before = p.kill();
    assert!(!before.iter().any(|s| s.starts_with("FAIL")), "{before:?}");
    (l, reference, before, image)
}

/// The first step a restored run printed, asserted to come before the subject's first
/// `madvise` (step 8).
fn before_the_calls(first: &str) {
    let step = step_of(first).unwrap_or_else(|| panic!("restored run starts with {first:?}"));
    assert!(step < 8, "restored at step {step}: the calls under test already ran");
}

/// `madvise(MADV_DONTNEED)` leaves zeros, `MADV_FREE` succeeds, `mremap` grows, shrinks
/// and moves ranges, and grows one whole with zeros after its pages: all as on the
/// anonymous memory the program had (here once the loader is done: see
/// `memory_calls_and_a_fork_right_after_a_lazy_restore` for while it loads). The
/// subject checks each result (it prints `FAIL` otherwise).
#[test]
fn lazily_restored_memory_behaves_as_anonymous_memory() {
    let (l, reference, before, image) = lazy_memory_image("lazy_memory");
    let mut p = l.clone_with("MIG_RESTORE", &image).start();
    before_the_calls(&p.line().expect("runs"));
    assert!(!maps_of(p.pid()).contains(image.to_str().unwrap()), "nothing is mapped from the image");
    let (restored, st, err) = p.finish();
    assert!(st.success(), "{st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert_continues(&reference, &before, &restored);
}

/// The control: restored eagerly, nothing is mapped from the image and the same calls
/// behave the same.
#[test]
fn eagerly_restored_memory_behaves_as_anonymous_memory() {
    let (l, reference, before, image) = lazy_memory_image("lazy_memory_eager");
    let mut p = l.clone_with("MIG_RESTORE", &image).clone_with("MIG_RESTORE_EAGER", Path::new("1")).start();
    before_the_calls(&p.line().expect("runs"));
    assert!(!maps_of(p.pid()).contains(image.to_str().unwrap()), "eager: nothing is mapped from the image");
    let (restored, st, err) = p.finish();
    assert!(st.success(), "{st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert_continues(&reference, &before, &restored);
}

/// A lazily restored process that made its `madvise` and `mremap` calls checkpoints
/// again (at step 13, after the calls) into an image that restores without the first
/// one.
#[test]
fn lazily_restored_process_checkpoints_again_after_madvise_and_mremap() {
    let (l, reference, _, first) = lazy_memory_image("lazy_memory_again");
    let second = first.with_file_name("b.mig");
    let mut p = l.clone_with("MIG_RESTORE", &first).clone_with("MIG_IMAGE", &second).start();
    before_the_calls(&p.line().expect("runs"));
    checkpoint_at(&mut p, 13, &second);
    let before = p.kill();
    assert!(!before.iter().any(|s| s.starts_with("FAIL")), "{before:?}");
    std::fs::remove_file(&first).unwrap();
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &second).start().finish();
    assert!(st.success(), "{st:?}\nstderr: {err}\nstdout: {restored:?}");
    let first_step = step_of(&before[0]).unwrap();
    let at = reference.iter().position(|s| step_of(s) == Some(first_step)).unwrap();
    assert_continues(&reference[at..], &before, &restored);
    assert!(step_of(&restored[0]).unwrap() > 13, "{restored:?}");
}

/// The whole line the loader writes before it kills a process restored from `image`.
fn kill_line<'a>(err: &'a str, image: &Path, pid: i32) -> Option<&'a str> {
    let start = format!("mig: {} is damaged (saved data is corrupted (CRC mismatch in blob ", image.display());
    let end = format!("): the process restored from it ({pid}) was killed\n");
    err.split_inclusive('\n').find(|l| l.starts_with(&start) && l.ends_with(&end))
}

/// Issue 13, finding 4: one bit flipped in the saved data of a small buffer next to a
/// big one (same mapping, so loaded lazily), CRCs left as they are. The restored program
/// reads the small buffer at once and prints its digest (on stderr, `resumed …`): it
/// must be killed before it prints anything, with the whole message on stderr, every
/// time (with the image mapped and checked behind the program, it printed a wrong
/// digest before the verifier got there).
#[test]
fn damaged_small_buffer_next_to_a_big_one_is_never_seen() {
    let dir = tempdir("lazy_small_damaged");
    let l = Launch::new(&compile("lazy_small"), &dir);
    let image = dir.join("a.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let err = p.stderr_collector();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    let err = err.join().unwrap();
    let small =
        err.lines().find_map(|l| l.strip_prefix("small ")).and_then(|a| u64::from_str_radix(a, 16).ok()).expect("the subject says where its small buffer is");
    let mut bytes = std::fs::read(&image).unwrap();
    let (at, blob) = {
        let img = mig_image::Image::verify(&bytes, &crc32fast::Hasher::new()).unwrap();
        let r = (0..img.count(Table::Regions)).map(|i| img.region(i)).find(|r| r.start <= small && small < r.end).expect("a region holds the small buffer");
        assert_eq!(r.kind, RegionKind::Anon as u32);
        assert!(r.data_len > 16 << 20, "the small buffer is saved with the big one");
        let page = (small - r.start) / 4096;
        let mut off = r.data_off;
        let mut at = None;
        for e in img.extents(&r) {
            if (e.first_page..e.first_page + e.pages).contains(&page) {
                at = Some(off + (page - e.first_page) * 4096 + 100);
            }
            off += e.pages * 4096;
        }
        (at.expect("the small buffer's page is saved") as usize, r.blob)
    };
    bytes[at] ^= 0x08;
    let bad = dir.join("damaged.mig");
    std::fs::write(&bad, bytes).unwrap();
    for run in 0..10 {
        let p = l.clone_with("MIG_RESTORE", &bad).start();
        let pid = p.pid();
        let (out, st, err) = p.finish();
        assert!(out.is_empty() && !err.contains("resumed"), "run {run}: the program printed what it read: {out:?}\n{err}");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(libc::SIGKILL), "run {run}: killed: {st:?} {err}");
        let line = kill_line(&err, &bad, pid).unwrap_or_else(|| panic!("run {run}: the whole line on stderr: {err:?}"));
        assert!(line.contains(&format!("blob {blob})")), "{line}");
    }
}

/// The loader of a process restored lazily from `image`: a `mig-loader` holding a pidfd
/// of `pid`. None once it has ended.
fn loader_of(pid: i32) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(l) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if std::fs::read_to_string(format!("/proc/{l}/comm")).map(|c| c.trim() != "mig-loader").unwrap_or(true) {
            continue;
        }
        let holds = std::fs::read_dir(format!("/proc/{l}/fdinfo")).into_iter().flatten().flatten().any(|f| {
            std::fs::read_to_string(f.path()).is_ok_and(|t| t.lines().any(|x| x.split_whitespace().collect::<Vec<_>>() == ["Pid:", &pid.to_string()]))
        });
        if holds {
            return Some(l);
        }
    }
    None
}

fn fds_of(pid: i32) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            Some((n, std::fs::read_link(e.path()).ok()?.display().to_string()))
        })
        .collect();
    v.sort();
    v
}

/// The loader is no child of the restored process (nothing a `wait` of the program
/// could see), the restored process has no descriptor of mig's, and the loader keeps
/// none of the program's; it ends once everything is loaded.
#[test]
fn lazy_restore_leaves_no_child_and_no_descriptor() {
    let dir = tempdir("lazy_children");
    let l = Launch::new(&compile("lazy_small"), &dir).arg("20").arg("192");
    let reference = reference(&l.clone_bare());
    let image = dir.join("a.mig");
    // Forked, not pre-copied: the image is the moment of step 3 however busy the
    // machine (a pre-copy on a loaded one could end after the last step).
    let mut p = l.clone_with("MIG_IMAGE", &image).clone_with("MIG_PRECOPY", Path::new("0")).start();
    checkpoint_at(&mut p, 3, &image);
    let before = p.kill();
    let mut p = l.clone_with("MIG_RESTORE", &image).start();
    let pid = p.pid();
    let loader = loader_of(pid);
    p.line().expect("runs");
    let children: String = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("children")).unwrap_or_default())
        .collect();
    assert_eq!(children.trim(), "", "the restored process has no children");
    let fds: Vec<i32> = fds_of(pid).into_iter().map(|(n, _)| n).collect();
    assert_eq!(fds, [0, 1, 2], "the restored process has its own descriptors only: {:?}", fds_of(pid));
    if let Some(loader) = loader.or_else(|| loader_of(pid)) {
        let status = std::fs::read_to_string(format!("/proc/{loader}/status")).unwrap_or_default();
        let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:")).map(|v| v.trim().parse::<i32>().unwrap());
        assert_ne!(ppid, Some(pid), "the loader is no child of the restored process");
        // Its own (the userfaultfd, a pidfd, the image, a pipe to its watchdog) and
        // stderr: none of the program's.
        let program: Vec<String> = fds_of(pid).into_iter().filter(|(n, _)| *n != 2).map(|(_, what)| what).collect();
        for (n, what) in fds_of(loader) {
            let own = n == 2 || what.starts_with("anon_inode:") || what == image.display().to_string() || what.starts_with("pipe:");
            assert!(own && !program.contains(&what), "the loader holds only its own descriptors (and stderr): {n} -> {what}");
        }
        let t0 = Instant::now();
        while loader_of(pid) == Some(loader) {
            assert!(t0.elapsed() < TIMEOUT, "the loader never ended");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let (restored, st, err) = p.finish();
    assert!(st.success(), "{err}");
    assert_continues(&reference, &before, &restored);
}

/// `lazy_events` checkpointed at step 3 and killed: (launch, reference, before, image).
/// Restored, its step 4 comes before the loader has loaded the blocks it works on.
fn lazy_events_image(name: &str, steps: u32) -> (Launch, Vec<String>, Vec<String>, PathBuf) {
    let dir = tempdir(name);
    let l = Launch::new(&compile("lazy_events"), &dir).arg(&steps.to_string());
    let reference = reference(&l.clone_bare());
    let image = dir.join("a.mig");
    // Forked, not pre-copied: the image is the moment of step 3, before the calls.
    let mut p = l.clone_with("MIG_IMAGE", &image).clone_with("MIG_PRECOPY", Path::new("0")).start();
    checkpoint_at(&mut p, 3, &image);
    let before = p.kill();
    assert!(!before.iter().any(|s| s.starts_with("FAIL")), "{before:?}");
    (l, reference, before, image)
}

/// Right after a lazy restore, before the loader got to that memory: `MADV_DONTNEED`
/// leaves zeros, `MADV_FREE`, `mremap` grown and moved, `munmap` and a new mapping there,
/// and a fork whose child reads memory not loaded yet (and prints its digest): all as in
/// an uninterrupted run.
#[test]
fn memory_calls_and_a_fork_right_after_a_lazy_restore() {
    let (l, reference, before, image) = lazy_events_image("lazy_events", 8);
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &image).clone_with("MIG_LOG", Path::new("debug")).start().finish();
    assert!(st.success(), "{st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert!(restored.iter().any(|l| l.starts_with("child ")), "restored before the calls: {restored:?}");
    let at = reference.iter().position(|l| *l == restored[0]).expect("the restored run's first line is the reference's");
    assert_eq!(&reference[at..], &restored[..], "the restored run differs from the uninterrupted one\nstderr: {err}");
    assert_eq!(&reference[..at], &before[..at], "the first run differs from the uninterrupted one");
    // The fork comes before the loader gets to the blocks above H: it saw it.
    let events = err.split(" events").next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse::<u32>().ok());
    assert!(events.is_some_and(|n| n >= 1), "the loader finished after the fork: {err}");
}

/// A checkpoint right after a lazy restore waits for the loader (asking it to hurry),
/// then writes a complete image, pre-copied (the loader's userfaultfd is gone, so the
/// pre-copy's can track the memory).
#[test]
fn checkpoint_right_after_a_lazy_restore_waits_for_the_loader() {
    // Long enough for the pre-copy to end before the program does, on a busy machine
    // too (a program that ends first takes the checkpoint with it).
    let (l, reference, _, first) = lazy_events_image("lazy_events_again", 80);
    let second = first.with_file_name("b.mig");
    let mut p = l.clone_with("MIG_RESTORE", &first).clone_with("MIG_IMAGE", &second).clone_with("MIG_LOG", Path::new("debug")).start();
    let err = p.stderr_collector();
    let first_line = p.line().expect("runs");
    p.signal(libc::SIGUSR1);
    wait_for_file(&second);
    p.line().expect("runs on after the checkpoint");
    let before = p.kill();
    let err = err.join().unwrap();
    assert!(err.contains("pre-copy round"), "the checkpoint was pre-copied: {err}");
    std::fs::remove_file(&first).unwrap();
    for eager in [false, true] {
        let mut l2 = l.clone_with("MIG_RESTORE", &second);
        if eager {
            l2 = l2.clone_with("MIG_RESTORE_EAGER", Path::new("1"));
        }
        let (restored, st, err) = l2.start().finish();
        assert!(st.success(), "{st:?}\nstderr: {err}\nstdout: {restored:?}");
        let at = reference.iter().position(|l| *l == first_line).unwrap();
        let from = reference.iter().position(|l| *l == restored[0]).expect("restored where the reference has it");
        assert!(from >= at, "{restored:?}");
        assert_eq!(&reference[from..], &restored[..], "restored from the second image (eager: {eager})");
        assert_eq!(&before[..], &reference[at..at + before.len()], "the first restored run");
    }
}

/// Where no userfaultfd with fork events can be had (here: root without
/// `CAP_SYS_PTRACE`, `vm.unprivileged_userfaultfd` = 0), the restore reads everything
/// in, checked first, and says so under `MIG_LOG=debug`.
#[test]
fn without_a_userfaultfd_the_restore_is_eager() {
    let (l, reference, before, image) = lazy_events_image("lazy_no_uffd", 8);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd").is_ok_and(|v| v.trim() != "0") {
        panic!("this test drops CAP_SYS_PTRACE as root, with vm.unprivileged_userfaultfd=0");
    }
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", "env"])
        .arg(format!("LD_PRELOAD={}", lib().display()))
        .arg(format!("MIG_RESTORE={}", image.display()))
        .arg("MIG_LOG=debug")
        .args(&l.cmd)
        .current_dir(&l.cwd)
        .env_remove("MIG_IMAGE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setpriv (util-linux) is required for this test");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("restoring {} eagerly: no userfaultfd", image.display())), "{err}");
    assert!(!err.contains("lazy restore"), "{err}");
    let restored: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    let at = reference.iter().position(|l| *l == restored[0]).expect("the restored run's first line is the reference's");
    assert_eq!(&reference[at..], &restored[..]);
    assert_eq!(&reference[..at], &before[..at]);
}

/// The loader killed while it loads: its watchdog says so and kills the restored
/// process, which never runs on with zeros where its saved data belongs.
#[test]
fn a_killed_loader_takes_the_restored_process_with_it() {
    let dir = tempdir("lazy_loader_killed");
    let l = Launch::new(&compile("lazy_small"), &dir).arg("20").arg("192");
    let reference = reference(&l.clone_bare());
    let image = dir.join("a.mig");
    // Forked, not pre-copied: a pre-copy on a loaded machine could end after the last step.
    let mut p = l.clone_with("MIG_IMAGE", &image).clone_with("MIG_PRECOPY", Path::new("0")).start();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    let p = l.clone_with("MIG_RESTORE", &image).start();
    let pid = p.pid();
    let t0 = Instant::now();
    let loader = loop {
        if let Some(loader) = loader_of(pid) {
            break loader;
        }
        assert!(t0.elapsed() < TIMEOUT, "no loader");
    };
    // SAFETY: kill(2) of the loader found above.
    unsafe { libc::kill(loader, libc::SIGKILL) };
    let (out, st, err) = p.finish();
    assert!(!st.success(), "the restored process went on: {out:?}\n{err}");
    let at = out.first().map_or(0, |first| reference.iter().position(|l| l == first).expect("lines of the reference"));
    assert_eq!(&reference[at..at + out.len()], &out[..], "what it printed is right");
    let watchdog =
        format!("mig: the loader of the memory of the process restored from {} ({pid}) ended before it was done: the process was killed\n", image.display());
    assert!(err.contains(&watchdog) || err.contains("restore failed while starting the loader"), "{err}");
}

/// Issue 14: a restored process has no child, restored eagerly, lazily or by `mig
/// restart`, nor once it has checkpointed again (its writer is no child of it either).
#[test]
fn restored_processes_have_no_child() {
    let dir = tempdir("restore_no_child");
    // 32 MiB: lazily restored, and checkpointed by a forked writer (not pre-copied).
    let l = Launch::new(&compile("lazy_small"), &dir).arg("100000").arg("32");
    let image = dir.join("a.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    assert!(children_of(p.pid()).is_empty(), "the first run has a child after its checkpoint: {:?}", children_of(p.pid()));
    p.kill();
    let again = dir.join("again.mig");
    let restarted = Launch::new(&mig(), &dir).bare().arg("restart").arg(image.to_str().unwrap()).clone_with("MIG_IMAGE", &again);
    let ways = [
        ("eagerly", l.clone_with("MIG_RESTORE", &image).clone_with("MIG_RESTORE_EAGER", Path::new("1")).clone_with("MIG_IMAGE", &again)),
        ("lazily", l.clone_with("MIG_RESTORE", &image).clone_with("MIG_IMAGE", &again)),
        ("by mig restart", restarted),
    ];
    for (how, launch) in ways {
        let mut r = launch.start();
        let first = r.line().expect("the restored process runs");
        assert!(step_of(&first).is_some_and(|s| s > 3), "restored {how}: {first}");
        let pid = restored(r.pid());
        assert!(children_of(pid).is_empty(), "restored {how}, the process has children: {:?}", children_of(pid));
        let at = step_of(&r.line().unwrap()).unwrap();
        checkpoint_at(&mut r, at + 1, &again);
        assert!(children_of(pid).is_empty(), "restored {how}, the process has children after a checkpoint: {:?}", children_of(pid));
        r.line().expect("the restored process goes on");
        r.kill();
    }
}
