//! Issue 5: descriptors and kernel objects beyond regular files. Pipes and socketpairs
//! with data in flight, threads blocked on them, epoll/eventfd/signalfd/timerfd,
//! inotify, POSIX timers, listening sockets, terminals, memfd and shm; and anything
//! still unsupported warned about and brought back broken, never a crash.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Asserts that a checkpoint warned about nothing.
fn no_warnings(err: &str) {
    assert!(!err.contains("warning"), "the checkpoint warned about a supported descriptor: {err}");
}

// ---- 1. Pipes and socketpairs ----

#[test]
fn pipes_and_socketpairs_keep_data_flags_and_dups() {
    let dir = tempdir("fd_pipes");
    let (ckpt_err, _) = checkpoint_kill_restart_warnings(Launch::new(&compile("fd_pipes"), &dir), 7);
    no_warnings(&ckpt_err);
}

#[test]
fn pipes_and_socketpairs_at_another_step() {
    // Step 12: other backlogs, an empty datagram queued (12 % 3 == 0), odd O_NONBLOCK phase.
    let dir = tempdir("fd_pipes_12");
    checkpoint_kill_restart_warnings(Launch::new(&compile("fd_pipes"), &dir), 12);
}

#[test]
fn pipes_and_socketpairs_roll_back_in_place() {
    // The rolled-back process re-executes itself: the pipes it still holds (those
    // without FD_CLOEXEC) carry later data and must be replaced by the saved ones.
    let dir = tempdir("fd_pipes_rollback");
    checkpoint_rollback(&Launch::new(&compile("fd_pipes"), &dir).arg("30"), 5, 11);
}

#[test]
fn threads_blocked_in_read_poll_and_write_on_pipes() {
    let dir = tempdir("fd_pipe_threads");
    let (ckpt_err, _) = checkpoint_kill_restart_warnings(Launch::new(&compile("fd_pipe_threads"), &dir), 6);
    no_warnings(&ckpt_err);
}

// ---- 2. epoll, eventfd, signalfd, timerfd, inotify ----

#[test]
fn epoll_eventfd_signalfd_and_timerfd() {
    // Step 7: the one-shot timerfd has fired and is unread (7 % 5 == 2).
    let dir = tempdir("fd_events");
    let (ckpt_err, _) = checkpoint_kill_restart_warnings(Launch::new(&compile("fd_events"), &dir), 7);
    no_warnings(&ckpt_err);
}

#[test]
fn epoll_eventfd_signalfd_and_timerfd_after_the_one_shot_was_read() {
    // Step 10: the one-shot timerfd was just read (disarmed, nothing pending).
    let dir = tempdir("fd_events_10");
    checkpoint_kill_restart_warnings(Launch::new(&compile("fd_events"), &dir), 10);
}

#[test]
fn inotify_watches_keep_their_descriptors() {
    // Step 6: watches 1, 3 and 4 saved (2 removed); the one on d.txt is added after
    // the restore, at step 21.
    let dir = tempdir("fd_inotify");
    let (ckpt_err, _) = checkpoint_kill_restart_warnings(Launch::new(&compile("fd_inotify"), &dir), 6);
    no_warnings(&ckpt_err);
}

#[test]
fn inotify_watch_added_late_is_saved_too() {
    let dir = tempdir("fd_inotify_22");
    checkpoint_kill_restart_warnings(Launch::new(&compile("fd_inotify"), &dir), 22);
}

// ---- 3. POSIX timers ----

#[test]
fn posix_timers_keep_their_ids_and_times() {
    // Step 6: `late` (1.5 s) has not fired yet and must fire after the restore.
    let dir = tempdir("posix_timers");
    let (ckpt_err, _) = checkpoint_kill_restart_warnings(Launch::new(&compile("posix_timers"), &dir), 6);
    no_warnings(&ckpt_err);
}

