//! The `patronus` command line: --version, --help, and bad configs refused
//! with one clear line and exit code 2 before anything starts.

use std::process::{Command, Output};

fn patronus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patronus"))
        .args(args)
        .output()
        .expect("patronus runs")
}

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("patronus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const VALID: &str = r#"[cores]
control = 0
workers = [0]
polling = "adaptive"

[[port]]
name = "lan"
role = "lan"
device = "net_null0"
next_hop_mac = "02:00:00:00:01:02"

[[port]]
name = "wan"
role = "wan"
device = "net_null1"
next_hop_mac = "02:00:00:00:02:02"
"#;

#[test]
fn version_prints_the_crate_version() {
    let out = patronus(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("patronus {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_lists_the_subcommands() {
    let out = patronus(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("check"), "{text}");
}

#[test]
fn check_accepts_a_valid_config() {
    let path = write_config("valid.toml", VALID);
    let out = patronus(&["check", "--config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));
}

#[test]
fn a_bad_config_exits_2_with_one_line_naming_field_and_line() {
    let path = write_config("bad.toml", &VALID.replace("02:00:00:00:02:02", "not-a-mac"));
    for sub in ["check", "run"] {
        let out = patronus(&[sub, "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{sub}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one line: {stderr}");
        assert!(
            lines[0].contains("bad.toml:16") && lines[0].contains("port[1].next_hop_mac"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("EAL"),
            "nothing is started for a bad config: {stderr}"
        );
    }
}

#[test]
fn a_toml_syntax_error_exits_2_with_its_line() {
    let path = write_config(
        "syntax.toml",
        &VALID.replace("control = 0", "control = = 0"),
    );
    let out = patronus(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("syntax.toml:2"));
}

#[test]
fn a_missing_config_file_exits_2() {
    let out = patronus(&["run", "--config", "/nonexistent/patronus.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
