//! Secrets stay secret: `dtbridge check`, `run` and `record`, logging at the most verbose
//! level, through a real livekit-server, first with an API key and secret, then with ready
//! tokens; no byte they leave behind (stdout, stderr, the summaries, the recording) holds the
//! API key, the API secret or an access token.

mod common;

use common::process::{Process, write_operator_config};
use common::readers::log_times;
use common::server::{API_KEY, API_SECRET, TempDir, TestServer, ready_token};
use dtbridge::livekit::Grants;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Everything logged, every crate: a leak at any level is a leak.
const RUST_LOG: &str = "trace";

/// The header of the tokens livekit-server mints (`{"alg":"HS256","typ":"JWT"}`, base64url).
const SERVER_TOKEN_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The robot's topics (a synthetic camera without color).
const TOPICS: [&str; 3] = ["/cam/depth/image_rect_raw", "/cam/depth/camera_info", "/cam/imu"];

/// How the processes prove who they are.
#[derive(Debug, Clone, Copy)]
enum Credentials {
    /// `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET`: dtbridge mints its tokens.
    KeyAndSecret,
    /// `LIVEKIT_TOKEN`, one per process, minted here.
    ReadyToken,
}

/// One process's outputs, by name.
type Outputs = Vec<(String, Vec<u8>)>;

fn write_robot_config(dir: &Path) -> PathBuf {
    let path = dir.join("robot.toml");
    std::fs::write(
        &path,
        "[livekit]\nroom = \"secrets\"\nidentity = \"robot\"\n\n\
         [[sources]]\ntype = \"synthetic\"\nname = \"camera\"\nnamespace = \"/cam\"\n\
         width = 64\nheight = 48\nfps = 10\nimu_hz = 20\ncolor = false\n\n\
         [[routes]]\ntopic = \"/**\"\n",
    )
    .unwrap();
    path
}

/// `dtbridge ARGS -c CONFIG` logging everything, with `token` in place of the key and secret
/// when given, its stdout going to `stdout`.
fn command(
    args: &[&str],
    config: &Path,
    server: &TestServer,
    token: Option<&str>,
    stdout: &Path,
) -> Command {
    let mut command = Process::command_in(None, args, config, server);
    command.env("RUST_LOG", RUST_LOG).stdout(std::fs::File::create(stdout).unwrap());
    if let Some(token) = token {
        command
            .env("LIVEKIT_TOKEN", token)
            .env_remove("LIVEKIT_API_KEY")
            .env_remove("LIVEKIT_API_SECRET");
    }
    command
}

