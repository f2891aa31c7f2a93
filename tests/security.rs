//! Issue 13: no other user can steer, read or replace a checkpoint; no failure leaves
//! debris, a dead end or a wrong process.
//!
//! The attacks run as users made up for the test (uids nobody has, see `Sandbox`):
//! these tests need root, and fail without it. `c-tests/attacker.c` is what the other
//! user does.

mod common;
use common::*;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `tempdir(name)`, removed at the end of the test, failed or not (some hold images of
/// 256 MiB).
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl AsRef<Path> for Dir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for Dir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn scratch(name: &str) -> Dir {
    Dir(tempdir(name))
}

fn spawn_piped(c: &mut Command) -> Child {
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{c:?}: {e}"))
}

/// Waits for a spawned command (at most `TIMEOUT`): status, stdout, stderr.
fn finish_child(mut c: Child) -> (ExitStatus, String, String) {
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > TIMEOUT {
            let _ = c.kill();
            panic!("command did not end within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (mut out, mut err) = (String::new(), String::new());
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (st, out, err)
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) of a process this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

/// `pid` stopped (`SIGSTOP` seen to have taken effect).
fn stop(pid: i32) {
    signal(pid, libc::SIGSTOP);
    wait_until(&format!("process {pid} did not stop"), TIMEOUT, || proc_state(pid).filter(|(s, _)| *s == 'T' || *s == 't'));
}

/// (owner, mode bits) of `p` itself (not what a link points to).
fn owner_mode(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.mode() & 0o7777)
}

/// The entries of `dir` owned by `uid`.
fn owned_by(dir: &Path, uid: u32) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid)).map(|e| e.path()).collect();
    v.sort();
    v
}

