//! Process trees (issue 16): a job — a process and its descendants — is saved whole
//! into one image, whichever of its processes is asked, and restored whole.

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

/// A process alone when `mig checkpoint` looks, which starts a child before it takes
/// the request (it holds the checkpoint signal blocked meanwhile): it does not save
/// itself alone (the child would be lost), the command saves the job instead, both
/// processes, and the process goes on as without mig.
#[test]
fn a_process_that_starts_a_child_as_it_is_asked_is_saved_with_it() {
    let dir = tempdir("child_when_asked");
    let hold = dir.join("hold");
    let l = Launch::new(&compile("blocks_signal"), &dir).arg("60").arg("0").arg("0").arg(hold.to_str().unwrap()).arg("fork");
    let reference = reference(&l.clone_bare());
    let image = dir.join("job.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let pid = p.pid();
    p.until("step 2 ");
    std::fs::write(&hold, "").unwrap();
    wait_until("the checkpoint signal blocked", Duration::from_secs(10), || signal_in(pid, "SigBlk", libc::SIGUSR1).then_some(()));
    // The checkpoint signal carries the request (the held one).
    let ck = mig_cmd(&["checkpoint", &pid.to_string(), "--to", image.to_str().unwrap()])
        .env("MIG_SIGNAL", "USR1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Pending, the command has looked for children already: now the child comes.
    wait_until("the request pending", Duration::from_secs(10), || {
        (signal_in(pid, "ShdPnd", libc::SIGUSR1) || signal_in(pid, "SigPnd", libc::SIGUSR1)).then_some(())
    });
    assert!(children_of(pid).is_empty(), "no child yet");
    std::fs::remove_file(&hold).unwrap();
    let out = ck.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("job {pid} ")) && stdout.contains("2 processes"), "saved as a job: {stdout}{stderr}");
    let (lines, st, err) = p.finish();
    assert!(st.success(), "{st:?} {err}");
    assert_eq!(lines, reference, "{err}");
}

/// A forked and an exec'd child: `mig checkpoint` of the child, `kill -USR1` to the
/// child and to the parent each save the whole job (both processes) into the job's
/// image; `kill -USR2` to the child is refused, naming the parent (the job's root rolls
/// it back); both run on as without mig.
#[test]
fn a_request_to_any_process_of_a_job_saves_the_whole_job() {
    for mode in ["fork", "exec"] {
        let dir = tempdir(&format!("job_child_{mode}"));
        let l = Launch::new(&compile("job_child"), &dir).arg("60").arg(mode);
        let reference = reference(&l.clone_bare());
        let _ = std::fs::remove_file(dir.join("child.ready"));
        let image = dir.join("job.mig");
        let mut p = l.clone_with("MIG_IMAGE", &image).start();
        let parent = p.pid();
        let perr = p.stderr_collector();
        p.until("step 2 ");
        wait_for_file(&dir.join("child.ready"));
        let child = *children_of(p.pid()).first().expect("the parent has its child");
        let both = [(parent as u64, std::process::id() as u64), (child as u64, parent as u64)];
        signal(child, libc::SIGUSR2);
        let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &child.to_string()]));
        assert!(st.success(), "{mode}: mig checkpoint of the child saves the job: {out}{err}");
        assert!(out.contains(&format!("job {parent} ")) && out.contains("2 processes"), "{mode}: {out}");
        assert_eq!(job_pids(&image), both, "{mode}");
        for to in [child, parent] {
            std::fs::remove_file(&image).unwrap();
            signal(to, libc::SIGUSR1);
            wait_for_file(&image);
            assert_eq!(job_pids(&image), both, "{mode}: kill -USR1 {to}");
            // The command the signal started is gone before the next signal.
            wait_until("the job's checkpoint command to end", Duration::from_secs(10), || {
                (files_starting(&dir, "job.mig.").is_empty() && !command_running(&format!("checkpoint\0{to}"))).then_some(())
            });
        }
        let (lines, st, _) = p.finish();
        let perr = perr.join().unwrap();
        assert!(st.success(), "{mode}: {lines:?} {perr}");
        assert_eq!(lines, reference, "{mode}: the run differs from one without mig");
        assert!(perr.contains(&format!("rollback refused: process {child} belongs to the job of process {parent}")), "{mode}: {perr}");
        assert!(!perr.contains("checkpoint refused"), "{mode}: {perr}");
    }
}

