//! The README's walkthrough, run as written: every `$ ` line in its `console` block is a
//! command (run in one bash session, in a fresh directory with its own HOME), the lines
//! after it what the command prints (stdout and stderr). `{}` in an expected line
//! stands for any text, and a line that is only `{}` for any number of lines.

mod common;
use common::*;
use std::process::Command;

struct Step {
    command: String,
    expected: Vec<String>,
}

fn walkthrough() -> Vec<Step> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme.split("<!-- walkthrough -->").nth(1).and_then(|r| r.split("<!-- /walkthrough -->").next()).expect("the README has a walkthrough");
    let mut steps: Vec<Step> = vec![];
    for line in block.lines().filter(|l| !l.starts_with("```")) {
        match line.strip_prefix("$ ") {
            Some(c) => steps.push(Step { command: c.to_string(), expected: vec![] }),
            None if !line.is_empty() => steps.last_mut().expect("output before any command").expected.push(line.to_string()),
            None => {}
        }
    }
    steps
}

/// Whether `line` is `pattern`, `{}` matching any text.
fn matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("{}");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let dir = tempdir("readme");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let steps = walkthrough();
    assert!(steps.len() >= 5, "a walkthrough of a few steps");
    // One bash session; each command's output ends with a marker line.
    let mut script = format!("set -u\ncd {}\nexport HOME={} PATH={}/.local/bin:$PATH\n", repo().display(), home.display(), home.display());
    for (i, s) in steps.iter().enumerate() {
        // The first command installs from the repository; the others run in HOME.
        if i == 1 {
            script.push_str(&format!("cd {}\n", home.display()));
        }
        script.push_str(&format!("{} 2>&1\necho \"@@@ {i} $?\"\n", s.command));
    }
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(&script).env_remove("MIG_LIB");
    // As from a terminal: no descriptors beyond the standard ones (the test runner's
    // would show up in the checkpoint's warnings).
    // SAFETY: close_range is async-signal-safe, as pre_exec requires.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut bash, || {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        })
    };
    let out = bash.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut outputs: Vec<Vec<&str>> = vec![vec![]];
    let mut statuses = vec![];
    for line in text.lines() {
        if let Some(m) = line.strip_prefix("@@@ ") {
            statuses.push(m.split(' ').nth(1).unwrap_or("?").to_string());
            outputs.push(vec![]);
        } else if let Some(o) = outputs.last_mut() {
            o.push(line);
        }
    }
    assert_eq!(statuses.len(), steps.len(), "every step ran: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    for ((s, got), status) in steps.iter().zip(&outputs).zip(&statuses) {
        assert_eq!(status, "0", "`{}` failed:\n{}", s.command, got.join("\n"));
        assert!(
            lines_match(&s.expected, got),
            "`{}` printed what the README does not show:\n{}\n--- the README:\n{}",
            s.command,
            got.join("\n"),
            s.expected.join("\n")
        );
    }
}

/// Whether `got` is `expected`, line by line (a line `{}` is any number of lines).
fn lines_match(expected: &[String], got: &[&str]) -> bool {
    match expected.split_first() {
        None => got.is_empty(),
        Some((e, rest)) if e == "{}" => (0..=got.len()).any(|skip| lines_match(rest, &got[skip..])),
        Some((e, rest)) => got.split_first().is_some_and(|(g, more)| matches(e, g) && lines_match(rest, more)),
    }
}

#[test]
fn patterns() {
    assert!(matches("a {} c", "a b c"));
    assert!(matches("{}", "anything"));
    assert!(matches("x{}", "x"));
    assert!(!matches("a {} c", "a b d"));
    assert!(matches("{} python3 {}/count.mig {}", "   4242  python3          /h/count.mig   -  none yet  -"));
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(lines_match(&e(&["{}", "done {}"]), &["a", "b", "done 1"]));
    assert!(lines_match(&e(&["{}", "done {}"]), &["done 1"]));
    assert!(!lines_match(&e(&["x"]), &["x", "y"]));
}
