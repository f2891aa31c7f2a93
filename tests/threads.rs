//! Multi-threaded subjects: every thread stopped, saved and recreated (own stack, TLS,
//! registers, glibc tid); checkpoint/kill/restart, a chain of generations, a SIGUSR2
//! rollback, and a thread that cannot be stopped.

mod common;
use common::*;
use std::path::PathBuf;

#[test]
fn barrier_lock_step_workers() {
    subject("threads_barrier", 6);
}

/// Threads caught inside their own signal handlers, on 32 KiB alternate signal stacks
/// with 64 KiB of canary below and no guard page (as Go's): mig's handlers must not
/// run on them (before, a stopped or pre-copied checkpoint used ~80 KB there and
/// overwrote the canary). Forked, stopped and pre-copied checkpoints.
#[test]
fn checkpoint_on_a_small_alternate_signal_stack() {
    for (name, env) in [("forked", None), ("stopped", Some(("MIG_FORK", "0"))), ("precopied", Some(("MIG_PRECOPY", "1")))] {
        let dir = tempdir(&format!("small_altstack_{name}"));
        let mut l = Launch::new(&compile("small_altstack"), &dir).arg("30");
        if let Some((k, v)) = env {
            l = l.clone_with(k, std::path::Path::new(v));
        }
        checkpoint_kill_restart(l, 8);
    }
}

#[test]
fn threads_blocked_in_cond_wait_mutex_lock_and_join() {
    subject("threads_blocked", 5);
}

#[test]
fn thread_local_storage_and_glibc_thread_records() {
    subject("threads_tls", 7);
}

#[test]
fn threads_created_and_joined_every_step() {
    subject("threads_churn", 6);
}

#[test]
fn threads_sleeping_in_nanosleep_and_poll() {
    subject("threads_sleepers", 8);
}

#[test]
fn chain_of_three_generations_with_threads() {
    let dir = tempdir("threads_chain3");
    let l = Launch::new(&compile("threads_barrier"), &dir).arg("48");
    let reference = reference(&l.clone_bare());
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
        p.line().unwrap_or_else(|| panic!("generation {g} stopped after its checkpoint"));
        let seen = p.kill();
        // Each generation printed what the uninterrupted run printed at those steps.
        let first = step_of(&seen[0]).unwrap_or_else(|| panic!("generation {g} starts with {:?}", seen[0]));
        if g == 0 {
            assert_eq!(first, 1);
        } else {
            assert!(first <= 8 * g + 1, "generation {g} resumed at step {first}, after its parent's checkpoint");
        }
        let at = reference.iter().position(|r| step_of(r) == Some(first)).unwrap();
        assert_eq!(&reference[at..at + seen.len()], &seen[..], "generation {g} diverged");
        restore_from = Some(image);
    }
    let (restored, st, err) = l.clone_with("MIG_RESTORE", restore_from.as_ref().unwrap()).start().finish();
    assert!(st.success(), "last restore failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    let first = step_of(&restored[0]).unwrap_or_else(|| panic!("restored run starts with {:?}", restored[0]));
    assert!((24..=25).contains(&first), "the last generation resumes right after its parent's checkpoint: {first}");
    let at = reference.iter().position(|r| step_of(r) == Some(first)).unwrap();
    assert_eq!(&reference[at..], &restored[..]);
}

