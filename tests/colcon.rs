//! dtbridge as a ROS 2 package: a real `colcon build` of this checkout (colcon from PyPI,
//! scripts/setup-colcon.sh) in a workspace of the test's own, against the ROS 2 prefix of the
//! PyPI wheels (scripts/setup-ros2.sh, with ament_cmake). Then, in a shell that sourced the
//! workspace's install/setup.bash as a user does: the ament index finds the package's launch
//! files, configs and executable where `ros2 launch` and `ros2 run` look for them, and the
//! installed binary bridges rclpy's topics to a real livekit-server, where `dtbridge record`
//! records every message rclpy published. Needs `--features ros2` and scripts/ros2-env.sh's
//! environment (scripts/test.sh provides both), and runs in scripts/netns-run.sh's namespace.

#![cfg(feature = "ros2")]

mod common;

use common::process::{Process, recorded_file, run_summary, summary_json, write_operator_config};
use common::readers::read_mcap;
use common::ros2::{
    assert_suffix, domain_id, recorded, sourced, start_publisher, stream_once_recording,
};
use common::server::{TempDir, TestServer, skip};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Topics the publisher streams reliably: each must be recorded without a gap.
const STREAMED: [&str; 3] = ["/chatter", "/imu", "/pose"];

/// The colcon workspace `ws` with this checkout as `src/dtbridge`, built by `colcon build` as the
/// README says. Cargo builds into this test build's own target directory (outside the checkout)
/// with its profile, so that colcon reuses what `cargo test` compiled instead of starting cold.
fn colcon_build(colcon: &Path, ws: &Path) {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::os::unix::fs::symlink(checkout, ws.join("src/dtbridge")).unwrap();
    // target/<profile dir>/dtbridge; the dev profile's directory is `debug`.
    let binary = Path::new(env!("CARGO_BIN_EXE_dtbridge"));
    let profile_dir = binary.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let mut command = Command::new(colcon);
    command
        .current_dir(ws)
        .args(["build", "--packages-select", "dtbridge", "--cmake-args"])
        .arg(format!("-DDTBRIDGE_CARGO_PROFILE={profile}"))
        // The features of this test build, so that colcon's cargo build is this one and does
        // not replace the binaries the other tests run.
        .arg(format!(
            "-DDTBRIDGE_CARGO_FEATURES={}",
            if cfg!(feature = "realsense") { "ros2,realsense" } else { "ros2" }
        ))
        .env("CARGO_TARGET_DIR", target_dir);
    // The environment a user runs colcon in, without what `cargo test` set for this test:
    // build scripts (ring's, cc's) watch CARGO_MANIFEST_DIR and CARGO_PKG_*, and cargo would
    // rebuild them, and everything above them, for a value they never see.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_by_cargo_test = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_EXE_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"]
                .contains(&name.as_ref());
        if set_by_cargo_test {
            command.env_remove(name.as_ref());
        }
    }
    let started = Instant::now();
    let output = command.output().expect("run colcon");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "colcon build failed ({}):\n{log}", output.status);
    eprintln!("colcon build (profile {profile}) took {:?}:\n{log}", started.elapsed());
}

