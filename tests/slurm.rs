//! Batch systems (issue 19), on a real Slurm cluster started by each test: slurmctld on
//! this machine and two compute nodes, each slurmd in a network namespace of its own
//! with its own address (`c-tests/slurm_cluster.sh`), sharing the file system. The job
//! is the one a user writes:
//!
//! ```text
//! #SBATCH --open-mode=append --requeue ...
//! srun mig run --resume job.mig --output job.out --checkpoint-on USR1,TERM --then requeue -- slurm_work.sh ...
//! ```
//!
//! (`srun`: Slurm signals a job's steps, not its batch shell, when it preempts it.)
//!
//! a bash script running a C program that computes over 256 MiB with a child process
//! (`c-tests/slurm_work.sh`, `c-tests/pipe_pair.c`). Each scenario ends with the job's
//! output file holding exactly what an uninterrupted run prints.
//!
//! Slurm makes a requeued job wait two minutes before it may start again; the tests
//! move its start to 15 s later (`scontrol update StartTime=now+15`), as an
//! administrator may (sooner, on the same node, its launch can meet the credential of
//! its last run still revoked).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The cluster, stopped (every daemon and job) when dropped.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        require_root("the tests start Slurm's daemons and network namespaces");
        let dir = tempdir(name);
        let script = repo().join("c-tests/slurm_cluster.sh");
        let (st, out, err) = output(Command::new(&script).arg("start").arg(dir.join("cluster")).env("REAPER", compile("reaper")));
        assert!(st.success(), "the Slurm cluster did not start (./scripts/setup.sh installs Slurm and munge): {out}{err}");
        Cluster { dir }
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("cluster/slurm.conf")
    }

    /// Runs a Slurm command; its output (it must succeed).
    fn run(&self, prog: &str, args: &[&str]) -> String {
        let (st, out, err) = output(Command::new(prog).args(args).env("SLURM_CONF", self.conf()));
        assert!(st.success(), "{prog} {args:?}: {out}{err}");
        out
    }

    /// Submits `script` (with mig's library named for `mig run`); the job's id.
    fn sbatch(&self, script: &Path, extra: &[&str]) -> String {
        let mut c = Command::new("sbatch");
        c.arg("--parsable").args(extra).arg(script).env("SLURM_CONF", self.conf()).env("MIG_LIB", lib());
        for k in ["LD_PRELOAD", "MIG_IMAGE", "MIG_RESTORE", "MIG_LOG"] {
            c.env_remove(k);
        }
        let (st, out, err) = output(&mut c);
        assert!(st.success(), "sbatch: {out}{err}");
        out.trim().split(';').next().unwrap().to_string()
    }

    /// (state, node, reason) of job `id` while it is queued; `None` once it is not.
    fn job(&self, id: &str) -> Option<(String, String, String)> {
        let out = self.run("squeue", &["-h", "-j", id, "-o", "%T %N %r"]);
        let mut f = out.split_whitespace().map(str::to_string);
        let state = f.next()?;
        let rest: Vec<String> = f.collect();
        let (node, reason) = match rest.len() {
            0 => (String::new(), String::new()),
            1 => (String::new(), rest[0].clone()),
            _ => (rest[0].clone(), rest[1].clone()),
        };
        Some((state, node, reason))
    }

    fn wait_running(&self, id: &str) -> String {
        wait_until(&format!("job {id} to run"), Duration::from_secs(60), || self.job(id).filter(|(s, n, _)| s == "RUNNING" && !n.is_empty()).map(|j| j.1))
    }

    /// Waits until job `id` is requeued (pending), then lets it start now.
    fn wait_requeued_and_release(&self, id: &str) {
        wait_until(&format!("job {id} to be requeued"), Duration::from_secs(90), || self.job(id).filter(|(s, _, _)| s == "PENDING").map(|_| ()));
        self.release(id);
    }

    /// Lets requeued job `id` start 15 s from now instead of two minutes.
    fn release(&self, id: &str) {
        self.run("scontrol", &["update", &format!("jobid={id}"), "StartTime=now+15"]);
    }

    fn wait_gone(&self, id: &str, limit: Duration) {
        wait_until(&format!("job {id} to end"), limit, || self.job(id).is_none().then_some(()));
    }

    /// Waits until job `id` ends, letting it start again at once each time it is
    /// requeued.
    fn run_to_end(&self, id: &str, limit: Duration) {
        wait_until(&format!("job {id} to end"), limit, || match self.job(id) {
            None => Some(()),
            Some((state, _, reason)) => {
                if state == "PENDING" && reason == "BeginTime" && !self.released(id) {
                    self.release(id);
                }
                None
            }
        });
    }

    /// Whether job `id` may start within 20 s (released already).
    fn released(&self, id: &str) -> bool {
        let out = self.run("scontrol", &["show", "job", id]);
        let Some(t) = out.split_whitespace().find_map(|w| w.strip_prefix("EligibleTime=")) else { return false };
        let eligible = Command::new("date").args(["-d", t, "+%s"]).output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        eligible.is_some_and(|e| e <= now + 20)
    }

    /// `ExitCode=` of job `id` (kept a while after it ended).
    fn exit_code(&self, id: &str) -> String {
        let out = self.run("scontrol", &["show", "job", id]);
        out.split_whitespace().find_map(|w| w.strip_prefix("ExitCode=")).unwrap_or("?").to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("c-tests/slurm_cluster.sh")).arg("stop").arg(self.dir.join("cluster")).status();
    }
}

