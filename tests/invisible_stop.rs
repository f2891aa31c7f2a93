//! A checkpoint the program cannot notice (issue 14).
//!
//! - Blocking system calls that a checkpoint or a restore interrupts go on as if
//!   nothing happened: no EINTR, no early return, no lost wakeup, in every thread, in
//!   the checkpointed process and in the restored one. The subject, `blocking_calls`,
//!   runs one thread per call and prints one line per call (see `c-tests/README.md`);
//!   each run's lines are compared with an uninterrupted run's.
//! - `mig checkpoint` reaches a program that owns the checkpoint signal, blocks every
//!   signal in every thread, or takes every signal, without `MIG_SIGNAL`.
//!
//! Threads that block every signal are in `tests/threads.rs`.

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

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
    "io_getevents",
    "futex_timeout",
    "io_getevents_timeout",
    "raw_nanosleep",
    "wait4",
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

/// Checkpointed while every thread is blocked (and main sleeps), a second into their
/// waits, and going on: each call returns what it returns without mig, when it would
/// have (a timed call neither early nor 0.5 s late: it waits the time it had left).
#[test]
fn blocked_calls_go_on_after_a_checkpoint() {
    let dir = tempdir("interrupted_in_place");
    let reference = uninterrupted(&dir, &[]);
    let _ = std::fs::remove_file(dir.join("go"));
    let image = dir.join("calls.mig");
    let mut p = launch(&dir, &[]).clone_with("MIG_IMAGE", &image).clone_with("BLOCKING_CALLS_LATE_MS", Path::new("500")).start();
    p.until("blocked");
    // Not a synchronisation: the checkpoint lands a second into the 3 s waits, so a
    // wait made again in full would end a second late.
    std::thread::sleep(std::time::Duration::from_secs(1));
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

/// A wait given its timeout at an address that is not mapped fails with EFAULT, as
/// without mig: the hooks that note a wait's timeout read it without faulting (they
/// crashed the program before).
#[test]
fn a_timeout_at_a_bad_address_fails_as_without_mig() {
    let dir = tempdir("bad_timeouts");
    same_as_without_mig(&Launch::new(&compile("bad_timeouts"), &dir));
}

// ---- The request path ----

/// `l` started with an image, run to step 3 and checkpointed by `mig checkpoint PID`
/// (no `MIG_SIGNAL` anywhere): an uninterrupted run's lines, the image, the process.
fn checkpointed_at_step_3(l: &Launch) -> (Vec<String>, std::path::PathBuf, Proc) {
    let reference = reference(&l.clone_bare());
    let image = l.cwd.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    p.until("step 3 ");
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &p.pid().to_string()]));
    assert!(st.success(), "mig checkpoint: {out}{err}");
    (reference, image, p)
}

