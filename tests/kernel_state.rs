//! Kernel state a process keeps beyond its memory and descriptors (issue 15), each
//! checked from inside the program after a checkpoint, a SIGKILL and a restore.

mod common;
use common::*;
use std::path::Path;

// ---- File locks: POSIX record locks, open file description locks and `flock` locks
// held across a checkpoint come back held by the restored process; one that another
// process holds by then refuses the restore, naming it. ----

#[test]
fn posix_ofd_and_flock_locks_come_back_held() {
    let dir = tempdir("file_locks");
    let (ckpt_err, _) = checkpoint_kill_restart_warnings(Launch::new(&compile("file_locks"), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning"), "the checkpoint warned: {ckpt_err}");
}

/// Read and write leases (`F_SETLEASE`) come back held (before: dropped, with a
/// warning at checkpoint time).
#[test]
fn leases_come_back_held() {
    let dir = tempdir("lease");
    let (ckpt_err, restore_err) = checkpoint_kill_restart_warnings(Launch::new(&compile("lease"), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning"), "the checkpoint warned: {ckpt_err}");
    assert!(!restore_err.contains("warning"), "the restore warned: {restore_err}");
}

/// A rollback re-executes the process, which still holds its locks and the
/// descriptors they were taken through: they must come back as they were, not be
/// refused as someone else's nor dropped with the old descriptors.
#[test]
fn locks_survive_a_rollback() {
    let dir = tempdir("file_locks_rollback");
    checkpoint_rollback(&Launch::new(&compile("file_locks"), &dir).arg("30"), 5, 11);
}

#[test]
fn a_lock_held_elsewhere_refuses_the_restore() {
    let dir = tempdir("file_locks_held");
    let l = Launch::new(&compile("file_locks"), &dir).arg("40");
    let image = dir.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    // Another process takes the same locks on the same files meanwhile.
    let mut holder = l.clone_bare().arg("hold").start();
    assert_eq!(holder.line().as_deref(), Some("locked"));
    let (out, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert_eq!(st.code(), Some(125), "the restore must be refused before anything is replaced: {st:?}\nstderr: {err}\nstdout: {out:?}");
    assert!(out.is_empty(), "the refused restore ran: {out:?}");
    let why = format!("it held a POSIX write lock on bytes 10..30, and process {} holds one in its way now", holder.pid());
    assert!(err.contains(&format!("cannot restore from {}", image.display())) && err.contains(&why), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    drop(holder.kill());
}

/// Named FIFOs: both ends with bytes queued, a nameless one (its name removed) with
/// bytes queued, a read-only end nobody writes to. They come back opened on their
/// names (the nameless one nameless, nothing left in its directory), holding their
/// bytes, with their status flags (before: broken pipe ends, with a warning).
#[test]
fn named_fifos_come_back_with_their_bytes() {
    let dir = tempdir("fifos");
    let (ckpt_err, _) = checkpoint_kill_restart_warnings(Launch::new(&compile("fifos"), &dir), 5);
    assert!(!ckpt_err.contains("warning"), "the checkpoint warned: {ckpt_err}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().contains("mig-fifo")).collect();
    assert!(left.is_empty(), "the restore left {left:?}");
}

/// A level-triggered epoll set reports its ready descriptors in the order they became
/// ready, after a restore too (before: in the order they were registered).
#[test]
fn an_epoll_set_reports_ready_descriptors_in_the_same_order() {
    subject("epoll_order", 5);
}

/// A file made with `O_TMPFILE` and written to comes back with its contents, still
/// nameless and linkable: `linkat` publishes it after the restore (before, the restore
/// was refused: "Not a directory", `O_TMPFILE` holding `O_DIRECTORY`).
#[test]
fn an_o_tmpfile_file_comes_back_and_can_be_linked() {
    subject("tmpfile", 5);
}

// ---- Memory ----

/// A `MAP_NORESERVE` mapping twice as large as memory and swap: mapped again with
/// `MAP_NORESERVE` (before, the restore failed past the point of no return, ENOMEM),
/// and still without reserved swap as `/proc/self/smaps` tells the program.
#[test]
fn a_noreserve_mapping_larger_than_memory_comes_back() {
    subject("noreserve", 5);
}

// ---- Process attributes and each thread's scheduling ----

/// oom_score_adj, personality, PR_SET_CHILD_SUBREAPER, THP_DISABLE, NO_NEW_PRIVS and
/// PDEATHSIG; each thread's policy, nice value, timer slack and CPU affinity.
#[test]
fn process_attributes_and_thread_scheduling_come_back() {
    let dir = tempdir("attributes");
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("attributes"), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning") && !err.contains("warning"), "checkpoint: {ckpt_err}\nrestore: {err}");
}

/// The same for a user without privileges: none of these needs any.
#[test]
fn process_attributes_come_back_for_an_unprivileged_user() {
    let sb = Sandbox::new("attributes_unprivileged", 1);
    let uid = sb.uids[0];
    let home = sb.home(uid, 0o700);
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(sb.launch(&sb.subject("attributes"), &home, uid).arg("20"), 5);
    // Its thread gets a new tid (only root may choose one), which the restore says.
    let other: Vec<&str> = err.lines().filter(|l| l.contains("warning") && !l.contains("came back with a new thread id")).collect();
    assert!(!ckpt_err.contains("warning") && other.is_empty(), "checkpoint: {ckpt_err}\nrestore: {err}");
}

// ---- Files and file systems ----

/// A working directory removed under the process: the checkpoint does not fail, and the
/// restored process works in a removed directory too (getcwd ENOENT, nothing can be
/// made there).
#[test]
fn a_removed_working_directory_stays_removed() {
    let dir = tempdir("deleted_cwd");
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("deleted_cwd"), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning") && !err.contains("warning"), "checkpoint: {ckpt_err}\nrestore: {err}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().starts_with(".mig-cwd")).collect();
    assert!(left.is_empty(), "the restore left its stand-in directory: {left:?}");
}

// ---- Sockets ----

/// Buffer sizes (not doubled again), linger, TCP keepalive timing, SO_REUSEADDR as it
/// was (off), SO_BROADCAST and IP_FREEBIND.
#[test]
fn socket_options_come_back() {
    let dir = tempdir("sockopts");
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("sockopts"), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning"), "checkpoint: {ckpt_err}");
    assert!(!err.contains("warning"), "restore: {err}");
}

/// A file the program writes (small: `MIG_SAVE_FILES` defaults to 1 MiB) has its
/// contents saved: the killed process wrote on after the checkpoint, and the restore
/// puts the file back as it was, and says so.
#[test]
fn a_written_file_that_changed_is_put_back() {
    let dir = tempdir("saved_file_changed");
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("saved_file"), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning"), "checkpoint: {ckpt_err}");
    assert!(err.contains("data.log: it changed since the checkpoint") && err.contains("put back as they were"), "restore: {err}");
}

/// The same file removed before the restore is made again from the image.
#[test]
fn a_written_file_that_is_gone_is_made_again() {
    let dir = tempdir("saved_file_gone");
    let l = Launch::new(&compile("saved_file"), &dir).arg("20");
    let reference = reference(&l.clone_bare());
    let image = dir.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 5, &image);
    p.line().expect("the subject keeps running after a checkpoint");
    let before = p.kill();
    std::fs::remove_file(dir.join("data.log")).unwrap();
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert!(st.success(), "restored run failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert_continues(&reference, &before, &restored);
    assert!(err.contains("data.log: it was gone; made again from the image"), "restore: {err}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join("data.log")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o640, "made again with its mode");
}

/// With `MIG_SAVE_FILES=none` the contents are not saved: a file that changed is
/// reopened as it is, and the restore says so.
#[test]
fn with_save_files_none_a_changed_file_is_said() {
    let dir = tempdir("saved_file_none");
    let l = Launch::new(&compile("saved_file"), &dir).arg("20").clone_with("MIG_SAVE_FILES", std::path::Path::new("none"));
    let image = dir.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 5, &image);
    p.line().expect("the subject keeps running after a checkpoint");
    p.kill();
    let (_, _, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert!(err.contains("data.log): the file changed since the checkpoint") && err.contains("not saved (MIG_SAVE_FILES)"), "restore: {err}");
}

/// madvise advice the kernel keeps (DONTFORK, DONTDUMP, HUGEPAGE, NOHUGEPAGE,
/// WIPEONFORK) and mlock come back; the checkpoint is not written by a forked copy
/// (which would miss the DONTFORK mapping and find the WIPEONFORK one zeroed).
#[test]
fn madvise_advice_and_mlock_come_back() {
    let dir = tempdir("advice");
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("advice"), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning") && !err.contains("warning"), "checkpoint: {ckpt_err}\nrestore: {err}");
}

/// Socket pair ends shut down for writing (with a message still queued, and without)
/// or for reading (a datagram pair) stay shut down.
#[test]
fn socket_pair_shutdowns_come_back() {
    let dir = tempdir("sock_shutdown");
    let (_, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("sock_shutdown"), &dir).arg("20"), 5);
    assert!(!err.contains("warning"), "restore: {err}");
}

/// Descriptors in flight (`SCM_RIGHTS`) in socket queues whose both ends the process
/// holds: a pipe's ends, a copy of an open file (one offset with the process's own), an
/// eventfd, a memfd and a socket pair end with its own queue, on a stream and a
/// datagram pair. Received after the restore (and in the original after the
/// checkpoint), each is what it was; nothing is said.
#[test]
fn descriptors_in_flight_in_socket_queues_come_back() {
    restores_quietly("fd_passing", "fd_passing");
}

/// The original goes on after the checkpoint as if none was taken: the descriptors the
/// checkpoint brought in to look at are closed again, the messages still carry them.
#[test]
fn descriptors_in_flight_stay_in_flight_for_the_original() {
    let dir = tempdir("fd_passing_on");
    let l = Launch::new(&compile("fd_passing"), &dir).arg("20");
    let reference = reference(&l.clone_bare());
    let image = dir.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 5, &image);
    let (out, st, err) = p.finish();
    assert!(st.success(), "{st:?} {err}");
    assert_eq!(out.iter().filter(|l| l.starts_with("step ") || l.starts_with("done ")).cloned().collect::<Vec<_>>(), reference, "{err}");
}

/// A program kept in a sealed memfd: the seals come back, and the memfd can be
/// executed after the restore (`fexecve`), as before it.
#[test]
fn a_sealed_memfd_comes_back_and_can_be_executed() {
    restores_quietly("memfd_exec", "memfd_exec");
}

/// Datagrams queued on bound UNIX (path and abstract) and UDP sockets come back with
/// their senders' addresses: a sender that is gone, an unnamed one, one the process
/// still holds; nothing is said.
#[test]
fn queued_datagrams_come_back_with_their_senders() {
    restores_quietly("dgram_queue", "dgram_queue");
}

/// A connection waiting to be accepted on a listener cannot be saved: the checkpoint
/// says so, naming the listener.
#[test]
fn connections_waiting_to_be_accepted_are_named_at_checkpoint_time() {
    let dir = tempdir("dgram_pending");
    let (ckpt_err, _) = checkpoint_kill_restart_warnings(Launch::new(&compile("dgram_queue"), &dir).arg("20").arg("pending"), 5);
    assert!(ckpt_err.contains("1 connections waiting to be accepted are not saved"), "checkpoint: {ckpt_err}");
}

/// A classic BPF filter attached to a UDP socket, and locked, comes back: the
/// datagrams it drops are still dropped, it reads back as it was, still locked.
#[test]
fn a_socket_filter_comes_back_locked() {
    restores_quietly("sock_filter", "sock_filter");
}

/// `c-tests/<subject>` (20 steps) in a fresh directory `dir`, checkpointed at step 5,
/// killed and restored: it goes on as an uninterrupted run, and neither the checkpoint
/// nor the restore says anything.
/// Signals sent and not taken when the checkpoint comes (blocked: to the process, to
/// a thread, real-time ones queued three times with values) are pending again after
/// the checkpoint and after a restore, each for the same thread or the process, with
/// its value, code and sender, in order.
#[test]
fn pending_signals_stay_pending() {
    let dir = tempdir("pending_signals");
    let l = Launch::new(&compile("pending_signals"), &dir).arg("20");
    let reference = reference(&l.clone_bare());
    assert!(reference.iter().any(|r| r == "signals ok"), "the uninterrupted run: {reference:?}");
    restores_quietly("pending_signals", "pending_signals");
}

/// A kernel AIO context (`io_setup`) with two completions not reaped: after a restore
/// it is the same context (its id), the completions wait in it as they were, and it
/// reads again. Requests in flight cannot be seen from the process: the checkpoint
/// says they would be lost.
#[test]
fn an_aio_context_comes_back_with_its_completions() {
    let dir = tempdir("aio_ring");
    let l = Launch::new(&compile("aio_ring"), &dir).arg("20");
    let reference = reference(&l.clone_bare());
    assert!(reference.iter().any(|r| r == "aio ok"), "the uninterrupted run: {reference:?}");
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(l, 5);
    assert!(ckpt_err.contains("AIO context") && ckpt_err.contains("in flight"), "checkpoint: {ckpt_err}");
    assert!(!err.contains("warning"), "restore: {err}");
}

/// `/dev/shm` files unlinked while a mapping or a descriptor still holds them (as
/// Python unlinks its semaphores) come back deleted, under their names as `/proc`
/// shows them, and leave nothing in `/dev/shm` (before: the mapped one was made again
/// under its name and stayed there for ever).
#[test]
fn deleted_shm_files_come_back_deleted_and_leave_nothing_behind() {
    let dir = tempdir("shm_deleted");
    let name = format!("mig-deleted-{}", std::process::id());
    let left = || std::fs::read_dir("/dev/shm").unwrap().filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with(&name)).count();
    let l = Launch::new(&compile("shm_deleted"), &dir).arg("30").arg(&name);
    let (ckpt_err, restore_err) = checkpoint_kill_restart_warnings(l, 5);
    assert!(!ckpt_err.contains("warning") && !restore_err.contains("warning"), "{ckpt_err}{restore_err}");
    assert_eq!(left(), 0, "files named {name} stay in /dev/shm");
}

/// A deleted file, a `/dev/shm` file and a memfd that root gave to another user come
/// back with that owner (and their mode).
#[test]
fn saved_files_keep_their_owner() {
    require_root("giving a file away (fchown) needs root");
    restores_quietly("deleted_owner", "deleted_owner");
}

/// A socket pair end with `SO_PASSCRED` keeps it, and the messages queued for it carry
/// the process's credentials after a restore too (its pid then).
#[test]
fn a_socket_pair_end_passing_credentials_keeps_them() {
    let dir = tempdir("pass_creds");
    let reference = reference(&Launch::new(&compile("pass_creds"), &dir).arg("20").clone_bare());
    assert!(reference.iter().any(|r| r == "credentials ok"), "the uninterrupted run: {reference:?}");
    restores_quietly("pass_creds", "pass_creds");
}

fn restores_quietly(dir: &str, subject: &str) {
    let dir = tempdir(dir);
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile(subject), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning"), "checkpoint: {ckpt_err}");
    assert!(!err.contains("warning"), "restore: {err}");
}

/// POSIX message queues: a named one held twice (read-write, write-only) and one whose
/// name was removed, with messages of two priorities. Restored while the named queue
/// still exists (the killed process left it), it is that queue; restored again once
/// its name is gone (the first restored run removed it at its end), it is made again
/// with its mode, attributes and messages; the nameless one is made again each time.
#[test]
fn posix_message_queues_come_back_with_their_messages() {
    let dir = tempdir("posix_mq");
    let l = Launch::new(&compile("posix_mq"), &dir).arg("20");
    let reference = reference(&l.clone_bare());
    let image = dir.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let ckpt_err = p.stderr_collector();
    checkpoint_at(&mut p, 5, &image);
    p.line().expect("the subject keeps running after a checkpoint");
    let name = format!("/dev/mqueue/mig-mq-{}", p.pid());
    let before = p.kill();
    let ckpt_err = ckpt_err.join().unwrap();
    assert!(!ckpt_err.contains("warning"), "checkpoint: {ckpt_err}");
    for round in ["the queue still there", "the queue made again"] {
        if round == "the queue made again" {
            assert!(!std::path::Path::new(&name).exists(), "the restored run removes its queue at its end");
        }
        let (restored, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
        assert!(st.success(), "{round}: restored run failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
        assert!(!err.contains("warning"), "{round}: {err}");
        assert_continues(&reference, &before, &restored);
    }
}

/// A pseudo-terminal pair the process holds both ends of comes back as a new pair (the
/// restoring process has no terminal at all here): bytes cross it both ways, the slave
/// is still raw, the window size is kept; nothing is said.
#[test]
fn a_pseudo_terminal_pair_comes_back_as_a_pair() {
    restores_quietly("pty_pair", "pty_pair");
}

/// Bytes waiting in a pseudo-terminal the process owns, both ways (lines and a line
/// half typed for the slave, in canonical mode with echo and raw; output for the
/// master): still waiting after the checkpoint and after the restore, read back by
/// the same calls, not echoed or translated again (before: lost, with a warning).
#[test]
fn bytes_waiting_in_a_pseudo_terminal_come_back() {
    for mode in ["canon", "raw"] {
        let dir = tempdir(&format!("pty_queue_{mode}"));
        let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("pty_queue"), &dir).arg("20").arg(mode), 5);
        assert!(!ckpt_err.contains("warning"), "{mode}: checkpoint: {ckpt_err}");
        assert!(!err.contains("warning"), "{mode}: restore: {err}");
    }
}

/// An epoll registration under a descriptor number that was closed while its file
/// lives on through a copy: the restored set still reports it, beside the copy's own.
#[test]
fn an_epoll_registration_of_a_closed_number_comes_back() {
    restores_quietly("epoll_orphan", "epoll_orphan");
}

/// `/proc/self/status` opened by that name describes the restored process; O_PATH
/// descriptors of a file, a directory and a symbolic link (O_NOFOLLOW) come back as
/// such; a pidfd of the process itself is one of the restored process.
#[test]
fn proc_self_files_o_path_descriptors_and_an_own_pidfd_come_back() {
    let dir = tempdir("special_fds");
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("special_fds"), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning") && !err.contains("warning"), "checkpoint: {ckpt_err}\nrestore: {err}");
}

/// A deleted file of 1 GiB and a memfd of 256 MiB, both sparse: saved as their runs of
/// data (the image stays small) and restored sparse, with their sizes.
#[test]
fn sparse_saved_files_stay_sparse() {
    let dir = tempdir("sparse_files");
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("sparse_files"), &dir).arg("20"), 5);
    assert!(!ckpt_err.contains("warning") && !err.contains("warning"), "checkpoint: {ckpt_err}\nrestore: {err}");
    let image = std::fs::metadata(dir.join("subject.mig")).unwrap().len();
    assert!(image < 32 << 20, "the image holds the holes: {image} bytes");
}

/// A membarrier registration (private expedited) comes back.
#[test]
fn membarrier_registrations_come_back() {
    let dir = tempdir("membarrier");
    let (_, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("membarrier"), &dir).arg("20"), 5);
    assert!(!err.contains("warning"), "restore: {err}");
}

/// Seccomp filters the program installed through libc (`prctl`; libseccomp's way,
/// `syscall(SYS_seccomp)` with TSYNC, after a thread started) come back for every thread,
/// each once: after a restore, and after a rollback (filters outlive `execve`: the
/// rolled-back process runs under them already). The subject's digests hold what the
/// filtered calls return in each thread and how many filters each runs under.
#[test]
fn seccomp_filters_the_program_installed_come_back() {
    let dir = tempdir("seccomp_filter");
    let (ckpt_err, restore_err) = checkpoint_kill_restart_warnings(Launch::new(&compile("seccomp_filter"), &dir).arg("30"), 5);
    assert!(!ckpt_err.contains("warning") && !restore_err.contains("warning"), "checkpoint: {ckpt_err}\nrestore: {restore_err}");
    let dir = tempdir("seccomp_rollback");
    let err = checkpoint_rollback(&Launch::new(&compile("seccomp_filter"), &dir).arg("30"), 5, 11);
    assert!(!err.contains("warning"), "{err}");
}

/// A filter made by a raw system call cannot be saved (the kernel shows filters to no
/// one but a privileged tracer): the checkpoint says so, and a restore by a process
/// without it is refused before anything is replaced, saying why.
#[test]
fn a_seccomp_filter_mig_did_not_see_made_is_named_and_its_restore_refused() {
    let dir = tempdir("seccomp_raw");
    let l = Launch::new(&compile("seccomp_filter"), &dir).arg("40").arg("raw");
    let image = dir.join("subject.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let first_err = p.stderr_collector();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    let first_err = first_err.join().unwrap();
    assert!(first_err.contains("warning: the process runs under 2 seccomp filter(s) of its own that mig cannot save"), "{first_err}");
    let (out, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert_eq!(st.code(), Some(125), "refused before anything is replaced: {st:?}\nstderr: {err}\nstdout: {out:?}");
    assert!(err.contains("ran under 2 seccomp filter(s) mig could not save") && err.contains("this process runs under 0"), "{err}");
}

/// A System V shared memory segment comes back as that segment: the id the program
/// holds still names it (`shmctl(IPC_STAT)`: size, attaches, mode, the removal mark),
/// its two attaches (one read-only) show its contents, a keyed one is found by its
/// key; a segment marked for removal goes with the process, and none is left over.
#[test]
fn a_sysv_shared_memory_segment_comes_back_as_itself() {
    require_root("a segment gets its saved id back only where ids may be chosen (CAP_CHECKPOINT_RESTORE)");
    for mode in ["private", "keyed"] {
        let dir = tempdir(&format!("sysv_shm_{mode}"));
        let before = unattached_segments();
        let (ckpt_err, restore_err) = checkpoint_kill_restart_warnings(Launch::new(&compile("sysv_shm"), &dir).arg("20").arg(mode).arg("alone"), 5);
        assert!(!ckpt_err.contains("warning"), "the checkpoint warned: {ckpt_err}");
        assert!(!restore_err.contains("warning"), "the restore warned: {restore_err}");
        assert_eq!(unattached_segments(), before, "{mode}: no segment is left over");
    }
}

/// A rollback of a process whose segment is marked for removal and attached by it
/// alone: the segment outlives the old attaches the restore takes away.
#[test]
fn a_sysv_segment_survives_a_rollback() {
    let dir = tempdir("sysv_shm_rollback");
    checkpoint_rollback(&Launch::new(&compile("sysv_shm"), &dir).arg("30").arg("private").arg("alone"), 5, 11);
}

/// The System V shared memory segments of this machine no process attaches (ids),
/// from the kernel: those of tests running meanwhile are attached.
fn unattached_segments() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    let rows = text.lines().skip(1).map(|l| l.split_whitespace().collect::<Vec<_>>());
    rows.filter(|f| f.get(6) == Some(&"0")).filter_map(|f| f.get(1).map(|id| id.to_string())).collect()
}

/// A peer's end of `tcp_conn`'s (or `tcp_half`'s) connection: a listener on 127.0.0.1
/// with a small receive buffer (the subject's block waits in its own send queue), the
/// subject started by `start` with the port, accepted, and sent the lines it reads;
/// then, where `shut`, the peer shuts its sending side down.
fn tcp_peer(steps: u32, shut: bool, start: impl FnOnce(u16) -> Proc) -> (Proc, std::net::TcpStream) {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    // SAFETY: a socket we own, set up by hand: the buffer must be small before `listen`.
    let listener = unsafe {
        use std::os::fd::FromRawFd;
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let small: i32 = 4096;
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&small as *const i32).cast(), 4);
        let l = std::net::TcpListener::from_raw_fd(fd);
        let a = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
            sin_zero: [0; 8],
        };
        assert_eq!(libc::bind(l.as_raw_fd(), (&a as *const libc::sockaddr_in).cast(), size_of::<libc::sockaddr_in>() as u32), 0);
        assert_eq!(libc::listen(l.as_raw_fd(), 1), 0);
        l
    };
    let p = start(listener.local_addr().unwrap().port());
    let (mut c, _) = listener.accept().unwrap();
    let lines: String = (1..=steps).map(|i| format!("{i}\n")).collect();
    c.write_all(lines.as_bytes()).unwrap();
    if shut {
        c.shutdown(std::net::Shutdown::Write).unwrap();
    }
    (p, c)
}

