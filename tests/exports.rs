//! What the shared library shows the dynamic linker: its SONAME and only the vir* API,
//! unversioned (so that, preloaded, it interposes libvirt's versioned private symbols).

mod common;

use std::process::Command;

const API: [&str; 11] = [
    "virNodeSuspend",
    "virNodeSuspendAbort",
    "virNodeSuspendGetBackend",
    "virNodeSuspendGetInfo",
    "virNodeSuspendGetLastError",
    "virNodeSuspendGetLastErrorCode",
    "virNodeSuspendGetLastErrorMessage",
    "virNodeSuspendGetTargetMask",
    "virNodeSuspendGetVersion",
    "virNodeSuspendResetLastError",
    "virNodeSuspendWait",
];

fn tool_output(program: &str, args: &[&str]) -> String {
    let library = common::built("libvirnodesuspend.so");
    let output = Command::new(program)
        .args(args)
        .arg(&library)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn only_the_vir_api_is_exported_unversioned() {
    let symbols = tool_output("nm", &["-D", "--defined-only", "--format=posix"]);
    let mut names: Vec<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names.sort();
    assert_eq!(names, API, "exported symbols:\n{symbols}");
}

#[test]
fn soname_is_libvirnodesuspend_so_0() {
    let dynamic = tool_output("readelf", &["-d"]);
    assert!(
        dynamic.contains("Library soname: [libvirnodesuspend.so.0]"),
        "dynamic section:\n{dynamic}"
    );
}
