//! What the integration tests share: where cargo put the built library.

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
