//! Blocking system calls that a checkpoint or a restore interrupts go on as if nothing
//! happened (issue 14): no EINTR, no early return, no lost wakeup, in every thread,
//! in the checkpointed process and in the restored one. The subject, `blocking_calls`,
//! runs one thread per call and prints one line per call (see `c-tests/README.md`);
//! each run's lines are compared with an uninterrupted run's.

mod common;
use common::*;
use std::path::Path;

/// Every call of the subject but those whose kernel object a restore does not bring
/// back yet: the aio context (`io_getevents`), and the child (`wait4`, process trees).
const RESTORABLE: &[&str] = &[
    "poll",
    "poll_timeout",
    "ppoll",
    "ppoll_timeout",
    "select",
    "select_timeout",
    "pselect",
    "epoll_wait",
    "epoll_wait_timeout",
    "epoll_pwait",
    "nanosleep",
    "clock_nanosleep",
    "clock_nanosleep_abs",
    "sleep",
    "usleep",
    "pause",
    "sigsuspend",
    "sigwaitinfo",
    "sigtimedwait",
    "sem_wait",
    "sem_timedwait",
    "cond_timedwait",
    "futex",
    "read_pipe",
    "accept",
    "recv_timeout",
    "msgrcv",
    "semop",
];

fn launch(dir: &Path, names: &[&str]) -> Launch {
    names.iter().fold(Launch::new(&compile("blocking_calls"), dir), |l, n| l.arg(n))
}

/// The lines of an uninterrupted run (every call woken, or timed out, once `go` exists).
fn uninterrupted(dir: &Path, names: &[&str]) -> Vec<String> {
    let _ = std::fs::remove_file(dir.join("go"));
    let mut p = launch(dir, names).bare().start();
    p.until("blocked");
    std::fs::write(dir.join("go"), "").unwrap();
    let (lines, st, err) = p.finish();
    assert!(st.success(), "the uninterrupted run fails: {lines:?} {err}");
    lines
}

fn assert_all_ok(lines: &[String], reference: &[String], what: &str, err: &str) {
    let bad: Vec<&String> = lines.iter().filter(|l| l.contains(" BAD ")).collect();
    assert!(bad.is_empty(), "{what}: calls noticed the checkpoint: {bad:#?}\nstderr: {err}");
    let tail = &reference[reference.len() - lines.len().min(reference.len())..];
    assert_eq!(lines, tail, "{what}: the lines differ from an uninterrupted run's\nstderr: {err}");
}

/// Checkpointed while every thread is blocked (and main sleeps), and going on: each
/// call returns what it returns without mig, when it would have.
#[test]
fn blocked_calls_go_on_after_a_checkpoint() {
    let dir = tempdir("interrupted_in_place");
    let reference = uninterrupted(&dir, &[]);
    let _ = std::fs::remove_file(dir.join("go"));
    let image = dir.join("calls.mig");
    let mut p = launch(&dir, &[]).clone_with("MIG_IMAGE", &image).start();
    p.until("blocked");
    p.signal(libc::SIGUSR1);
    wait_for_file(&image);
    std::fs::write(dir.join("go"), "").unwrap();
    let (lines, st, err) = p.finish();
    assert_all_ok(&lines, &reference, "after a checkpoint", &err);
    assert!(st.success(), "{st:?} {err}");
}

/// Two checkpoints in a row: the second interrupts the calls the first made again.
#[test]
fn blocked_calls_go_on_after_two_checkpoints() {
    let names = ["poll", "poll_timeout", "nanosleep", "sigsuspend", "epoll_wait", "recv_timeout"];
    let dir = tempdir("interrupted_twice");
    let reference = uninterrupted(&dir, &names);
    let _ = std::fs::remove_file(dir.join("go"));
    let image = dir.join("calls.mig");
    let mut p = launch(&dir, &names).clone_with("MIG_IMAGE", &image).start();
    p.until("blocked");
    for _ in 0..2 {
        let _ = std::fs::remove_file(&image);
        p.signal(libc::SIGUSR1);
        wait_for_file(&image);
    }
    std::fs::write(dir.join("go"), "").unwrap();
    let (lines, st, err) = p.finish();
    assert_all_ok(&lines, &reference, "after two checkpoints", &err);
    assert!(st.success(), "{st:?} {err}");
}

/// Checkpointed while blocked, killed, restored: each restored thread is back in its
/// call (with the time it had left, where the kernel kept it), not returning EINTR.
#[test]
fn blocked_calls_go_on_after_a_restore() {
    let dir = tempdir("interrupted_restore");
    let reference = uninterrupted(&dir, RESTORABLE);
    let _ = std::fs::remove_file(dir.join("go"));
    let image = dir.join("calls.mig");
    let l = launch(&dir, RESTORABLE);
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    p.until("blocked");
    p.signal(libc::SIGUSR1);
    wait_for_file(&image);
    p.kill();
    // Woken as soon as the restored process looks.
    std::fs::write(dir.join("go"), "").unwrap();
    let (lines, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert_all_ok(&lines, &reference, "after a restore", &err);
    assert!(st.success(), "{st:?} {err}");
}