/// Runs `check`, then `record` and `run` until a few seconds of every track are recorded;
/// returns everything they wrote.
fn run_all(server: &TestServer, dir: &Path, credentials: Credentials) -> Outputs {
    let robot = write_robot_config(dir);
    let operator = write_operator_config(dir, "secrets");
    let tokens = match credentials {
        Credentials::KeyAndSecret => None,
        Credentials::ReadyToken => Some((
            ready_token("secrets", "robot", Grants::PUBLISHER, Duration::from_secs(3600)),
            ready_token("secrets", "operator", Grants::SUBSCRIBER, Duration::from_secs(3600)),
        )),
    };
    let robot_token = tokens.as_ref().map(|(robot, _)| robot.as_str());
    let operator_token = tokens.as_ref().map(|(_, operator)| operator.as_str());
    let mut outputs = Outputs::new();

    for (config, name) in [(&robot, "robot"), (&operator, "operator")] {
        let stdout = dir.join(format!("check-{name}.stdout"));
        let output = command(&["check"], config, server, robot_token, &stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "check {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        outputs.push((format!("check {name} stderr"), output.stderr));
    }

    let record_summary = dir.join("record-summary.json");
    let record_args = ["record", "--summary-json", record_summary.to_str().unwrap()];
    let record_stdout = dir.join("record.stdout");
    let recorder =
        Process::watch(command(&record_args, &operator, server, operator_token, &record_stdout));
    assert!(recorder.wait_for("joined room", 1, Duration::from_secs(60)), "{}", recorder.log());
    let run_summary = dir.join("run-summary.json");
    let run_args = ["run", "--summary-json", run_summary.to_str().unwrap()];
    let run_stdout = dir.join("run.stdout");
    let publisher = Process::watch(command(&run_args, &robot, server, robot_token, &run_stdout));
    // Progress lines name a topic once it is recorded: three of them are seconds of frames.
    let recorded = TOPICS
        .iter()
        .all(|topic| recorder.wait_for(&format!("| {topic} "), 3, Duration::from_secs(90)));
    let (run_ok, run_log) = publisher.stop();
    let (record_ok, record_log) = recorder.stop();
    assert!(recorded, "every track recorded\nrecorder:\n{record_log}\nrobot:\n{run_log}");
    assert!(run_ok && record_ok, "both stop cleanly\nrecorder:\n{record_log}\nrobot:\n{run_log}");
    // Logging everything is what makes this test mean something.
    for log in [&run_log, &record_log] {
        assert!(log.contains("TRACE") && log.contains("DEBUG"), "logs at every level:\n{log}");
    }
    outputs.push(("run stderr".into(), run_log.into_bytes()));
    outputs.push(("record stderr".into(), record_log.into_bytes()));

    // Every file they wrote: stdout, the summaries, the recording.
    for entry in std::fs::read_dir(dir).unwrap().chain(std::fs::read_dir(dir.join("out")).unwrap())
    {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|ext| ext != "toml") {
            outputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    let recording = common::process::recorded_file(&dir.join("out"));
    for topic in TOPICS {
        assert!(!log_times(&recording, topic).is_empty(), "{topic} in {}", recording.display());
    }
    outputs
}

/// `dtbridge run` refused by the server, whose answer quotes the token it refuses: a wrong
/// secret, or a ready token signed with one. Returns what it wrote.
fn refused(server: &TestServer, dir: &Path, credentials: Credentials) -> Outputs {
    const WRONG_SECRET: &str = "not-the-secret-not-the-secret-0123";
    let forged = livekit_api::access_token::AccessToken::with_api_key(API_KEY, WRONG_SECRET)
        .with_identity("robot")
        .with_grants(livekit_api::access_token::VideoGrants {
            room_join: true,
            room: "secrets".into(),
            ..Default::default()
        })
        .to_jwt()
        .unwrap();
    let robot = write_robot_config(dir);
    let stdout = dir.join("refused.stdout");
    let mut command = match credentials {
        Credentials::KeyAndSecret => {
            let mut command = command(&["run"], &robot, server, None, &stdout);
            command.env("LIVEKIT_API_SECRET", WRONG_SECRET);
            command
        }
        Credentials::ReadyToken => command(&["run"], &robot, server, Some(&forged), &stdout),
    };
    let output = command.stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "a wrong secret must not join:\n{stderr}");
    assert!(stderr.contains("rejected the access token (HTTP 401)"), "{stderr}");
    vec![
        ("refused run stderr".into(), output.stderr),
        ("refused run stdout".into(), std::fs::read(&stdout).unwrap()),
    ]
}

/// Where `needle` is in `haystack`: what precedes it, to find what wrote it.
fn find(haystack: &[u8], needle: &str) -> Option<String> {
    let at = haystack.windows(needle.len()).position(|window| window == needle.as_bytes())?;
    Some(String::from_utf8_lossy(&haystack[at.saturating_sub(300)..at]).into_owned())
}

#[test]
fn no_output_holds_the_api_secret_or_a_token() {
    let test = "no_output_holds_the_api_secret_or_a_token";
    let Some(server) = TestServer::start(test) else { return };
    // Every token starts with its header, the same for every token one library mints: those
    // minted here and by dtbridge (livekit-api), and those livekit-server refreshes
    // (golang-jwt). A token leaked whole, or cut after its header, is found by these.
    let sample = ready_token("secrets", "robot", Grants::PUBLISHER, Duration::from_secs(60));
    let header = sample.split('.').next().unwrap().to_string();
    let needles = [
        ("the API secret", API_SECRET.to_string()),
        ("a token minted by livekit-api", header),
        ("a token refreshed by livekit-server", SERVER_TOKEN_HEADER.to_string()),
    ];
    for credentials in [Credentials::KeyAndSecret, Credentials::ReadyToken] {
        let dir = TempDir::new();
        let mut outputs = run_all(&server, &dir.0, credentials);
        outputs.extend(refused(&server, &dir.0, credentials));
        let total: usize = outputs.iter().map(|(_, bytes)| bytes.len()).sum();
        eprintln!("{credentials:?}: {} outputs, {total} bytes searched", outputs.len());
        for (output, bytes) in &outputs {
            // The key is no secret (every token names it), but nothing needs to show it.
            for (what, needle) in needles.iter().chain([&("the API key", API_KEY.to_string())]) {
                if let Some(before) = find(bytes, needle) {
                    panic!("{credentials:?}: {output} holds {what}, after:\n{before}");
                }
            }
        }
    }
}