/// (pid, ppid) of each process of the job image `image`, root first.
fn job_pids(image: &Path) -> Vec<(u64, u64)> {
    let v = inspect_intact(image);
    let procs = v["processes"].as_array().unwrap_or_else(|| panic!("inspect lists the job's processes: {v}"));
    procs.iter().map(|m| (m["pid"].as_u64().unwrap(), m["ppid"].as_u64().unwrap())).collect()
}

/// Whether a process runs whose command line contains `needle` (NULs between arguments).
fn command_running(needle: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle.as_bytes())) && alive(pid))
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process of the test's.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// `reaper <subject> ARGS`, the subject with the library and `image` as its MIG_IMAGE:
/// the job's pids are free again as soon as it is killed (see `c-tests/reaper.c`).
fn under_reaper(subject: &Path, args: &[&str], dir: &Path, image: &Path) -> Launch {
    let mut l = Launch::new(&compile("reaper"), dir).bare().arg(&subject.display().to_string());
    for a in args {
        l = l.arg(a);
    }
    l.env("REAPER_PRELOAD", lib()).env("MIG_IMAGE", image)
}

/// The job's root: the reaper's child.
fn root_under(reaper: &Proc) -> i32 {
    wait_until("the job's root", Duration::from_secs(5), || children_of(reaper.pid()).first().copied())
}

/// The job's root and all its descendants, parents first.
fn job_of(root: i32) -> Vec<i32> {
    let mut all = vec![root];
    let mut i = 0;
    while let Some(&p) = all.get(i) {
        all.extend(children_of(p));
        i += 1;
    }
    all
}

/// The job scenario: `subject ARGS` under a reaper, `mig checkpoint` of its root once
/// it printed `step <at>`, checked to hold `processes` processes with the pids and
/// parents they had; the job goes on a step, is killed whole, and `mig restart`
/// brings it back: its output goes on as an uninterrupted run's, it ends with status
/// 0, and nothing is said (the pids came back).
fn job_round(name: &str, args: &[&str], at: u32, processes: Option<usize>) -> std::path::PathBuf {
    job_round_with(name, args, at, processes, &[]).0
}