/// Where the ament index (ament_index_python, as `ros2 run` and `ros2 launch` use it) puts the
/// package: its prefix and its share directory.
fn ament_index(ws: &Path, ros_python: &Path) -> (PathBuf, PathBuf) {
    let script = "import json\n\
                  from ament_index_python.packages import get_package_prefix, get_package_share_directory\n\
                  print(json.dumps({'prefix': get_package_prefix('dtbridge'),\n\
                                    'share': get_package_share_directory('dtbridge')}))";
    let output =
        sourced(&ws.join("install/setup.bash"), ros_python).args(["-c", script]).output().unwrap();
    assert!(
        output.status.success(),
        "ament_index_python does not find dtbridge after sourcing install/setup.bash:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found: Value = serde_json::from_slice(&output.stdout).expect("JSON from ament_index");
    let path = |key: &str| PathBuf::from(found[key].as_str().expect(key));
    (path("prefix"), path("share"))
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// What `colcon build` installed, as the ament index finds it.
struct Installed {
    /// <prefix>/lib/dtbridge/dtbridge: what `ros2 run dtbridge dtbridge` runs.
    binary: PathBuf,
    /// <prefix>/share/dtbridge: launch/ and config/.
    share: PathBuf,
}

/// The ament index's answers are the workspace's install tree, laid out as `ros2 run` and
/// `ros2 launch` expect, and what the launch files start is the installed binary with the
/// `config:=` given.
fn check_install(ws: &Path, ros_python: &Path) -> Installed {
    let (prefix, share) = ament_index(ws, ros_python);
    let install = ws.join("install/dtbridge").canonicalize().unwrap();
    assert_eq!(prefix.canonicalize().unwrap(), install, "package prefix");
    assert_eq!(share.canonicalize().unwrap(), install.join("share/dtbridge"), "share directory");

    // `ros2 run dtbridge dtbridge`: the executables in <prefix>/lib/dtbridge.
    let lib = prefix.join("lib/dtbridge");
    // With RealSense, its camera driver beside the bridge, where dtbridge looks for it.
    let executables: &[&str] = if cfg!(feature = "realsense") {
        &["dtbridge", "dtbridge-realsense"]
    } else {
        &["dtbridge"]
    };
    assert_eq!(names(&lib), executables, "{}", lib.display());
    let binary = lib.join("dtbridge");
    let mode = std::fs::metadata(&binary).unwrap().permissions().mode();
    assert!(mode & 0o111 == 0o111, "{} is not executable ({mode:o})", binary.display());

    // `ros2 launch dtbridge bridge.launch.{py,xml}`: the files in <share>, as in the checkout;
    // the example configs beside them.
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(names(&share.join("launch")), ["bridge.launch.py", "bridge.launch.xml"]);
    for file in ["bridge.launch.py", "bridge.launch.xml"] {
        assert_eq!(
            std::fs::read(share.join("launch").join(file)).unwrap(),
            std::fs::read(checkout.join("launch").join(file)).unwrap(),
            "installed {file}"
        );
    }
    assert_eq!(names(&share.join("config")), names(&checkout.join("config")), "installed config/");

    // No `ros2 launch` exists as a wheel: tests/peers/launch_commands.py reads the installed
    // launch files (Python AST, XML) and substitutes `config:=`, as ros2 launch would.
    let config = share.join("config/robot-ros2.toml");
    let output = Command::new(ros_python)
        .arg(checkout.join("tests/peers/launch_commands.py"))
        .arg(share.join("launch"))
        .arg(format!("config={}", config.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let nodes: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(nodes.len(), 2, "one node per launch file: {nodes:?}");
    for node in &nodes {
        // Package "dtbridge", executable "dtbridge": <prefix>/lib/dtbridge/dtbridge above.
        assert_eq!(
            (&node["package"], &node["executable"]),
            (&json!("dtbridge"), &json!("dtbridge")),
            "{}",
            node["file"]
        );
        assert_eq!(node["args"], json!(["run", "-c", config]), "{}", node["file"]);
    }
    Installed { binary, share }
}

/// The bridge's configuration: the streamed topics and the latched one, every message kept.
fn robot_config(domain_id: u32) -> String {
    format!(
        "[livekit]\nroom = \"ros\"\nidentity = \"robot\"\n\n\
         [[sources]]\ntype = \"ros2\"\nname = \"ros\"\ndomain_id = {domain_id}\n\
         topics = [\"/chatter\", \"/imu\", \"/pose\", \"/robot_description\"]\n\
         discovery_interval_s = 0.5\nlatched_resend_s = 2\n\n\
         [[routes]]\ntopic = \"/**\"\nqueue_depth = 512\n"
    )
}

/// rclpy -> the installed `dtbridge run` (started by the sourced shell) -> livekit-server ->
/// `dtbridge record`: every streamed message from the first recorded one on is in the file, as
/// rclpy published it, and the file, the recorder's summary and the bridge's summary agree.
fn bridge_and_record(
    ws: &Path,
    installed: &Path,
    server: &TestServer,
    ros_python: &Path,
    python: &Path,
) {
    let dir = TempDir::new();
    let domain = domain_id(0);
    let robot = dir.0.join("robot.toml");
    std::fs::write(&robot, robot_config(domain)).unwrap();
    let operator = write_operator_config(&dir.0, "ros");

    let run_summary_path = dir.0.join("run-summary.json");
    let run_args = ["run", "--summary-json", run_summary_path.to_str().unwrap()];
    let bridge = Process::watch(Process::joined(
        sourced(&ws.join("install/setup.bash"), installed),
        &run_args,
        &robot,
        server,
    ));
    let publisher = start_publisher(ros_python, domain, &[]);
    let record_summary_path = dir.0.join("record-summary.json");
    let record_args = ["record", "--summary-json", record_summary_path.to_str().unwrap()];
    let recorder = Process::spawn(&record_args, &operator, server);
    let published = stream_once_recording(publisher, &recorder, "/robot_description");
    let (ok, run_log) = bridge.stop();
    assert!(ok, "installed dtbridge run: {run_log}");
    let (ok, record_log) = recorder.stop();
    assert!(ok, "dtbridge record: {record_log}");

    let file = recorded_file(&dir.0.join("out"));
    let seen = read_mcap(python, &file);
    assert_eq!(seen["profile"], "ros2");
    let topics = recorded(&seen);
    let bridged = run_summary(&run_summary_path).topics;
    let record_summary = summary_json(&record_summary_path);
    let recorded_frames: BTreeMap<&str, u64> = record_summary["summary"]["stats"]["tracks"]
        .as_array()
        .expect("tracks in the record summary")
        .iter()
        .filter_map(|track| Some((track["topic"].as_str()?, track["frames"].as_u64()?)))
        .collect();
    for topic in STREAMED {
        // The first message went out before the bridge subscribed; all the others arrive.
        let before = assert_suffix(topic, &published[topic], &topics[topic]);
        assert!(before <= 1, "{topic}: the first recorded message is published message {before}");
        let in_file = topics[topic].len() as u64;
        assert_eq!(recorded_frames.get(topic), Some(&in_file), "{topic}: record summary");
        assert_eq!(bridged[topic].frames, in_file, "{topic}: bridged (run summary) and recorded");
    }
    let description = &topics["/robot_description"];
    assert!(description.iter().all(|m| *m == published["/robot_description"][0]));
}

#[test]
fn colcon_build_installs_a_bridge_that_ros2_finds_and_that_bridges_rclpy() {
    let test = "colcon_build_installs_a_bridge_that_ros2_finds_and_that_bridges_rclpy";
    let Some(colcon) = common::ros2::colcon(test) else { return };
    let Some(ros_python) = common::ros2::python(test) else { return };
    let Some(python) = common::readers::python(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let prefixes = std::env::var("AMENT_PREFIX_PATH").unwrap_or_default();
    let ament_cmake = "share/ament_cmake/cmake/ament_cmakeConfig.cmake";
    if !prefixes.split(':').any(|prefix| Path::new(prefix).join(ament_cmake).is_file()) {
        let why = format!(
            "no ament_cmake in AMENT_PREFIX_PATH '{prefixes}': source scripts/ros2-env.sh \
             (its scripts/setup-ros2.sh installs ament_cmake into the ROS 2 prefix)"
        );
        return skip(test, &why);
    }
    let ws = TempDir::new();
    colcon_build(&colcon, &ws.0);
    let installed = check_install(&ws.0, &ros_python);
    // The installed ROS 2 example config is valid for the installed build.
    let config = installed.share.join("config/robot-ros2.toml");
    let output = sourced(&ws.0.join("install/setup.bash"), &installed.binary)
        .args(["check", "-c"])
        .arg(&config)
        .env("ROS_DOMAIN_ID", domain_id(1).to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "installed dtbridge check -c {}:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    bridge_and_record(&ws.0, &installed.binary, &server, &ros_python, &python);
}