/// Reads the subject's block and the end of the connection; checks the pattern.
fn tcp_block_arrives_whole(mut c: std::net::TcpStream) {
    use std::io::Read;
    c.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap_or_else(|e| panic!("the connection broke after {} bytes: {e}", got.len()));
    let want: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + i / 251) as u8).collect();
    assert!(got == want, "the block arrived as {} bytes, {} of them as sent", got.len(), got.iter().zip(&want).take_while(|(a, b)| a == b).count());
}

/// Runs the subject `launch(port)` gives with the test as the peer of its connection
/// (`tcp_peer`), once uninterrupted and once checkpointed at step 5 by `mig checkpoint
/// --exit` and restarted by `mig restart`: each time the peer checks with `check` all
/// it gets; the restored run goes on as the uninterrupted one; nothing is said.
/// Returns what `mig checkpoint` printed.
fn across_an_exit(dir: &Path, launch: &dyn Fn(u16) -> Launch, shut: bool, check: fn(std::net::TcpStream)) -> String {
    across_an_exit_reading(dir, launch, shut, check, false)
}

/// `across_an_exit`; where `while_down`, the peer starts reading (and so sends window
/// updates) while the process is down, 300 ms before the restart.
fn across_an_exit_reading(dir: &Path, launch: &dyn Fn(u16) -> Launch, shut: bool, check: fn(std::net::TcpStream), while_down: bool) -> String {
    let (p, c) = tcp_peer(30, shut, |port| launch(port).clone_bare().start());
    let (reference, st, err) = p.finish();
    assert!(st.success(), "uninterrupted run failed: {st:?} {err}");
    check(c);

    let image = dir.join("conn.mig");
    let (mut p, c) = tcp_peer(30, shut, |port| launch(port).clone_with("MIG_IMAGE", &image).start());
    p.until("step 5 ");
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &p.pid().to_string(), "--exit", "--to", image.to_str().unwrap()]));
    assert!(st.success(), "{out}{err}");
    assert!(!err.contains("warning"), "the connection is saved whole: {err}");
    let (before, _, _) = p.finish();
    // Otherwise the peer reads only once the process is back (a job's connections are
    // not held: a window update to nobody would be answered with a reset).
    let mut peer = Some(c);
    let reader = while_down.then(|| {
        let c = peer.take().expect("the peer's end");
        let reader = std::thread::spawn(move || check(c));
        // Not a synchronisation: the time the process stays down while its peer reads.
        std::thread::sleep(std::time::Duration::from_millis(300));
        reader
    });
    let mut r = Launch::new(&mig(), dir).bare().arg("restart").arg(image.to_str().unwrap()).start();
    r.line().expect("the restored run prints its next step");
    if let Some(c) = peer {
        check(c);
    }
    if let Some(t) = reader {
        t.join().expect("the peer's checks");
    }
    let (restored, st, err) = r.finish();
    assert!(st.success(), "restored run failed: {st:?}\n{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_continues(&reference, &before, &restored);
    out
}