/// `job_round` with `env` set for the job; also returns what `mig checkpoint` said.
fn job_round_with(name: &str, args: &[&str], at: u32, processes: Option<usize>, env: &[(&str, &str)]) -> (std::path::PathBuf, String) {
    require_root("a job's processes get their saved pids back only where pids may be chosen (CAP_CHECKPOINT_RESTORE)");
    // A script is run as it is; a C subject is compiled.
    let dir = tempdir(name.split('.').next().unwrap_or(name));
    let subject = if name.contains('.') { repo().join("c-tests").join(name) } else { compile(name) };
    let mut bare = Launch::new(&subject, &dir).bare();
    for a in args {
        bare = bare.arg(a);
    }
    let reference = reference(&bare);
    let image = dir.join("job.mig");
    let mut launch = under_reaper(&subject, args, &dir, &image);
    for (k, v) in env {
        launch = launch.env(k, v);
    }
    let mut p = launch.start();
    p.until(&format!("step {at} "));
    let root = root_under(&p);
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &root.to_string()]));
    let said = out.clone();
    assert!(st.success(), "mig checkpoint of the job: {out}{err}");
    assert!(out.contains(&format!("checkpoint of job {root} ")), "says it saved the job: {out}");
    assert!(!err.contains("warning"), "nothing was lost: {err}");
    let saved = job_pids(&image);
    if let Some(n) = processes {
        assert_eq!(saved.len(), n, "{saved:?}");
    }
    assert_eq!(saved[0], (root as u64, p.pid() as u64));
    for (i, (pid, ppid)) in saved.iter().enumerate().skip(1) {
        assert!(saved[..i].iter().any(|(p, _)| p == ppid), "{pid}'s parent {ppid} comes before it in the job: {saved:?}");
    }
    assert!(out.contains(&format!("{} processes", saved.len())), "{out}");
    p.line().expect("the job keeps running after a checkpoint");
    let job = job_of(root);
    for &pid in &job {
        // SAFETY: kill(2) on the test's own subjects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let (before, _, _) = p.finish();
    assert!(job.iter().all(|&pid| !alive(pid)), "the old job is gone");
    let (st, out, err) = output(mig_cmd(&["restart", &image.display().to_string()]).current_dir(&dir));
    let restored: Vec<String> = out.lines().map(str::to_string).collect();
    assert!(st.success(), "restored job failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert!(!err.contains("warning"), "the pids came back: {err}");
    assert_continues(&reference, &before, &restored);
    (image, said)
}

/// A parent and a forked child over two pipes, bytes in flight both ways: both come
/// back with their pids (the parent reaps its child by pid, with its real status) and
/// the pipes with what they held.
#[test]
fn a_parent_and_child_over_pipes_come_back_together() {
    job_round("pipe_pair", &["60"], 10, Some(2));
}

/// The same over one UNIX socket pair, both ways: the pair is one pair again, each
/// end's queue back.
#[test]
fn a_parent_and_child_over_a_socket_pair_come_back_together() {
    job_round("pipe_pair", &["60", "socketpair"], 10, Some(2));
}

/// Children that had ended, not reaped yet, come back ended with their statuses (an
/// exit code, a signal): the parent reaps them by pid at its end.
/// A TCP connection between a parent and its child, bytes waiting both ways: the job's
/// root makes both ends in repair mode and takes them out of it once both exist (an
/// end's window probe would otherwise find no peer yet, and be answered with a reset);
/// the job goes on as an uninterrupted run, and nothing is said.
#[test]
fn a_tcp_connection_between_a_parent_and_its_child_comes_back_whole() {
    job_round("tcp_conn", &["fork", "30"], 5, Some(2));
}

#[test]
fn children_ended_but_not_reaped_come_back_so() {
    job_round("unreaped", &["40"], 10, Some(3));
}

/// A bash job script that runs external commands in a loop inside `$(...)`: bash,
/// the substitution's subshell and what it runs come back mid-substitution, and the
/// substitution's output is whole.
#[test]
fn a_job_script_comes_back_mid_substitution() {
    job_round("job_script.sh", &["60"], 10, None);
}

/// A job restored, checkpointed again as it runs, killed and restored again, three
/// times: each generation goes on where the one before was saved, with the same
/// pids, and the last ends as an uninterrupted run does.
#[test]
fn a_job_comes_back_three_generations_running() {
    require_root("a job's processes get their saved pids back only where pids may be chosen (CAP_CHECKPOINT_RESTORE)");
    let dir = tempdir("job_generations");
    let subject = compile("pipe_pair");
    let reference = reference(&Launch::new(&subject, &dir).bare().arg("90"));
    let image = |g: u32| dir.join(format!("job{g}.mig"));
    let save_and_kill = |root: i32, to: &Path| {
        let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &root.to_string(), "--to", to.to_str().unwrap()]));
        assert!(st.success() && out.contains("2 processes"), "mig checkpoint of the job: {out}{err}");
        for pid in job_of(root) {
            // SAFETY: kill(2) on the test's own subjects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    };
    let continues = |before: &[String], lines: &[String]| {
        let first = lines.first().and_then(|l| step_of(l)).unwrap_or_else(|| panic!("a generation starts with {lines:?}"));
        let last = before.iter().rev().find_map(|l| step_of(l)).unwrap_or(0);
        assert!(first <= last + 1, "a generation skipped steps: resumed at {first}, saved after {last}");
        let at = reference.iter().position(|l| step_of(l) == Some(first)).expect("the step in the reference");
        assert_eq!(&reference[at..(at + lines.len()).min(reference.len())], lines, "a generation differs from the uninterrupted run");
    };
    let mut p = under_reaper(&subject, &["90"], &dir, &image(1)).start();
    p.until("step 10 ");
    let root = root_under(&p);
    save_and_kill(root, &image(1));
    let (mut before, _, _) = p.finish();
    for (g, at) in [(1, 30), (2, 50)] {
        // Under a reaper too: the killed generation's orphans are reaped, their pids free.
        let mut r = Launch::new(&compile("reaper"), &dir).bare().arg(mig().to_str().unwrap()).arg("restart").arg(image(g).to_str().unwrap()).start();
        r.until(&format!("step {at} "));
        let command = root_under(&r);
        let again = wait_until("the restored root", Duration::from_secs(5), || children_of(command).first().copied());
        assert_eq!(again, root, "generation {g}: the root has its pid");
        save_and_kill(root, &image(g + 1));
        let (lines, _, _) = r.finish();
        continues(&before, &lines);
        before = lines;
    }
    let (st, out, err) = output(mig_cmd(&["restart", &image(3).display().to_string()]).current_dir(&dir));
    let last: Vec<String> = out.lines().map(str::to_string).collect();
    assert!(st.success(), "the last generation failed: {st:?}\nstderr: {err}\nstdout: {last:?}");
    continues(&before, &last);
    assert_eq!(last.last(), reference.last(), "the last generation ends as the uninterrupted run");
}

