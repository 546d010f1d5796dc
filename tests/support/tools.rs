//! Host tools and privileges the tests need. `qemu/setup-host.sh` installs every tool; a test
//! that still cannot find one (or needs root and is not) fails when `CI` is set, and otherwise
//! says loudly that it skipped its check.

use std::process::Command;

/// Whether the tests run in CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Skips (with a SKIP line, returning false) or, under CI, fails: `what` is missing.
pub fn missing(what: &str) -> bool {
    assert!(
        !in_ci(),
        "{what}, and CI is set: run qemu/setup-host.sh (no test may skip its check in CI)"
    );
    eprintln!("SKIP: {what} (run qemu/setup-host.sh; under CI this fails)");
    false
}

/// True when `tool` runs; see the module docs for when it is not there.
pub fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "command -v {tool} || test -x /sbin/{tool} || test -x /usr/sbin/{tool}"
        ))
        .output()
        .is_ok_and(|o| o.status.success());
    ok || missing(&format!("{tool} is not installed"))
}

/// True when the tests run as root; see the module docs for when they do not.
pub fn root(why: &str) -> bool {
    rustix::process::geteuid().is_root() || missing(&format!("not root, which {why} needs"))
}

/// Runs a tool with the sbin directories on PATH and collects what it printed.
fn tool_output(tool: &str, args: &[&str]) -> std::process::Output {
    let path = std::env::var("PATH").unwrap_or_default();
    Command::new(tool)
        .args(args)
        .env("PATH", format!("{path}:/sbin:/usr/sbin"))
        .output()
        .unwrap()
}

/// Runs a tool (looking in the sbin directories too); panics with its output on failure.
pub fn run(tool: &str, args: &[&str]) {
    let out = tool_output(tool, args);
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a tool and returns stdout.
pub fn output(tool: &str, args: &[&str]) -> String {
    let out = tool_output(tool, args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}