/// An established TCP connection to a peer outside the process, with bytes waiting in
/// both its queues, checkpointed with `mig checkpoint --exit` and restored by `mig
/// restart`: the connection goes on, the peer never notices (no end, no reset), the
/// process reads the bytes that were waiting for it and the peer gets every byte the
/// process sent (repair mode: CAP_NET_ADMIN).
#[test]
fn an_established_tcp_connection_comes_back_intact() {
    require_root("TCP repair mode takes CAP_NET_ADMIN");
    let dir = tempdir("tcp_conn");
    let bin = compile("tcp_conn");
    across_an_exit(&dir, &|port| Launch::new(&bin, &dir).arg(&port.to_string()), false, tcp_block_arrives_whole);
}

/// The same, but the peer reads while the process is down (between `mig checkpoint
/// --exit` and `mig restart`): its window updates reach no process. `mig hold` keeps
/// the connection meanwhile, dropping what arrives, so the peer gets no reset and sends
/// again to the restored process.
#[test]
fn a_peer_that_reads_while_the_process_is_down_notices_nothing() {
    require_root("TCP repair mode takes CAP_NET_ADMIN");
    let dir = tempdir("tcp_conn_down");
    let bin = compile("tcp_conn");
    across_an_exit_reading(&dir, &|port| Launch::new(&bin, &dir).arg(&port.to_string()), false, tcp_block_arrives_whole, true);
}