/// A 3-stage bash pipeline with a running sum, whose first stage starts a `sleep`
/// every 40 ms: every stage (and the `sleep` of the moment) comes back, with the lines
/// in flight between them.
#[test]
fn a_shell_pipeline_comes_back_whole() {
    job_round("pipeline.sh", &["80"], 20, None);
}

/// A parent that holds a recursive mutex (glibc records its tid) across the
/// checkpoint, reads its CPU clock through `clock_getcpuclockid(getpid())` and signals
/// its child by pid at every step: after the restore all of that still works (the
/// pids and the main thread's tid are the saved ones).
#[test]
fn pids_and_tids_a_job_knows_stay_valid() {
    job_round("pid_users", &["60"], 10, Some(2));
}

/// Processes of a job that pre-copy (here all, `MIG_PRECOPY=1`; by default those with
/// 64 MiB of private memory or more) copy their memory while the job runs, then all
/// stop at once for their final stops: the bytes in flight in the pipes between them
/// are saved once, their memory is the moment of that stop.
#[test]
fn a_job_pre_copies_then_stops_at_once() {
    let (_, said) = job_round_with("pipe_pair", &["60"], 10, Some(2), &[("MIG_PRECOPY", "1")]);
    assert!(said.contains("2 processes, 2 pre-copied"), "{said}");
    let (_, said) = job_round_with("pipeline.sh", &["80"], 20, None, &[("MIG_PRECOPY", "1")]);
    assert!(said.contains(" pre-copied)"), "{said}");
}

/// Descriptors in flight in socket queues between a parent and its child (a pipe's
/// ends, the file both hold, an eventfd, a memfd, an end of a pair both hold with its
/// own queue): the job's root sends them again with their messages; the file is the
/// one description both processes share.
#[test]
fn descriptors_in_flight_between_a_parent_and_its_child_come_back() {
    job_round("fd_passing", &["20", "fork"], 5, Some(2));
}

/// A pseudo-terminal whose master the parent holds and whose slave is its child's
/// standard input (as `forkpty` leaves them): one new pair again, the child on its
/// slave, raw, the window size kept.
#[test]
fn a_pseudo_terminal_between_a_parent_and_its_child_comes_back_as_one() {
    job_round("pty_pair", &["20", "fork"], 5, Some(2));
}

/// A named FIFO whose write end a parent and its child share, its read end the
/// parent's: made once for the job, held by nothing else, so the parent sees end of
/// file once both writers are gone.
#[test]
fn a_fifo_a_job_shares_ends_when_its_writers_do() {
    let image = job_round("fifo_job", &["20"], 5, Some(2));
    let v = inspect_intact(&image);
    let groups = v["shared_descriptors"].as_array().unwrap_or_else(|| panic!("inspect lists the shared descriptors: {v}"));
    assert_eq!(groups.len(), 1, "the write end: {v}");
}