/// SIGKILL to every process of job `id` of cluster `c` (those with its SLURM_JOB_ID and
/// the cluster's SLURM_CONF: other tests' clusters number their jobs alike), none
/// spared: what a dead node does to it (`scancel -s KILL` would first send SIGTERM).
fn kill_job(c: &Cluster, id: &str) {
    let marks = [format!("SLURM_JOB_ID={id}\0"), format!("SLURM_CONF={}\0", c.conf().display())];
    let has = |e: &[u8], m: &str| e.windows(m.len()).any(|w| w == m.as_bytes());
    let pids: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &i32| std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| marks.iter().all(|m| has(&e, m))))
        .collect();
    assert!(!pids.is_empty(), "job {id} has processes");
    for pid in pids {
        // SAFETY: kill(2) of a process of the test's job.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// A job directory: the job script, its output and messages, its image.
struct Job {
    dir: PathBuf,
    script: PathBuf,
    steps: u32,
}

const MIB: &str = "256";
const PACE_MS: &str = "50";

impl Job {
    /// A job script with `sbatch_extra` on its #SBATCH line and `mig_args` for `mig run`;
    /// the work takes `steps` steps of 50 ms.
    fn new(cluster: &Cluster, name: &str, sbatch_extra: &str, mig_args: &str, steps: u32) -> Job {
        let dir = cluster.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("job.sh");
        let d = dir.display();
        let text = format!(
            "#!/bin/bash\n#SBATCH -o {d}/slurm.out -e {d}/job.err --open-mode=append --requeue -D {d} {sbatch_extra}\n\
             echo \"start node=$SLURMD_NODENAME restart=${{SLURM_RESTART_COUNT:-0}}\" >&2\n\
             srun {mig} run --resume {d}/job.mig --output {d}/job.out {mig_args} -- {work} {bin} {steps} {MIB} {PACE_MS}\n",
            mig = mig().display(),
            work = repo().join("c-tests/slurm_work.sh").display(),
            bin = compile("pipe_pair").display(),
        );
        std::fs::write(&script, text).unwrap();
        Job { dir, script, steps }
    }

    fn out(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("job.out")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn err(&self) -> String {
        std::fs::read_to_string(self.dir.join("job.err")).unwrap_or_default()
    }

    fn image(&self) -> PathBuf {
        self.dir.join("job.mig")
    }

    fn until_step(&self, n: u32) {
        wait_until(&format!("step {n} of the job"), Duration::from_secs(60), || self.out().iter().any(|l| step_of(l) == Some(n)).then_some(()));
    }

    fn until_said(&self, what: &str, limit: Duration) {
        wait_until(&format!("the job's log to say {what:?}"), limit, || self.err().contains(what).then_some(()));
    }

    /// Submits the job and, once it has an image and printed step `n`, kills all of it.
    fn run_and_kill(&self, c: &Cluster, n: u32) {
        let id = c.sbatch(&self.script, &[]);
        c.wait_running(&id);
        wait_for_file(&self.image());
        self.until_step(n);
        kill_job(c, &id);
        c.wait_gone(&id, Duration::from_secs(60));
    }

    /// Its output is what an uninterrupted run prints, once.
    fn assert_whole(&self) {
        let steps = self.steps.to_string();
        let out = Command::new(repo().join("c-tests/slurm_work.sh")).args([compile("pipe_pair").to_str().unwrap(), &steps, MIB, PACE_MS]).output().unwrap();
        let reference: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        assert_eq!(reference.last().map(String::as_str), Some("finished 0"));
        let out = self.out();
        if out != reference {
            let at = out.iter().zip(&reference).position(|(a, b)| a != b).unwrap_or(out.len().min(reference.len()));
            let around = |v: &[String]| v[at.saturating_sub(2)..(at + 3).min(v.len())].join(" | ");
            panic!(
                "the job's output differs from an uninterrupted run's at line {at} ({} lines, {} expected): {:?} instead of {:?}; its log:\n{}",
                out.len(),
                reference.len(),
                around(&out),
                around(&reference),
                self.err()
            );
        }
    }
}

/// 1. The job reaches its time limit: Slurm's warning signal (`--signal=USR1@40` on a
///    1-minute limit: Slurm sends it 15-30 s into each run) makes mig save it and
///    requeue it, as often as it takes; it resumes each time and finishes (its work
///    takes 50 s).
#[test]
fn a_job_at_its_time_limit_is_saved_requeued_and_finishes() {
    let c = Cluster::start("slurm_timelimit");
    let job = Job::new(&c, "job", "--time=1 --signal=USR1@40", "--checkpoint-on USR1,TERM --then requeue", 1000);
    let id = c.sbatch(&job.script, &[]);
    job.until_said("on SIGUSR1 written to", Duration::from_secs(60));
    c.run_to_end(&id, Duration::from_secs(240));
    job.assert_whole();
    let err = job.err();
    assert!(err.contains("restart=1") && err.contains(&format!("job {id} requeued")), "{err}");
}

/// 2. Preemption by a job of a higher-priority partition (PreemptMode=REQUEUE,
///    GraceTime): SIGTERM to the job's step, mig saves the job; Slurm requeues it, and
///    it resumes once its node is free again.
#[test]
fn a_preempted_job_is_saved_and_resumes_when_its_node_is_free() {
    let c = Cluster::start("slurm_preempt");
    let job = Job::new(&c, "job", "-w n1", "--checkpoint-on USR1,TERM --then requeue", 400);
    let id = c.sbatch(&job.script, &[]);
    c.wait_running(&id);
    job.until_step(40);
    let high = c.run("sbatch", &["--parsable", "-p", "high", "-w", "n1", "-o", "/dev/null", "--wrap", "sleep 3"]);
    job.until_said("on SIGTERM written to", Duration::from_secs(60));
    c.wait_requeued_and_release(&id);
    c.wait_gone(high.trim(), Duration::from_secs(60));
    c.run_to_end(&id, Duration::from_secs(120));
    job.assert_whole();
    assert!(job.err().contains("restart=1"), "{}", job.err());
}

/// 3. The node is drained and the job requeued: it is saved on SIGTERM, and resumes on
///    the other node.
#[test]
fn a_job_requeued_off_a_drained_node_resumes_on_the_other() {
    let c = Cluster::start("slurm_drain");
    let job = Job::new(&c, "job", "", "--checkpoint-on USR1,TERM --then requeue", 400);
    let id = c.sbatch(&job.script, &[]);
    let first = c.wait_running(&id);
    job.until_step(40);
    c.run("scontrol", &["update", &format!("nodename={first}"), "state=drain", "reason=mig-test"]);
    c.run("scontrol", &["requeue", &id]);
    job.until_said("on SIGTERM written to", Duration::from_secs(60));
    c.wait_requeued_and_release(&id);
    let second = c.wait_running(&id);
    assert_ne!(second, first, "the job resumes on the other node");
    c.wait_gone(&id, Duration::from_secs(120));
    job.assert_whole();
    assert!(job.err().contains(&format!("start node={second} restart=1")), "{}", job.err());
}

/// 4. Killed (SIGKILL to every process of it, as when its node dies) between two
///    periodic checkpoints: the job submitted again resumes from the last image, its
///    output cut back to where that was taken.
#[test]
fn a_job_killed_between_periodic_checkpoints_resumes_from_the_last() {
    let c = Cluster::start("slurm_kill");
    let job = Job::new(&c, "job", "", "--checkpoint-on USR1,TERM --interval 1.5", 400);
    job.run_and_kill(&c, 100);
    let id2 = c.sbatch(&job.script, &[]);
    c.wait_gone(&id2, Duration::from_secs(120));
    job.assert_whole();
    assert!(job.err().contains("the job's output is cut back"), "{}", job.err());
}

/// 5. A job whose image was damaged does not resume silently: it fails (status 125),
///    saying why, and runs nothing.
#[test]
fn a_job_whose_image_is_damaged_does_not_resume() {
    let c = Cluster::start("slurm_damaged");
    let job = Job::new(&c, "job", "", "--checkpoint-on USR1,TERM --interval 1", 400);
    job.run_and_kill(&c, 60);
    let mut bytes = std::fs::read(job.image()).unwrap();
    // A byte of the first process's header, which its CRC covers.
    bytes[4096 + 64] ^= 0x5a;
    std::fs::write(job.image(), &bytes).unwrap();
    let before = job.out();
    let id2 = c.sbatch(&job.script, &[]);
    c.wait_gone(&id2, Duration::from_secs(60));
    assert_eq!(c.exit_code(&id2), "125:0");
    assert!(job.err().contains("cannot resume from"), "{}", job.err());
    assert_eq!(job.out(), before, "nothing ran");
}
