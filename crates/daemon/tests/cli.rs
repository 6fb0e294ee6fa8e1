//! The command line without a running daemon: version, unreachable daemon, unknown services, drain
//! bookkeeping that a daemon started later picks up.

use std::process::{Command, Output};

fn nsbeacon(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nsbeacon"))
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("run nsbeacon")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_config(dir: &std::path::Path, http_port: u16) -> std::path::PathBuf {
    let path = dir.join("nsbeacon.toml");
    std::fs::write(
        &path,
        format!(
            r#"state_dir = "{state}"

[backend]
kind = "bird"
socket = "{dir}/bird.ctl"

[http]
listen = "127.0.0.1:{http_port}"

[[service]]
name = "dns"
announce = ["anycast_dns"]

[[service.check]]
name = "soa"
type = "query"
target = "127.0.0.1:53"
qname = "example.com."
qtype = "SOA"
"#,
            state = dir.join("state").display(),
            dir = dir.display(),
        ),
    )
    .expect("write config");
    path
}

#[test]
fn version_and_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_nsbeacon"))
        .arg("--version")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("nsbeacon {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_nsbeacon"))
        .arg("--help")
        .output()
        .expect("run");
    let help = text(&out);
    for command in [
        "run",
        "check-config",
        "status",
        "probe",
        "drain",
        "undrain",
        "--config",
    ] {
        assert!(
            help.contains(command),
            "{command} missing from --help:\n{help}"
        );
    }
}

#[test]
fn status_without_a_daemon_fails_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A port nothing listens on: bind, note it, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let config = write_config(dir.path(), port);
    let out = nsbeacon(&config, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot reach nsbeacon") && text(&out).contains("is it running"),
        "{}",
        text(&out)
    );
}

#[test]
fn drain_and_undrain_are_stored_and_unknown_services_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), 9);
    let out = nsbeacon(&config, &["drain", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nosuch") && text(&out).contains("dns"));

    let out = nsbeacon(&config, &["drain", "dns", "--reason", "disk swap"]);
    assert!(out.status.success(), "{}", text(&out));
    let store = nsbeacon::drain::DrainStore::open(&dir.path().join("state")).expect("store");
    assert_eq!(
        store.get("dns").map(|d| d.reason),
        Some("disk swap".to_owned())
    );

    let out = nsbeacon(&config, &["drain"]);
    assert!(out.status.success(), "{}", text(&out));
    let store = nsbeacon::drain::DrainStore::open(&dir.path().join("state")).expect("store");
    assert!(store.all().is_some(), "drain of all services not stored");

    let out = nsbeacon(&config, &["undrain"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = nsbeacon(&config, &["undrain", "dns"]);
    assert!(out.status.success(), "{}", text(&out));
    let store = nsbeacon::drain::DrainStore::open(&dir.path().join("state")).expect("store");
    assert!(store.all().is_none());
    assert!(store.get("dns").is_none());
}

#[test]
fn check_config_says_where_the_backend_is_reached() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), 9);
    let out = nsbeacon(&config, &["check-config"]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = format!(
        "OK (1 service(s), 1 check(s), backend bird over its control socket {}/bird.ctl, no decision files \
         (birdc configure re-disables))",
        dir.path().display()
    );
    assert!(text(&out).contains(&expected), "{}", text(&out));

    let bird = std::fs::read_to_string(&config).expect("read config");
    let backend = format!(
        "kind = \"bird\"\nsocket = \"{}/bird.ctl\"",
        dir.path().display()
    );
    for (table, expected) in [
        (
            "kind = \"frr\"".to_owned(),
            "backend frr over bgpd's vty socket /run/frr/bgpd.vty, announcing through the kernel-route gate \
             (proto 53))"
                .to_owned(),
        ),
        (
            "kind = \"frr\"\nvia = \"vtysh\"\nargs = [\"--vty_socket\", \"/run/frr-a\"]".to_owned(),
            "backend frr through /usr/bin/vtysh --vty_socket /run/frr-a, announcing through the kernel-route \
             gate (proto 53))"
                .to_owned(),
        ),
    ] {
        let frr = bird
            .replace(&backend, &table)
            .replace("\"anycast_dns\"", "\"203.0.113.53/32\"");
        assert_ne!(frr, bird);
        std::fs::write(&config, frr).expect("write config");
        let out = nsbeacon(&config, &["check-config"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains(&expected), "{}", text(&out));
    }
}

/// Runs `nsbeacon -c CONFIG ARGS`, killing it if it has not exited within `deadline`: a hang must fail
/// the test, not stall the suite.
fn nsbeacon_within(
    config: &std::path::Path,
    args: &[&str],
    deadline: std::time::Duration,
) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsbeacon"))
        .arg("-c")
        .arg(config)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nsbeacon");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap");
            panic!(
                "nsbeacon {args:?} on {} did not exit within {deadline:?}: {}",
                config.display(),
                text(&out)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn mkfifo(path: &std::path::Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

#[test]
fn check_config_refuses_a_fifo_or_device_as_the_config_file_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("nsbeacon.toml");
    mkfifo(&fifo);
    let deadline = std::time::Duration::from_secs(5);
    for (path, kind) in [
        (fifo.as_path(), "a FIFO (named pipe)"),
        (std::path::Path::new("/dev/zero"), "a character device"),
    ] {
        let out = nsbeacon_within(path, &["check-config"], deadline);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let expected = format!(
            "the config file: {} is {kind}, not a regular file (hint: give the path of a plain file",
            path.display()
        );
        assert!(text(&out).contains(&expected), "{}", text(&out));
    }
}

#[test]
fn check_config_refuses_a_fifo_or_device_as_zones_file_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("zones.fifo");
    mkfifo(&fifo);
    let config = write_config(dir.path(), 9);
    let base = std::fs::read_to_string(&config).expect("read config");
    for (zones, kind) in [
        (fifo.display().to_string(), "a FIFO (named pipe)"),
        ("/dev/zero".to_owned(), "a character device"),
    ] {
        let serial = format!(
            "\n[[service.check]]\nname = \"serial\"\ntype = \"serial\"\nlocal = \"127.0.0.1\"\n\
             reference = \"192.0.2.1\"\nmax_lag = 3\nzones_file = \"{zones}\"\n"
        );
        std::fs::write(&config, format!("{base}{serial}")).expect("write config");
        let out = nsbeacon_within(
            &config,
            &["check-config"],
            std::time::Duration::from_secs(5),
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let expected = format!(
            "service[0].check[1].zones_file: cannot read the zones file: {zones} is {kind}, not a regular file"
        );
        assert!(text(&out).contains(&expected), "{}", text(&out));
    }
}

#[test]
fn check_config_on_a_non_utf8_file_says_so_not_permissions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), 9);
    let mut bytes = std::fs::read(&config).expect("read config");
    bytes.extend_from_slice(b"# \xff\n");
    std::fs::write(&config, bytes).expect("write config");
    let out = nsbeacon(&config, &["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is not UTF-8 text: invalid byte 0xff at line "),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("permissions"), "{}", text(&out));
}