/// A connection whose peer outside the process has shut its sending side down (the
/// process's end in CLOSE_WAIT, lines still to read before the end of the stream),
/// across `--exit` and `mig restart`: the restored end reads the lines, then the end
/// (the peer's FIN, which the peer never sends again, is sent to it again from the
/// peer's address); the peer gets the block, "bye" and the end.
#[test]
fn a_tcp_connection_its_peer_shut_down_comes_back_so() {
    require_root("TCP repair mode takes CAP_NET_ADMIN; sending the peer's FIN again takes CAP_NET_RAW");
    let dir = tempdir("tcp_half_peer");
    let bin = compile("tcp_half");
    let block_and_bye = |mut c: std::net::TcpStream| {
        use std::io::Read;
        c.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap_or_else(|e| panic!("the connection broke after {} bytes: {e}", got.len()));
        let mut want: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        want.extend_from_slice(b"bye");
        assert!(got == want, "the peer got {} bytes, {} of them as sent", got.len(), got.iter().zip(&want).take_while(|(a, b)| a == b).count());
    };
    across_an_exit(&dir, &|port| Launch::new(&bin, &dir).arg(&port.to_string()), true, block_and_bye);
}

/// A job (a shell and its child, `tcp_conn`, connected to the test) checkpointed with
/// `mig checkpoint --exit`: its processes hold their connection before the command ends
/// the job, so the peer never sees it closed, and the command hands it to `mig hold`,
/// so the peer reading while the job is down gets no reset; `mig restart` brings the
/// job back with the connection whole; nothing is said.
#[test]
fn a_jobs_tcp_connection_to_a_peer_outside_comes_back_intact() {
    require_root("TCP repair mode takes CAP_NET_ADMIN; a job gets its pids back only where pids may be chosen");
    let dir = tempdir("tcp_conn_job");
    let bin = compile("tcp_conn");
    let shell = |port: u16| Launch::new(Path::new("/bin/sh"), &dir).arg("-c").arg(&format!("{} {port} 30; exit $?", bin.display()));
    let said = across_an_exit_reading(&dir, &shell, false, tcp_block_arrives_whole, true);
    assert!(said.contains("2 processes"), "{said}");
}

