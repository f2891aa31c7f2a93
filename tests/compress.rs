//! Issue 6: compressed images. `mig checkpoint --compress zstd` (or MIG_COMPRESS=zstd)
//! compresses the image it passes on; `mig restart` (a file or `-`) and `mig inspect`
//! recognise the zstd frame and decompress it; `mig migrate` sends it compressed.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

fn mig_out(args: &[&str]) -> (ExitStatus, String, String) {
    output(&mut mig_cmd(args))
}

/// `chain STEPS` started by `mig run` (with MIG_COMPRESS and the like removed).
fn run_chain(dir: &Path, steps: &str) -> Proc {
    let bin = compile("chain");
    Launch::new(&mig(), dir).bare().arg("run").arg("--").arg(bin.to_str().unwrap()).arg(steps).start()
}

fn chain_reference(dir: &Path, steps: &str) -> Vec<String> {
    reference(&Launch::new(&compile("chain"), dir).arg(steps).bare())
}

/// `mig restart ARG` in `dir`, with `stdin` as its standard input: its stdout lines,
/// status and stderr.
fn restart(dir: &Path, arg: &str, stdin: Stdio) -> (Vec<String>, ExitStatus, String) {
    let (st, out, err) = output(mig_cmd(&["restart", arg]).current_dir(dir).stdin(stdin));
    (out.lines().map(String::from).collect(), st, err)
}

/// One line on stderr, and it says every one of `want`.
fn assert_one_line(err: &str, want: &[&str]) {
    assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr: {err:?}");
    for w in want {
        assert!(err.contains(w), "expected {w:?} in {err:?}");
    }
}

fn is_zstd(p: &Path) -> bool {
    let mut head = [0u8; 4];
    std::fs::File::open(p).unwrap().read_exact(&mut head).is_ok() && head == ZSTD_MAGIC
}

#[test]
fn stream_compressed_to_a_file_restarts_from_stdin_and_from_the_file() {
    let dir = tempdir("z_stream");
    let reference = chain_reference(&dir, "40");
    let mut p = run_chain(&dir, "40");
    p.until("step 5 ");
    let pid = p.pid().to_string();
    // An uncompressed image to compare the size with.
    let plain = dir.join("plain.mig");
    let (st, _, err) = mig_out(&["checkpoint", &pid, "--to", plain.to_str().unwrap()]);
    assert!(st.success(), "{err}");
    // The compressed stream, redirected into a file.
    let packed = dir.join("packed.mig.zst");
    let (st, out, err) = output(mig_cmd(&["checkpoint", &pid, "--to", "-", "--compress", "zstd"]).stdout(std::fs::File::create(&packed).unwrap()));
    assert!(st.success(), "checkpoint --to - --compress zstd failed: {err}");
    assert_eq!(out, "");
    assert_one_line(&err, &["streamed to standard output", "zstd-compressed to", ":1)"]);
    p.line().expect("the process keeps running after the checkpoint");
    let before = p.kill();

    assert!(is_zstd(&packed), "the stream is a zstd frame");
    let (plain_len, packed_len) = (std::fs::metadata(&plain).unwrap().len(), std::fs::metadata(&packed).unwrap().len());
    assert!(packed_len * 2 < plain_len, "compressed {packed_len} bytes, plain {plain_len}");

    // From standard input, as a stream would arrive.
    let (lines, st, err) = restart(&dir, "-", Stdio::from(std::fs::File::open(&packed).unwrap()));
    assert!(st.success(), "restart - failed: {st:?} {err}");
    assert_continues(&reference, &before, &lines);
    // From the file.
    let (lines, st, err) = restart(&dir, packed.to_str().unwrap(), Stdio::null());
    assert!(st.success(), "restart FILE failed: {st:?} {err}");
    assert_continues(&reference, &before, &lines);
    // From a pipe (the way `ssh host 'mig checkpoint … --to -' | mig restart -` runs).
    let mut c = mig_cmd(&["restart", "-"]).current_dir(&dir).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut input = c.stdin.take().unwrap();
    let bytes = std::fs::read(&packed).unwrap();
    let feeder = std::thread::spawn(move || {
        for chunk in bytes.chunks(1000) {
            input.write_all(chunk).unwrap();
        }
    });
    let o = c.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(o.status.success(), "restart - from a pipe: {}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect();
    assert_continues(&reference, &before, &lines);
}

#[test]
fn compressed_file_from_mig_compress_inspect_and_restart() {
    let dir = tempdir("z_file");
    let reference = chain_reference(&dir, "30");
    let mut p = run_chain(&dir, "30");
    p.until("step 4 ");
    let image = dir.join("job.mig");
    let (st, out, err) = output(mig_cmd(&["checkpoint", &p.pid().to_string(), "--exit", "--to", image.to_str().unwrap()]).env("MIG_COMPRESS", "zstd:3"));
    assert!(st.success(), "checkpoint with MIG_COMPRESS=zstd:3 failed: {err}");
    assert!(out.contains(&format!("written to {}", image.display())) && out.contains("zstd-compressed to"), "{out}");
    assert!(out.contains("the process has exited"), "{out}");
    let (before, st, _) = p.finish();
    assert!(st.success(), "--exit ends the process with status 0: {st:?}");
    assert!(is_zstd(&image));
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "private, like the library's images");
    let names: Vec<String> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains(".tmp.")), "written aside and renamed: {names:?}");

    // inspect decompresses it, says so, and checks every blob.
    let (st, out, err) = mig_out(&["inspect", image.to_str().unwrap()]);
    assert!(st.success(), "inspect of a compressed image: {err}\n{out}");
    let first = out.lines().next().unwrap();
    assert!(first.contains("zstd-compressed") && first.contains("on disk") && first.contains("ratio"), "{first}");
    assert!(out.contains("REGIONS") && out.contains("integrity:   ok"), "{out}");
    assert!(out.contains(&compile("chain").display().to_string()), "names the executable: {out}");
    let (st, out, err) = mig_out(&["inspect", "--json", image.to_str().unwrap()]);
    assert!(st.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["compressed"]["format"], "zstd");
    assert_eq!(v["compressed"]["size"], meta.len());
    assert!(v["size"].as_u64().unwrap() > meta.len());
    assert!(v["compressed"]["ratio"].as_f64().unwrap() > 2.0, "{}", v["compressed"]);
    assert_eq!(v["intact"], true);

    let (lines, st, err) = restart(&dir, image.to_str().unwrap(), Stdio::null());
    assert!(st.success(), "{st:?} {err}");
    assert_continues(&reference, &before, &lines);
}

