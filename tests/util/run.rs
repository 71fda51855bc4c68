//! Running the `relsync` binary and reading what it printed.

use std::path::Path;

/// `relsync ARGS` run in `dir` with `env` added, no `RUST_LOG`, `KUBECONFIG` or Git
/// identity inherited from the test's environment, no colour.
pub fn relsync_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_relsync"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .env_remove("GIT_COMMITTER_NAME")
        .env_remove("GIT_COMMITTER_EMAIL")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run(cmd.output().unwrap())
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub struct Run(pub std::process::Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("killed by a signal")
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout()))
    }
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// The verdict of policy rule `rule` in a `check -o json` report; panics, showing the
/// report, when it has none.
pub fn rule_verdict(report: &serde_json::Value, rule: &str) -> serde_json::Value {
    report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["rule"] == rule)
        .cloned()
        .unwrap_or_else(|| panic!("no {rule} verdict: {report:#}"))
}