/// A pre-forked server: two workers accept on the listening socket their parent made,
/// and count requests in an eventfd made before the fork: the listener is bound once
/// again and both workers accept on it, the eventfd is one counter again.
#[test]
fn a_pre_forked_server_listens_on_one_socket_again() {
    let image = job_round("prefork", &["30"], 10, Some(3));
    let v = inspect_intact(&image);
    let groups = v["shared_descriptors"].as_array().unwrap_or_else(|| panic!("inspect lists the shared descriptors: {v}"));
    assert_eq!(groups.len(), 2, "the listener and the eventfd: {v}");
}

/// A parent and child taking turns on a page of anonymous shared memory: the page is
/// one page again after the restore (two copies would change every digest).
#[test]
fn memory_a_job_shares_is_shared_again() {
    job_round("shared_counter", &["60"], 10, Some(2));
}

/// A parent and child counting in a `/dev/shm` file both map and that was unlinked
/// (as Python's semaphores are): one file again, deleted, named as it was, with every
/// count, and nothing left in `/dev/shm`.
#[test]
fn a_deleted_shm_file_a_job_shares_comes_back_one_and_deleted() {
    let name = format!("mig-job-deleted-{}", std::process::id());
    job_round("shm_deleted", &["40", &name, "fork"], 8, Some(2));
    let left = std::fs::read_dir("/dev/shm").unwrap().filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with(&name)).count();
    assert_eq!(left, 0, "files named {name} stay in /dev/shm");
}

/// A parent and child taking turns on a System V shared memory segment (marked for
/// removal, or keyed), each checking it by its id every step: one segment again, with
/// its id, its three attaches and its mark, gone after the job.
#[test]
fn a_sysv_segment_a_job_shares_is_one_segment_again() {
    job_round("sysv_shm", &["60", "private"], 10, Some(2));
    job_round("sysv_shm", &["60", "keyed"], 10, Some(2));
}

/// A parent and child writing one file through a descriptor the child inherited: one
/// open file description again after the restore, one offset for both (two would
/// overwrite each other's lines).
#[test]
fn a_file_a_job_inherited_is_one_open_file_again() {
    let image = job_round("shared_file", &["60"], 10, Some(2));
    let v = inspect_intact(&image);
    let groups = v["shared_descriptors"].as_array().unwrap_or_else(|| panic!("inspect lists the shared descriptors: {v}"));
    assert_eq!(groups.len(), 1, "{v}");
    let fds: Vec<&str> = groups[0].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(fds.len() == 2 && fds.iter().all(|d| d.ends_with(":5")), "descriptor 5 of both processes: {fds:?}");
}

/// A job in a session of its own (the root called setsid): it comes back in its
/// session and group, the root leading both (the subject checks at every step), and
/// after the restore one SIGTERM to the group ends all of it; `mig restart`, which
/// waits for the root, ends with the root's status.
#[test]
fn a_job_comes_back_in_its_session_and_one_signal_to_its_group_ends_it() {
    require_root("a job's processes get their saved pids back only where pids may be chosen (CAP_CHECKPOINT_RESTORE)");
    let dir = tempdir("session_job");
    let subject = compile("session_job");
    let image = dir.join("job.mig");
    let mut p = under_reaper(&subject, &["400"], &dir, &image).start();
    p.until("step 5 ");
    let root = root_under(&p);
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &root.to_string()]));
    assert!(st.success() && out.contains("3 processes"), "{out}{err}");
    let saved = job_pids(&image);
    for &pid in &job_of(root) {
        // SAFETY: kill(2) on the test's own subjects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = p.finish();
    let mut restart = mig_cmd(&["restart", &image.display().to_string()]);
    restart.current_dir(&dir).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut r = restart.spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(r.stdout.take().unwrap()));
    let first = lines.next().expect("the restored job prints").unwrap();
    assert!(first.starts_with("step "), "{first}");
    for (pid, _) in &saved {
        let (pgid, sid) = group_and_session(*pid as i32).unwrap_or_else(|| panic!("process {pid} is back"));
        assert_eq!((pgid, sid), (root, root), "process {pid}'s group and session");
    }
    // SAFETY: kill(2) on the restored job's group.
    assert_eq!(unsafe { libc::kill(-root, libc::SIGTERM) }, 0);
    let st = r.wait().unwrap();
    assert_eq!(st.code(), Some(128 + libc::SIGTERM), "mig restart ends with the root's status");
    wait_until("the restored job to end", Duration::from_secs(5), || saved.iter().all(|(pid, _)| !alive(*pid as i32)).then_some(()));
}