#[test]
fn compression_options_and_their_errors() {
    let dir = tempdir("z_options");
    let mut p = run_chain(&dir, "100");
    p.until("step 2 ");
    let pid = p.pid().to_string();
    let to = dir.join("x.mig");
    let to = to.to_str().unwrap();
    // Bad values: usage errors, status 2, nothing written; one line, or clap's whole
    // message for a value it parses.
    for (args, env, want) in [
        (vec!["checkpoint", &pid, "--to", to, "--compress", "gzip"], None, "not a compression"),
        (vec!["checkpoint", &pid, "--to", to, "--compress", "zstd:99"], None, "level"),
        (vec!["checkpoint", &pid, "--to", to], Some("lz4"), "MIG_COMPRESS"),
        (vec!["checkpoint", &pid, "--compress", "zstd"], None, "--to"),
    ] {
        let mut c = mig_cmd(&args);
        if let Some(v) = env {
            c.env("MIG_COMPRESS", v);
        }
        let (st, out, err) = output(&mut c);
        assert_eq!(st.code(), Some(2), "{args:?}: {err}");
        assert_eq!(out, "");
        if err.contains("try '--help'") {
            assert!(err.contains(want), "expected {want:?} in {err:?}");
        } else {
            assert_one_line(&err, &[want]);
        }
        assert!(!Path::new(to).exists());
    }
    // --compress none wins over MIG_COMPRESS; MIG_COMPRESS=zstd alone compresses.
    let (st, out, err) = output(mig_cmd(&["checkpoint", &pid, "--to", to, "--compress", "none"]).env("MIG_COMPRESS", "zstd"));
    assert!(st.success(), "{err}");
    assert!(!out.contains("zstd") && !is_zstd(Path::new(to)), "{out}");
    let (st, out, err) = output(mig_cmd(&["checkpoint", &pid, "--to", to]).env("MIG_COMPRESS", "zstd"));
    assert!(st.success(), "{err}");
    assert!(out.contains("zstd-compressed") && is_zstd(Path::new(to)), "{out}");
    // The help says how.
    let (_, help, _) = mig_out(&["checkpoint", "--help"]);
    assert!(help.contains("--compress") && help.contains("MIG_COMPRESS"), "{help}");
    p.kill();
}

/// A compressed image of `chain` (killed at step 3) and the plain image it holds.
fn compressed_chain_image(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut p = run_chain(dir, "40");
    p.until("step 3 ");
    let pid = p.pid().to_string();
    let z = dir.join("good.mig");
    let plain = dir.join("plain.mig");
    let (st, _, err) = mig_out(&["checkpoint", &pid, "--to", z.to_str().unwrap(), "--compress", "zstd"]);
    assert!(st.success(), "{err}");
    let (st, _, err) = mig_out(&["checkpoint", &pid, "--to", plain.to_str().unwrap()]);
    assert!(st.success(), "{err}");
    p.kill();
    (std::fs::read(z).unwrap(), std::fs::read(plain).unwrap())
}