fn write_private(p: &Path, text: &str, uid: u32, mode: u32) {
    std::fs::write(p, text).unwrap();
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `lines` are those of `reference` (an uninterrupted run): else where they part, and
/// `what` went wrong.
fn assert_same_run(lines: &[String], reference: &[String], what: &str) {
    if let Some(i) = (0..lines.len().max(reference.len())).find(|&i| lines.get(i) != reference.get(i)) {
        panic!(
            "{what}: line {} is {:?}, an uninterrupted run's is {:?} (after {:?})",
            i + 1,
            lines.get(i),
            reference.get(i),
            i.checked_sub(1).map(|j| &reference[j])
        );
    }
}

/// One line on stderr naming `image`, containing every one of `wants`.
fn assert_refusal(what: &str, err: &str, image: &Path, wants: &[&str]) {
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: one line on stderr: {err:?}");
    assert!(err.contains(&image.display().to_string()), "{what}: names the image: {err}");
    for w in wants {
        assert!(err.contains(w), "{what}: expected {w:?} in {err:?}");
    }
}

// ---- Another user against the control channel ----

/// Whether `sig` is in process `pid`'s signal mask (`SigBlk` of its status).
fn blocks(pid: i32, sig: i32) -> bool {
    signal_in(pid, "SigBlk", sig)
}

/// The victim (`mig run --interval 1`) runs a step subject while the attacker plants
/// requests, a FIFO and links in `/tmp/mig-<victim>/` (made by the attacker first),
/// signals the victim, and answers on every `mig/<pid>/…` socket it sees; the victim's
/// own `mig checkpoint`s run meanwhile (the victim blocks the checkpoint signal and
/// waits, as `blocks_signal` does while its hold file exists, until the attacker has
/// connected to each one's socket and written a forged `status=ok`).
#[test]
fn another_user_can_neither_steer_nor_read_nor_answer_a_checkpoint() {
    let sb = Sandbox::new("attack", 2);
    let (victim, attacker) = (sb.uids[0], sb.uids[1]);
    let vhome = sb.home(victim, 0o700);
    let ahome = sb.home(attacker, 0o755);
    let subject = sb.subject("blocks_signal");
    let evil = sb.subject("attacker");
    let hold = vhome.join("hold");
    // 140 steps, SIGUSR1 blocked only while `hold` exists (and no step taken then: however
    // slow the attacker is, the victim has not ended meanwhile).
    let args = ["140", "0", "0", hold.to_str().unwrap()];
    let reference = reference(&Launch::new(&subject, &vhome).arg(args[0]).bare());
    let precious = vhome.join("precious.txt");
    write_private(&precious, "precious\n", victim, 0o600);
    let fifo = ahome.join("fifo");
    let image = vhome.join("v.mig");
    let ctl = PathBuf::from(format!("/tmp/mig-{victim}"));

    // Before the victim starts: the attacker takes /tmp/mig-<victim>.
    let (st, out, err) = output(run_as(Command::new(&evil).arg("mkdir").arg(victim.to_string()), attacker));
    assert!(st.success(), "the attacker could not make {}: {out}{err}", ctl.display());
    assert_eq!(owner_mode(&ctl), (attacker, 0o777), "{} is the attacker's, mode 0777", ctl.display());

    let mut v = Launch::new(&sb.mig(), &vhome)
        .bare()
        .run_as(victim)
        .arg("run")
        .arg("--interval")
        .arg("1")
        .arg("--image")
        .arg(image.to_str().unwrap())
        .arg("--")
        .arg(subject.to_str().unwrap())
        .arg(args[0])
        .arg(args[1])
        .arg(args[2])
        .arg(args[3])
        .start();
    let verr = v.stderr_collector();
    v.until("step 2 ");
    let pid = v.pid();
    let mut own = vec![];
    for round in [1, 2] {
        let mut a = Launch::new(&evil, &ahome)
            .bare()
            .run_as(attacker)
            .arg("attack")
            .arg(&pid.to_string())
            .arg(&victim.to_string())
            .arg(fifo.to_str().unwrap())
            .arg(precious.to_str().unwrap())
            .arg(&round.to_string())
            .arg("20000")
            .start();
        let image_id = || std::fs::metadata(&image).ok().map(|m| m.ino());
        let before_round = image_id();
        let req = ctl.join(format!("{pid}.req"));
        wait_until(&format!("round {round}: the attacker planted no {}", req.display()), Duration::from_secs(5), || {
            std::fs::symlink_metadata(&req).ok().filter(|m| if round == 1 { m.is_file() } else { m.file_type().is_fifo() })
        });
        // At least one of the victim's own interval checkpoints with the attacker's
        // request in place.
        wait_until(&format!("round {round}: the victim made no checkpoint of its own"), Duration::from_secs(5), || {
            assert!(alive(pid), "round {round}: the victim ended early (did it obey the planted request?); its output: {:?}", v.seen);
            (image_id() != before_round && image_id().is_some()).then_some(())
        });
        // The victim's own checkpoints: round 1 to other files, round 2 to one and to its
        // own image.
        let targets: Vec<Option<PathBuf>> =
            if round == 1 { vec![Some(vhome.join("own1.mig")), Some(vhome.join("own2.mig"))] } else { vec![Some(vhome.join("own3.mig")), None] };
        for to in targets {
            assert!(alive(pid), "round {round}: the victim ended early; its output: {:?}", v.seen);
            let mut args = vec!["checkpoint".to_string(), pid.to_string(), "--timeout".into(), "10".into()];
            if let Some(t) = &to {
                args.extend(["--to".to_string(), t.display().to_string()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // Held: the victim takes no checkpoint signal until the attacker has found
            // mig's socket and answered on it.
            std::fs::write(&hold, "").unwrap();
            wait_until(&format!("round {round}: the victim never blocked its checkpoint signal"), TIMEOUT, || blocks(pid, libc::SIGUSR1).then_some(()));
            // The checkpoint signal carries the request (not the library's request
            // signal, which the victim does not block): held as the test needs.
            let mut ck = spawn_piped(sb.mig_as(Some(victim), &args).current_dir(&vhome).env("MIG_SIGNAL", "USR1"));
            let t0 = Instant::now();
            loop {
                if let Some(l) = a.line_within(Duration::from_millis(20))
                    && l.starts_with(&format!("forged @mig/{pid}/"))
                {
                    break;
                }
                if let Some(st) = ck.try_wait().unwrap() {
                    let (_, o, e) = finish_child(ck);
                    panic!("round {round}: the victim's mig checkpoint ended ({st:?}) before the attacker found a socket of it: {o}{e}");
                }
                // (The attacker gives up after 20 s; a loaded machine may be slow.)
                assert!(t0.elapsed() < Duration::from_secs(15), "round {round}: the attacker found no socket of mig checkpoint; it says {:?}", a.seen);
            }
            std::fs::remove_file(&hold).unwrap();
            let (st, out, err) = finish_child(ck);
            let want = to.clone().unwrap_or(image.clone());
            assert!(st.success(), "round {round}: the victim's mig checkpoint failed: {out}{err}");
            assert!(
                out.contains(&format!("written to {}", want.display())),
                "round {round}: mig checkpoint must report the true image path {}: {out}",
                want.display()
            );
            assert!(!out.contains("forged") && !err.contains("forged"), "round {round}: mig took the attacker's answer: {out}{err}");
            own.push(want);
        }
        a.signal(libc::SIGTERM);
        let (lines, st, err) = a.finish();
        assert!(st.success(), "round {round}: the attacker failed: {lines:?} {err}");
        assert!(lines.iter().all(|l| !l.starts_with("delivered")), "round {round}: the kernel let the attacker signal the victim: {lines:?}");
        assert!(lines.iter().all(|l| !l.starts_with("request")), "round {round}: the attacker's connection was sent a request: {lines:?}");
        assert!(
            lines.iter().any(|l| l.starts_with("eperm ") && l != "eperm 0"),
            "round {round}: the attacker's signals were not refused with EPERM: {lines:?}"
        );
        assert!(lines.contains(&"other 0".to_string()), "round {round}: signals failed for another reason than EPERM: {lines:?}");
        assert!(lines.contains(&"fifo 0".to_string()), "round {round}: the victim wrote into the attacker's FIFO: {lines:?}");
    }
    let (lines, st, _) = v.finish();
    let verr = verr.join().unwrap();
    assert!(st.success(), "the victim failed: {st:?}, stderr: {verr}");
    assert_same_run(&lines, &reference, &format!("the victim was steered, stopped or ended early (stderr: {verr:?})"));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "precious\n", "the victim's file behind the attacker's link was written");
    assert_eq!(owner_mode(&precious), (victim, 0o600), "the victim's file behind the attacker's link changed hands");
    assert!(owned_by(&ctl, victim).is_empty(), "the victim left files in the attacker's {}: {:?}", ctl.display(), owned_by(&ctl, victim));
    own.push(image.clone());
    for img in &own {
        assert_eq!(owner_mode(img), (victim, 0o600), "{} is the victim's, mode 0600", img.display());
        let v = inspect_intact(img);
        assert_eq!(v["header"]["pid"], pid, "{} is an image of the victim", img.display());
    }
}

/// A queued checkpoint signal (from root, whom the library believes) whose socket is
/// another user's: the process connects, sees the listener's user, and takes no
/// checkpoint at all: it neither writes where that listener asks nor exits.
#[test]
fn a_request_from_a_listener_of_another_user_is_no_checkpoint() {
    let sb = Sandbox::new("listener", 2);
    let (victim, attacker) = (sb.uids[0], sb.uids[1]);
    let vhome = sb.home(victim, 0o700);
    let ahome = sb.home(attacker, 0o755);
    let shared = sb.shared();
    let chain = sb.subject("chain");
    let evil = sb.subject("attacker");
    let reference = reference(&Launch::new(&chain, &vhome).arg("40").bare());
    let image = vhome.join("v.mig");
    let stolen = shared.join("stolen.mig");
    let mut p = sb.launch(&chain, &vhome, victim).arg("40").clone_with("MIG_IMAGE", &image).start();
    let perr = p.stderr_collector();
    p.until("step 2 ");
    let pid = p.pid();
    let nonce: u64 = 0x5eed_0123_4567_89ab;
    let mut a = Launch::new(&evil, &ahome)
        .bare()
        .run_as(attacker)
        .arg("listen")
        .arg(&pid.to_string())
        .arg(&format!("{nonce:016x}"))
        .arg(stolen.to_str().unwrap())
        .arg("3000")
        .start();
    a.until("listening");
    let value = libc::sigval { sival_ptr: nonce as usize as *mut libc::c_void };
    // SAFETY: sigqueue(3) of a process this test started.
    assert_eq!(unsafe { libc::sigqueue(pid, libc::SIGUSR1, value) }, 0);
    let connected = a.until("connected ");
    assert_eq!(connected, format!("connected {pid} {victim}"), "the process connected to the socket its signal named");
    let (lines, st, _) = p.finish();
    let perr = perr.join().unwrap();
    assert!(st.success(), "{perr}");
    assert_same_run(&lines, &reference, &format!("the process obeyed another user's listener (stderr: {perr:?})"));
    assert!(!stolen.exists(), "the process wrote its image where another user's listener asked");
    assert!(!image.exists(), "a request from another user's listener made a checkpoint");
    let (said, _, _) = a.finish();
    assert!(said.iter().all(|l| !l.starts_with("sent-us")), "the process sent another user's listener something: {said:?}");
}

// ---- Temporary image files in a shared sticky directory ----

/// The attacker plants, in a sticky directory both use, links to a file of the
/// victim's and files of mode 0666 under the names `<image>.tmp.<pid>` (the victim's
/// pid and the next 63: the names mig's first versions wrote to); the victim's
/// checkpoints (forked, and stopped with `--exit`) never write through them, and leave
/// them alone.
#[test]
fn planted_temporary_files_in_a_sticky_directory_are_never_written_through() {
    let sb = Sandbox::new("plant", 2);
    let (victim, attacker) = (sb.uids[0], sb.uids[1]);
    let vhome = sb.home(victim, 0o700);
    let shared = sb.shared();
    let chain = sb.subject("chain");
    let evil = sb.subject("attacker");
    let precious = vhome.join("precious.txt");
    write_private(&precious, "precious\n", victim, 0o600);
    let image = shared.join("v.mig");
    let mut p = sb.launch(&chain, &vhome, victim).arg("100000").clone_with("MIG_IMAGE", &image).start();
    let perr = p.stderr_collector();
    p.until("step 2 ");
    let pid = p.pid();
    let (st, out, err) =
        output(run_as(Command::new(&evil).args(["plant", image.to_str().unwrap(), &pid.to_string(), "64", precious.to_str().unwrap()]), attacker));
    assert!(st.success(), "the attacker could not plant: {out}{err}");
    let planted = files_starting(&shared, "v.mig.tmp.");
    assert_eq!(planted.len(), 64, "{planted:?}");
    for exit in [false, false, true] {
        let pids = pid.to_string();
        let mut args = vec!["checkpoint", &pids, "--timeout", "10"];
        if exit {
            args.push("--exit");
        }
        let (st, out, err) = output(&mut sb.mig_as(Some(victim), &args));
        assert!(st.success(), "the victim's checkpoint (exit: {exit}) failed: {out}{err}");
        assert!(out.contains(&format!("written to {}", image.display())), "{out}");
    }
    let (_, st, _) = p.finish();
    let perr = perr.join().unwrap();
    assert!(st.success(), "the victim ends with status 0 after --exit: {st:?} {perr}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "precious\n", "a checkpoint wrote through a planted link into the victim's file");
    for f in &planted {
        let m = std::fs::symlink_metadata(f).unwrap_or_else(|e| panic!("the planted {} is gone: {e}", f.display()));
        assert_eq!(m.uid(), attacker, "{} changed hands", f.display());
        if m.file_type().is_symlink() {
            assert_eq!(std::fs::read_link(f).unwrap(), precious, "{}", f.display());
        } else {
            assert_eq!(std::fs::read_to_string(f).unwrap(), "planted\n", "a checkpoint wrote into the attacker's {}", f.display());
        }
    }
    assert_eq!(owner_mode(&image), (victim, 0o600), "the image is the victim's own file, mode 0600");
    assert!(std::fs::symlink_metadata(&image).unwrap().is_file());
    inspect_intact(&image);
    assert_eq!(owned_by(&shared, victim), vec![image.clone()], "the victim left other files in the shared directory");
}

/// The attacker owns `<image>` itself in a sticky directory (a file, or a link to a file
/// of the victim's): the rename could not replace it, so every checkpoint to it fails
/// before writing anything, says why, and the process goes on (also when `--exit` was
/// asked).
#[test]
fn an_image_path_owned_by_another_user_in_a_sticky_directory_is_refused_before_writing() {
    let sb = Sandbox::new("sticky_owner", 2);
    let (victim, attacker) = (sb.uids[0], sb.uids[1]);
    let vhome = sb.home(victim, 0o700);
    let shared = sb.shared();
    let chain = sb.subject("chain");
    let reference = reference(&Launch::new(&chain, &vhome).arg("40").bare());
    let image = shared.join("w.mig");
    write_private(&image, "the attacker's\n", attacker, 0o644);
    let precious = vhome.join("precious.txt");
    write_private(&precious, "precious\n", victim, 0o600);
    let link = shared.join("l.mig");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(attacker), Some(attacker)).unwrap();
    let mut p = sb.launch(&chain, &vhome, victim).arg("40").clone_with("MIG_IMAGE", &image).start();
    let perr = p.stderr_collector();
    p.until("step 2 ");
    let pid = p.pid().to_string();
    const WHY: &str = "another user's file in a sticky directory";
    for args in [
        vec!["checkpoint", &pid],
        vec!["checkpoint", &pid, "--exit"],
        vec!["checkpoint", &pid, "--to", image.to_str().unwrap()],
        vec!["checkpoint", &pid, "--to", link.to_str().unwrap()],
    ] {
        let (st, out, err) = output(&mut sb.mig_as(Some(victim), &args));
        assert_eq!(st.code(), Some(1), "{args:?} must fail: {out}{err}");
        assert!(err.contains(WHY), "{args:?}: says why: {err}");
        assert!(err.contains("keeps running"), "{args:?}: {err}");
        assert!(owned_by(&shared, victim).is_empty(), "{args:?} left files in the shared directory: {:?}", owned_by(&shared, victim));
    }
    // A plain checkpoint signal: said on the program's stderr.
    p.until("step 6 ");
    p.signal(libc::SIGUSR1);
    let (lines, st, _) = p.finish();
    let perr = perr.join().unwrap();
    assert!(st.success(), "{perr}");
    assert_same_run(&lines, &reference, "the process must go on as if nothing was asked");
    assert!(perr.contains(&format!("checkpoint to {} failed", image.display())) && perr.contains(WHY), "the program's stderr says why: {perr}");
    assert_eq!(std::fs::read_to_string(&image).unwrap(), "the attacker's\n");
    assert_eq!(owner_mode(&image), (attacker, 0o644));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "precious\n", "a checkpoint wrote through the attacker's link");
    assert_eq!(std::fs::read_link(&link).unwrap(), precious);
    assert!(owned_by(&shared, victim).is_empty(), "the victim left files in the shared directory: {:?}", owned_by(&shared, victim));
}

// ---- Images of other users ----

/// An image of `chain 40` at step 3 made by root in `dir` (the process is killed):
/// (image, what the process printed, the uninterrupted run).
fn root_image(chain: &Path, dir: &Path, name: &str) -> (PathBuf, Vec<String>, Vec<String>) {
    let l = Launch::new(chain, dir).arg("40").clone_with("LD_PRELOAD", &chain.parent().unwrap().join("libmig.so")).bare();
    let reference = reference(&Launch::new(chain, dir).arg("40").bare());
    let image = dir.join(name);
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    (image, p.kill(), reference)
}

fn copy_as(from: &Path, to: &Path, uid: u32, mode: u32) -> PathBuf {
    std::fs::copy(from, to).unwrap();
    std::os::unix::fs::chown(to, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
    to.to_path_buf()
}

/// `mig restart IMAGE` run by `uid` (None: root): (status, stdout lines, stderr).
fn restart_as(sb: &Sandbox, uid: Option<u32>, image: &Path, extra: &[&str]) -> (ExitStatus, Vec<String>, String) {
    let mut args = vec!["restart"];
    args.extend(extra);
    args.push(image.to_str().unwrap());
    let (st, out, err) = output(&mut sb.mig_as(uid, &args));
    (st, out.lines().map(String::from).collect(), err)
}

/// An image that is another user's file, or that others can write to, is refused by
/// `mig restart` and `MIG_RESTORE` alike (also for root), with one line naming the image
/// and its owner, unless `--trust-image` / `MIG_TRUST_IMAGE=1`.
#[test]
fn foreign_or_writable_images_are_refused_unless_trusted() {
    let sb = Sandbox::new("foreign", 1);
    let user = sb.uids[0];
    let chain = sb.subject("chain");
    let rdir = sb.root.join("r");
    std::fs::create_dir(&rdir).unwrap();
    let (image, before, reference) = root_image(&chain, &rdir, "root.mig");
    let lib = sb.bin.join("libmig.so");
    let restore = |img: &Path, trust: bool| {
        let mut l = Launch::new(&chain, &rdir).bare().clone_with("LD_PRELOAD", &lib).clone_with("MIG_RESTORE", img);
        if trust {
            l = l.clone_with("MIG_TRUST_IMAGE", Path::new("1"));
        }
        l.start().finish()
    };

    // Root restoring a user's image.
    let users = copy_as(&image, &rdir.join("users.mig"), user, 0o600);
    let (st, out, err) = restart_as(&sb, None, &users, &[]);
    assert_eq!(st.code(), Some(125), "root's mig restart of user {user}'s image: {out:?} {err}");
    assert!(out.is_empty(), "nothing may run: {out:?}");
    assert_refusal("mig restart of another user's image", &err, &users, &[&format!("user {user}")]);
    let (out, st, err) = restore(&users, false);
    assert_eq!(st.code(), Some(125), "MIG_RESTORE of user {user}'s image as root: {out:?} {err}");
    assert!(out.is_empty(), "nothing may run: {out:?}");
    assert_refusal("MIG_RESTORE of another user's image", &err, &users, &[&format!("user {user}")]);
    // Root's own images that others (or the group) can write to.
    for mode in [0o602, 0o620, 0o666] {
        let writable = copy_as(&image, &rdir.join(format!("writable-{mode:o}.mig")), 0, mode);
        let (st, out, err) = restart_as(&sb, None, &writable, &[]);
        assert_eq!(st.code(), Some(125), "mig restart of an image of mode {mode:o}: {out:?} {err}");
        assert_refusal(&format!("mig restart, mode {mode:o}"), &err, &writable, &["write", &format!("mode {mode:o}")]);
        let (out, st, err) = restore(&writable, false);
        assert_eq!(st.code(), Some(125), "MIG_RESTORE of an image of mode {mode:o}: {out:?} {err}");
        assert_refusal(&format!("MIG_RESTORE, mode {mode:o}"), &err, &writable, &["writ", &format!("mode {mode:o}")]);
    }
    // Trusted: they restore.
    let (st, out, err) = restart_as(&sb, None, &users, &["--trust-image"]);
    assert!(st.success(), "mig restart --trust-image: {err}");
    assert_continues(&reference, &before, &out);
    let (out, st, err) = restore(&rdir.join("writable-666.mig"), true);
    assert!(st.success(), "MIG_TRUST_IMAGE=1 MIG_RESTORE: {err}");
    assert_continues(&reference, &before, &out);

    // The user restoring root's image (readable to it).
    let roots = copy_as(&image, &rdir.join("roots.mig"), 0, 0o644);
    let (st, out, err) = restart_as(&sb, Some(user), &roots, &[]);
    assert_eq!(st.code(), Some(125), "user {user}'s mig restart of root's image: {out:?} {err}");
    assert_refusal("mig restart of root's image", &err, &roots, &["user 0"]);
    let (out, st, err) = Launch::new(&chain, &rdir).bare().clone_with("LD_PRELOAD", &lib).clone_with("MIG_RESTORE", &roots).run_as(user).start().finish();
    assert_eq!(st.code(), Some(125), "user {user}'s MIG_RESTORE of root's image: {out:?} {err}");
    assert_refusal("MIG_RESTORE of root's image", &err, &roots, &["user 0"]);
    let (st, out, err) = restart_as(&sb, Some(user), &roots, &["--trust-image"]);
    assert!(st.success(), "user {user}'s mig restart --trust-image: {err}");
    assert_continues(&reference, &before, &out);
}

/// An executable that became setuid or setgid after the checkpoint: the loader would
/// ignore the library and the program start from its beginning; refused (125).
#[test]
fn an_executable_that_became_setuid_or_setgid_is_refused() {
    let dir = scratch("setuid_exe");
    let exe = dir.join("chain-copy");
    std::fs::copy(compile("chain"), &exe).unwrap();
    let image = dir.join("s.mig");
    let mut p = Launch::new(&exe, &dir).arg("40").clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    // The forked writer runs the executable until it exits, just after the image appears.
    let set_mode = |mode: u32| std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mode(0o4755);
    let (st, out, err) = output(&mut mig_cmd(&["restart", image.to_str().unwrap()]));
    assert_eq!(st.code(), Some(125), "mig restart with a setuid executable: {out} {err}");
    assert_eq!(out, "", "the program must not run");
    assert_refusal("mig restart, setuid", &err, &image, &["setuid or setgid"]);
    set_mode(0o2755);
    let (out, st, err) = Launch::new(&exe, &dir).clone_with("MIG_RESTORE", &image).start().finish();
    assert_eq!(st.code(), Some(125), "MIG_RESTORE with a setgid executable: {out:?} {err}");
    assert!(out.is_empty(), "the program must not run: {out:?}");
    assert_refusal("MIG_RESTORE, setgid", &err, &image, &["setuid or setgid"]);
    // Back to what it was: it restores.
    set_mode(0o755);
    let (out, st, err) = Launch::new(&exe, &dir).clone_with("MIG_RESTORE", &image).start().finish();
    assert!(st.success(), "{out:?} {err}");
}

// ---- Rollback ----

/// An image of `chain 60` at step `at` to `image`, from a process killed after it.
fn other_image(dir: &Path, image: &Path, at: u32) {
    let mut b = Launch::new(&compile("chain"), dir).arg("60").clone_with("MIG_IMAGE", image).start();
    checkpoint_at(&mut b, at, image);
    b.kill();
}

/// Writes an image at step `at` to `image` from a `chain 60` run of `l`, replaces it
/// by another process's image (of step 20) with `replace`, sends SIGUSR2 at step 12:
/// the rollback must be refused with a message and the process go on.
fn rollback_after_replacing(l: &Launch, image: &Path, at: u32, replace: impl FnOnce(&Path, &Path)) {
    let reference = reference(&l.clone_bare());
    let mut p = l.clone_with("MIG_IMAGE", image).start();
    checkpoint_at(&mut p, at, image);
    let other = image.with_extension("other");
    other_image(&l.cwd, &other, 20);
    replace(&other, image);
    p.until("step 12 ");
    p.signal(libc::SIGUSR2);
    let (lines, st, err) = p.finish();
    assert!(st.success(), "{err}");
    assert_same_run(&lines, &reference, &format!("the process must go on, not roll back to another process's image (stderr: {err:?})"));
    assert!(err.contains(&format!("rollback to {} refused", image.display())), "says it refused: {err}");
}

/// SIGUSR2 rolls back only to an image this process wrote or was restored from: another
/// process's image of the same program moved to that path is refused with a message,
/// and the process goes on. Also for a restored process and the image it came from.
#[test]
fn rollback_refuses_another_image_moved_to_its_path() {
    let dir = scratch("rollback_moved");
    let l = Launch::new(&compile("chain"), &dir).arg("60");
    rollback_after_replacing(&l, &dir.join("moved.mig"), 5, |other, image| std::fs::rename(other, image).unwrap());
    // Restored from an image, which is then replaced.
    let reference = reference(&l.clone_bare());
    let image = dir.join("restored.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 4, &image);
    let before = p.kill();
    let mut r = l.clone_with("MIG_RESTORE", &image).clone_with("MIG_IMAGE", &dir.join("unused.mig")).start();
    r.until("step 8 ");
    other_image(&dir, &dir.join("other-restored.mig"), 25);
    std::fs::rename(dir.join("other-restored.mig"), &image).unwrap();
    r.signal(libc::SIGUSR2);
    let (restored, st, err) = r.finish();
    assert!(st.success(), "{err}");
    assert_continues(&reference, &before, &restored);
    assert!(err.contains(&format!("rollback to {} refused", image.display())), "says it refused: {err}");
}

/// The same with another process's image copied over this one's (`cp`: the file is
/// rewritten in place, so its device and inode stay those of the image this process
/// wrote).
#[test]
fn rollback_refuses_another_image_copied_over_its_own() {
    let dir = scratch("rollback_copied");
    let l = Launch::new(&compile("chain"), &dir).arg("60");
    rollback_after_replacing(&l, &dir.join("copied.mig"), 5, |other, image| {
        let ino = std::fs::metadata(image).unwrap().ino();
        std::fs::copy(other, image).unwrap();
        assert_eq!(std::fs::metadata(image).unwrap().ino(), ino, "copied in place");
    });
}

// ---- Killed helpers ----

/// A pre-copy's copier killed while it copies: the next checkpoint signal notices it
/// (a warning on the program's stderr), removes its temporary file, and that checkpoint
/// works.
#[test]
fn a_killed_copier_is_noticed_and_the_next_checkpoint_works() {
    let dir = scratch("killed_copier");
    let image = dir.join("c.mig");
    // 256 MiB: the copier is still at it when it is killed.
    let l = Launch::new(&compile("precopy_churn"), &dir).arg("100000").arg("256");
    let mut p = l.clone_with("MIG_PRECOPY", Path::new("1")).clone_with("MIG_IMAGE", &image).start();
    let perr = p.stderr_collector();
    p.until("step 2 ");
    p.signal(libc::SIGUSR1);
    let tmp = wait_until("the copier has no temporary file", TIMEOUT, || files_starting(&dir, "c.mig.tmp.").pop());
    let copier = wait_until("no copier started", TIMEOUT, || holder_of("mig-copier", &tmp));
    // The copier's parent is not the program; the helper that starts it is the
    // program's child for as long as a fork takes, within the stop.
    assert_ne!(parent_of(copier), p.pid(), "the copier is no child of the program");
    wait_until("the program has a child after its stop", Duration::from_secs(5), || children_of(p.pid()).is_empty().then_some(()));
    assert!(!image.exists(), "the pre-copy ended before its copier could be killed");
    signal(copier, libc::SIGKILL);
    let at = step_of(&p.line().unwrap()).unwrap();
    p.signal(libc::SIGUSR1);
    wait_for_file(&image);
    assert!(!tmp.exists(), "the killed copier's {} is left", tmp.display());
    inspect_intact(&image);
    p.line().expect("the process goes on");
    let before = p.kill();
    let perr = perr.join().unwrap();
    assert!(perr.contains(&format!("copier (pid {copier}) ended before its checkpoint was written")), "the program's stderr says the copier died: {perr}");
    assert!(files_starting(&dir, "c.mig.tmp.").is_empty(), "{:?}", files_starting(&dir, "c.mig.tmp."));
    // The image is the process at the second signal.
    let mut r = l.clone_with("MIG_RESTORE", &image).start();
    let restored: Vec<String> = (0..4).map(|_| r.line().expect("the restored process runs")).collect();
    r.kill();
    let first = step_of(&restored[0]).unwrap();
    assert!(first > at, "restored at step {first}: before the second checkpoint (after step {at})");
    let mut bare = l.clone_bare();
    bare.cmd[1] = (first + 3).to_string();
    let reference = reference(&bare);
    let i = reference.iter().position(|r| step_of(r) == Some(first)).unwrap();
    assert_eq!(&reference[i..i + 4], &restored[..], "the restored process differs from an uninterrupted run");
    assert_eq!(&before[..i], &reference[..i], "the first run differs from an uninterrupted run");
}

/// The parent pid of `pid` (0 if it is gone).
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A checkpoint of `chain` with a 256 MiB buffer (long enough to stop its writer half
/// way) in `dir`, without pre-copy.
fn big_chain(dir: &Path, image: &Path, env: &[(&str, &str)]) -> Launch {
    let mut l = Launch::new(&compile("chain"), dir).arg("100000").arg("262144").clone_with("MIG_PRECOPY", Path::new("0")).clone_with("MIG_IMAGE", image);
    for (k, v) in env {
        l = l.clone_with(k, Path::new(v));
    }
    l
}

/// A forked writer killed half way: `mig checkpoint` says the writer ended before it
/// finished; the next checkpoint says so too (the writer is no child of the program:
/// its temporary file, still there, tells), works, and removes that file.
#[test]
fn a_killed_writer_is_reported_and_the_next_checkpoint_removes_its_file() {
    let dir = scratch("killed_writer");
    let image = dir.join("w.mig");
    let mut p = big_chain(&dir, &image, &[]).start();
    let perr = p.stderr_collector();
    p.until("step 2 ");
    let pid = p.pid().to_string();
    let ck = spawn_piped(&mut mig_cmd(&["checkpoint", &pid, "--timeout", "5"]));
    let file = wait_until("the writer has no temporary file", TIMEOUT, || files_starting(&dir, "w.mig.tmp.").pop());
    let writer = wait_until("no writer forked", TIMEOUT, || holder_of("mig-writer", &file));
    // The writer's parent is not the program; the helper that starts it is the
    // program's child for as long as a fork takes, within the stop.
    assert_ne!(parent_of(writer), p.pid(), "the writer is no child of the program");
    wait_until("the program has a child after its stop", Duration::from_secs(5), || children_of(p.pid()).is_empty().then_some(()));
    stop(writer);
    let tmp = files_starting(&dir, "w.mig.tmp.");
    assert_eq!(tmp.len(), 1, "one temporary file: {tmp:?}");
    assert!(!image.exists(), "the writer finished before it could be stopped");
    signal(writer, libc::SIGKILL);
    let (st, out, err) = finish_child(ck);
    assert_eq!(st.code(), Some(1), "mig checkpoint must fail: {out}{err}");
    assert!(err.contains("ended before it finished") && err.contains("keeps running"), "says the writer died: {err}");
    assert!(tmp[0].exists(), "the writer's file is there until the next checkpoint");
    let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &pid, "--timeout", "20"]));
    assert!(st.success(), "the next checkpoint: {out}{err}");
    assert!(out.contains(&format!("written to {}", image.display())), "{out}");
    assert!(!tmp[0].exists(), "the next checkpoint left the killed writer's {}", tmp[0].display());
    assert!(files_starting(&dir, "w.mig.tmp.").is_empty(), "{:?}", files_starting(&dir, "w.mig.tmp."));
    inspect_intact(&image);
    p.line().expect("the process goes on");
    p.kill();
    let perr = perr.join().unwrap();
    assert!(perr.contains(&format!("writer of the previous checkpoint (pid {writer}) ended before it finished")), "the program says so: {perr}");
}

/// A process killed while it writes its own image (`MIG_FORK=0`) leaves its temporary
/// file; the next checkpoint to that path, by a new process, removes it, and only it:
/// not a temporary file someone holds a lock on, a link, a directory, or another user's.
#[test]
fn a_process_killed_while_writing_leaves_a_file_the_next_checkpoint_removes() {
    require_root("a planted file belongs to another user");
    let dir = scratch("killed_stopped");
    let image = dir.join("s.mig");
    let mut p = big_chain(&dir, &image, &[("MIG_FORK", "0")]).start();
    p.until("step 2 ");
    p.signal(libc::SIGUSR1);
    let tmp = wait_until("the process made no temporary file", TIMEOUT, || files_starting(&dir, "s.mig.tmp.").pop());
    stop(p.pid());
    assert!(!image.exists(), "the image was finished before the process could be stopped");
    p.kill();
    assert!(tmp.exists(), "a process killed while writing leaves its file");
    // Not to be removed.
    let locked = dir.join("s.mig.tmp.locked0123456789");
    let held = std::fs::File::create(&locked).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    let link = dir.join("s.mig.tmp.link0123456789ab");
    std::os::unix::fs::symlink(&tmp, &link).unwrap();
    let subdir = dir.join("s.mig.tmp.dir0123456789abc");
    std::fs::create_dir(&subdir).unwrap();
    let others = dir.join("s.mig.tmp.other0123456789a");
    let other_uid = unused_uids(1)[0];
    write_private(&others, "someone else's\n", other_uid, 0o600);

    let l = Launch::new(&compile("chain"), &dir).arg("30").clone_with("MIG_IMAGE", &image);
    let mut q = l.start();
    checkpoint_at(&mut q, 3, &image);
    q.kill();
    inspect_intact(&image);
    assert!(!tmp.exists(), "the next checkpoint to {} left the dead process's {}", image.display(), tmp.display());
    for f in [&locked, &link, &subdir, &others] {
        assert!(std::fs::symlink_metadata(f).is_ok(), "the sweep removed {}", f.display());
    }
    drop(held);
}

// ---- An interrupted mig checkpoint ----

/// `mig checkpoint --exit` killed (SIGKILL, then SIGINT) while the process blocks the
/// checkpoint signal: nothing is left (no socket, no request, no file), and when the
/// process unblocks the signal it does not act on the dead request: no image, no exit.
#[test]
fn an_interrupted_mig_checkpoint_leaves_nothing_and_is_never_acted_on() {
    let dir = scratch("interrupted");
    let image = dir.join("i.mig");
    // SIGUSR1 blocked from step 3 to step 50 (~2.4 s).
    let l = Launch::new(&compile("blocks_signal"), &dir).arg("70").arg("3").arg("50");
    let reference = reference(&l.clone_bare());
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let perr = p.stderr_collector();
    p.until("step 3 ");
    let pid = p.pid();
    let ctl = PathBuf::from(format!("/tmp/mig-{}", euid()));
    let pending = || {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let bits = s.lines().find_map(|l| l.strip_prefix("ShdPnd:")).map(|v| u64::from_str_radix(v.trim(), 16).unwrap()).unwrap();
        bits & (1 << (libc::SIGUSR1 - 1)) != 0
    };
    let leftovers = || -> Vec<String> {
        let mut v = abstract_sockets(&format!("mig/{pid}/"));
        v.extend(
            std::fs::read_dir(&ctl)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{pid}."))),
        );
        v.extend(std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("i.mig")));
        v
    };
    for (sig, name) in [(libc::SIGKILL, "SIGKILL"), (libc::SIGINT, "SIGINT")] {
        // Carried by SIGUSR1, which the process blocks meanwhile (not by the library's
        // request signal).
        let ck = spawn_piped(mig_cmd(&["checkpoint", &pid.to_string(), "--exit", "--timeout", "30"]).env("MIG_SIGNAL", "USR1"));
        let mig_pid = ck.id() as i32;
        // Interrupted while it waits: the signal sent, mig asleep.
        wait_until(&format!("{name}: mig checkpoint never signalled the process"), TIMEOUT, || pending().then_some(()));
        wait_until(&format!("{name}: mig checkpoint never waited"), TIMEOUT, || {
            (!leftovers().is_empty() && proc_state(mig_pid).is_some_and(|(s, _)| s == 'S')).then_some(())
        });
        signal(mig_pid, sig);
        let (st, _, _) = finish_child(ck);
        assert!(!st.success(), "{name}: mig checkpoint was interrupted");
        assert!(leftovers().is_empty(), "{name}: an interrupted mig checkpoint left {:?}", leftovers());
    }
    let (lines, st, _) = p.finish();
    let perr = perr.join().unwrap();
    assert!(st.success(), "{perr}");
    assert_same_run(&lines, &reference, &format!("the process acted on an interrupted request (it must not exit, nor stop early; stderr: {perr:?})"));
    assert!(leftovers().is_empty(), "once the process took the signal: {:?}", leftovers());
    assert!(!image.exists(), "no image for a request whose mig is gone");
}

// ---- Concurrent checkpoints ----

/// Two `mig checkpoint PID --to A` and `--to B` at the same moment, ten times: each
/// reports its own image, both are intact, and the process keeps running.
#[test]
fn concurrent_checkpoints_each_get_their_own_image() {
    let dir = scratch("concurrent");
    let mut p = Launch::new(&compile("chain"), &dir).arg("100000").start();
    p.until("step 2 ");
    let pid = p.pid().to_string();
    for round in 0..10 {
        let paths = [dir.join(format!("a{round}.mig")), dir.join(format!("b{round}.mig"))];
        let go = std::sync::Barrier::new(2);
        let results: Vec<(ExitStatus, String, String)> = std::thread::scope(|s| {
            let hs: Vec<_> = paths
                .iter()
                .map(|path| {
                    let (go, pid) = (&go, &pid);
                    s.spawn(move || {
                        let mut c = mig_cmd(&["checkpoint", pid, "--to", path.to_str().unwrap(), "--timeout", "5"]);
                        go.wait();
                        output(&mut c)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, (st, out, err)) in results.iter().enumerate() {
            let (mine, theirs) = (&paths[i], &paths[1 - i]);
            assert!(st.success(), "round {round}: mig checkpoint --to {} failed: {out}{err}", mine.display());
            assert!(out.contains(&format!("written to {}", mine.display())), "round {round}: reports its own image {}: {out}", mine.display());
            assert!(!out.contains(&theirs.display().to_string()), "round {round}: reports the other one's image: {out}");
        }
        for path in &paths {
            inspect_intact(path);
        }
        assert!(alive(p.pid()), "round {round}: the process ended: {:?}", p.seen);
    }
    p.line().expect("the process keeps running");
    p.kill();
    let tmp: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().contains(".tmp.")).collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
}

// ---- The header's pid ----

/// The image's header names the checkpointed process, not the forked writer or the
/// copier that wrote it.
#[test]
fn the_header_names_the_checkpointed_process_not_its_writer() {
    let dir = scratch("header_pid");
    for (how, env) in [("forked", ("MIG_FORK", "1")), ("stopped", ("MIG_FORK", "0")), ("pre-copied", ("MIG_PRECOPY", "1"))] {
        let image = dir.join(format!("{how}.mig"));
        let mut p = Launch::new(&compile("chain"), &dir).arg("100000").clone_with(env.0, Path::new(env.1)).start();
        p.until("step 2 ");
        let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &p.pid().to_string(), "--to", image.to_str().unwrap()]));
        assert!(st.success(), "{how}: {out}{err}");
        let v = inspect_intact(&image);
        assert_eq!(v["header"]["pid"], p.pid(), "{how}: the header's pid is not the checkpointed process's");
        p.kill();
    }
}
