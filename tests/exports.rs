//! What the shared library shows the dynamic linker: its SONAME and only the functions the
//! header declares, unversioned (so that, preloaded, it interposes libvirt's versioned
//! private symbols). The list of exports is the header's, read by `scripts/exports`, which
//! also checks the Debian symbols file and the manual page against it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn succeeded(program: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn tool_output(program: &str, args: &[&str]) -> String {
    let library = common::built("libvirnodesuspend.so");
    let output = Command::new(program)
        .args(args)
        .arg(&library)
        .output()
        .unwrap();
    succeeded(program, output)
}

fn exports_script(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/exports");
    let output = Command::new(&script).args(args).output().unwrap();
    succeeded("scripts/exports", output)
}

#[test]
fn exactly_the_header_s_functions_are_exported_unversioned() {
    let declared = exports_script(&["list"]);
    let declared: Vec<&str> = declared.lines().collect();
    assert!(
        declared.contains(&"virNodeSuspend"),
        "the header's functions: {declared:?}"
    );
    let symbols = tool_output("nm", &["-D", "--defined-only", "--format=posix"]);
    let mut names: Vec<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names.sort();
    assert_eq!(names, declared, "exported symbols:\n{symbols}");
}

#[test]
fn symbols_file_and_manual_page_cover_every_export() {
    exports_script(&["--check"]);
}

#[test]
fn soname_is_libvirnodesuspend_so_0() {
    let dynamic = tool_output("readelf", &["-d"]);
    assert!(
        dynamic.contains("Library soname: [libvirnodesuspend.so.0]"),
        "dynamic section:\n{dynamic}"
    );
}