#[test]
fn sigusr2_rolls_back_a_process_whose_threads_come_and_go() {
    let dir = tempdir("threads_rollback");
    let l = Launch::new(&compile("threads_churn"), &dir).arg("30");
    let reference = reference(&l.clone_bare());
    let image = dir.join("r.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 5, &image);
    p.until("step 12 ");
    p.signal(libc::SIGUSR2);
    // The same process goes back to the checkpoint and prints those steps again.
    let rolled_from = loop {
        let line = p.line().unwrap_or_else(|| panic!("no output after the rollback; saw {:?}", p.seen));
        let s = step_of(&line).unwrap_or_else(|| panic!("unexpected line before the rollback: {line:?}"));
        if s <= 6 {
            break p.seen.len() - 1;
        }
        assert!(s <= 15, "no rollback by step {s}");
    };
    let (all, st, err) = p.finish();
    assert!(st.success(), "rolled-back run failed: {st:?}\nstderr: {err}\nstdout: {all:?}");
    // Before the rollback: exactly the uninterrupted run's lines.
    assert_eq!(&all[..rolled_from], &reference[..rolled_from], "the run before the rollback differs");
    // After it: the uninterrupted run from the checkpoint on, to the end.
    let first = step_of(&all[rolled_from]).unwrap();
    assert!((5..=6).contains(&first), "rolled back to step {first}, the checkpoint was at step 5");
    let at = reference.iter().position(|r| step_of(r) == Some(first)).unwrap();
    assert_eq!(&reference[at..], &all[rolled_from..], "the rolled-back run must go on as the original did");
}

/// A thread that blocks every signal cannot run the stop handler: it is stopped from
/// outside (ptrace), saved, and goes on; so does the restored one.
#[test]
fn a_thread_blocking_every_signal_is_stopped_from_outside() {
    let dir = tempdir("threads_nostop");
    let err = checkpoint_kill_restart(Launch::new(&compile("threads_nostop"), &dir), 3);
    assert!(!err.contains("did not stop"), "{err}");
}

/// Threads that block every signal (with pthread_sigmask or a raw rt_sigprocmask)
/// while they spin in user space holding AVX state, read a pipe, sleep, or wait in
/// epoll_wait: the checkpointed run goes on as an uninterrupted one does, and so does
/// the restored one (each thread checks its mask, its alternate stack, its vector
/// register and that no call returned early).
#[test]
fn threads_blocking_every_signal_keep_their_state_and_calls() {
    let dir = tempdir("masked_threads");
    let l = Launch::new(&compile("masked_threads"), &dir);
    let reference = reference(&l.clone_bare());
    let image = dir.join("m.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 5, &image);
    let (lines, st, err) = p.finish();
    assert!(st.success(), "the checkpointed run failed: {lines:?}\nstderr: {err}");
    assert_eq!(lines, reference, "the checkpointed run differs from an uninterrupted one: {err}");
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert!(st.success(), "the restored run failed: {restored:?}\nstderr: {err}");
    assert_continues(&reference, &reference[..5], &restored);
}

/// A thread that blocks every signal in a process its user may not trace (not
/// dumpable): the checkpoint is abandoned after its bounded wait, saying why, and the
/// process goes on unharmed.
#[test]
fn an_untraceable_thread_blocking_every_signal_abandons_the_checkpoint() {
    let sb = Sandbox::new("nostop_untraceable", 1);
    let uid = sb.uids[0];
    let dir = sb.home(uid, 0o700);
    let l = sb.launch(&sb.subject("threads_nostop"), &dir, uid).arg("40").arg("undumpable");
    let reference = reference(&Launch::new(&sb.subject("threads_nostop"), &dir).bare().run_as(uid).arg("40").arg("undumpable"));
    let image = dir.join("n.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    p.until("step 2 ");
    p.signal(libc::SIGUSR1);
    let (lines, st, err) = p.finish();
    assert!(st.success(), "the process must go on unharmed: {st:?}\nstderr: {err}\nstdout: {lines:?}");
    assert_eq!(lines, reference, "output differs from the uninterrupted run");
    assert!(err.contains("did not stop") && err.contains("cannot be traced"), "stderr says why the checkpoint was abandoned: {err:?}");
    assert!(!image.exists(), "no image after an abandoned checkpoint");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(leftovers.is_empty(), "nothing left behind (no partial image): {leftovers:?}");
}

/// The thread ids of process `pid` other than its main thread's, sorted.
fn other_tids(pid: i32) -> Vec<i32> {
    let mut t: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    t.retain(|&x| x != pid);
    t.sort();
    t
}

/// With the right to choose them (root here), restored threads get back the tids they
/// had: glibc keeps a mutex's owner as its tid, so a recursive and an error-checking
/// mutex a worker holds across the checkpoint are still its own after the restore (with
/// new tids, the worker's trylock got EBUSY and its unlock EPERM).
#[test]
fn restored_threads_keep_their_tids_and_the_mutexes_they_own() {
    require_root("only a process with CAP_CHECKPOINT_RESTORE may choose the tids of the threads it makes");
    let dir = tempdir("mutex_owner");
    let l = Launch::new(&compile("mutex_owner"), &dir).arg("30");
    let reference = reference(&l.clone_bare());
    let image = dir.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 6, &image);
    let saved = other_tids(p.pid());
    assert_eq!(saved.len(), 1, "the subject runs one worker");
    p.line().expect("the subject keeps running after a checkpoint");
    let before = p.kill();
    let mut r = l.clone_with("MIG_RESTORE", &image).start();
    r.line().expect("the restored subject prints");
    assert_eq!(other_tids(r.pid()), saved, "the restored worker has a new tid");
    let (restored, st, err) = r.finish();
    assert!(st.success(), "restored run failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert_continues(&reference, &before, &restored);
    assert!(!err.contains("new thread id"), "tids came back, yet the restore says otherwise: {err}");
}

/// Without that right, a restore still brings every thread back, with new tids, and
/// glibc's record of each (pthread_kill, TLS) is the new one.
#[test]
fn threads_restored_by_an_unprivileged_user_get_new_tids() {
    let sb = Sandbox::new("threads_unprivileged", 1);
    let uid = sb.uids[0];
    let home = sb.home(uid, 0o700);
    let l = sb.launch(&sb.subject("threads_tls"), &home, uid);
    let reference = reference(&l.clone_bare());
    let image = home.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 5, &image);
    let saved = other_tids(p.pid());
    p.line().expect("the subject keeps running after a checkpoint");
    let before = p.kill();
    let mut r = l.clone_with("MIG_RESTORE", &image).start();
    r.line().expect("the restored subject prints");
    let now = other_tids(r.pid());
    assert_eq!(now.len(), saved.len(), "every thread is back");
    assert!(now.iter().all(|t| !saved.contains(t)), "an unprivileged restore chose tids: {now:?} (saved {saved:?})");
    let (restored, st, err) = r.finish();
    assert!(st.success(), "restored run failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert_continues(&reference, &before, &restored);
    let said = format!("warning: {} thread{} back with a new thread id", saved.len(), if saved.len() == 1 { " came" } else { "s came" });
    assert!(err.contains(&said), "the restore says so: {err}");
}

/// 300 threads that block every signal, more than one helper stops from outside at
/// once: every one is stopped and saved, and each goes on after a restore with its
/// mask.
#[test]
fn more_masked_threads_than_one_tracer_batch() {
    let dir = tempdir("many_masked");
    checkpoint_kill_restart(Launch::new(&compile("many_masked"), &dir).arg("20").arg("300"), 5);
}