/// Runs `l` to step 3, has `mig checkpoint PID` (no `MIG_SIGNAL` anywhere) take an
/// image, and checks that the run goes on as an uninterrupted one does; with `restore`,
/// that the image restores and goes on too. Returns the checkpointed run's stderr.
fn checkpointed_by_mig_checkpoint(l: Launch, restore: bool) -> String {
    let (reference, image, p) = checkpointed_at_step_3(&l);
    inspect_intact(&image);
    let (lines, st, err) = p.finish();
    assert!(st.success(), "the checkpointed run failed: {lines:?}\nstderr: {err}");
    assert_eq!(lines, reference, "the checkpointed run differs from an uninterrupted one");
    if restore {
        let (restored, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
        assert!(st.success(), "the restored run failed: {restored:?}\nstderr: {err}");
        let first = restored.first().and_then(|r| step_of(r)).expect("the restored run prints steps");
        assert!(first > 3, "restored at step {first}");
        assert_continues(&reference, &reference[..first as usize - 1], &restored);
    }
    err
}

/// A program that owns SIGUSR1 and SIGUSR2 and blocks every signal in every thread
/// (DMTCP's dmtcp4): checkpointed; it goes on as an uninterrupted run does (its mask and
/// handlers as it set them, none of its handlers run), and so does the restored one.
#[test]
fn mig_checkpoint_reaches_a_program_that_blocks_every_signal() {
    checkpointed_by_mig_checkpoint(Launch::new(&compile("blocks_everything"), &tempdir("blocks_everything")), true);
}

/// A program that takes SIGUSR1 for itself keeps getting it (a plain `kill -USR1` is
/// its own), and is checkpointed all the same.
#[test]
fn mig_checkpoint_reaches_a_program_that_owns_the_checkpoint_signal() {
    checkpointed_by_mig_checkpoint(Launch::new(&compile("own_usr1"), &tempdir("own_usr1_request")).arg("30"), true);
}

/// A program that takes every signal it can catch, real-time ones included, and drops
/// those it did not ask for (as the Go runtime does): no signal is left to stop threads
/// or carry a request. `mig checkpoint PID` writes the request into a thread itself,
/// every thread is stopped from outside, and the program goes on (its handlers its own,
/// no stray signal, no sleep cut short); so does the restored one.
#[test]
fn mig_checkpoint_reaches_a_program_that_takes_every_signal() {
    checkpointed_by_mig_checkpoint(Launch::new(&compile("takes_all_signals"), &tempdir("takes_all_signals")), true);
}

/// Pre-copied, the final stop is asked for with a signal that is still mig's: a
/// program that owns SIGUSR1 never gets the copier's request (node would open its
/// debugger), and the checkpoint is made.
#[test]
fn a_pre_copied_checkpoint_reaches_a_program_that_owns_the_checkpoint_signal() {
    let l = Launch::new(&compile("own_usr1"), &tempdir("own_usr1_precopy")).arg("30").env("MIG_PRECOPY", "1").env("MIG_LOG", "debug");
    let err = checkpointed_by_mig_checkpoint(l, true);
    assert!(err.contains("pre-copied in"), "not pre-copied: {err}");
}

/// A program that took every signal, pre-copied: the copier writes its request for the
/// final stop into a thread, as `mig checkpoint` writes its own.
#[test]
fn a_pre_copied_checkpoint_reaches_a_program_that_takes_every_signal() {
    let l = Launch::new(&compile("takes_all_signals"), &tempdir("takes_all_precopy")).env("MIG_PRECOPY", "1").env("MIG_LOG", "debug");
    let err = checkpointed_by_mig_checkpoint(l, true);
    assert!(err.contains("pre-copied in"), "not pre-copied: {err}");
}

/// Node.js (V8's heap is `MADV_DONTFORK`, so it pre-copies at any size; node owns
/// SIGUSR1 for its debugger): checkpointed by `mig checkpoint`, it goes on as an
/// uninterrupted run does, its debugger never opened, and the image restores.
#[test]
fn a_node_program_is_checkpointed_and_restored() {
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(node.is_ok_and(|o| o.status.success()), "node is not installed (./scripts/setup.sh installs nodejs)");
    let dir = tempdir("node_steps");
    let l = Launch::new(Path::new("node"), &dir).arg(repo().join("c-tests/node_steps.js").to_str().unwrap()).arg("40").env("MIG_LOG", "debug");
    let err = checkpointed_by_mig_checkpoint(l, true);
    assert!(err.contains("pre-copied in"), "not pre-copied: {err}");
    assert!(!err.contains("Debugger listening"), "node's debugger opened: {err}");
}

/// A Go program (cgo): the runtime takes every signal, drops the ones it did not ask
/// for, runs goroutines on stacks of a few KiB over several threads and makes raw
/// system calls. Checkpointed, it goes on as an uninterrupted run does (no goroutine
/// harmed, no sleep cut short).
#[test]
fn a_go_program_is_checkpointed_and_goes_on() {
    checkpointed_by_mig_checkpoint(Launch::new(&compile_go("go_steps"), &tempdir("go_steps")).arg("40"), false);
}

/// The Go program, checkpointed while its goroutines compute, killed, and restarted
/// while the killed process still waits to be reaped (its parent, as a slow init
/// would, reaps it only after `mig restart` began): the restart waits for the pid,
/// which the runtime needs back (it signals its threads by the process's pid), and
/// the restored program runs to the end as an uninterrupted run does.
#[test]
fn a_go_program_restarts_once_its_killed_pid_is_reaped() {
    require_root("choosing pids");
    let l = Launch::new(&compile_go("go_steps"), &tempdir("go_restart")).arg("40");
    let (reference, image, p) = checkpointed_at_step_3(&l);
    let pid = p.pid();
    p.signal(libc::SIGKILL);
    wait_until("the killed process to end", TIMEOUT, || (proc_state(pid)?.0 == 'Z').then_some(()));
    let restart = Launch::new(&mig(), &l.cwd).bare().arg("restart").arg(image.to_str().unwrap()).start();
    // The reaper's delay, not a synchronisation: the restart must wait it out.
    std::thread::sleep(Duration::from_millis(300));
    let before = p.kill();
    let (restored, st, err) = restart.finish();
    assert!(st.success(), "the restored run failed: {restored:?}\nstderr: {err}");
    assert!(!err.contains("comes back as process"), "the restart did not wait for the pid: {err}");
    let first = restored.first().and_then(|r| step_of(r)).expect("the restored run prints steps");
    assert!(first > 3 && first as usize <= before.len() + 1, "restored at step {first} after {before:?}");
    assert_continues(&reference, &reference[..first as usize - 1], &restored);
}

/// The signal actions a program reads back are those it set: mig's handlers read back
/// as the default, and a program that borrows SIGUSR1 and SIGUSR2 and puts back what it
/// read leaves mig's in place (the checkpoint here is SIGUSR1), after a restore too.
#[test]
fn signal_actions_read_back_as_the_program_set_them() {
    subject("sig_actions", 5);
}