/// Both ends of a TCP connection in the process, over IPv4 and over IPv6, with bytes
/// waiting both ways (and the listener it came from, on the same port), checkpointed
/// while the process goes on, killed and restored: the connection is whole again
/// (neither end leaves repair mode, probing the other, before both exist), and
/// nothing is said.
#[test]
fn a_tcp_connection_within_the_process_comes_back_whole() {
    require_root("TCP repair mode takes CAP_NET_ADMIN");
    for mode in ["self", "self6"] {
        let dir = tempdir(&format!("tcp_conn_{mode}"));
        let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("tcp_conn"), &dir).arg(mode).arg("30"), 5);
        assert!(!ckpt_err.contains("warning") && !err.contains("warning"), "{mode}: checkpoint: {ckpt_err}\nrestore: {err}");
    }
}

/// A TCP connection shut down one way, both ends in the process (one in CLOSE_WAIT
/// with lines still to read before the end of its stream, the other in FIN_WAIT2 with a
/// block still to read), and a connection whose end shut down only its receiving
/// side, checkpointed, killed and restored: all come back in their states with their
/// bytes, the first reads its lines and then the end, the second the block, "bye" and
/// the end, the third still polls as shut down; nothing is said (before: the first two
/// came back reset, said, and the third no longer shut down).
#[test]
fn a_tcp_connection_shut_down_one_way_comes_back_so() {
    require_root("TCP repair mode takes CAP_NET_ADMIN");
    let dir = tempdir("tcp_half_self");
    let (ckpt_err, err) = checkpoint_kill_restart_warnings(Launch::new(&compile("tcp_half"), &dir).arg("self").arg("30"), 5);
    assert!(!ckpt_err.contains("warning") && !err.contains("warning"), "checkpoint: {ckpt_err}\nrestore: {err}");
}

