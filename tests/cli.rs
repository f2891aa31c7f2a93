//! Issue 4: the `mig` command, run as a user would run it: `mig run`, `checkpoint`,
//! `restart`, `inspect` and `migrate` (over a real sshd on loopback).

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

fn mig_out(args: &[&str]) -> (ExitStatus, String, String) {
    mig_out_env(args, &[])
}

fn mig_out_env(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let Output { status, stdout, stderr } = mig_cmd(args).envs(env.iter().copied()).output().expect("run mig");
    (status, String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

/// `mig run [opts] -- <bin> <args>` as a subject (mig itself is not preloaded: it
/// preloads the program).
fn mig_run(bin: &Path, dir: &Path, opts: &[&str], args: &[&str]) -> Proc {
    let mut l = Launch::new(&mig(), dir).bare().arg("run");
    for o in opts {
        l = l.arg(o);
    }
    l = l.arg("--").arg(bin.to_str().unwrap());
    for a in args {
        l = l.arg(a);
    }
    l.start()
}

fn chain_reference(dir: &Path, steps: &str) -> Vec<String> {
    reference(&Launch::new(&compile("chain"), dir).arg(steps).bare())
}

/// One line of stderr, and it says `want`.
fn assert_one_line(err: &str, want: &str) {
    assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.contains(want), "expected {want:?} in {err:?}");
}

#[test]
fn run_checkpoint_restart_round_trip() {
    let dir = tempdir("cli_round_trip");
    let bin = compile("chain");
    let reference = chain_reference(&dir, "40");
    let image = dir.join("round.mig");
    let mut p = mig_run(&bin, &dir, &["--image", "round.mig"], &["40"]);
    p.until("step 5 ");
    // mig execs the program: the pid is the program's.
    let exe = std::fs::read_link(format!("/proc/{}/exe", p.pid())).unwrap();
    assert_eq!(exe, bin);
    let (st, out, err) = mig_out(&["checkpoint", &p.pid().to_string()]);
    assert!(st.success(), "checkpoint failed: {err}");
    assert!(out.contains(&format!("written to {}", image.display())), "says where: {out}");
    assert!(out.contains("KiB") && out.contains("stopped for"), "size and stop time: {out}");
    let len = std::fs::metadata(&image).expect("the image is there").len();
    assert!(len > 4096);
    p.line().expect("the process keeps running after a checkpoint");
    let before = p.kill();
    let restored = Launch::new(&mig(), &dir).bare().arg("restart").arg(image.to_str().unwrap());
    let (lines, st, err) = restored.start().finish();
    assert!(st.success(), "restarted run failed: {st:?} {err}");
    assert_continues(&reference, &before, &lines);
}

#[test]
fn checkpoint_exit_ends_the_process_and_restart_resumes_it() {
    let dir = tempdir("cli_exit");
    let bin = compile("chain");
    let reference = chain_reference(&dir, "30");
    let image = dir.join("exit.mig");
    let mut p = mig_run(&bin, &dir, &[], &["30"]);
    p.until("step 4 ");
    let (st, out, err) = mig_out(&["checkpoint", &p.pid().to_string(), "--exit", "--to", image.to_str().unwrap()]);
    assert!(st.success(), "{err}");
    assert!(out.contains("the process has exited"), "{out}");
    let (before, st, _) = p.finish();
    assert!(st.success(), "the process exits with status 0 after --exit: {st:?}");
    assert!(!before.last().unwrap().starts_with("done"), "it stopped early: {before:?}");
    let (lines, st, err) = Launch::new(&mig(), &dir).bare().arg("restart").arg(image.to_str().unwrap()).start().finish();
    assert!(st.success(), "{err}");
    assert_continues(&reference, &before, &lines);
}

#[test]
fn checkpoint_stream_piped_into_restart_stdin() {
    let dir = tempdir("cli_stream");
    let bin = compile("chain");
    let reference = chain_reference(&dir, "30");
    let mut p = mig_run(&bin, &dir, &[], &["30"]);
    p.until("step 6 ");
    let mut ck = mig_cmd(&["checkpoint", &p.pid().to_string(), "--exit", "--to", "-"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let restart = mig_cmd(&["restart", "-"]).current_dir("/").stdin(ck.stdout.take().unwrap()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let ck_out = ck.wait_with_output().unwrap();
    let ck_err = String::from_utf8_lossy(&ck_out.stderr);
    assert!(ck_out.status.success(), "checkpoint --to - failed: {ck_err}");
    assert!(ck_err.contains("streamed to standard output"), "{ck_err}");
    let (before, st, _) = p.finish();
    assert!(st.success());
    let out = restart.wait_with_output().unwrap();
    assert!(out.status.success(), "restart - failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    assert_continues(&reference, &before, &lines);
    // No image file anywhere: not in the working directory, not in the control dir.
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "mig")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// An image of `chain` stopped at step 3 (the process is killed).
fn chain_image(dir: &Path, name: &str) -> PathBuf {
    let image = dir.join(name);
    let mut p = mig_run(&compile("chain"), dir, &["--image", image.to_str().unwrap()], &["40"]);
    p.until("step 3 ");
    let (st, _, err) = mig_out(&["checkpoint", &p.pid().to_string()]);
    assert!(st.success(), "{err}");
    p.kill();
    image
}

#[test]
fn inspect_a_good_image() {
    let dir = tempdir("cli_inspect");
    let image = chain_image(&dir, "good.mig");
    let (st, out, err) = mig_out(&["inspect", image.to_str().unwrap()]);
    assert!(st.success(), "{err}");
    assert_eq!(err, "");
    let bin = compile("chain");
    for want in [
        &format!("executable:  {}", bin.display()),
        &format!("format:      version {}", mig_image::VERSION),
        "threads:     1",
        "created:     20",
        " UTC",
        "heap",
        "stack",
        "vdso",
        "rw-p",
        "r-xp",
        "integrity:   ok",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let (st, json, err) = mig_out(&["inspect", "--json", image.to_str().unwrap()]);
    assert!(st.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}):\n{json}"));
    assert_eq!(v["intact"], true);
    assert_eq!(v["process"]["executable"], bin.to_str().unwrap());
    assert_eq!(v["header"]["version"], mig_image::VERSION);
    assert_eq!(v["header"]["threads"], 1);
    let regions = v["regions"].as_array().unwrap();
    assert!(regions.iter().any(|r| r["kind"] == "heap" && r["crc"] == "ok"));
    assert!(regions.iter().all(|r| r["crc"] == "ok" || r["crc"] == "-"));
    assert!(regions.iter().all(|r| r["end"].as_u64().unwrap() > r["start"].as_u64().unwrap()));
    assert!(v["descriptors"].is_array());
    assert_eq!(v["damage"].as_array().unwrap().len(), 0);
}

#[test]
fn inspect_names_the_damage() {
    let dir = tempdir("cli_inspect_bad");
    let image = chain_image(&dir, "good.mig");
    let good = std::fs::read(&image).unwrap();
    // The heap region's saved data.
    let (_, json, _) = mig_out(&["inspect", "--json", image.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let regions = v["regions"].as_array().unwrap();
    let heap = regions.iter().position(|r| r["kind"] == "heap").expect("a heap region");
    let blob = regions[heap]["blob"].as_u64().unwrap();
    let data_off = heap_data_offset(&good, heap);

    let n = good.len();
    let (region_name, blob_name) = (format!("region {heap} ("), format!("CRC mismatch in blob {blob}"));
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        ("heap", flip(&good, data_off + 100), vec![&region_name, "heap", &blob_name]),
        ("header", flip(&good, 100), vec!["header", "header is corrupted"]),
        ("tables", flip(&good, 4096 + 300), vec!["tables", "tables are corrupted"]),
        ("trailer", flip(&good, n - 2), vec!["trailer", "corrupted"]),
        ("truncated", good[..n / 2].to_vec(), vec!["truncated"]),
        ("empty", vec![], vec!["header", "empty"]),
    ];
    for (name, bytes, wants) in cases {
        let p = dir.join(format!("{name}.mig"));
        std::fs::write(&p, &bytes).unwrap();
        let (st, out, err) = mig_out(&["inspect", p.to_str().unwrap()]);
        assert_eq!(st.code(), Some(2), "{name}: damaged image must fail: {out}{err}");
        assert_one_line(&err, "is damaged");
        for w in wants {
            assert!(err.contains(w), "{name}: {w:?} not in {err:?}");
        }
        assert!(out.contains("integrity:   DAMAGED"), "{name}: {out}");
        let (st, json, _) = mig_out(&["inspect", "--json", p.to_str().unwrap()]);
        assert_eq!(st.code(), Some(2));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: not JSON ({e}):\n{json}"));
        assert_eq!(v["intact"], false);
        assert!(!v["damage"].as_array().unwrap().is_empty());
    }
    // A damaged blob still shows everything else.
    let p = dir.join("heap.mig");
    let (_, out, _) = mig_out(&["inspect", p.to_str().unwrap()]);
    assert!(out.contains("BAD") && out.contains(" ok "), "per-region CRC status:\n{out}");
}

fn flip(b: &[u8], at: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v[at] ^= 0x5a;
    v
}

/// File offset of region `i`'s saved data, read from the image with the format crate.
fn heap_data_offset(bytes: &[u8], i: usize) -> usize {
    let img = mig_image::Image::verify(bytes, &crc32fast::Hasher::new()).unwrap();
    img.region(i).data_off as usize
}

#[test]
fn checkpoint_refuses_a_process_without_the_library() {
    let mut sleep = Command::new("sleep").arg("5").spawn().unwrap();
    let t0 = Instant::now();
    let (st, _, err) = mig_out(&["checkpoint", &sleep.id().to_string()]);
    assert_eq!(st.code(), Some(1));
    assert_one_line(&err, "not running under mig");
    assert!(t0.elapsed() < Duration::from_secs(3), "answers at once, no hang");
    assert!(sleep.try_wait().unwrap().is_none(), "and the process was not signalled");
    sleep.kill().unwrap();
    sleep.wait().unwrap();

    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let (st, _, err) = mig_out(&["checkpoint", &gone.id().to_string()]);
    assert_eq!(st.code(), Some(1));
    assert_one_line(&err, &format!("no process with pid {}", gone.id()));
}

#[test]
fn checkpoint_timeout_and_death_are_reported_and_leave_no_request() {
    let dir = tempdir("cli_timeout");
    let bin = compile("chain");
    let req = |pid: i32| PathBuf::from(format!("/tmp/mig-{}/{pid}.req", uid()));
    // A signal the library does not answer (SIGURG is ignored by default): no answer.
    let mut p = mig_run(&bin, &dir, &[], &["60"]);
    p.until("step 2 ");
    let pid = p.pid().to_string();
    let t0 = Instant::now();
    let (st, _, err) = mig_out_env(&["checkpoint", &pid, "--timeout", "0.5"], &[("MIG_SIGNAL", "SIGURG")]);
    assert_eq!(st.code(), Some(1));
    assert_one_line(&err, "timed out");
    assert!(err.contains("did not take the checkpoint request"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(!req(p.pid()).exists(), "the stale request is removed");
    // A signal that kills it: said at once.
    let (st, _, err) = mig_out_env(&["checkpoint", &pid], &[("MIG_SIGNAL", "TERM")]);
    assert_eq!(st.code(), Some(1));
    assert_one_line(&err, &format!("process {pid} ended before it took the checkpoint request"));
    assert!(!req(p.pid()).exists());
    p.finish();
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

#[test]
fn run_refuses_static_and_setuid_programs() {
    let dir = tempdir("cli_static");
    let bin = compile("chain");
    let suid = dir.join("chain-suid");
    std::fs::copy(&bin, &suid).unwrap();
    std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let (st, out, err) = mig_out(&["run", "--", suid.to_str().unwrap(), "3"]);
    assert_eq!(st.code(), Some(1));
    assert_eq!(out, "", "the program must not run");
    assert_one_line(&err, "is setuid");

    let (st, _, err) = mig_out(&["run", "--", "/nonexistent/prog"]);
    assert_eq!(st.code(), Some(1));
    assert_one_line(&err, "no such file");

    let libc_a = Command::new("cc").arg("-print-file-name=libc.a").output().unwrap();
    let libc_a = PathBuf::from(String::from_utf8_lossy(&libc_a.stdout).trim());
    assert!(libc_a.is_absolute() && libc_a.exists(), "no static libc (libc.a of libc6-dev) to link a static program with: run ./scripts/setup.sh");
    let stat = dir.join("chain-static");
    let ok = Command::new("cc").args(["-O1", "-static", "-o"]).arg(&stat).arg(repo().join("c-tests/chain.c")).status().unwrap();
    assert!(ok.success(), "cc -static");
    let (st, out, err) = mig_out(&["run", "--", stat.to_str().unwrap(), "3"]);
    assert_eq!(st.code(), Some(1));
    assert_eq!(out, "");
    assert_one_line(&err, "statically linked");
    // A script whose interpreter is static is refused too.
    let script = dir.join("script");
    std::fs::write(&script, format!("#!{} 3\n", stat.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (st, _, err) = mig_out(&["run", "--", script.to_str().unwrap()]);
    assert_eq!(st.code(), Some(1));
    assert_one_line(&err, "statically linked");
}

#[test]
fn run_sets_the_environment_and_keeps_the_exit_status() {
    let dir = tempdir("cli_run_env");
    let (st, out, err) =
        mig_out(&["run", "--image", "rel.mig", "--interval", "2.5", "--", "sh", "-c", "echo \"$MIG_IMAGE|$MIG_INTERVAL|$LD_PRELOAD\"; exit 7"]);
    assert_eq!(st.code(), Some(7), "the program's own status: {err}");
    let cwd = std::env::current_dir().unwrap();
    let lib = std::fs::canonicalize(mig().parent().unwrap().join("libmig.so")).unwrap();
    assert_eq!(out.trim_end(), format!("{}|2.5|{}", cwd.join("rel.mig").display(), lib.display()));
    let (st, _, err) = mig_out(&["run", "--interval", "0", "--", "true"]);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("'0' is not a positive number of seconds") && err.contains("--interval"), "{err}");
    drop(dir);
}

#[test]
fn restart_refuses_missing_and_damaged_images() {
    let dir = tempdir("cli_restart_bad");
    let (st, out, err) = mig_out(&["restart", dir.join("missing.mig").to_str().unwrap()]);
    assert_eq!(st.code(), Some(125));
    assert_eq!(out, "");
    assert_one_line(&err, "No such file");

    let image = chain_image(&dir, "good.mig");
    let good = std::fs::read(&image).unwrap();
    let n = good.len();
    for (name, bytes, want) in [
        ("flip-data", flip(&good, n - 4096 * 3), "corrupted"),
        ("truncated", good[..n - 1].to_vec(), "truncated"),
        ("garbage", vec![7u8; 10000], "not a mig image"),
        ("empty", vec![], "empty"),
    ] {
        let p = dir.join(format!("{name}.mig"));
        std::fs::write(&p, &bytes).unwrap();
        // Damaged pages that a lazy restore maps are caught behind the running process
        // (tests/lazy.rs); an eager restore refuses them before anything is replaced.
        let eager: &[(&str, &str)] = if name == "flip-data" { &[("MIG_RESTORE_EAGER", "1")] } else { &[] };
        let (st, out, err) = mig_out_env(&["restart", p.to_str().unwrap()], eager);
        assert_eq!(st.code(), Some(125), "{name}: {err}");
        assert_eq!(out, "", "{name}: nothing may start");
        assert_one_line(&err, want);
        assert!(err.contains(&p.display().to_string()), "names the image: {err}");
        // The same from standard input.
        let mut c = mig_cmd(&["restart", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut input = c.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut input, &bytes);
        });
        let o = c.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(125), "{name} from stdin");
        assert!(o.stdout.is_empty());
        assert_one_line(&String::from_utf8_lossy(&o.stderr), "standard input");
    }
}

/// Issue 13 item 10: whatever stops `mig restart` before the program runs exits 125 (a
/// missing image, a directory, an unreadable file, an image whose working directory or
/// executable is gone), never 1 or 2, which a program returns itself: the restored
/// program's own status passes through, 1 and 2 included.
#[test]
fn restart_refusals_exit_125_and_the_programs_own_status_passes_through() {
    // An unreadable file needs a user that is not root.
    let sb = Sandbox::new("cli_statuses", 1);
    let user = sb.uids[0];
    let dir = sb.root.join("d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bin = dir.join("exit_status");
    std::fs::copy(compile("exit_status"), &bin).unwrap();
    let lib = sb.bin.join("libmig.so");
    let refused = |uid: Option<u32>, image: &Path, want: &str| {
        let (st, out, err) = {
            let o = sb.mig_as(uid, &["restart", image.to_str().unwrap()]).output().unwrap();
            (o.status, String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
        };
        assert_eq!(st.code(), Some(125), "mig restart {}: {out}{err}", image.display());
        assert_eq!(out, "", "nothing may run");
        assert_one_line(&err, want);
        assert!(err.contains(&image.display().to_string()), "names the image: {err}");
    };
    // An image of `exit_status 20 <status>` at step 3, made in `cwd`, the process killed.
    let image_of = |status: u32, cwd: &Path, exe: &Path, name: &str| -> (PathBuf, Launch) {
        let l = Launch::new(exe, cwd).bare().clone_with("LD_PRELOAD", &lib).arg("20").arg(&status.to_string());
        let image = dir.join(name);
        let mut p = l.clone_with("MIG_IMAGE", &image).start();
        checkpoint_at(&mut p, 3, &image);
        p.kill();
        (image, l)
    };

    refused(None, &dir.join("missing.mig"), "No such file");
    refused(None, &dir, "Is a directory");
    let (good, _) = image_of(0, &dir, &bin, "good.mig");
    let unreadable = dir.join("unreadable.mig");
    std::fs::copy(&good, &unreadable).unwrap();
    std::os::unix::fs::chown(&unreadable, Some(user), Some(user)).unwrap();
    std::fs::set_permissions(&unreadable, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    refused(Some(user), &unreadable, "Permission denied");
    // Its working directory gone.
    let gone = dir.join("gone");
    std::fs::create_dir(&gone).unwrap();
    let (no_cwd, l) = image_of(0, &gone, &bin, "no-cwd.mig");
    std::fs::remove_dir(&gone).unwrap();
    refused(None, &no_cwd, "working directory");
    let mut from_dir = l.clone_with("MIG_RESTORE", &no_cwd);
    from_dir.cwd = dir.clone();
    let (out, st, err) = from_dir.start().finish();
    assert_eq!(st.code(), Some(125), "MIG_RESTORE of an image whose working directory is gone: {out:?} {err}");
    // Its executable gone.
    let exe = dir.join("exit_status-copy");
    std::fs::copy(&bin, &exe).unwrap();
    let (no_exe, _) = image_of(0, &dir, &exe, "no-exe.mig");
    std::fs::remove_file(&exe).unwrap();
    refused(None, &no_exe, "executable");

    // The program's own status, whatever it is.
    for status in [1, 2, 3, 124] {
        let (image, l) = image_of(status, &dir, &bin, &format!("status-{status}.mig"));
        let o = sb.mig_as(None, &["restart", image.to_str().unwrap()]).output().unwrap();
        assert_eq!(o.status.code(), Some(status as i32), "mig restart: the program's own status: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).lines().last().is_some_and(|l| l.starts_with("done")), "the program ran to its end");
        let (out, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
        assert_eq!(st.code(), Some(status as i32), "MIG_RESTORE: the program's own status: {err}");
        assert!(out.last().is_some_and(|l| l.starts_with("done")), "{out:?}");
    }
}

#[test]
fn usage_errors_say_what_is_wrong() {
    // clap's message whole: what is missing, by name, and how the command is used.
    let (st, _, err) = mig_out(&["checkpoint"]);
    assert_eq!(st.code(), Some(2));
    for want in ["required arguments were not provided", "<PID>", "Usage: mig checkpoint", "--help"] {
        assert!(err.contains(want), "{want:?} not in {err:?}");
    }
    let (st, _, err) = mig_out(&["frobnicate"]);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("unrecognized subcommand 'frobnicate'") && err.contains("Usage:"), "{err}");
    let (st, out, _) = mig_out(&["--help"]);
    assert!(st.success());
    for want in ["ENVIRONMENT", "EXIT STATUS", "MIG_LIB", "/tmp/mig-<uid>/", "checkpoint", "migrate"] {
        assert!(out.contains(want), "--help lacks {want:?}");
    }
}

// ---- Migration over a real sshd on 127.0.0.1 ----

/// A throwaway sshd on a free port, with its own host and user keys.
struct Sshd {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
    /// The address it listens on (127.0.0.1 unless started with `start_sshd_on`).
    host: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// The ssh command that reaches it.
    fn ssh(&self) -> String {
        format!("ssh -F {}", self.dir.join("ssh_config").display())
    }
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn run_ok(c: &mut Command) {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(o.status.success(), "{c:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn start_sshd(name: &str) -> Sshd {
    start_sshd_on(name, "127.0.0.1", &[])
}

/// The same sshd listening on `listen` only, started through `prefix` (e.g.
/// `ip netns exec NS`: the command must exec sshd, so that the child is sshd itself).
/// Fails (never skips) where it cannot: no sshd (tests install nothing: run
/// ./scripts/setup.sh), not root.
fn start_sshd_on(name: &str, listen: &str, prefix: &[&str]) -> Sshd {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(sshd.exists(), "/usr/sbin/sshd is missing: install openssh-server (./scripts/setup.sh does)");
    assert!(is_root(), "the loopback sshd of these tests needs root");
    std::fs::create_dir_all("/run/sshd").unwrap();
    let dir = tempdir(name);
    for key in ["host_key", "user_key"] {
        run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(dir.join(key)));
    }
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = dir.display();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress {listen}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n\
             LogLevel ERROR\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("ssh_config"),
        format!(
            "Host *\n  Port {port}\n  User root\n  IdentityFile {d}/user_key\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  BatchMode yes\n  LogLevel ERROR\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
    let mut c = match prefix {
        [] => Command::new(sshd),
        [p, rest @ ..] => {
            let mut c = Command::new(p);
            c.args(rest).arg(sshd);
            c
        }
    };
    let child = c.arg("-D").arg("-e").arg("-f").arg(dir.join("sshd_config")).stderr(log).spawn().unwrap();
    let s = Sshd { child, dir, port, host: listen.to_string() };
    let t0 = Instant::now();
    while std::net::TcpStream::connect((s.host.as_str(), s.port)).is_err() {
        assert!(t0.elapsed() < TIMEOUT, "sshd did not start: {}", std::fs::read_to_string(s.dir.join("sshd.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = Command::new("sh").arg("-c").arg(format!("{} {} echo hello", s.ssh(), s.host)).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "hello",
        "ssh to the test sshd: {} / {}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(s.dir.join("sshd.log")).unwrap_or_default()
    );
    s
}

/// `mig migrate` to 127.0.0.1 with its stdout (the migrated process's output) and stderr.
fn migrate(pid: i32, ssh: &str, extra: &[&str]) -> (ExitStatus, Vec<String>, String) {
    migrate_to(pid, "127.0.0.1", ssh, extra)
}

/// `mig migrate PID HOST --ssh SSH EXTRA…`.
fn migrate_to(pid: i32, host: &str, ssh: &str, extra: &[&str]) -> (ExitStatus, Vec<String>, String) {
    let mut args = vec!["migrate".to_string(), pid.to_string(), host.into(), "--ssh".into(), ssh.into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The image travels as it is, whatever the environment says (the veth test counts
    // its bytes on the wire).
    let mut c = mig_cmd(&args).env_remove("MIG_COMPRESS").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = String::new();
    let mut e = c.stderr.take().unwrap();
    let errt = std::thread::spawn(move || {
        let _ = e.read_to_string(&mut err);
        err
    });
    let lines: Vec<String> = BufReader::new(c.stdout.take().unwrap()).lines().map(|l| l.unwrap()).collect();
    let st = c.wait().unwrap();
    (st, lines, errt.join().unwrap())
}

#[test]
fn migrate_to_loopback_goes_on_with_the_same_digests() {
    let sshd = start_sshd("cli_sshd_ok");
    let dir = tempdir("cli_migrate");
    let bin = compile("chain");
    let reference = chain_reference(&dir, "40");
    let mut p = mig_run(&bin, &dir, &[], &["40"]);
    p.until("step 8 ");
    let pid = p.pid();
    let (st, moved, err) = migrate(pid, &sshd.ssh(), &["--remote-mig", mig().to_str().unwrap()]);
    assert!(st.success(), "migrate failed: {st:?}\n{err}");
    assert!(err.contains("moved to 127.0.0.1") && err.contains("downtime"), "reports the downtime: {err}");
    let (before, st, _) = p.finish();
    assert!(st.success(), "the source process ends with status 0");
    assert_continues(&reference, &before, &moved);
    // The local copy of the image is gone once the process runs on the other side.
    let kept: Vec<PathBuf> = std::fs::read_dir(format!("/tmp/mig-{}", uid()))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().contains(&format!(".{pid}."))).collect())
        .unwrap_or_default();
    assert!(kept.is_empty(), "left behind: {kept:?}");
}

/// Ctrl-C after the move (SIGINT to mig and ssh, as a terminal sends it) ends the
/// command, not the moved process: it goes on there, its output now in the file the
/// command names. Before, the process died with the connection and no image was kept.
#[test]
fn migrate_interrupted_after_the_move_leaves_the_process_running_there() {
    let sshd = start_sshd("cli_sshd_int");
    let dir = tempdir("cli_migrate_int");
    let bin = compile("chain");
    let reference = chain_reference(&dir, "60");
    let mut p = mig_run(&bin, &dir, &[], &["60"]);
    p.until("step 4 ");
    let pid = p.pid();
    let args = ["migrate".to_string(), pid.to_string(), "127.0.0.1".into(), "--ssh".into(), sshd.ssh(), "--remote-mig".into(), mig().display().to_string()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Its own process group, as a terminal's foreground job.
    let mut c = mig_cmd(&args).env_remove("MIG_COMPRESS").process_group(0).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut moved = BufReader::new(c.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(c.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("moved to 127.0.0.1") {
        assert!(err.read_line(&mut said).unwrap() > 0, "no move: {said}");
    }
    let (before, _, _) = p.finish();
    // A step or two arrive over ssh, then the interrupt.
    let first = moved.next().expect("output over ssh").unwrap();
    // SAFETY: kill(2) of the process group made above.
    assert_eq!(unsafe { libc::kill(-(c.id() as i32), libc::SIGINT) }, 0);
    let st = c.wait().unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert_eq!(st.code(), Some(130), "interrupted: {said}{rest}");
    assert!(rest.contains("goes on on 127.0.0.1 without this command"), "{rest}");
    let log = rest.split("its output from now on goes to ").nth(1).and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("names the file: {rest}"));
    // The moved process runs to its end; what it printed after the interrupt is there.
    let t0 = Instant::now();
    let done = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| l.starts_with("done ")) {
            break text;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the moved process did not finish: {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut restored: Vec<String> = vec![first];
    restored.extend(moved.map_while(|l| l.ok()));
    restored.extend(done.lines().map(str::to_string));
    assert_continues(&reference, &before, &restored);
    let _ = std::fs::remove_file(log);
}

#[test]
fn migrate_failures_before_the_checkpoint_leave_the_process_running() {
    let sshd = start_sshd("cli_sshd_fail");
    let dir = tempdir("cli_migrate_fail");
    let bin = compile("chain");
    let reference = chain_reference(&dir, "40");
    let mut p = mig_run(&bin, &dir, &[], &["40"]);
    p.until("step 3 ");
    // Connection refused: port 1 on loopback.
    let (st, out, err) = migrate(p.pid(), &format!("{} -p 1", sshd.ssh()), &["--remote-mig", mig().to_str().unwrap()]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("Connection refused"), "passes on ssh's reason: {err}");
    assert_one_line(&err, &format!("process {} was not touched and keeps running here", p.pid()));
    // No mig on the other side.
    let (st, _, err) = migrate(p.pid(), &sshd.ssh(), &["--remote-mig", "/nonexistent/mig"]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("remote mig was not found"), "{err}");
    assert_one_line(&err, "keeps running here");
    // The process went on undisturbed.
    let (lines, st, _) = p.finish();
    assert!(st.success());
    assert_eq!(lines, reference);
}

#[test]
fn migrate_failure_after_the_checkpoint_keeps_the_image_and_says_how_to_resume() {
    let sshd = start_sshd("cli_sshd_late");
    let dir = tempdir("cli_migrate_late");
    let bin = compile("chain");
    let reference = chain_reference(&dir, "40");
    // A remote mig that answers but cannot find the library: it fails only after it
    // has received the image.
    let broken = dir.join("broken-mig");
    std::fs::write(&broken, format!("#!/bin/sh\nMIG_LIB=/nonexistent/libmig.so exec {} \"$@\"\n", mig().display())).unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut p = mig_run(&bin, &dir, &[], &["40"]);
    p.until("step 5 ");
    let pid = p.pid();
    let (st, out, err) = migrate(pid, &sshd.ssh(), &["--remote-mig", broken.to_str().unwrap()]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(out.is_empty());
    let (before, st, _) = p.finish();
    assert!(st.success(), "the process was checkpointed with --exit");
    assert_one_line(&err, "MIG_LIB");
    let last = err.trim_end();
    let cmd = last.split("resume it here with: ").nth(1).unwrap_or_else(|| panic!("says how to resume: {err}"));
    let image = cmd.strip_prefix("mig restart ").expect("a mig restart command").trim();
    assert!(Path::new(image).exists(), "the image is kept at {image}");
    assert!(image.starts_with("/tmp/mig-") && image.contains(&pid.to_string()));
    // Following the advice resumes the process here.
    let (lines, st, err) = Launch::new(&mig(), &dir).bare().arg("restart").arg(image).start().finish();
    assert!(st.success(), "{err}");
    assert_continues(&reference, &before, &lines);
    std::fs::remove_file(image).unwrap();
}

/// A job (`subject ARGS` and its children, under a reaper so that their pids are free
/// once they are gone here) moved to 127.0.0.1 once it printed `step <at>`: it goes on
/// there whole, its pids the same (nothing is said), its output an uninterrupted run's.
/// A subject with a dot is a script of c-tests, else a C program compiled.
fn migrate_job(sshd: &Sshd, name: &str, args: &[&str], at: u32) {
    let subject = if name.contains('.') { repo().join("c-tests").join(name) } else { compile(name) };
    let dir = tempdir(&format!("cli_migrate_{}", name.replace('.', "_")));
    let mut bare = Launch::new(&subject, &dir).bare();
    let mut under = Launch::new(&compile("reaper"), &dir).bare().arg(subject.to_str().unwrap());
    for a in args {
        bare = bare.arg(a);
        under = under.arg(a);
    }
    let reference = reference(&bare);
    let mut p = under.env("REAPER_PRELOAD", lib()).env("MIG_IMAGE", dir.join("job.mig")).start();
    p.until(&format!("step {at} "));
    let root = wait_until("the job's root", Duration::from_secs(5), || children_of(p.pid()).first().copied());
    let (st, moved, err) = migrate(root, &sshd.ssh(), &["--remote-mig", mig().to_str().unwrap()]);
    assert!(st.success(), "{name}: migrate failed: {st:?}\n{err}");
    assert!(err.contains(&format!("the job of process {root} (")) && err.contains("moved to 127.0.0.1"), "{name}: says it moved the job: {err}");
    assert!(!err.contains("warning"), "{name}: the pids came back there, nothing was lost: {err}");
    let (before, _, _) = p.finish();
    assert_continues(&reference, &before, &moved);
}

/// A parent and child over two pipes, bytes in flight: moved together, the child
/// still the parent's (reaped by pid, with its status), the pipes with what they held.
#[test]
fn migrate_moves_a_parent_and_child_over_pipes_together() {
    require_root("a job's processes get their pids back only where pids may be chosen");
    migrate_job(&start_sshd("cli_sshd_pipe_pair"), "pipe_pair", &["60"], 10);
}

/// A three-stage shell pipeline with a running sum: every stage moves.
#[test]
fn migrate_moves_a_shell_pipeline_whole() {
    require_root("a job's processes get their pids back only where pids may be chosen");
    migrate_job(&start_sshd("cli_sshd_pipeline"), "pipeline.sh", &["80"], 20);
}

/// The other jobs of the process-tree tests, each moved: children ended and not reaped,
/// pids and tids a job noted, memory two processes share, Python's multiprocessing
/// pool, `make -j2`, a bash script mid-substitution, descriptors in flight between a
/// parent and its child.
#[test]
fn migrate_moves_jobs_of_every_kind() {
    require_root("a job's processes get their pids back only where pids may be chosen");
    let sshd = start_sshd("cli_sshd_jobs");
    for (name, args, at) in [
        ("unreaped", &["40"][..], 10),
        ("pid_users", &["60"], 10),
        ("shared_counter", &["60"], 10),
        ("pool.py", &["80"], 10),
        ("make_job.sh", &["40"], 8),
        ("job_script.sh", &["60"], 10),
        ("fd_passing", &["100", "fork"], 5),
    ] {
        migrate_job(&sshd, name, args, at);
    }
}

// ---- Migration across a real network link: a veth pair into another network namespace ----

/// `ip`, wherever it is.
fn ip_cmd() -> Option<&'static str> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].into_iter().find(|p| Path::new(p).exists())
}

/// A network namespace joined to this one by a veth pair: `host_addr` on `host_if`
/// here, `ns_addr` on the peer inside `ns` (a /30 of 10.213.0.0/16). Dropping it
/// deletes the veth pair and the namespace, whatever happened in between.
struct NetLink {
    ip: &'static str,
    ns: String,
    host_if: String,
    host_addr: String,
    ns_addr: String,
}

impl NetLink {
    /// Fails (never skips) where this cannot be done, saying why: not root, no `ip`
    /// (./scripts/setup.sh installs it), no network namespaces or no veth in this kernel
    /// or container.
    fn new() -> NetLink {
        assert!(is_root(), "a network namespace needs root");
        let ip = ip_cmd().expect("no ip command: install iproute2 (./scripts/setup.sh does)");
        let pid = std::process::id();
        // Interface names: at most 15 bytes.
        let (ns, host_if, ns_if) = (format!("mig-test-{pid}"), format!("migh{pid}"), format!("mign{pid}"));
        // Leftovers of an earlier run that had this pid and was killed.
        let _ = Command::new(ip).args(["link", "del", &host_if]).output();
        let _ = Command::new(ip).args(["netns", "del", &ns]).output();
        let o = Command::new(ip).args(["netns", "add", &ns]).output().unwrap();
        assert!(o.status.success(), "`ip netns add` failed: {}", String::from_utf8_lossy(&o.stderr).trim());
        // A /30 nobody here uses yet (several test runs may be at it at once).
        let used = String::from_utf8_lossy(&Command::new(ip).args(["-o", "-4", "addr", "show"]).output().unwrap().stdout).into_owned();
        let n = (0..254u32).map(|i| (pid + i) % 254 + 1).find(|n| !used.contains(&format!(" 10.213.{n}."))).expect("a free 10.213.n.0/30");
        let net = NetLink { ip, ns, host_if, host_addr: format!("10.213.{n}.1"), ns_addr: format!("10.213.{n}.2") };
        let o = Command::new(ip).args(["link", "add", &net.host_if, "type", "veth", "peer", "name", &ns_if]).output().unwrap();
        assert!(o.status.success(), "no veth pair: {}", String::from_utf8_lossy(&o.stderr).trim());
        let (host_cidr, ns_cidr) = (format!("{}/30", net.host_addr), format!("{}/30", net.ns_addr));
        run_ok(Command::new(ip).args(["link", "set", &ns_if, "netns", &net.ns]));
        run_ok(Command::new(ip).args(["addr", "add", &host_cidr, "dev", &net.host_if]));
        run_ok(Command::new(ip).args(["link", "set", &net.host_if, "up"]));
        run_ok(Command::new(ip).args(["-n", &net.ns, "addr", "add", &ns_cidr, "dev", &ns_if]));
        run_ok(Command::new(ip).args(["-n", &net.ns, "link", "set", &ns_if, "up"]));
        run_ok(Command::new(ip).args(["-n", &net.ns, "link", "set", "lo", "up"]));
        net
    }

    /// `ip netns exec NS`: a command prefix that runs a program inside the namespace.
    fn exec(&self) -> [&str; 4] {
        [self.ip, "netns", "exec", &self.ns]
    }

    /// Bytes sent into the namespace and received from it over the veth so far.
    fn tx_rx(&self) -> (u64, u64) {
        let read = |what: &str| -> u64 {
            let p = format!("/sys/class/net/{}/statistics/{what}", self.host_if);
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")).trim().parse().unwrap()
        };
        (read("tx_bytes"), read("rx_bytes"))
    }
}

impl Drop for NetLink {
    fn drop(&mut self) {
        let _ = Command::new(self.ip).args(["link", "del", &self.host_if]).output();
        let _ = Command::new(self.ip).args(["netns", "del", &self.ns]).output();
    }
}

/// The smallest byte count `mig migrate`'s `… image 1.2 MiB` could stand for.
fn reported_image_bytes(err: &str) -> u64 {
    let line = err.lines().find(|l| l.contains("moved to")).unwrap_or_else(|| panic!("no report in {err:?}"));
    let mut size = line.rsplit(", image ").next().unwrap().split([' ', ',']);
    let (v, unit) = (size.next().unwrap(), size.next().unwrap_or(""));
    let v: f64 = v.parse().unwrap_or_else(|_| panic!("image size in {line:?}"));
    let (scale, rounding) = match unit {
        "B" => (1.0, 0.0),
        "KiB" => (1024.0, 0.05),
        "MiB" => (1024.0 * 1024.0, 0.05),
        "GiB" => (1024.0 * 1024.0 * 1024.0, 0.05),
        _ => panic!("unit of {line:?}"),
    };
    ((v - rounding) * scale) as u64
}

#[test]
fn migrate_over_a_veth_pair_into_another_network_namespace() {
    // Declared first, dropped last: sshd is gone before its namespace.
    let net = NetLink::new();
    let sshd = start_sshd_on("cli_sshd_netns", &net.ns_addr, &net.exec());
    let dir = tempdir("cli_migrate_netns");
    let bin = compile("chain");
    let reference = chain_reference(&dir, "40");
    let mut p = mig_run(&bin, &dir, &[], &["40"]);
    p.until("step 8 ");
    let pid = p.pid();
    let host = format!("root@{}", net.ns_addr);
    let (tx0, rx0) = net.tx_rx();
    let (st, moved, err) = migrate_to(pid, &host, &sshd.ssh(), &["--remote-mig", mig().to_str().unwrap()]);
    let (tx1, rx1) = net.tx_rx();
    assert!(st.success(), "migrate over {} failed: {st:?}\n{err}", net.host_if);
    assert!(err.contains(&format!("moved to {host}")) && err.contains("downtime"), "reports the downtime: {err}");
    // The image crossed the veth into the namespace; the output came back over it.
    let image = reported_image_bytes(&err);
    assert!(image > 4096, "{err}");
    assert!(tx1 - tx0 >= image, "{} sent {} bytes into {}, the image is {image} bytes: {err}", net.host_if, tx1 - tx0, net.ns);
    assert!(rx1 > rx0, "nothing came back over {}", net.host_if);
    println!("{}\n{}: {} bytes into {}, {} bytes back", err.trim_end(), net.host_if, tx1 - tx0, net.ns, rx1 - rx0);
    let (before, st, _) = p.finish();
    assert!(st.success(), "the source process ends with status 0");
    assert_continues(&reference, &before, &moved);
    let kept: Vec<PathBuf> = std::fs::read_dir(format!("/tmp/mig-{}", uid()))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().contains(&format!(".{pid}."))).collect())
        .unwrap_or_default();
    assert!(kept.is_empty(), "left behind: {kept:?}");
}

// ---- The command as users expect it ----

/// `scripts/install.sh PREFIX` puts mig, the library, completions and man pages where
/// mig finds them; a mig without its library says where it looked.
#[test]
fn install_puts_everything_where_mig_finds_it() {
    let dir = tempdir("cli_install");
    let prefix = dir.join("prefix");
    let o = Command::new(repo().join("scripts/install.sh")).arg(&prefix).output().unwrap();
    assert!(o.status.success(), "install.sh: {}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "bin/mig",
        "lib/mig/libmig.so",
        "share/man/man1/mig.1",
        "share/man/man1/mig-checkpoint.1",
        "share/bash-completion/completions/mig",
        "share/zsh/site-functions/_mig",
        "share/fish/vendor_completions.d/mig.fish",
    ] {
        let p = prefix.join(f);
        assert!(p.metadata().is_ok_and(|m| m.len() > 0), "{} is missing or empty", p.display());
    }
    // The installed mig finds its library in ../lib/mig.
    let o = Command::new(prefix.join("bin/mig")).args(["run", "--", "sh", "-c", "echo $LD_PRELOAD"]).env_remove("MIG_LIB").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), std::fs::canonicalize(prefix.join("lib/mig/libmig.so")).unwrap().display().to_string());
    // Alone, it says where it looked.
    let alone = dir.join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(prefix.join("bin/mig"), alone.join("mig")).unwrap();
    let o = Command::new(alone.join("mig")).args(["run", "--", "true"]).env_remove("MIG_LIB").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("cannot find libmig.so") && err.contains(&alone.join("libmig.so").display().to_string()) && err.contains("lib/mig/libmig.so"),
        "{err}"
    );
}

/// The warnings of a checkpoint reach the person who asked, not only the program's
/// stderr.
#[test]
fn a_checkpoint_s_warnings_reach_the_command() {
    let dir = tempdir("cli_warnings");
    let mut p = mig_run(&compile("guard_pages"), &dir, &["--image", dir.join("g.mig").to_str().unwrap()], &["200"]);
    p.until("step 2 ");
    let (st, out, err) = mig_out(&["checkpoint", &p.pid().to_string()]);
    assert!(st.success(), "{err}");
    assert!(out.contains("written to"), "{out}");
    assert!(err.contains("mig: warning: 4 guard pages") || err.contains("mig: warning: 1 guard pages"), "the warning is the command's too: {err}");
    p.kill();
    // And the image's: `mig inspect` lists them, in text and JSON.
    let image = dir.join("g.mig");
    let (_, text, _) = mig_out(&["inspect", image.to_str().unwrap()]);
    assert!(text.contains("WARNINGS") && text.contains("guard pages (MADV_GUARD_INSTALL)"), "{text}");
    let (_, json, _) = mig_out(&["inspect", "--json", image.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["process"]["warnings"].as_array().is_some_and(|w| w.iter().any(|w| w.as_str().is_some_and(|w| w.contains("guard pages")))), "{json}");
}

/// A checkpoint that takes a while shows bytes of the expected total, rate and time
/// left — on a terminal only.
#[test]
fn progress_shows_on_a_terminal_only() {
    let dir = tempdir("cli_progress");
    // 1.5 GiB: long enough to show progress (after 400 ms) on a fast, idle machine too.
    let mut p = mig_run(&compile("chain"), &dir, &["--image", dir.join("big.mig").to_str().unwrap()], &["1000", "1572864"]);
    p.until("step 2 ");
    let pid = p.pid().to_string();
    // On a terminal (stderr a pty): the bar.
    let (master, slave) = openpty();
    let st = mig_cmd(&["checkpoint", &pid, "--to", dir.join("a.mig").to_str().unwrap()]).stdout(Stdio::null()).stderr(Stdio::from(slave)).status().unwrap();
    assert!(st.success());
    let mut shown = vec![0u8; 1 << 16];
    let n = nonblocking_read(&master, &mut shown);
    let shown = String::from_utf8_lossy(&shown[..n]);
    assert!(shown.contains("checkpoint of") && shown.contains("MiB/") && shown.contains("left"), "progress with the total and time left: {shown:?}");
    // Not on a pipe.
    let (st, _, err) = mig_out(&["checkpoint", &pid, "--to", dir.join("b.mig").to_str().unwrap()]);
    assert!(st.success());
    assert!(!err.contains("left"), "no progress on a pipe: {err:?}");
    p.kill();
    for f in ["a.mig", "b.mig"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

fn nonblocking_read(fd: &std::os::fd::OwnedFd, buf: &mut [u8]) -> usize {
    use std::os::fd::AsRawFd;
    let mut got = 0;
    loop {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd; reading into our buffer.
        let n = unsafe {
            if libc::poll(&mut pfd, 1, 100) <= 0 {
                return got;
            }
            libc::read(fd.as_raw_fd(), buf[got..].as_mut_ptr().cast(), buf.len() - got)
        };
        if n <= 0 || got + n as usize >= buf.len() {
            return got + n.max(0) as usize;
        }
        got += n as usize;
    }
}

/// `mig ps` lists the user's processes under mig, with their image, interval and last
/// checkpoint, in text and JSON.
#[test]
fn ps_lists_the_processes_under_mig() {
    let dir = tempdir("cli_ps");
    let image = dir.join("ps.mig");
    let mut p = mig_run(&compile("chain"), &dir, &["--image", image.to_str().unwrap(), "--interval", "30"], &["400"]);
    p.until("step 2 ");
    let pid = p.pid();
    let (_, out, _) = mig_out(&["ps", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    let me = v.as_array().unwrap().iter().find(|r| r["pid"] == pid).unwrap_or_else(|| panic!("{pid} not listed: {out}"));
    assert_eq!(me["image"], image.display().to_string());
    assert_eq!(me["interval"], "30");
    assert!(me["last"].is_null(), "no checkpoint yet: {me}");
    let (st, _, err) = mig_out(&["checkpoint", &pid.to_string()]);
    assert!(st.success(), "{err}");
    let (_, out, _) = mig_out(&["ps", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let me = v.as_array().unwrap().iter().find(|r| r["pid"] == pid).unwrap().clone();
    assert_eq!(me["last"]["bytes"], std::fs::metadata(&image).unwrap().len());
    assert!(me["last"]["stopped_us"].as_u64().is_some_and(|us| us > 0), "the pause: {me}");
    let (_, text, _) = mig_out(&["ps"]);
    assert!(text.lines().any(|l| l.contains(&pid.to_string()) && l.contains("ps.mig") && l.contains("UTC")), "{text}");
    p.kill();
}

/// A stopped process (Ctrl-Z) is said to be stopped at once, and nothing is left
/// pending: once it goes on, no checkpoint happens that nobody asked for.
#[test]
fn a_stopped_process_is_said_stopped_and_nothing_is_left_pending() {
    let dir = tempdir("cli_stopped");
    let image = dir.join("own.mig");
    let mut p = mig_run(&compile("chain"), &dir, &["--image", image.to_str().unwrap()], &["200"]);
    p.until("step 2 ");
    p.signal(libc::SIGSTOP);
    let t0 = Instant::now();
    while !std::fs::read_to_string(format!("/proc/{}/stat", p.pid())).is_ok_and(|s| s.contains(") T ")) {
        assert!(t0.elapsed() < Duration::from_secs(5), "not stopped");
        std::thread::sleep(Duration::from_millis(2));
    }
    let (st, _, err) = mig_out(&["checkpoint", &p.pid().to_string(), "--to", dir.join("x.mig").to_str().unwrap()]);
    assert_eq!(st.code(), Some(1));
    assert_one_line(&err, "is stopped");
    assert!(err.contains(&format!("kill -CONT {}", p.pid())), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(2), "said at once");
    p.signal(libc::SIGCONT);
    p.until("step 6 ");
    assert!(!image.exists() && !dir.join("x.mig").exists(), "no checkpoint after SIGCONT");
    p.kill();
}

/// Messages that name the real problem: a zombie has exited; a missing image
/// directory is refused at start; a script without the x bit and one without `#!` are
/// told apart; a script's images are named after it.
#[test]
fn messages_name_the_real_problem() {
    let dir = tempdir("cli_messages");
    // A zombie: exited, not reaped.
    let mut z = Command::new("true").spawn().unwrap();
    let t0 = Instant::now();
    while !std::fs::read_to_string(format!("/proc/{}/stat", z.id())).is_ok_and(|s| s.contains(") Z ")) {
        assert!(t0.elapsed() < Duration::from_secs(5), "no zombie");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (st, _, err) = mig_out(&["checkpoint", &z.id().to_string()]);
    assert_eq!(st.code(), Some(1));
    assert_one_line(&err, "has exited");
    z.wait().unwrap();
    // --image in a directory that does not exist: refused before the program starts.
    let (st, out, err) = mig_out(&["run", "--image", "/no/such/dir/x.mig", "--", "echo", "ran"]);
    assert_eq!(st.code(), Some(1));
    assert_eq!(out, "", "the program must not run");
    assert_one_line(&err, "there is no directory /no/such/dir");
    // Scripts.
    let no_x = dir.join("no-x.sh");
    std::fs::write(&no_x, "#!/bin/sh\necho hi\n").unwrap();
    let (_, _, err) = mig_out(&["run", "--", no_x.to_str().unwrap()]);
    assert_one_line(&err, "is not executable");
    let no_shebang = dir.join("no-shebang.sh");
    std::fs::write(&no_shebang, "echo hi\n").unwrap();
    std::fs::set_permissions(&no_shebang, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (_, _, err) = mig_out(&["run", "--", no_shebang.to_str().unwrap()]);
    assert_one_line(&err, "has no #! line");
    let script = dir.join("loop.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"$MIG_IMAGE\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = mig_cmd(&["run", "--", script.to_str().unwrap()]).current_dir(&dir).output().unwrap();
    let named = String::from_utf8_lossy(&o.stdout);
    assert!(named.trim().starts_with(&format!("{}/loop.sh.", dir.display())) && named.trim().ends_with(".mig"), "named after the script: {named}");
}

/// `mig --version` names the image format; completions and man pages come from the
/// command line definition.
#[test]
fn version_completions_and_man_pages() {
    let (st, out, _) = mig_out(&["--version"]);
    assert!(st.success());
    assert!(out.starts_with("mig ") && out.contains(&format!("image format version {}", mig_image::VERSION)), "{out}");
    for (shell, want) in [("bash", "_mig()"), ("zsh", "#compdef mig"), ("fish", "complete -c mig")] {
        let (st, out, err) = mig_out(&["completions", shell]);
        assert!(st.success(), "{shell}: {err}");
        assert!(out.contains(want) && out.contains("checkpoint") && out.contains("restart"), "{shell}: {out}");
    }
    let dir = tempdir("cli_man");
    let (st, _, err) = mig_out(&["man", dir.to_str().unwrap()]);
    assert!(st.success(), "{err}");
    let page = std::fs::read_to_string(dir.join("mig-checkpoint.1")).unwrap();
    assert!(page.contains(".TH") && page.contains("\\-\\-exit"), "{page}");
}

/// With MIG_LOG=debug, the library's lines carry the time (UTC, to the millisecond).
#[test]
fn debug_log_lines_carry_the_time() {
    let dir = tempdir("cli_debug_time");
    let image = dir.join("d.mig");
    let mut p = Launch::new(&compile("chain"), &dir).arg("100").clone_with("MIG_IMAGE", &image).clone_with("MIG_LOG", Path::new("debug")).start();
    let errs = p.stderr_collector();
    checkpoint_at(&mut p, 2, &image);
    p.kill();
    let err = errs.join().unwrap();
    let line = err.lines().find(|l| l.contains("checkpoint written to")).unwrap_or_else(|| panic!("{err}"));
    let time = line.strip_prefix("mig: ").and_then(|r| r.split(' ').next()).unwrap_or("");
    let b = time.as_bytes();
    assert!(
        b.len() == 12 && b[2] == b':' && b[5] == b':' && b[8] == b'.' && time.replace([':', '.'], "").bytes().all(|c| c.is_ascii_digit()),
        "HH:MM:SS.mmm first: {line}"
    );
}

/// A library error is said in words ("No space left on device"), not as a number.
#[test]
fn errors_are_said_in_words() {
    assert!(is_root(), "this test mounts a small tmpfs: it needs root");
    let dir = tempdir("cli_enospc");
    let small = dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    run_ok(Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&small));
    let mut p = mig_run(&compile("chain"), &dir, &[], &["200"]);
    p.until("step 2 ");
    let (st, _, err) = mig_out(&["checkpoint", &p.pid().to_string(), "--to", small.join("x.mig").to_str().unwrap()]);
    let _ = Command::new("umount").arg(&small).status();
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("No space left on device") && !err.contains("errno"), "{err}");
    p.kill();
}

/// `mig inspect --json` of a missing file or a directory prints JSON that says so (and
/// one line on stderr), not Rust's "(os error N)".
#[test]
fn inspect_json_of_what_is_no_image() {
    let dir = tempdir("cli_inspect_none");
    for (p, want) in [(dir.join("missing.mig"), "No such file or directory"), (dir.clone(), "is a directory")] {
        let (st, out, err) = mig_out(&["inspect", "--json", p.to_str().unwrap()]);
        assert_eq!(st.code(), Some(1));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
        assert_eq!(v["image"], p.display().to_string());
        assert!(v["error"].as_str().is_some_and(|e| e.contains(want)), "{v}");
        assert_one_line(&err, want);
        assert!(!err.contains("os error"), "{err}");
    }
}
