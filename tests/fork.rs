//! Issue 6, forked checkpoints: the process stops only to fork; a writer the program
//! cannot see (no SIGCHLD, nothing for `wait`) writes an image of that moment. Where a
//! copy would not be a snapshot (shared memory), the process stays stopped, and says so.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// `mig checkpoint PID --to image`, which waits until the image is complete.
fn mig_checkpoint(pid: i32, image: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_mig")).args(["checkpoint", &pid.to_string(), "--to"]).arg(image).output().unwrap();
    assert!(out.status.success(), "mig checkpoint: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn forked_writers_are_invisible_and_write_snapshots() {
    let dir = tempdir("fork_children");
    let l = Launch::new(&compile("no_children"), &dir).arg("30");
    let reference = reference(&l.clone_bare());
    // Three checkpoints in one run: each writer is a child the program must never see.
    let mut p = l.start();
    let images: Vec<_> = (1..=3).map(|i| dir.join(format!("n{i}.mig"))).collect();
    for (i, image) in images.iter().enumerate() {
        p.until(&format!("step {} ", 3 + 4 * i));
        mig_checkpoint(p.pid(), image);
    }
    let (lines, st, err) = p.finish();
    assert!(st.success(), "{err}\n{lines:?}");
    assert_eq!(lines, reference, "checkpoints changed what the program saw");
    // Each image is the moment it was taken: restored, the run goes on identically.
    for image in &images[1..] {
        let (restored, st, err) = l.clone_with("MIG_RESTORE", image).start().finish();
        assert!(st.success(), "{err}");
        assert_continues(&reference, &reference, &restored);
    }
}

/// Issue 14: after a checkpoint the program has no child: its writer is none, while it
/// writes or once it has ended; the next checkpoint waits for it all the same.
#[test]
fn a_checkpoint_leaves_the_program_no_child() {
    let dir = tempdir("fork_no_child");
    let image = dir.join("c.mig");
    let l = Launch::new(&compile("no_children"), &dir).arg("40");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    for at in [3, 8] {
        checkpoint_at(&mut p, at, &image);
        assert!(children_of(p.pid()).is_empty(), "children after a checkpoint: {:?}", children_of(p.pid()));
    }
    let second = dir.join("second.mig");
    p.until("step 12 ");
    mig_checkpoint(p.pid(), &second);
    assert!(children_of(p.pid()).is_empty(), "children after mig checkpoint: {:?}", children_of(p.pid()));
    // The program itself checks every step that wait() finds no child and no SIGCHLD came.
    let (lines, st, err) = p.finish();
    assert!(st.success(), "{err}\n{lines:?}");
    inspect_intact(&image);
    inspect_intact(&second);
}

fn debug_log(name: &str, extra: &[(&str, &str)]) -> String {
    let dir = tempdir(&format!("fork_{name}"));
    let launch = || {
        let mut l = Launch::new(&compile(name), &dir).clone_with("MIG_LOG", Path::new("debug"));
        for (k, v) in extra {
            l = l.clone_with(k, Path::new(v));
        }
        l
    };
    checkpoint_kill_restart(launch(), 4);
    let l = launch();
    let image = dir.join("log.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 3, &image);
    p.line().expect("runs on");
    let (_, _, err) = p.finish();
    err
}

#[test]
fn shared_memory_keeps_the_process_stopped_and_says_why() {
    let err = debug_log("mappings", &[]);
    assert!(err.contains("stays stopped while it is written: it has shared memory"), "{err}");
    let err = debug_log("chain", &[]);
    assert!(!err.contains("stays stopped"), "a plain process is checkpointed by a fork: {err}");
    assert!(err.contains("checkpoint written to"), "{err}");
}

#[test]
fn mig_fork_0_turns_forking_off() {
    let err = debug_log("chain", &[("MIG_FORK", "0")]);
    assert!(err.contains("stays stopped while it is written: MIG_FORK=0"), "{err}");
}