/// (process group, session) of `pid`.
fn group_and_session(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace().skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Python's multiprocessing.Pool(2) mapping in a loop: the parent (with the pool's
/// threads) and both workers come back with their pids, pipes and shared semaphore;
/// the maps go on, and the pool shuts down at the end as it would have.
#[test]
fn a_python_multiprocessing_pool_comes_back_whole() {
    python3().expect("python3 is needed (./scripts/setup.sh installs it)");
    job_round("pool.py", &["80"], 10, Some(3));
}

/// `make -j2` with slow rules (two at a time through its jobserver pipe, each a shell
/// running `sleep`): make, its recipes' shells and their commands come back, and the
/// build goes on to its end as an uninterrupted one.
#[test]
fn make_j2_comes_back_and_finishes_its_build() {
    job_round("make_job.sh", &["40"], 8, None);
}

/// A pipe whose reader is outside the job (here, the test) is named at checkpoint time,
/// for each process of the job that holds its write end, with what comes back instead.
#[test]
fn what_leads_out_of_a_job_is_named_at_checkpoint_time() {
    let dir = tempdir("leading_out");
    let image = dir.join("job.mig");
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) into a valid array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [r, w] = fds;
    let mut c = std::process::Command::new(compile("reaper"));
    c.arg(compile("pipe_pair")).arg("400").current_dir(&dir).env("REAPER_PRELOAD", lib()).env("MIG_IMAGE", &image).env_remove("LD_PRELOAD");
    c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    // SAFETY: dup2 and close_range are async-signal-safe, as pre_exec requires.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            libc::dup2(w, 3);
            libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let mut reaper = c.spawn().unwrap();
    // SAFETY: closing the test's copy of the write end.
    unsafe { libc::close(w) };
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(reaper.stdout.take().unwrap()));
    assert!(lines.next().unwrap().unwrap().starts_with("step 1 "));
    let root = wait_until("the job's root", Duration::from_secs(5), || children_of(reaper.id() as i32).first().copied());
    let child = *children_of(root).first().expect("the parent has its child");
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &root.to_string()]));
    assert!(st.success(), "{out}{err}");
    for pid in [root, child] {
        let said = format!("process {pid} (pipe_pair.");
        assert!(
            err.lines().any(|l| l.contains(&said)
                && l.contains("descriptor 3 (pipe:[")
                && l.contains("its reader is outside the job; it comes back as a broken pipe end")),
            "names process {pid}'s descriptor 3: {err}"
        );
    }
    for pid in job_of(root) {
        // SAFETY: kill(2) on the test's own subjects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = reaper.wait();
    // SAFETY: closing the read end.
    unsafe { libc::close(r) };
}

