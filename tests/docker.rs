//! docker/compose.yaml's demo for real, on a Docker Engine: the images built from source with
//! the Dockerfiles users build (scripts/docker-images.sh), `docker compose --profile demo up`
//! on a network of the test's own (internal: no route out). One demo records every frame the
//! robot reports sending and stops gracefully: the MCAP file on the host is complete, indexed,
//! owned by the configured user, and read alike by the independent readers. Another restarts
//! the server mid-stream: robot and operator carry on.
//!
//! Needs Docker with the compose plugin and a Debian 12 base (scripts/setup-docker.sh) and the
//! ROS 2 wheels (DTBRIDGE_ROS2_PYTHON: the local ROS base is made from them when no registry
//! answers); scripts/test.sh provides all of them. Docker's own networks keep the traffic
//! between the test's containers, so it runs in scripts/netns-run.sh like the rest.

mod common;

use common::process::{recorded_file, recorded_so_far, run_summary};
use common::readers::{messages, read_mcap};
use common::server::{API_KEY, API_SECRET, TempDir, skip};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The recording's owner: a user that is not root, as the host user would be.
const RECORDING_UID: u32 = 4242;
/// The topics the demo robot's synthetic camera publishes that the test checks.
const CAMERA_TOPICS: [&str; 3] = [
    "/camera/camera/color/image_raw",
    "/camera/camera/depth/image_rect_raw",
    "/camera/camera/color/camera_info",
];
const CHATTER: &str = "/chatter";
/// The topics whose progress the tests follow in the operator's log: the camera's and the
/// talker's.
const FOLLOWED_TOPICS: [&str; 4] = [CAMERA_TOPICS[0], CAMERA_TOPICS[1], CAMERA_TOPICS[2], CHATTER];

/// A directory for the recording, owned by [`RECORDING_UID`] as the host user's would be.
fn recordings_dir() -> TempDir {
    let recordings = TempDir::new();
    std::os::unix::fs::chown(&recordings.0, Some(RECORDING_UID), Some(RECORDING_UID)).unwrap();
    recordings
}

/// One `docker compose` project of the demo profile, taken down when dropped.
struct Demo {
    project: String,
    env: Vec<(&'static str, String)>,
}

impl Demo {
    /// The demo project `dtbridge-test-PID-NAME`, recording to `recordings`.
    fn new(name: &str, recordings: &Path) -> Demo {
        let (server_image, dtbridge_image) = images();
        Demo {
            project: format!("dtbridge-test-{}-{name}", std::process::id()),
            env: vec![
                ("DTBRIDGE_IMAGE", dtbridge_image.clone()),
                ("LIVEKIT_SERVER_IMAGE", server_image.clone()),
                ("LIVEKIT_API_KEY", API_KEY.to_string()),
                ("LIVEKIT_API_SECRET", API_SECRET.to_string()),
                ("DTBRIDGE_RECORDINGS", recordings.display().to_string()),
                ("DTBRIDGE_UID", RECORDING_UID.to_string()),
                ("DTBRIDGE_GID", RECORDING_UID.to_string()),
            ],
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/compose.yaml");
        let mut command = Command::new("docker");
        command
            .args(["compose", "-f"])
            .arg(compose)
            .args(["-p", &self.project, "--profile", "demo"])
            .args(args)
            .envs(self.env.iter().map(|(key, value)| (key, value)));
        command
    }

    /// Starts `services` (and what they depend on) in the background, from the built images.
    fn up(&self, services: &[&str]) {
        let mut args = vec!["up", "-d", "--no-build", "--pull", "never"];
        args.extend(services);
        self.run(&args);
    }

    /// Runs `docker compose ARGS`; panics with its output and the services' logs on failure.
    fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("run docker compose");
        if !output.status.success() {
            panic!(
                "docker compose {}: {}\n{}\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr),
                self.logs("")
            );
        }
        output
    }