/// A listener on 127.0.0.1 whose queue is full (backlog 0, one connection waiting in
/// it): a SYN to it is dropped, so a connection to it stays in SYN_SENT.
fn full_listener() -> (std::net::TcpListener, std::net::TcpStream) {
    use std::os::fd::FromRawFd;
    // SAFETY: a socket we own, set up by hand: std listens with a backlog of 128.
    let listener = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let a = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
            sin_zero: [0; 8],
        };
        assert_eq!(libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), size_of::<libc::sockaddr_in>() as u32), 0);
        assert_eq!(libc::listen(fd, 0), 0);
        std::net::TcpListener::from_raw_fd(fd)
    };
    let filler = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (listener, filler)
}

/// `tcp_connecting` run against a full listener (`full_listener`): once it says
/// `waiting`, the listener takes what filled it, then the subject's connection, and
/// reads its "hello". `go` starts the subject with the port and returns it once it
/// is past whatever it does to it; the subject's lines and what the listener read.
fn connecting_round(go: &dyn Fn(u16) -> Proc) -> (Vec<String>, Vec<u8>) {
    use std::io::Read;
    let (listener, filler) = full_listener();
    let mut p = go(listener.local_addr().unwrap().port());
    p.until("waiting");
    drop(filler);
    listener.set_nonblocking(true).unwrap();
    let accept = |what: &str| {
        let t0 = std::time::Instant::now();
        loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && t0.elapsed() < std::time::Duration::from_secs(20) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("{what} never came: {e}"),
            }
        }
    };
    drop(accept("the connection that filled the queue"));
    let mut c = accept("the subject's connection");
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    let (lines, st, err) = p.finish();
    assert!(st.success(), "{st:?} {err}\n{lines:?}");
    (lines, got)
}