#[test]
fn posix_timers_with_a_timer_created_after_the_middle() {
    // Step 20 of 40 creates a new timer: saved with the others, deleted after the restore.
    let dir = tempdir("posix_timers_20");
    checkpoint_kill_restart_warnings(Launch::new(&compile("posix_timers"), &dir), 20);
}

// ---- 4. Listening sockets, connections to the outside ----

fn read_port(dir: &Path) -> u16 {
    let f = dir.join("port");
    wait_for_file(&f);
    std::fs::read_to_string(&f).unwrap().trim().parse().expect("a port number")
}

/// Sends `line` and expects it back.
fn echo(s: &mut (impl Read + Write), line: &str) {
    let msg = format!("{line}\n");
    s.write_all(msg.as_bytes()).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap_or_else(|e| panic!("no echo of {line:?}: {e}"));
    assert_eq!(String::from_utf8_lossy(&got), msg);
}

fn expect_line(p: &mut Proc, prefix: &str) -> String {
    let l = p.line().unwrap_or_else(|| panic!("expected {prefix:?}; saw {:?}", p.seen));
    assert!(l.starts_with(prefix), "expected {prefix:?}, got {l:?}; saw {:?}", p.seen);
    l
}

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn unix(dir: &Path) -> UnixStream {
    let s = UnixStream::connect(dir.join("echo.sock")).unwrap_or_else(|e| panic!("connect to echo.sock: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Before the checkpoint: clients 1 (TCP) and 2 (UNIX) stay connected, client 3
/// comes and goes. Requests 1..=5.
fn echo_phase1(p: &mut Proc, dir: &Path, port: u16) -> (TcpStream, UnixStream) {
    let mut a = tcp(port);
    expect_line(p, "conn 1 tcp");
    echo(&mut a, "alpha");
    expect_line(p, "step 1 ");
    let mut b = unix(dir);
    expect_line(p, "conn 2 unix");
    echo(&mut b, "beta");
    expect_line(p, "step 2 ");
    let mut c = tcp(port);
    expect_line(p, "conn 3 tcp");
    echo(&mut c, "gamma 1");
    expect_line(p, "step 3 ");
    echo(&mut c, "gamma 2");
    expect_line(p, "step 4 ");
    drop(c);
    expect_line(p, "closed 3");
    echo(&mut a, "alpha 2");
    expect_line(p, "step 5 ");
    (a, b)
}

/// After clients 1 and 2 are gone: new clients on the same port and path, then quit.
fn echo_phase2(p: &mut Proc, dir: &Path, port: u16) {
    let mut d = tcp(port);
    expect_line(p, "conn 4 tcp");
    echo(&mut d, "delta");
    expect_line(p, "step 6 ");
    let mut e = unix(dir);
    expect_line(p, "conn 5 unix");
    echo(&mut e, "epsilon");
    expect_line(p, "step 7 ");
    d.write_all(b"quit\n").unwrap();
    let mut bye = [0u8; 4];
    d.read_exact(&mut bye).unwrap();
    assert_eq!(&bye, b"bye\n");
}

#[test]
fn listening_tcp_and_unix_sockets_come_back_and_connections_are_reset() {
    let dir = tempdir("tcp_echo");
    let l = Launch::new(&compile("tcp_echo"), &dir);

    // Uninterrupted: clients 1 and 2 hang up themselves where the others get killed.
    let _ = std::fs::remove_file(dir.join("port"));
    let mut p = l.clone_bare().start();
    let port = read_port(&dir);
    let (a, b) = echo_phase1(&mut p, &dir, port);
    drop(a);
    expect_line(&mut p, "closed 1");
    drop(b);
    expect_line(&mut p, "closed 2");
    echo_phase2(&mut p, &dir, port);
    let (reference, st, err) = p.finish();
    assert!(st.success(), "uninterrupted server failed: {st:?} {err}\n{reference:?}");
    assert!(reference.last().unwrap().starts_with("done "), "{reference:?}");
    let after_close = reference.iter().position(|l| l == "closed 2").unwrap() + 1;

    // Checkpointed with two connections open, which the original still serves.
    let _ = std::fs::remove_file(dir.join("port"));
    let image = dir.join("echo.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let ckpt_err = p.stderr_collector();
    let port = read_port(&dir);
    let (mut a, b) = echo_phase1(&mut p, &dir, port);
    p.signal(libc::SIGUSR1);
    wait_for_file(&image);
    echo(&mut a, "after the checkpoint");
    expect_line(&mut p, "step 6 ");
    p.kill();
    drop((a, b));
    let ckpt_err = ckpt_err.join().unwrap();
    // 3: TCP listener, 4: UNIX listener, 5: client 1, 6: client 2 (see tcp_echo.c).
    assert!(warns_about_fd(&ckpt_err, 5), "no warning about the TCP connection (fd 5): {ckpt_err:?}");
    assert!(warns_about_fd(&ckpt_err, 6), "no warning about the UNIX connection (fd 6): {ckpt_err:?}");
    assert!(!warns_about_fd(&ckpt_err, 3) && !warns_about_fd(&ckpt_err, 4), "listeners are supported: {ckpt_err:?}");

    // Restored: the dead connections are seen closed, the listeners accept again on
    // the same port and path, and everything goes on as in the uninterrupted run.
    let mut r = l.clone_with("MIG_RESTORE", &image).start();
    let mut closed = vec![r.line().expect("restored server is silent"), r.line().expect("restored server is silent")];
    closed.sort();
    assert_eq!(closed, ["closed 1", "closed 2"], "the held connections must come back reset; saw {:?}", r.seen);
    assert_eq!(read_port(&dir), port);
    echo_phase2(&mut r, &dir, port);
    let (restored, st, err) = r.finish();
    assert!(st.success(), "restored server failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert_eq!(&restored[2..], &reference[after_close..], "the restored server differs from the uninterrupted one");
}

/// A server's client never notices its restart: `tcp_echo` checkpointed with `mig
/// checkpoint --exit` while a TCP client is connected and restored by `mig restart`
/// goes on serving that same connection (repair mode: it shares its port with the
/// restored listener), and accepts new clients; its output is an uninterrupted run's.
#[test]
fn a_servers_connected_client_never_notices_its_restart() {
    require_root("TCP repair mode takes CAP_NET_ADMIN");
    let dir = tempdir("tcp_echo_repair");
    let l = Launch::new(&compile("tcp_echo"), &dir);
    // Client 1 says "alpha" 20 times (past the kernel's first quick acknowledgements:
    // the last echo's acknowledgement is delayed); (the restart); client 2 connects; 1
    // says "beta", 2 "gamma", then "quit".
    let first_half = |p: &mut Proc, a: &mut TcpStream| {
        expect_line(p, "conn 1 tcp");
        for i in 1..=20 {
            echo(a, "alpha");
            expect_line(p, &format!("step {i} "));
        }
    };
    let second_half = |p: &mut Proc, a: &mut TcpStream, port: u16| {
        let mut b = wait_until("the listener", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).ok());
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        expect_line(p, "conn 2 tcp");
        echo(a, "beta");
        echo(&mut b, "gamma");
        b.write_all(b"quit\n").unwrap();
        let mut bye = [0u8; 4];
        b.read_exact(&mut bye).unwrap();
    };
    let _ = std::fs::remove_file(dir.join("port"));
    let mut p = l.clone_bare().start();
    let port = read_port(&dir);
    let mut a = tcp(port);
    first_half(&mut p, &mut a);
    second_half(&mut p, &mut a, port);
    let (reference, st, err) = p.finish();
    assert!(st.success(), "uninterrupted server failed: {st:?} {err}\n{reference:?}");

    let _ = std::fs::remove_file(dir.join("port"));
    let image = dir.join("echo.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let port = read_port(&dir);
    let mut a = tcp(port);
    first_half(&mut p, &mut a);
    let (st, _, err) = output(&mut mig_cmd(&["checkpoint", &p.pid().to_string(), "--exit", "--to", image.to_str().unwrap()]));
    assert!(st.success(), "{err}");
    assert!(!err.contains("warning"), "the connection is saved whole: {err}");
    let (mut lines, _, _) = p.finish();
    let mut r = Launch::new(&mig(), &dir).bare().arg("restart").arg(image.to_str().unwrap()).start();
    second_half(&mut r, &mut a, port);
    let (restored, st, err) = r.finish();
    assert!(st.success(), "restored server failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    assert!(!err.contains("warning"), "{err}");
    lines.extend(restored);
    assert_eq!(lines, reference, "the server's output differs from an uninterrupted run's");
}

/// Sends a redis command (RESP) on `s` and expects `reply`.
fn redis(s: &mut TcpStream, args: &[&str], reply: &str) {
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd += &format!("${}\r\n{a}\r\n", a.len());
    }
    s.write_all(cmd.as_bytes()).unwrap();
    let mut got = vec![0u8; reply.len()];
    s.read_exact(&mut got).unwrap_or_else(|e| panic!("no reply to {args:?}: {e}"));
    assert_eq!(String::from_utf8_lossy(&got), reply, "{args:?}");
}

/// redis-server, a program nobody here wrote, checkpointed with `mig checkpoint --exit`
/// right after answering a client and restored by `mig restart`: the client goes on
/// on the same connection (its keys there), and nothing is said.
#[test]
fn redis_keeps_its_connected_client_across_a_restart() {
    require_root("TCP repair mode takes CAP_NET_ADMIN");
    let server = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].into_iter().map(Path::new).find(|p| p.exists());
    let server = server.expect("no redis-server: install it (./scripts/setup.sh does)");
    let dir = tempdir("redis");
    let image = dir.join("redis.mig");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let l = ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].iter().fold(Launch::new(server, &dir), |l, a| l.arg(a));
    let p = l.clone_with("MIG_IMAGE", &image).start();
    let connect = || {
        let s = wait_until("redis listening", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).ok());
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    let mut a = connect();
    redis(&mut a, &["SET", "k", "v1"], "+OK\r\n");
    redis(&mut a, &["INCR", "n"], ":1\r\n");
    redis(&mut a, &["INCR", "n"], ":2\r\n");
    let (st, _, err) = output(&mut mig_cmd(&["checkpoint", &p.pid().to_string(), "--exit", "--to", image.to_str().unwrap()]));
    assert!(st.success(), "{err}");
    assert!(!err.contains("warning"), "{err}");
    p.finish();
    let r = Launch::new(&mig(), &dir).bare().arg("restart").arg(image.to_str().unwrap()).start();
    // Once it answers a new client, it runs.
    let mut b = connect();
    redis(&mut b, &["PING"], "+PONG\r\n");
    redis(&mut a, &["GET", "k"], "$2\r\nv1\r\n");
    redis(&mut a, &["INCR", "n"], ":3\r\n");
    b.write_all(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n").unwrap();
    let (_, st, err) = r.finish();
    assert!(st.success(), "{st:?} {err}");
    assert!(!err.contains("mig:"), "{err}");
}

/// Local TCP ends on 127.0.0.1:`port` in TIME_WAIT (`/proc/net/tcp`, state 06).
fn lingering_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()) && l.split_whitespace().nth(3) == Some("06")).count()
}

/// A listener set up without `SO_REUSEADDR` whose server closed a connection first:
/// that connection lingers in TIME_WAIT on the port, and the kernel would refuse the
/// restored listener its port for a minute. The restore (as root, CAP_NET_ADMIN) ends
/// the lingering connection and binds the port again; clients are served as before.
#[test]
fn a_listener_comes_back_on_its_port_while_a_closed_connection_lingers() {
    require_root("ending the TIME_WAIT connections on the port takes CAP_NET_ADMIN");
    let dir = tempdir("tcp_time_wait");
    let l = Launch::new(&compile("tcp_echo"), &dir).arg("noreuse");
    let image = dir.join("echo.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    let port = read_port(&dir);
    let mut a = tcp(port);
    expect_line(&mut p, "conn 1 tcp");
    echo(&mut a, "alpha");
    expect_line(&mut p, "step 1 ");
    a.write_all(b"close\n").unwrap();
    let mut bye = [0u8; 4];
    a.read_exact(&mut bye).unwrap();
    assert_eq!(&bye, b"bye\n");
    expect_line(&mut p, "closed 1");
    drop(a);
    wait_until("the server's end of the closed connection in TIME_WAIT", Duration::from_secs(5), || (lingering_on(port) > 0).then_some(()));
    p.signal(libc::SIGUSR1);
    wait_for_file(&image);
    p.kill();
    assert!(lingering_on(port) > 0, "the closed connection lingers while the server is restored");

    let mut r = l.clone_with("MIG_RESTORE", &image).start();
    // Listening again once restored (or refused: then the finish below says why).
    let connected = wait_until("the restored listener", Duration::from_secs(10), || match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => Some(Some(s)),
        Err(_) if !alive(r.pid()) => Some(None),
        Err(_) => None,
    });
    let Some(mut b) = connected else {
        let (out, st, err) = r.finish();
        panic!("the restored server does not listen: {st:?}\nstderr: {err}\nstdout: {out:?}");
    };
    b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    expect_line(&mut r, "conn 2 tcp");
    echo(&mut b, "beta");
    expect_line(&mut r, "step 2 ");
    b.write_all(b"quit\n").unwrap();
    b.read_exact(&mut bye).unwrap();
    let (out, st, err) = r.finish();
    assert!(st.success(), "restored server failed: {st:?}\nstderr: {err}\nstdout: {out:?}");
    assert!(!err.contains("warning"), "{err}");
}

// ---- 5. Terminals ----

/// Runs `tty_raw` on a pty until `input?`, types "abc", and returns all it printed.
fn tty_run(p: (Proc, std::fs::File)) -> (Vec<String>, std::process::ExitStatus) {
    let (mut p, mut master) = p;
    p.until("input?");
    master.write_all(b"abc").unwrap();
    let (lines, st, _) = p.finish();
    (lines, st)
}

/// The protocol lines (the pty also carries stderr); none may contain "\r" (raw
/// mode: no output processing).
fn protocol(lines: &[String]) -> Vec<String> {
    for l in lines {
        assert!(!l.contains('\r'), "output processing is on (not raw mode any more): {l:?} in {lines:?}");
    }
    lines.iter().filter(|l| l.starts_with("step ") || l.starts_with("done ") || *l == "input?" || l.starts_with("FAIL")).cloned().collect()
}

#[test]
fn raw_terminal_mode_is_kept_under_a_new_pty() {
    let dir = tempdir("tty_raw");
    let l = Launch::new(&compile("tty_raw"), &dir);
    let (out, st) = tty_run(l.clone_bare().start_on_pty());
    assert!(st.success(), "uninterrupted run failed: {out:?}");
    let reference = protocol(&out);
    assert!(reference.last().unwrap().starts_with("done "), "{reference:?}");

    let image = dir.join("tty.mig");
    let (mut p, _master) = l.clone_with("MIG_IMAGE", &image).start_on_pty();
    checkpoint_at(&mut p, 5, &image);
    p.line().expect("the subject keeps running after a checkpoint");
    let first = p.kill();
    assert!(!first.iter().any(|l| l.contains("warning")), "terminals are supported: {first:?}");
    let before = protocol(&first);

    // Another pty, in the default (cooked) mode: the saved raw mode must be applied.
    let (out, st) = tty_run(l.clone_with("MIG_RESTORE", &image).start_on_pty());
    assert!(st.success(), "restored run failed: {st:?} {out:?}");
    assert_continues(&reference, &before, &protocol(&out));
}

#[test]
fn terminal_descriptors_without_a_terminal_become_dev_null() {
    let dir = tempdir("tty_none");
    let l = Launch::new(&compile("tty_raw"), &dir);
    let image = dir.join("tty.mig");
    let (mut p, _master) = l.clone_with("MIG_IMAGE", &image).start_on_pty();
    checkpoint_at(&mut p, 3, &image);
    p.kill();
    // No terminal at all: stdin /dev/null, stdout and stderr pipes, no controlling tty.
    let (out, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert_eq!(st.code(), Some(1), "the program must run on and notice, not crash: {st:?}\nstderr: {err}\nstdout: {out:?}");
    assert!(warns_about_fd(&err, 10), "a warning names descriptor 10: {err:?}");
    assert_eq!(out.last().map(String::as_str), Some("FAIL fd 10 is not a terminal (/dev/null)"), "stderr: {err}");
}

// ---- 6. memfd and shm ----

#[test]
fn memfd_and_shm_contents_and_shared_mappings() {
    let dir = tempdir("memfd_shm");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("/mig-test-{}-{nanos}", std::process::id());
    let shm = |suffix: &str| Path::new("/dev/shm").join(format!("{}-{suffix}", &name[1..]));
    let cleanup = || {
        let _ = std::fs::remove_file(shm("a"));
        let _ = std::fs::remove_file(shm("b"));
    };
    cleanup();
    let l = Launch::new(&compile("memfd_shm"), &dir).arg("40").arg(&name);
    let result = std::panic::catch_unwind(|| checkpoint_kill_restart_warnings(l, 6));
    let leftovers = (shm("a").exists(), shm("b").exists());
    cleanup();
    let (ckpt_err, _) = result.unwrap_or_else(|e| std::panic::resume_unwind(e));
    no_warnings(&ckpt_err);
    assert_eq!(leftovers, (false, false), "the restored program unlinks both shm objects at its end");
}

// ---- 7. Unsupported descriptors ----

#[test]
fn unsupported_descriptors_warn_and_come_back_broken() {
    let dir = tempdir("fd_unsupported");
    let l = Launch::new(&compile("fd_unsupported"), &dir).arg("12");
    let reference = reference(&l.clone_bare());
    let done = reference.last().unwrap().clone();
    assert!(done.ends_with(" netlink-works pidfd-works"), "{done}");

    // The checkpoint names the netlink socket (3), not the pidfd of the process itself
    // (4, made again for the restored process) nor the pipe, and the process goes on
    // to a normal end.
    let image = dir.join("u.mig");
    let mut p = l.clone_with("MIG_IMAGE", &image).start();
    checkpoint_at(&mut p, 4, &image);
    let (lines, st, err) = p.finish();
    assert!(st.success(), "the checkpointed process must go on: {st:?}\nstderr: {err}");
    assert_eq!(lines, reference, "a checkpoint must not change the run");
    assert!(warns_about_fd(&err, 3), "no warning about the netlink socket: {err:?}");
    assert!(!warns_about_fd(&err, 4), "a pidfd of the process itself is supported: {err:?}");
    assert!(!warns_about_fd(&err, 5) && !warns_about_fd(&err, 6), "the pipe is supported: {err:?}");

    // Restored: the steps go on unchanged, the netlink socket comes back broken, the
    // pidfd names the restored process, no crash.
    let (restored, st, err) = l.clone_with("MIG_RESTORE", &image).start().finish();
    assert!(st.success(), "restored run failed: {st:?}\nstderr: {err}\nstdout: {restored:?}");
    let (last, steps) = restored.split_last().expect("restored output");
    let (_, ref_steps) = reference.split_last().unwrap();
    let first = step_of(&steps[0]).unwrap();
    assert!((4..=5).contains(&first), "resumed at step {first}");
    let at = ref_steps.iter().position(|r| step_of(r) == Some(first)).unwrap();
    assert_eq!(&ref_steps[at..], steps);
    let digest = done.split(' ').nth(1).unwrap();
    assert_eq!(last, &format!("done {digest} netlink-broken pidfd-works"));
}
