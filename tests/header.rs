//! The checked-in C header: current, and usable from C99, C++ and next to libvirt's own.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

const HEADER: &str = "include/virnodesuspend.h";

#[test]
fn header_matches_what_cbindgen_generates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_crate(dir)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let checked_in = fs::read(dir.join(HEADER)).unwrap();
    assert!(
        generated == checked_in,
        "{HEADER} is stale: run `cbindgen --config cbindgen.toml --crate virnodesuspend --output {HEADER} .` and commit it"
    );
}

/// Compiles `source` with `compiler` and `flags`, with `include/` on the include path.
fn compile(compiler: &str, flags: &[&str], name: &str, source: &str) {
    let dir = common::profile_dir().join("header-tests");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    fs::write(&file, source).unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let output = Command::new(compiler)
        .args(flags)
        .args([
            "-Wall",
            "-Wextra",
            "-pedantic",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(&include)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        output.status.success(),
        "{name} does not compile with {compiler} {flags:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const USES_THE_API: &str = r#"
int use(void);
int use(void)
{
    unsigned int mask;
    const virNodeSuspendError *err;
    if (virNodeSuspendGetTargetMask(&mask) < 0 ||
        virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60ULL, 0) < 0) {
        err = virNodeSuspendGetLastError();
        return err ? err->code : virNodeSuspendGetLastErrorCode();
    }
    virNodeSuspendResetLastError();
    return virNodeSuspendGetLastErrorMessage()[0] + (int)mask;
}
"#;

#[test]
fn header_compiles_alone_as_c99_where_libvirt_is_not_installed() {
    // An empty sysroot hides /usr/include/libvirt: the header's own enum is used.
    let sysroot = common::profile_dir().join("header-tests/empty-sysroot");
    fs::create_dir_all(&sysroot).unwrap();
    let sysroot = format!("--sysroot={}", sysroot.display());
    let source = format!(
        "#include <virnodesuspend.h>\nenum {{ LAST_IS_DEFINED = VIR_NODE_SUSPEND_TARGET_LAST }};\n{USES_THE_API}"
    );
    compile("cc", &["-std=c99", &sysroot], "alone.c", &source);
}

#[test]
fn header_compiles_alone_as_c99() {
    compile(
        "cc",
        &["-std=c99"],
        "alone-host.c",
        &format!("#include <virnodesuspend.h>\n{USES_THE_API}"),
    );
}

/// Compiles the header together with libvirt's, `ours_first` or not.
fn compile_beside_libvirt(ours_first: bool, name: &str) {
    assert!(
        Path::new("/usr/include/libvirt/libvirt.h").exists(),
        "libvirt-dev is needed for this test"
    );
    let (first, second) = ("<virnodesuspend.h>", "<libvirt/libvirt.h>");
    let (first, second) = if ours_first {
        (first, second)
    } else {
        (second, first)
    };
    let source = format!(
        "#include {first}\n#include {second}\n{USES_THE_API}\nint conn(void);\nint conn(void) {{ return virConnectOpen(0) != 0; }}\n"
    );
    compile("cc", &["-std=c99"], name, &source);
}

#[test]
fn header_compiles_after_libvirt_header() {
    compile_beside_libvirt(false, "libvirt-first.c");
}

#[test]
fn header_compiles_before_libvirt_header() {
    compile_beside_libvirt(true, "libvirt-second.c");
}

#[test]
fn header_compiles_as_cpp() {
    let source = format!("#include <virnodesuspend.h>\n{USES_THE_API}");
    compile("c++", &["-x", "c++", "-std=c++11"], "cpp.cpp", &source);
}