/// A TCP connection being made (SYN_SENT: its peer's queue is full) when the process
/// is checkpointed, killed and restored: the restored connection is being made again
/// (still SYN_SENT at each step), and is made once the peer takes it; nothing is said
/// (before: it came back an unconnected socket, in CLOSE, silently).
#[test]
fn a_tcp_connection_being_made_is_made_again() {
    let dir = tempdir("tcp_connecting");
    let bin = compile("tcp_connecting");
    let (reference, sent) = connecting_round(&|port| Launch::new(&bin, &dir).bare().arg(&port.to_string()).start());
    assert_eq!(sent, b"hello");
    assert!(reference.iter().any(|l| l == "connected: poll 1, SO_ERROR 0, state 1"), "{reference:?}");
    let image = dir.join("connecting.mig");
    let before = std::cell::RefCell::new(vec![]);
    let (restored, sent) = connecting_round(&|port| {
        let l = Launch::new(&bin, &dir).arg(&port.to_string());
        let mut p = l.clone_with("MIG_IMAGE", &image).start();
        let err = p.stderr_collector();
        checkpoint_at(&mut p, 5, &image);
        p.line().expect("the subject keeps running after a checkpoint");
        *before.borrow_mut() = p.kill();
        let err = err.join().unwrap();
        assert!(!err.contains("warning"), "the checkpoint warned: {err}");
        l.clone_with("MIG_RESTORE", &image).start()
    });
    assert_eq!(sent, b"hello");
    assert_continues(&reference, &before.borrow(), &restored);
}

