//! What the integration tests share: where cargo put the built library.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;

/// `target/<profile>`, the directory of the library built with these tests.
pub fn profile_dir() -> PathBuf {
    // The test binary is target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_owned()
}

/// The built `libvirnodesuspend.so` or `.a` (`cargo test` builds only the Rust library
/// for its tests: `cargo build` first, as scripts/test does).
pub fn built(file: &str) -> PathBuf {
    let path = profile_dir().join(file);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build` first",
        path.display()
    );
    path
}
