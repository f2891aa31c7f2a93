//! Process trees (issue 16): a job — a process and its descendants — is saved whole
//! into one image, whichever of its processes is asked, and restored whole.

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

/// A forked and an exec'd child: `mig checkpoint` of the child, `kill -USR1` to the
/// child and to the parent each save the whole job (both processes) into the job's
/// image; `kill -USR2` to the child is refused, naming the parent (a job is not rolled
/// back yet); both run on as without mig.
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

/// A parent and a forked child over two pipes, bytes in flight both ways: `mig
/// checkpoint` of the parent saves both into one image (`mig inspect` lists them as a
/// tree); both are killed; `mig restart` brings both back with their pids (the parent
/// reaps its child by pid, with its real status) and the pipes with what they held:
/// the run goes on exactly as one never interrupted.
#[test]
fn a_parent_and_child_over_pipes_come_back_together() {
    require_root("a job's processes get their saved pids back only where pids may be chosen (CAP_CHECKPOINT_RESTORE)");
    let dir = tempdir("pipe_pair");
    let subject = compile("pipe_pair");
    let reference = reference(&Launch::new(&subject, &dir).arg("60").bare());
    let image = dir.join("job.mig");
    let mut p = under_reaper(&subject, &["60"], &dir, &image).start();
    p.until("step 10 ");
    let root = root_under(&p);
    let child = *children_of(root).first().expect("the parent has its child");
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &root.to_string()]));
    assert!(st.success(), "mig checkpoint of the job: {out}{err}");
    assert!(out.contains("2 processes"), "says it saved the job: {out}");
    assert!(!err.contains("warning"), "nothing was lost: {err}");
    assert_eq!(job_pids(&image), [(root as u64, p.pid() as u64), (child as u64, root as u64)]);
    p.line().expect("the job keeps running after a checkpoint");
    // SAFETY: kill(2) on the test's own subject; the child follows by PR_SET_PDEATHSIG.
    unsafe { libc::kill(root, libc::SIGKILL) };
    let (before, _, _) = p.finish();
    assert!(!alive(child) && !alive(root), "the old job is gone");
    let (st, out, err) = output(mig_cmd(&["restart", &image.display().to_string()]).current_dir(&dir));
    let restored: Vec<String> = out.lines().map(str::to_string).collect();
    assert!(st.success(), "restored job failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert!(!err.contains("warning"), "the pids came back: {err}");
    assert_continues(&reference, &before, &restored);
}