/// A job streamed (`--to -`), zstd-compressed, into a file and restored from standard
/// input (`mig restart -`): the same job, its pids and pipes, as from an image file.
#[test]
fn a_job_streamed_compressed_comes_back_from_standard_input() {
    require_root("a job's processes get their saved pids back only where pids may be chosen (CAP_CHECKPOINT_RESTORE)");
    let dir = tempdir("job_stream");
    let subject = compile("pipe_pair");
    let reference = reference(&Launch::new(&subject, &dir).bare().arg("60"));
    let mut p = under_reaper(&subject, &["60"], &dir, &dir.join("job.mig")).start();
    p.until("step 10 ");
    let root = root_under(&p);
    let stream = dir.join("job.mig.zst");
    let file = std::fs::File::create(&stream).unwrap();
    let (st, _, err) = output(mig_cmd(&["checkpoint", &root.to_string(), "--exit", "--to", "-", "--compress", "zstd"]).stdout(file));
    assert!(st.success(), "{err}");
    assert!(
        err.contains(&format!("checkpoint of job {root} (")) && err.contains(", 2 processes) streamed to standard output") && err.contains("zstd-compressed"),
        "{err}"
    );
    let (before, _, _) = p.finish();
    let (st, out, err) = output(mig_cmd(&["restart", "-"]).current_dir(&dir).stdin(std::fs::File::open(&stream).unwrap()));
    assert!(st.success(), "restored job failed: {st:?}\nstderr: {err}\nstdout: {out}");
    assert!(!err.contains("warning"), "the pids came back: {err}");
    let restored: Vec<String> = out.lines().map(str::to_string).collect();
    assert_continues(&reference, &before, &restored);
}

/// `kill -USR2` to a job's root rolls the whole job back to its last image: the
/// processes under the root are ended and the job's come back as they were (the child
/// with its pid, still the parent's to reap, the pipes with what they held), and the
/// job goes on from there as an uninterrupted run. A C parent and child, and a
/// three-stage shell pipeline.
#[test]
fn a_job_rolls_back_whole() {
    require_root("a job's processes get their saved pids back only where pids may be chosen (CAP_CHECKPOINT_RESTORE)");
    let dir = tempdir("job_rollback");
    let err = checkpoint_rollback(&Launch::new(&compile("pipe_pair"), &dir).arg("60"), 10, 20);
    assert!(!err.contains("warning") && !err.contains("refused"), "{err}");
    // A shell pipeline: the shell's subshells and their children too.
    let err = checkpoint_rollback(&Launch::new(&repo().join("c-tests/pipeline.sh"), &dir).arg("80"), 20, 35);
    assert!(!err.contains("warning") && !err.contains("refused"), "{err}");
}

/// A job on a terminal, in the terminal's foreground group (a shell with job control
/// ran it): restored by `mig restart` from such a shell, the job gets the terminal back,
/// so its child still reads what is typed (before: stopped by SIGTTIN at its read, the
/// job hung), and `mig restart` ends with the job.
#[test]
fn a_job_on_a_terminal_gets_it_back() {
    tty_job_round("tty_job", false);
}

/// A job whose root led its own session on a terminal (`setsid -c`): restarted from
/// another terminal, whose session is its shell's, the job gets a new pseudo-terminal
/// as its controlling terminal, which `mig restart` relays to its own: what is typed
/// reaches the job's reader, in the foreground of the job's session.
#[test]
fn a_job_that_led_its_session_on_a_terminal_gets_one_again() {
    tty_job_round("tty_session", true);
}