    /// The logs of `service` (all services when empty).
    fn logs(&self, service: &str) -> String {
        let mut args = vec!["logs", "--no-color", "--no-log-prefix"];
        if !service.is_empty() {
            args.push(service);
        }
        let output = self.command(&args).output().expect("docker compose logs");
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    }

    /// `docker inspect` of `service`'s container, formatted.
    fn inspect(&self, service: &str, format: &str) -> String {
        let id = String::from_utf8(self.run(&["ps", "-a", "-q", service]).stdout).unwrap();
        let output = Command::new("docker")
            .args(["inspect", "-f", format, id.trim()])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Waits until `service` has logged `text`; panics with its log after `within`.
    fn wait_logged(&self, service: &str, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.logs(service).contains(text) {
            assert!(
                Instant::now() < deadline,
                "{service} did not log {text:?}:\n{}",
                self.logs("")
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Asserts that each of `services` has exited with 0 (as on SIGTERM it must).
    fn assert_exited_cleanly(&self, services: &[&str]) {
        for service in services {
            assert_eq!(
                self.inspect(service, "{{.State.ExitCode}}"),
                "0",
                "{service} did not exit 0 on SIGTERM:\n{}",
                self.logs(service)
            );
        }
    }

    /// How many `/chatter` messages the talker says it sent.
    fn talker_sent(&self) -> u64 {
        let talker = self.logs("demo-talker");
        talker
            .lines()
            .find_map(|line| line.strip_prefix("sent ")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("the talker did not say how much it sent:\n{talker}"))
    }

    /// Waits until the operator's progress line shows at least `counts[i]` frames of each
    /// topic; panics with the logs after `within`.
    fn wait_recorded(&self, topics: &[&str], counts: &[u64], within: Duration) -> Vec<u64> {
        let deadline = Instant::now() + within;
        loop {
            let log = self.logs("demo-operator");
            let now: Vec<u64> = topics.iter().map(|t| recorded_so_far(&log, t)).collect();
            if now.iter().zip(counts).all(|(now, want)| now >= want) {
                return now;
            }
            if Instant::now() >= deadline {
                panic!(
                    "after {within:?} recorded {now:?} of {topics:?}, want {counts:?}:\n{}",
                    self.logs("")
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        _ = self.command(&["down", "--volumes", "--remove-orphans", "-t", "30"]).output();
    }
}

/// `std_msgs/String` CDR's text: encapsulation, length (with the NUL), text, NUL.
fn cdr_string(data: &[u8]) -> String {
    let len = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
    String::from_utf8(data[8..8 + len - 1].to_vec()).expect("UTF-8 text")
}

/// The numbers of the talker's messages (`hello N`) in the recording, in order.
fn chatter_numbers(file: &Path) -> Vec<u64> {
    messages(file, CHATTER)
        .iter()
        .map(|(_, data)| {
            let text = cdr_string(data);
            text.strip_prefix("hello ").and_then(|n| n.parse().ok()).expect(&text)
        })
        .collect()
}

/// The recording in `dir`, checked complete: owned by the configured user, with a summary and
/// a chunk index.
fn complete_recording(dir: &Path) -> std::path::PathBuf {
    let file = recorded_file(dir);
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), RECORDING_UID, "the recording's owner");
    let bytes = std::fs::read(&file).unwrap();
    let summary = mcap::Summary::read(&bytes).unwrap().expect("a complete file has a summary");
    assert!(!summary.chunk_indexes.is_empty(), "the file is not indexed");
    file
}

/// The test's prerequisites, or a loud skip (a failure in CI) for the first one missing.
fn ready(test: &str) -> bool {
    if std::env::var_os("DTBRIDGE_ROS2_PYTHON").is_none() {
        skip(test, "DTBRIDGE_ROS2_PYTHON is not set (scripts/test.sh exports it)");
        return false;
    }
    let docker = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|out| out.status.success())
        && Command::new("docker").arg("info").output().is_ok_and(|out| out.status.success());
    if !docker {
        skip(test, "no Docker Engine with the compose plugin (scripts/setup-docker.sh)");
    }
    docker
}

/// The images of this checkout (scripts/docker-images.sh), built once for every test:
/// (livekit-server, dtbridge).
fn images() -> &'static (String, String) {
    static IMAGES: OnceLock<(String, String)> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let started = Instant::now();
        let output = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/docker-images.sh"))
            .arg("test")
            .output()
            .expect("run scripts/docker-images.sh");
        assert!(
            output.status.success(),
            "scripts/docker-images.sh: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = String::from_utf8(output.stdout).unwrap();
        let [server, dtbridge] = printed.lines().collect::<Vec<_>>()[..] else {
            panic!("scripts/docker-images.sh printed {printed:?}, not two image names");
        };
        eprintln!("images built in {:?}", started.elapsed());
        (server.to_string(), dtbridge.to_string())
    })
}

/// The demo as a user runs it, operator first: the recording holds every frame the robot says
/// it sent, camera and ROS 2 alike, and a graceful stop leaves it complete.
#[test]
fn docker_compose_demo_records_what_the_robot_sent() {
    const TEST: &str = "docker_compose_demo_records_what_the_robot_sent";
    if !ready(TEST) {
        return;
    }
    let Some(python) = common::readers::python(TEST) else { return };
    let started = Instant::now();
    let recordings = recordings_dir();
    let demo = Demo::new("demo", &recordings.0);
    // The operator first, so that it is subscribed before the robot's first frame.
    demo.up(&["demo-operator"]);
    demo.wait_logged("demo-operator", "joined room", Duration::from_secs(120));
    demo.up(&["demo-robot"]);

    let topics = FOLLOWED_TOPICS;
    demo.wait_recorded(&topics, &[30, 30, 5, 30], Duration::from_secs(180));

    // SIGTERM, as `docker compose stop` sends it: the robot first, then the operator once it
    // has recorded all that the robot reports sending (its --summary-json).
    demo.run(&["stop", "-t", "30", "demo-robot", "demo-talker"]);
    demo.assert_exited_cleanly(&["demo-robot", "demo-talker"]);
    let report = recordings.0.join("robot-summary.json");
    demo.run(&["cp", "demo-robot:/home/dtbridge/summary.json", report.to_str().unwrap()]);
    let robot = run_summary(&report).topics;
    let sent: Vec<u64> = topics.iter().map(|topic| robot[*topic].frames).collect();
    demo.wait_recorded(&topics, &sent, Duration::from_secs(60));
    demo.run(&["stop", "-t", "30"]);
    demo.assert_exited_cleanly(&["demo-operator"]);
    let talker_sent = demo.talker_sent();
    demo.run(&["down", "--volumes", "-t", "30"]);
    eprintln!("stopped after {:?}; the robot sent {sent:?} of {topics:?}", started.elapsed());

    let file = complete_recording(&recordings.0);
    for (topic, sent) in topics.iter().zip(&sent) {
        let recorded = messages(&file, topic).len() as u64;
        assert_eq!(recorded, *sent, "{topic}: recorded of what the robot sent");
    }
    // The talker's messages from the first one the robot bridged on, in order, each once,
    // none missing.
    let chatter = chatter_numbers(&file);
    assert!(chatter.windows(2).all(|w| w[1] == w[0] + 1), "gaps or repeats: {chatter:?}");
    assert!(*chatter.last().unwrap() < talker_sent, "more than the talker sent ({talker_sent})");

    // The independent readers agree.
    let read = read_mcap(&python, &file);
    assert_eq!(read["has_summary"], true);
    let decoded: Vec<&str> = read["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["topic"] == CHATTER)
        .map(|m| m["decoded"]["data"].as_str().expect("a decoded std_msgs/String"))
        .collect();
    let expected: Vec<String> = chatter.iter().map(|n| format!("hello {n}")).collect();
    assert_eq!(decoded, expected, "/chatter as the independent readers decode it");
    eprintln!("{} /chatter of {talker_sent} sent; done in {:?}", chatter.len(), started.elapsed());
}

/// `docker compose restart` of the server mid-stream: robot and operator carry on without
/// being restarted, frames are recorded again, and the file is complete after the stop.
#[test]
fn docker_compose_demo_carries_on_when_the_server_restarts() {
    const TEST: &str = "docker_compose_demo_carries_on_when_the_server_restarts";
    if !ready(TEST) {
        return;
    }
    let recordings = recordings_dir();
    let demo = Demo::new("restart", &recordings.0);
    demo.up(&[]);

    let topics = FOLLOWED_TOPICS;
    let before = demo.wait_recorded(&topics, &[20, 20, 5, 20], Duration::from_secs(180));
    demo.run(&["restart", "demo-server"]);
    let again: Vec<u64> = before.iter().map(|n| n + 20).collect();
    demo.wait_recorded(&topics, &again, Duration::from_secs(120));
    for service in ["demo-robot", "demo-operator"] {
        assert_eq!(
            demo.inspect(service, "{{.State.Running}} {{.RestartCount}}"),
            "true 0",
            "{service} stopped or restarted across the server's restart:\n{}",
            demo.logs(service)
        );
    }
    demo.run(&["stop", "-t", "30"]);
    demo.assert_exited_cleanly(&["demo-robot", "demo-operator", "demo-talker"]);
    let talker_sent = demo.talker_sent();
    demo.run(&["down", "--volumes", "-t", "30"]);

    let file = complete_recording(&recordings.0);
    for topic in CAMERA_TOPICS {
        assert!(messages(&file, topic).len() >= 25, "{topic}: too few messages");
    }
    // In the order sent and each once; the server's restart leaves at most one gap.
    let chatter = chatter_numbers(&file);
    assert!(chatter.len() >= 40, "{} /chatter messages", chatter.len());
    assert!(chatter.windows(2).all(|w| w[0] < w[1]), "out of order or repeated: {chatter:?}");
    assert!(*chatter.last().unwrap() < talker_sent, "more than the talker sent ({talker_sent})");
    let gaps = chatter.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(gaps <= 1, "{gaps} gaps in /chatter: {chatter:?}");
}

/// Bad deployment input: each case exits non-zero at once with one line that says what is
/// wrong, instead of running on or being restarted without a word.
#[test]
fn docker_bad_input_fails_clearly() {
    const TEST: &str = "docker_bad_input_fails_clearly";
    if !ready(TEST) {
        return;
    }
    let recordings = TempDir::new();
    let demo = Demo::new("bad", &recordings.0);
    // (what is wrong, `docker compose run` arguments, a phrase the error line must hold)
    let cases: [(&str, &[&str], &str); 3] = [
        ("missing credential", &["-e", "LIVEKIT_API_SECRET=", "demo-robot"], "LIVEKIT_API_SECRET"),
        (
            "config not mounted",
            &["demo-robot", "run", "-c", "/etc/dtbridge/not-mounted.toml"],
            "/etc/dtbridge/not-mounted.toml",
        ),
        // --no-deps: the demo's server is not started, so its name resolves nowhere.
        ("unreachable server", &["demo-robot"], "demo-server"),
    ];
    for (what, args, phrase) in cases {
        let mut command = demo.command(&["run", "--rm", "--no-deps", "-T"]);
        let output = command.args(args).output().expect("docker compose run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|line| line.starts_with("error:")).collect();
        assert!(!output.status.success(), "{what}: exit 0\n{stderr}");
        assert!(
            errors.len() == 1 && errors[0].contains(phrase),
            "{what}: want one error line naming {phrase:?}:\n{stderr}"
        );
        eprintln!("{what}: {} ({})", errors[0], output.status);
    }
}
