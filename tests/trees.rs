//! Process trees (issue 16). mig saves one process, not its children, yet: until a tree
//! is saved whole, a child that runs the library with its parent's image path (forked,
//! or started with the library and `MIG_IMAGE` inherited) never writes that image nor
//! rolls back to it, and says so.

mod common;
use common::*;

/// A forked and an exec'd child: `kill -USR1`, `mig checkpoint` and `kill -USR2` to the
/// child are refused, naming the parent; the image is not written by the child; the
/// parent's own checkpoint is the parent's; both run on as without mig.
#[test]
fn a_child_never_writes_nor_rolls_back_to_its_parents_image() {
    for mode in ["fork", "exec"] {
        let dir = tempdir(&format!("job_child_{mode}"));
        let l = Launch::new(&compile("job_child"), &dir).arg("40").arg(mode);
        let reference = reference(&l.clone_bare());
        let _ = std::fs::remove_file(dir.join("child.ready"));
        let image = dir.join("job.mig");
        let mut p = l.clone_with("MIG_IMAGE", &image).start();
        let parent = p.pid();
        let perr = p.stderr_collector();
        p.until("step 2 ");
        wait_for_file(&dir.join("child.ready"));
        let child = *children_of(p.pid()).first().expect("the parent has its child");
        signal(child, libc::SIGUSR1);
        signal(child, libc::SIGUSR2);
        // Handled in order: once the request is answered, so were both signals.
        let (st, out, err) = output(&mut mig_cmd(&["checkpoint", &child.to_string()]));
        assert_eq!(st.code(), Some(1), "{mode}: mig checkpoint of the child must fail: {out}{err}");
        let why = format!("process {child} belongs to the job of process {parent}");
        assert!(err.contains(&why), "{mode}: says why: {err}");
        assert!(!image.exists(), "{mode}: the child wrote the parent's image");
        assert!(alive(child), "{mode}: the child goes on");
        p.signal(libc::SIGUSR1);
        wait_for_file(&image);
        let v = inspect_intact(&image);
        assert_eq!(v["header"]["pid"].as_u64(), Some(parent as u64), "{mode}: the image is the parent's: {v}");
        let (lines, st, _) = p.finish();
        let perr = perr.join().unwrap();
        assert!(st.success(), "{mode}: {lines:?} {perr}");
        assert_eq!(lines, reference, "{mode}: the run differs from one without mig");
        assert!(perr.contains(&format!("checkpoint refused: {why}")), "{mode}: the child's signal was refused, saying so: {perr}");
        assert!(perr.contains(&format!("rollback refused: process {child} belongs to the job of process {parent}")), "{mode}: {perr}");
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process of the test's.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}