/// `tty_job` run by a shell on a terminal of its own (under a reaper: the job's pids
/// are free as soon as it is killed), as the terminal's foreground group (`set -m`) or,
/// `leader`, in a session of its own with the terminal as its controlling terminal
/// (`setsid -c`); it answers what is typed, is checkpointed with `--exit`, and comes
/// back by `mig restart` from another terminal's shell: it goes on where it was, what
/// is typed there reaches its reader, it ends with status 0, and nothing is said.
fn tty_job_round(name: &str, leader: bool) {
    require_root("a job's processes get their saved pids back only where pids may be chosen (CAP_CHECKPOINT_RESTORE)");
    let dir = tempdir(name);
    let image = dir.join("job.mig");
    let subject = compile("tty_job");
    let shell = |script: String| Launch::new(&compile("reaper"), &dir).bare().arg("/bin/bash").arg("-c").arg(&script).start_on_pty();
    let (how, job_control) = if leader { ("setsid -c ", "") } else { ("", "set -m; ") };
    let (mut p, mut typed) =
        shell(format!("{job_control}LD_PRELOAD={} MIG_IMAGE={} {how}{} 80; echo \"exit $?\"", lib().display(), image.display(), subject.display()));
    p.until("step 5 ");
    std::io::Write::write_all(&mut typed, b"one\n").unwrap();
    p.until("got one");
    let bash = wait_until("the shell", Duration::from_secs(5), || children_of(p.pid()).first().copied());
    let root = wait_until("the job's root", Duration::from_secs(5), || children_of(bash).first().copied());
    if leader {
        assert_eq!(group_and_session(root).map(|(_, sid)| sid), Some(root), "the root leads its session");
    }
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &root.to_string(), "--exit"]));
    assert!(st.success() && out.contains("2 processes"), "{out}{err}");
    p.until("exit 137");
    let last = p.seen.iter().filter_map(|l| step_of(l)).max().expect("steps before the checkpoint");
    assert!(!p.seen.iter().any(|l| l.contains("FAIL")), "{:?}", p.seen);
    drop(typed);
    let (mut r, mut typed) = shell(format!("{job_control}{} restart {}; echo \"restart exit $?\"", mig().display(), image.display()));
    let first = r.until("step ");
    assert_eq!(step_of(&first), Some(last + 1), "the job goes on where it was: {:?}", r.seen);
    std::io::Write::write_all(&mut typed, b"two\nquit\n").unwrap();
    r.until("got two");
    r.until("done ");
    r.until("restart exit 0");
    assert!(!r.seen.iter().any(|l| l.contains("warning") || l.contains("FAIL")), "{:?}", r.seen);
}

/// A job's image restored while the job runs (the original, or a copy restored from
/// it) is refused, naming the process that has the root's pid: never a second tree
/// without its pids beside the first.
#[test]
fn a_running_job_is_not_restored_twice() {
    require_root("a job's processes get their saved pids back only where pids may be chosen (CAP_CHECKPOINT_RESTORE)");
    let dir = tempdir("job_twice");
    let image = dir.join("job.mig");
    let mut p = under_reaper(&compile("pipe_pair"), &["400"], &dir, &image).start();
    p.until("step 5 ");
    let root = root_under(&p);
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &root.to_string()]));
    assert!(st.success(), "{out}{err}");
    let (st, out, err) = output(mig_cmd(&["restart", &image.display().to_string()]).current_dir(&dir));
    assert_eq!(st.code(), Some(125), "{out}{err}");
    assert!(err.contains(&format!("the pid is taken by process {root}")) && err.contains("running already"), "{err}");
    assert!(out.is_empty(), "nothing ran: {out}");
    let at = step_of(&p.line().expect("the job goes on")).unwrap();
    assert!(at > 5);
    for pid in job_of(root) {
        signal(pid, libc::SIGKILL);
    }
    p.finish();
}

/// A single process restored by `mig restart` where pids may be chosen gets its own
/// back (`mig restart` waits for it, passes signals on and ends with its status): its
/// CPU clock through the pid it noted and the recursive mutex its main thread holds
/// still work (before: clock_getcpuclockid failed, the mutex was another's).
#[test]
fn a_single_process_restarted_keeps_its_pid() {
    require_root("a process gets its saved pid back only where pids may be chosen (CAP_CHECKPOINT_RESTORE)");
    let dir = tempdir("own_pid");
    let l = Launch::new(&compile("pid_users"), &dir).arg("60").arg("alone");
    let reference = reference(&l.clone_bare());
    let image = dir.join("alone.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let pid = p.pid();
    checkpoint_at(&mut p, 10, &image);
    let before = p.kill();
    let mut r = Launch::new(&mig(), &dir).bare().arg("restart").arg(image.to_str().unwrap()).start();
    let first = r.line().expect("the restored process prints");
    assert!(alive(pid), "the restored process has its saved pid {pid}");
    // A checkpoint asked of `mig restart`'s pid reaches the process it waits for.
    let again = dir.join("again.mig");
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &r.pid().to_string(), "--to", again.to_str().unwrap()]));
    assert!(st.success() && out.contains(&format!("process {pid} ")), "{out}{err}");
    let (restored, st, err) = r.finish();
    assert!(st.success(), "{st:?} {err}");
    assert_eq!(restored.first(), Some(&first));
    assert_continues(&reference, &before, &restored);
}
