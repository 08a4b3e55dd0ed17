//! `dtbridge check` and `dtbridge run` on bad input: one clear message naming the file and the
//! key, and the configuration exit status; never a panic.

mod common;

use common::server::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SOURCE: &str = "[[sources]]\ntype = \"synthetic\"\nname = \"cam\"\nnamespace = \"/cam\"\n";

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.0.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn dtbridge(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dtbridge"))
        .args(args)
        .arg("-c")
        .arg(config)
        .env_remove("LIVEKIT_URL")
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

/// Runs `dtbridge check` on `text` and returns its one error line.
fn config_error(text: &str) -> String {
    let dir = TempDir::new();
    let path = write(&dir, "bad.toml", text);
    let output = dtbridge(&["check"], &path);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(2), "exit status for config errors; stderr:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one message:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(errors[0].contains("bad.toml"), "names the file: {}", errors[0]);
    errors[0].to_string()
}

#[test]
fn malformed_toml() {
    let error = config_error("[[sources]\ntype = ");
    assert!(error.contains("not valid TOML"), "{error}");
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let error =
        config_error(&format!("{SOURCE}[[routes]]\ntopic = \"/cam/imu\"\ncompresion = \"zstd\"\n"));
    assert!(error.contains("routes[0]"), "{error}");
    assert!(error.contains("did you mean `compression`"), "{error}");
}

#[test]
fn wrong_type_names_the_key() {
    let error = config_error("[[sources]]\ntype = \"synthetic\"\nname = \"cam\"\nfps = \"fast\"\n");
    assert!(error.contains("sources[0].fps"), "{error}");
}

#[test]
fn unknown_source_type() {
    let error = config_error("[[sources]]\ntype = \"lidar\"\nname = \"x\"\n");
    assert!(error.contains("lidar"), "{error}");
}

#[test]
fn two_routes_producing_one_track() {
    let error = config_error(&format!(
        "{SOURCE}[[routes]]\ntopic = \"/cam/imu\"\ntrack = \"same\"\n[[routes]]\ntopic = \"/cam/depth/camera_info\"\ntrack = \"same\"\n"
    ));
    assert!(error.contains("both produce track 'same'"), "{error}");
}

#[test]
fn track_name_over_256_characters() {
    let error = config_error(&format!(
        "{SOURCE}[[routes]]\ntopic = \"/cam/imu\"\ntrack = \"{}\"\n",
        "t".repeat(300)
    ));
    assert!(error.contains("routes[0].track") && error.contains("300 characters"), "{error}");
}

#[test]
fn rate_must_be_positive() {
    for rate in ["0", "-5"] {
        let error = config_error(&format!(
            "{SOURCE}[[routes]]\ntopic = \"/cam/imu\"\nmax_rate_hz = {rate}\n"
        ));
        assert!(error.contains("routes[0].max_rate_hz"), "{error}");
    }
}

#[test]
fn zstd_level_out_of_range() {
    let error = config_error(&format!(
        "{SOURCE}[[routes]]\ntopic = \"/cam/imu\"\ncompression = \"zstd\"\nzstd_level = 40\n"
    ));
    assert!(error.contains("routes[0].zstd_level") && error.contains("1 to 22"), "{error}");
}

#[test]
fn image_option_on_a_non_image_topic() {
    let error = config_error(&format!(
        "{SOURCE}[[routes]]\ntopic = \"/cam/depth/camera_info\"\nimage_format = \"jpeg\"\n"
    ));
    assert!(error.contains("routes[0].image_format"), "{error}");
    assert!(error.contains("sensor_msgs/msg/CameraInfo"), "{error}");
}

#[test]
fn jpeg_quality_out_of_range() {
    let error = config_error(&format!(
        "{SOURCE}[[routes]]\ntopic = \"/cam/color/image_raw\"\nimage_format = \"jpeg\"\njpeg_quality = 0\n"
    ));
    assert!(error.contains("routes[0].jpeg_quality"), "{error}");
}

#[test]
fn missing_config_file() {
    let dir = TempDir::new();
    let output = dtbridge(&["check"], &dir.0.join("nope.toml"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope.toml: no such file"));
}

#[test]
fn check_prints_the_plan() {
    let dir = TempDir::new();
    let path = write(
        &dir,
        "good.toml",
        &format!(
            "{SOURCE}[[routes]]\ntopic = \"/cam/depth/image_rect_raw\"\ncompression = \"zstd\"\n[[routes]]\ntopic = \"/cam/color/image_raw\"\nimage_format = \"jpeg\"\n"
        ),
    );
    let output = dtbridge(&["check"], &path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(
        "cam:/cam/depth/image_rect_raw -> /cam/depth/image_rect_raw | sensor_msgs/msg/Image | cdr+zstd | zstd 3"
    ), "{stdout}");
    assert!(stdout.contains("| sensor_msgs/msg/CompressedImage | cdr | jpeg q80"), "{stdout}");
    assert!(stdout.contains("cam:/cam/imu ignored: no route matches"), "{stdout}");
}

#[test]
fn run_reports_a_missing_replay_file_and_keeps_the_other_sources() {
    let dir = TempDir::new();
    let path = write(
        &dir,
        "run.toml",
        &format!(
            "[livekit]\nbackend = \"loopback\"\n\n{SOURCE}imu_hz = 100\n[[sources]]\ntype = \"mcap\"\nname = \"replay\"\npath = \"missing.mcap\"\n[[routes]]\ntopic = \"/cam/imu\"\n"
        ),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_dtbridge"))
        .args(["run", "-c"])
        .arg(&path)
        .env_remove("LIVEKIT_URL")
        .env("RUST_LOG", "dtbridge=info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SIGTERM: the daemon unpublishes, leaves, prints its summary and exits 0.
    let status = Command::new("kill").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("source 'replay'") && stderr.contains("missing.mcap"), "{stderr}");
    let frames = stderr
        .lines()
        .find(|l| l.contains("/cam/imu <- /cam/imu"))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no summary line for /cam/imu:\n{stderr}"));
    assert!(frames > 50, "the synthetic source kept publishing: {frames} frames\n{stderr}");
}

#[test]
fn environment_overrides_apply_and_are_checked() {
    let dir = TempDir::new();
    let path = write(&dir, "env.toml", &format!("{SOURCE}[[routes]]\ntopic = \"/cam/imu\"\n"));
    let output = Command::new(env!("CARGO_BIN_EXE_dtbridge"))
        .args(["check", "-c"])
        .arg(&path)
        .env("DTBRIDGE_LIVEKIT__CONNECT_TIMEOUT_S", "-1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("livekit.connect_timeout_s"), "{stderr}");
}

#[test]
fn other_dtbridge_variables_are_not_overrides() {
    let dir = TempDir::new();
    let path = write(&dir, "vars.toml", &format!("{SOURCE}[[routes]]\ntopic = \"/cam/imu\"\n"));
    let output = Command::new(env!("CARGO_BIN_EXE_dtbridge"))
        .args(["check", "-c"])
        .arg(&path)
        .env("DTBRIDGE_SOMETHING_ELSE", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_realsense_source_needs_the_feature() {
    let text = "[[sources]]\ntype = \"realsense\"\nname = \"cam\"\nserial = \"123\"\n\n\
                [[routes]]\ntopic = \"/**\"\n";
    if cfg!(feature = "realsense") {
        let dir = TempDir::new();
        let output = dtbridge(&["check"], &write(&dir, "cam.toml", text));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("cam:/camera/camera/depth/image_rect_raw"), "{stdout}");
    } else {
        let error = config_error(text);
        assert!(error.contains("sources[0].type"), "{error}");
        assert!(error.contains("rebuild with --features realsense"), "{error}");
    }
    // With or without the feature, a bad value is named.
    let error = config_error(&text.replace("serial = \"123\"", "fps = 0"));
    let expected = if cfg!(feature = "realsense") { "sources[0].fps" } else { "sources[0].type" };
    assert!(error.contains(expected), "{error}");
}

/// Durations from the configuration and the command line: NaN, negative, infinite and
/// overflowing values are an error naming the key or option, never a panic.
#[test]
fn durations_out_of_range_are_errors_not_panics() {
    for value in ["1e300", "nan", "-1", "inf"] {
        let timeout = format!("[livekit]\nconnect_timeout_s = {value}\n\n{SOURCE}");
        let error = config_error(&timeout);
        assert!(error.contains("livekit.connect_timeout_s"), "{value}: {error}");

        let dir = TempDir::new();
        let record = "[livekit]\nbackend = \"loopback\"\n\n[record]\nmax_file_minutes = VALUE\n";
        let path = write(&dir, "operator.toml", &record.replace("VALUE", value));
        let output = dtbridge(&["record"], &path);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("record.max_file_minutes"), "{value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{value}: {stderr}");

        // `--option=VALUE`, so that "-1" is a value, not a flag.
        for (args, option) in [
            (vec!["demo", "--seconds=VALUE"], "--seconds"),
            (vec!["bench", "run", "--seconds=VALUE"], "--seconds"),
            (
                vec!["bench", "transport", "--url", "ws://127.0.0.1:9", "--duration=VALUE"],
                "--duration",
            ),
            (
                vec!["bench", "transport", "--url", "ws://127.0.0.1:9", "--case=1024@VALUE"],
                "--case",
            ),
        ] {
            let args: Vec<String> = args.iter().map(|arg| arg.replace("VALUE", value)).collect();
            let output = Command::new(env!("CARGO_BIN_EXE_dtbridge"))
                .args(&args)
                .env("LIVEKIT_API_KEY", "key")
                .env("LIVEKIT_API_SECRET", "secret")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            assert!(stderr.contains(option), "{args:?} names {option}: {stderr}");
        }
    }
}

/// `run` and `record` without a server URL are an error saying how to set one, not a room in
/// the process nobody can join; the in-process room must be asked for.
#[test]
fn without_a_url_run_and_record_say_how_to_set_one() {
    let dir = TempDir::new();
    let path = write(&dir, "robot.toml", &format!("{SOURCE}[[routes]]\ntopic = \"/cam/imu\"\n"));
    for command in ["run", "record"] {
        let output = dtbridge(&[command], &path);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("no server URL: set LIVEKIT_URL"), "{command}: {stderr}");
        assert!(stderr.contains("backend = \"loopback\""), "{command}: {stderr}");
    }
}

/// `check` covers `[record]`: a bad template is an error naming the key, as `record` reports it.
#[test]
fn check_covers_the_record_section() {
    let error = config_error(&format!("[record]\nfile_template = \"{{topik}}.mcap\"\n\n{SOURCE}"));
    assert!(error.contains("record.file_template"), "{error}");
    assert!(error.contains("unknown placeholder '{topik}'"), "{error}");
    let error =
        config_error(&format!("[record]\ntopic_template = \"{{room}}/{{track}}\"\n\n{SOURCE}"));
    assert!(error.contains("record.topic_template"), "{error}");
    let error = config_error(&format!("[record]\nmax_file_minutes = 0\n\n{SOURCE}"));
    assert!(error.contains("record.max_file_minutes"), "{error}");
}

/// The README's first command, `cargo run --release -- demo`, needs cargo to know which of the
/// package's binaries to run.
#[test]
fn cargo_run_runs_the_bridge() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    let manifest: toml::Table = toml::from_str(&manifest.unwrap()).unwrap();
    let bins = manifest["bin"].as_array().unwrap();
    assert!(bins.len() > 1, "one binary needs no default-run");
    assert_eq!(manifest["package"]["default-run"].as_str(), Some("dtbridge"));
}