/// Where the kernel's repair mode is refused (no CAP_NET_ADMIN), at the checkpoint or
/// at the restore, the connection comes back reset by the peer, and a warning says so
/// then: the restored process reads `ECONNRESET` where it would have read on.
#[test]
fn a_tcp_connection_repair_mode_cannot_save_comes_back_reset_and_says_so() {
    require_root("the other half of this test (the restore) takes CAP_NET_ADMIN away from root");
    let dir = tempdir("tcp_conn_reset");
    let bin = compile("tcp_conn");
    let image = dir.join("conn.mig");
    let reset = ": read returned -1 (errno 104)";
    for (no_repair_at, warned_at) in [("checkpoint", "descriptor 3 (socket:["), ("restore", "descriptor 3: its TCP connection to 127.0.0.1:")] {
        let launch = |port: u16| {
            let l = Launch::new(&bin, &dir).arg(&port.to_string()).clone_with("MIG_IMAGE", &image);
            if no_repair_at == "checkpoint" { l.without_net_admin() } else { l }
        };
        let (mut p, _c) = tcp_peer(30, false, |port| launch(port).start());
        p.until("step 5 ");
        let (st, _, ckpt_err) = output(&mut mig_cmd(&["checkpoint", &p.pid().to_string(), "--exit", "--to", image.to_str().unwrap()]));
        assert!(st.success(), "{ckpt_err}");
        p.finish();
        let restart = Launch::new(&mig(), &dir).bare().arg("restart").arg(image.to_str().unwrap());
        let restart = if no_repair_at == "restore" { restart.without_net_admin() } else { restart };
        let (restored, _, err) = restart.start().finish();
        let warned = if no_repair_at == "checkpoint" { &ckpt_err } else { &err };
        assert!(
            warned.lines().any(|l| l.contains("warning") && l.contains(warned_at) && l.contains("reset by the peer")),
            "no repair mode at the {no_repair_at}: no warning: {warned}"
        );
        let first = restored.first().map_or("", String::as_str);
        assert!(first.starts_with("FAIL step ") && first.ends_with(reset), "no repair mode at the {no_repair_at}: {restored:?}\n{err}");
    }
}
