//! `dtbridge` as a child process, the way users run it.

use super::server::{API_KEY, API_SECRET, TestServer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `dtbridge` command, killed if the test ends early.
pub struct Process(pub Child);

impl Process {
    /// `dtbridge ARGS -c CONFIG` joined to `server`, logging at info to a pipe.
    pub fn spawn(args: &[&str], config: &Path, server: &TestServer) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_dtbridge"))
            .args(args)
            .arg("-c")
            .arg(config)
            .env("LIVEKIT_URL", server.url())
            .env("LIVEKIT_API_KEY", API_KEY)
            .env("LIVEKIT_API_SECRET", API_SECRET)
            .env("RUST_LOG", "dtbridge=info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Process(child)
    }

    /// SIGTERM, then the exit status and stderr.
    pub fn stop(mut self) -> (bool, String) {
        Command::new("kill").arg(self.0.id().to_string()).status().unwrap();
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap());
        let output = child.wait_with_output().unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stderr).to_string())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        _ = self.0.kill();
        _ = self.0.wait();
    }
}

/// The only `.mcap` file in `dir`.
pub fn recorded_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// `operator.toml` in `dir`: `dtbridge record` in `room`, writing to `dir/out`.
pub fn write_operator_config(dir: &Path, room: &str) -> PathBuf {
    let path = dir.join("operator.toml");
    let text = format!(
        "[livekit]\nroom = \"{room}\"\nidentity = \"operator\"\n\n[record]\noutput_dir = \"out\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}
