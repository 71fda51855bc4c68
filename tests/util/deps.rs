//! The Go-built peers of `scripts/test-deps.sh` (kube-apiserver, etcd, crane, regctl,
//! regsync, distribution v3's registry, ggcr-registry, cosign): where the tests find them, and a loud
//! failure naming the script when one is not there.

use std::path::{Path, PathBuf};

/// The folder the script links the binaries from: `$RELSYNC_TEST_DEPS`, else
/// `<repo>/target/test-deps/bin` (the script's default, and its last line of output).
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("RELSYNC_TEST_DEPS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/bin"),
    }
}

/// The path of peer `name`, or a panic that says why it is missing: the reason the script
/// recorded (`<name>.missing`, e.g. a module the Go proxy refused), or that the script has
/// not been run.
pub fn binary(name: &str) -> PathBuf {
    let dir = bin_dir();
    let path = dir.join(name);
    if path.is_file() {
        return path;
    }
    match std::fs::read_to_string(dir.join(format!("{name}.missing"))) {
        Ok(why) => panic!("{name} is missing: {}", why.trim()),
        Err(_) => panic!(
            "{} is missing: run scripts/test-deps.sh (it builds {name} from its Go module; \
             .ci/run calls it before cargo test)",
            path.display()
        ),
    }
}
