//! C programs linked against the library as an outside user links them: the shared library
//! found under its SONAME (libvirnodesuspend.so.0), and the static library.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Uses the whole API on an empty fake root (no backend available: mask 0).
const USES_THE_API: &str = r#"
#include <stdio.h>
#include <virnodesuspend.h>

int main(void)
{
    unsigned int mask = 99;
    const virNodeSuspendError *err;
    if (virNodeSuspendGetTargetMask(&mask) != 0 || mask != 0 || virNodeSuspendGetLastError())
        return 1;
    if (virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) != -1)
        return 2;
    err = virNodeSuspendGetLastError();
    printf("%d %d %d %s\n", err->code, err->domain, err->level, err->message);
    virNodeSuspendResetLastError();
    printf("%d %s\n", virNodeSuspendGetLastErrorCode(), virNodeSuspendGetLastErrorMessage());
    return 0;
}
"#;

/// Calls the library from a pthread key destructor, which runs after the thread's Rust
/// thread-locals are gone: the call must fail cleanly, not abort the process.
const CALLS_FROM_KEY_DESTRUCTOR: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <virnodesuspend.h>

static pthread_key_t key;
static int in_destructor = 0;

static void destructor(void *value)
{
    (void)value;
    in_destructor = virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 1);
}

static void *thread(void *arg)
{
    (void)arg;
    pthread_setspecific(key, &key);
    virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 1);
    return NULL;
}

int main(void)
{
    pthread_t t;
    pthread_key_create(&key, destructor);
    pthread_create(&t, NULL, thread, NULL);
    pthread_join(t, NULL);
    printf("survived %d\n", in_destructor);
    return 0;
}
"#;

const EXPECTED_API_OUTPUT: &str = "74 0 2 argument unsupported: Suspend-to-RAM\n0 no error\n";

fn scratch(name: &str) -> PathBuf {
    let dir = common::profile_dir().join("link-tests").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles `source` with the header and `link` arguments, runs it on an empty root with
/// no bus and no helpers (so no backend is available).
fn build_and_run(dir: &Path, source: &str, link: &[String]) -> String {
    fs::write(dir.join("program.c"), source).unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let built = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Werror", "-pthread", "-o"])
        .arg(dir.join("program"))
        .arg(dir.join("program.c"))
        .arg("-I")
        .arg(include)
        .args(link)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // Nothing of this machine's: an empty root, no system bus, no helpers on PATH.
    let root = dir.join("root");
    let empty_path = dir.join("empty-path");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&empty_path).unwrap();
    let ran = Command::new(dir.join("program"))
        .env("VIRNODESUSPEND_ROOT", &root)
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/virnodesuspend-test-bus",
        )
        .env("PATH", &empty_path)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{:?}: {}",
        ran.status,
        String::from_utf8_lossy(&ran.stderr)
    );
    String::from_utf8(ran.stdout).unwrap()
}

/// A directory holding the shared library under its link name and its SONAME, as
/// installed: `-lvirnodesuspend` links it, and the dynamic linker finds it at run time.
fn shared_library_args(dir: &Path) -> Vec<String> {
    let lib = dir.join("lib");
    fs::create_dir_all(&lib).unwrap();
    let built = common::built("libvirnodesuspend.so");
    for name in ["libvirnodesuspend.so", "libvirnodesuspend.so.0"] {
        std::os::unix::fs::symlink(&built, lib.join(name)).unwrap();
    }
    let lib = lib.display();
    vec![
        format!("-L{lib}"),
        "-lvirnodesuspend".into(),
        format!("-Wl,-rpath,{lib}"),
    ]
}

fn static_library_args() -> Vec<String> {
    let archive = common::built("libvirnodesuspend.a");
    // What the library needs from the system (`--print native-static-libs`): what the Rust
    // standard library needs from the C library (the D-Bus client is the library's own).
    let system = [
        "-lgcc_s",
        "-lutil",
        "-lrt",
        "-lpthread",
        "-lm",
        "-ldl",
        "-lc",
    ];
    std::iter::once(archive.display().to_string())
        .chain(system.map(String::from))
        .collect()
}

#[test]
fn program_linked_with_the_shared_library_runs() {
    let dir = scratch("shared");
    let args = shared_library_args(&dir);
    assert_eq!(
        build_and_run(&dir, USES_THE_API, &args),
        EXPECTED_API_OUTPUT
    );
}

#[test]
fn program_linked_with_the_static_library_runs() {
    let dir = scratch("static");
    assert_eq!(
        build_and_run(&dir, USES_THE_API, &static_library_args()),
        EXPECTED_API_OUTPUT
    );
}

#[test]
fn call_from_a_thread_key_destructor_fails_cleanly() {
    let dir = scratch("destructor");
    let args = shared_library_args(&dir);
    assert_eq!(
        build_and_run(&dir, CALLS_FROM_KEY_DESTRUCTOR, &args),
        "survived -1\n"
    );
}