#[test]
fn damaged_compressed_images_are_refused_before_anything_runs() {
    let dir = tempdir("z_damaged");
    let (good, plain) = compressed_chain_image(&dir);
    let n = good.len();
    let mut flipped = good.clone();
    flipped[n / 2] ^= 0x40;
    let mut followed = good.clone();
    followed.extend_from_slice(b"more bytes after the frame");
    // A well-formed frame around a damaged image: the image's own CRCs catch it.
    let mut bad_plain = plain.clone();
    let at = plain.len() - 4096 * 3;
    bad_plain[at] ^= 1;
    let inner_bad = zstd::encode_all(&bad_plain[..], 1).unwrap();
    let inner_cut = zstd::encode_all(&plain[..plain.len() - 100], 1).unwrap();
    let not_an_image = zstd::encode_all(&b"hello, world\n".repeat(1000)[..], 1).unwrap();
    for (name, bytes, want) in [
        ("flipped", flipped, "damaged"),
        ("cut", good[..n - 64].to_vec(), "cut off"),
        ("magic-only", good[..4].to_vec(), "cut off"),
        ("followed", followed, "follows the compressed image"),
        ("inner-bad", inner_bad, "corrupted"),
        ("inner-cut", inner_cut, "truncated"),
        ("not-an-image", not_an_image, "not a mig image"),
    ] {
        let p = dir.join(format!("{name}.mig"));
        std::fs::write(&p, &bytes).unwrap();
        let (lines, st, err) = restart(&dir, p.to_str().unwrap(), Stdio::null());
        assert_eq!(st.code(), Some(125), "{name}: {err}");
        assert!(lines.is_empty(), "{name}: the program must not run: {lines:?}");
        assert_one_line(&err, &[&format!("cannot restart from {}", p.display()), want]);
        // The same from standard input.
        let mut c = mig_cmd(&["restart", "-"]).current_dir(&dir).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut input = c.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(&bytes);
        });
        let o = c.wait_with_output().unwrap();
        feeder.join().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{name} from stdin: {err}");
        assert!(o.stdout.is_empty(), "{name} from stdin: the program must not run");
        assert_one_line(&err, &["cannot restart from standard input", want]);
        // inspect says where the damage is, and fails.
        let (st, _, err) = mig_out(&["inspect", p.to_str().unwrap()]);
        assert_eq!(st.code(), Some(2), "inspect {name}: {err}");
        assert_one_line(&err, &[&p.display().to_string(), "is damaged"]);
        if name.starts_with("inner") {
            assert!(!err.contains("compressed data"), "the frame itself is fine: {err}");
        } else if name != "not-an-image" {
            assert!(err.contains("compressed data"), "{name}: {err}");
        }
    }
}

/// `mig migrate` through a stand-in for ssh that runs the remote command here and
/// keeps a copy of what it was sent.
#[test]
fn migrate_sends_a_compressed_image() {
    let dir = tempdir("z_migrate");
    let reference = chain_reference(&dir, "40");
    let sent = dir.join("sent");
    let fake_ssh = dir.join("fake-ssh");
    // Called as: fake-ssh -T HOST COMMAND.
    std::fs::write(&fake_ssh, format!("#!/bin/sh\neval \"cmd=\\${{$#}}\"\ntee '{}' | sh -c \"$cmd\"\n", sent.display())).unwrap();
    std::fs::set_permissions(&fake_ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut p = run_chain(&dir, "40");
    p.until("step 8 ");
    let pid = p.pid().to_string();
    let mut c = mig_cmd(&["migrate", &pid, "elsewhere", "--ssh", fake_ssh.to_str().unwrap(), "--remote-mig", mig().to_str().unwrap(), "--compress", "zstd"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut e = c.stderr.take().unwrap();
    let errt = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = e.read_to_string(&mut s);
        s
    });
    let moved: Vec<String> = BufReader::new(c.stdout.take().unwrap()).lines().map(|l| l.unwrap()).collect();
    let st = c.wait().unwrap();
    let err = errt.join().unwrap();
    assert!(st.success(), "migrate failed: {st:?}\n{err}");
    assert!(err.contains("moved to elsewhere") && err.contains("zstd-compressed to"), "{err}");
    let (before, st, _) = p.finish();
    assert!(st.success());
    assert_continues(&reference, &before, &moved);
    assert!(is_zstd(&sent), "what went over the wire is compressed");
}
