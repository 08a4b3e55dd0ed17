//! The `realsense` source through the real librealsense (the pyrealsense2 wheel's build, made
//! linkable by scripts/setup-realsense.sh), playing synthetic recordings that
//! tests/peers/make_realsense_recording.py writes with librealsense's software device: on its
//! own, through `dtbridge run` and `dtbridge record` and a real livekit-server, and next to a
//! missing camera and a corrupt recording.

#![cfg(feature = "realsense")]

mod common;

use common::process::{Process, recorded_file, run_summary, write_operator_config};
use common::readers::messages;
use common::realsense::{
    COLOR, DEPTH, FPS, FRAMES, color_rgb, depth_pixels, make_recording, python,
};
use common::server::{TempDir, TestServer};
use dtbridge::codec::RosMessage;
use dtbridge::codec::ros::{CameraInfo, CompressedImage, Image, Imu};
use dtbridge::source::realsense::{RealsenseConfig, RealsenseSource};
use dtbridge::source::{Payload, Sample, Source};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The CameraInfo the ROS 2 driver publishes for these intrinsics (all but the header).
fn assert_info_matches(info: &CameraInfo, intrinsics: &Value, model: &str, frame_id: &str) {
    let get = |key: &str| intrinsics[key].as_f64().expect(key);
    let (fx, fy, cx, cy) = (get("fx"), get("fy"), get("ppx"), get("ppy"));
    assert_eq!((info.width as f64, info.height as f64), (get("width"), get("height")));
    assert_eq!(info.k, [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]);
    assert_eq!(info.p, [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(info.r, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    assert_eq!(info.distortion_model, model);
    let coeffs: Vec<f64> =
        intrinsics["coeffs"].as_array().unwrap().iter().map(|c| c.as_f64().unwrap()).collect();
    assert_eq!(info.d, coeffs);
    assert_eq!(info.header.frame_id, frame_id);
}

/// Mean and largest absolute difference of two equally long byte strings.
fn difference(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let diffs = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y));
    let (sum, max) = diffs.fold((0u64, 0u8), |(sum, max), d| (sum + d as u64, max.max(d)));
    (sum as f64 / a.len() as f64, max)
}

/// The source of `config`, its driver the one this build made.
fn source(config: RealsenseConfig, dir: &Path) -> RealsenseSource {
    RealsenseSource::new(config, dir).with_driver(env!("CARGO_BIN_EXE_dtbridge-realsense"))
}

fn config(text: &str) -> RealsenseConfig {
    let config: RealsenseConfig = toml::from_str(text).expect("a realsense config");
    config.validate().expect("valid");
    config
}

/// Everything the source delivers until it ends (at the end of the recording).
async fn play(source: RealsenseSource) -> Vec<Sample> {
    play_until(source, |_| false).await
}

/// What the source delivers until it ends or `enough` holds for the samples so far.
async fn play_until(source: RealsenseSource, enough: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    // As much room as the daemon's router gives its sources.
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(Box::new(source).run(tx, shutdown));
    let mut samples = Vec::new();
    let collect = async {
        while let Some(sample) = rx.recv().await {
            samples.push(sample);
            if enough(&samples) {
                _ = stop.send(true);
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), collect).await.expect("the recording ends");
    drop(rx);
    run.await.unwrap().expect("the source ends without error");
    samples
}

fn on<'a>(samples: &'a [Sample], topic: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|s| &*s.topic == topic).collect()
}

fn image(sample: &Sample) -> &Image {
    match &sample.payload {
        Payload::Image(image) => image,
        other => panic!("{}: not a raw image: {other:?}", sample.topic),
    }
}

fn camera_info(sample: &Sample) -> CameraInfo {
    match &sample.payload {
        Payload::Encoded(bytes) => CameraInfo::from_cdr(bytes).expect("a CameraInfo"),
        other => panic!("{}: not encoded: {other:?}", sample.topic),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_plays_every_frame_once_with_its_intrinsics() {
    let test = "a_recording_plays_every_frame_once_with_its_intrinsics";
    let Some(python) = python(test) else { return };
    let dir = TempDir::new();
    for format in ["rgb8", "bgr8"] {
        let file = dir.0.join(format!("{format}.db3"));
        let intrinsics = make_recording(&python, &file, format, &[]);
        let c = config(&format!(
            "name = \"cam\"\nfile = \"{format}.db3\"\nrealtime = false\ncolor_format = \"{format}\"\n"
        ));
        let samples = play(source(c, &dir.0)).await;

        // Every frame once, in order, bit for bit.
        let depth = on(&samples, "/camera/camera/depth/image_rect_raw");
        let color = on(&samples, "/camera/camera/color/image_raw");
        assert_eq!((depth.len() as u64, color.len() as u64), (FRAMES, FRAMES), "{format}");
        for (frame, sample) in depth.iter().enumerate() {
            let image = image(sample);
            assert_eq!((image.encoding.as_str(), image.step), ("16UC1", DEPTH.0 * 2));
            assert!(image.data == depth_pixels(frame as u64), "{format}: depth frame {frame}");
            assert_eq!(image.header.frame_id, "camera_depth_optical_frame");
        }
        for (frame, sample) in color.iter().enumerate() {
            let image = image(sample);
            assert_eq!(image.encoding, format);
            let mut expected = color_rgb(frame as u64);
            if format == "bgr8" {
                expected.chunks_mut(3).for_each(|px| px.swap(0, 2));
            }
            assert!(image.data == expected, "{format}: color frame {frame}");
            assert_eq!(image.header.frame_id, "camera_color_optical_frame");
        }

        // Stamps: rebased to now, 1/30 s apart as recorded; the sample's is the header's.
        let stamps: Vec<u64> = depth.iter().map(|s| s.stamp_ns).collect();
        for (frame, (stamp, sample)) in stamps.iter().zip(&depth).enumerate() {
            let offset_ms = (stamp - stamps[0]) as f64 / 1e6;
            let recorded_ms = frame as f64 * 1000.0 / FPS as f64;
            assert!((offset_ms - recorded_ms).abs() < 0.01, "frame {frame}: {offset_ms} ms");
            assert_eq!(image(sample).header.stamp.to_nanos() as u64, *stamp);
        }
        let age_s = (dtbridge::codec::ros::Time::now().to_nanos() as u64 - stamps[0]) as f64 / 1e9;
        assert!(age_s < 20.0, "the first stamp is {age_s} s old");

        // Camera infos: one per image, from the recorded intrinsics.
        let depth_infos = on(&samples, "/camera/camera/depth/camera_info");
        let color_infos = on(&samples, "/camera/camera/color/camera_info");
        assert_eq!((depth_infos.len() as u64, color_infos.len() as u64), (FRAMES, FRAMES));
        let info = camera_info(depth_infos[0]);
        // Inverse Brown-Conrady -> plumb_bob, coefficients as recorded (zeros here).
        assert_info_matches(&info, &intrinsics["depth"], "plumb_bob", "camera_depth_optical_frame");
        let info = camera_info(color_infos[FRAMES as usize - 1]);
        assert_info_matches(&info, &intrinsics["color"], "plumb_bob", "camera_color_optical_frame");
        assert!(info.d.iter().any(|c| *c != 0.0), "color distortion coefficients: {:?}", info.d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_recording_plays_again_and_again_without_a_gap() {
    let test = "a_looping_recording_plays_again_and_again_without_a_gap";
    let Some(python) = python(test) else { return };
    let dir = TempDir::new();
    make_recording(&python, &dir.0.join("loop.db3"), "rgb8", &[]);
    let c = config("name = \"cam\"\nfile = \"loop.db3\"\nrealtime = false\nloop = true\n");
    let depth_topic = "/camera/camera/depth/image_rect_raw";
    let wanted = FRAMES as usize * 5 / 2;
    let samples = play_until(source(c, &dir.0), |samples| {
        samples.iter().filter(|s| &*s.topic == depth_topic).count() >= wanted
    })
    .await;

    // Frames 0..29, 0..29, 0..14: each pass whole, in order; the stamps run on across passes.
    let depth: Vec<Image> = on(&samples, depth_topic).iter().map(|s| image(s).clone()).collect();
    assert_eq!(depth.len(), wanted);
    let frames = consecutive_frames(&depth, depth_pixels, "depth");
    assert_eq!(frames[0], 0, "depth: frames {frames:?}");
    for (pair, frame) in depth.windows(2).zip(&frames[1..]) {
        let gap_ms =
            (pair[1].header.stamp.to_nanos() - pair[0].header.stamp.to_nanos()) as f64 / 1e6;
        match frame {
            0 => assert!(gap_ms > 0.0, "{gap_ms} ms from the end of a pass to the next"),
            _ => assert!((gap_ms - 1000.0 / FPS as f64).abs() < 0.01, "{gap_ms} ms to {frame}"),
        }
    }
    let color = on(&samples, "/camera/camera/color/image_raw");
    assert!(color.len() + 1 >= wanted, "{} color frames for {wanted} depth", color.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imu_filters_and_alignment_on_a_recording() {
    let test = "imu_filters_and_alignment_on_a_recording";
    let Some(python) = python(test) else { return };
    let dir = TempDir::new();
    let recorded = make_recording(&python, &dir.0.join("imu.db3"), "rgb8", &["--imu-hz", "200"]);
    let imu_samples = recorded["imu_samples"].as_u64().unwrap() as usize;
    assert!(imu_samples >= 150, "{recorded}");
    let play_with = |keys: &str| {
        let c = config(&format!("name = \"cam\"\nfile = \"imu.db3\"\nrealtime = false\n{keys}"));
        play(source(c, &dir.0))
    };

    // The IMU at its own rate (its own pipeline), every sample once with its values.
    let samples = play_with("imu = true\n").await;
    assert_eq!(on(&samples, "/camera/camera/depth/image_rect_raw").len() as u64, FRAMES);
    for (topic, frame_id) in [
        ("/camera/camera/gyro/sample", "camera_gyro_optical_frame"),
        ("/camera/camera/accel/sample", "camera_accel_optical_frame"),
    ] {
        let imu: Vec<Imu> = on(&samples, topic)
            .iter()
            .map(|s| match &s.payload {
                Payload::Encoded(bytes) => Imu::from_cdr(bytes).expect("an Imu"),
                other => panic!("{topic}: {other:?}"),
            })
            .collect();
        assert_eq!(imu.len(), imu_samples, "{topic}");
        for (n, message) in imu.iter().enumerate() {
            // As the writer computes them: in double precision, stored as f32.
            let n = n as f64;
            let (value, zero) = match topic.contains("gyro") {
                true => (&message.angular_velocity, &message.linear_acceleration),
                false => (&message.linear_acceleration, &message.angular_velocity),
            };
            let expected = match topic.contains("gyro") {
                true => [0.01 * n, -0.02, 0.5],
                false => [0.0, -9.81, 0.001 * n],
            };
            let expected = expected.map(|v| f64::from(v as f32));
            assert_eq!([value.x, value.y, value.z], expected, "{topic} {n}");
            assert_eq!([zero.x, zero.y, zero.z], [0.0; 3]);
            assert_eq!(message.orientation_covariance[0], -1.0, "no orientation");
            assert_eq!(message.header.frame_id, frame_id);
        }
    }

    // Decimation by 2, then the spatial and temporal filters: half the resolution, and the
    // camera info of the decimated stream.
    let samples =
        play_with("color = false\ndecimation = 2\nspatial_filter = true\ntemporal_filter = true\n")
            .await;
    let depth = on(&samples, "/camera/camera/depth/image_rect_raw");
    let infos = on(&samples, "/camera/camera/depth/camera_info");
    assert_eq!((depth.len() as u64, infos.len() as u64), (FRAMES, FRAMES));
    for (sample, info) in depth.iter().zip(&infos) {
        let (image, info) = (image(sample), camera_info(info));
        assert_eq!((image.width, image.height), (DEPTH.0 / 2, DEPTH.1 / 2));
        assert_eq!((info.width, info.height), (image.width, image.height));
        let fx = recorded["depth"]["fx"].as_f64().unwrap();
        assert!((info.k[0] - fx / 2.0).abs() < 0.5, "decimated fx {} of {fx}", info.k[0]);
    }

    // Depth aligned to color: the color resolution, frame and intrinsics.
    let samples = play_with("align_depth = true\n").await;
    let aligned = on(&samples, "/camera/camera/aligned_depth_to_color/image_raw");
    let infos = on(&samples, "/camera/camera/aligned_depth_to_color/camera_info");
    assert_eq!((aligned.len() as u64, infos.len() as u64), (FRAMES, FRAMES));
    assert!(on(&samples, "/camera/camera/depth/image_rect_raw").is_empty());
    for (sample, info) in aligned.iter().zip(&infos) {
        let image = image(sample);
        assert_eq!(
            (image.width, image.height, image.encoding.as_str()),
            (COLOR.0, COLOR.1, "16UC1")
        );
        assert!(image.data.chunks(2).any(|px| px != [0, 0]), "aligned depth is all holes");
        let info = camera_info(info);
        assert_info_matches(&info, &recorded["color"], "plumb_bob", "camera_color_optical_frame");
    }
}

/// Which recording frame each image is (exact pixel match), checking that they follow each
/// other with none missing, wrapping around at the end of the recording.
fn consecutive_frames(images: &[Image], expected: impl Fn(u64) -> Vec<u8>, what: &str) -> Vec<u64> {
    let candidates: Vec<Vec<u8>> = (0..FRAMES).map(expected).collect();
    let frames: Vec<u64> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let found = candidates.iter().position(|c| *c == image.data);
            found.unwrap_or_else(|| panic!("{what} image {i} is none of the recorded frames"))
                as u64
        })
        .collect();
    for pair in frames.windows(2) {
        assert_eq!(pair[1], (pair[0] + 1) % FRAMES, "{what}: frames {frames:?}");
    }
    frames
}

#[test]
fn run_and_record_a_recording_through_livekit_server() {
    let test = "run_and_record_a_recording_through_livekit_server";
    let Some(python) = python(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let dir = TempDir::new();
    let intrinsics = make_recording(&python, &dir.0.join("rgb.db3"), "rgb8", &[]);
    make_recording(&python, &dir.0.join("bgr.db3"), "bgr8", &[]);
    // Read as fast as the bridge takes them, into track queues that hold the whole
    // recording: every frame must be recorded, once, in order.
    let robot = dir.0.join("robot.toml");
    std::fs::write(
        &robot,
        "[livekit]\nroom = \"realsense\"\nidentity = \"robot\"\n\n\
         [[sources]]\ntype = \"realsense\"\nname = \"camera\"\nfile = \"rgb.db3\"\n\
         realtime = false\n\n\
         [[sources]]\ntype = \"realsense\"\nname = \"raw\"\nfile = \"bgr.db3\"\n\
         realtime = false\nnamespace = \"/raw\"\ndepth = false\ncolor_format = \"bgr8\"\n\n\
         [[routes]]\ntopic = \"/camera/camera/depth/image_rect_raw\"\ncompression = \"zstd\"\n\
         zstd_level = 1\nqueue_depth = 64\n\n\
         [[routes]]\ntopic = \"/camera/camera/color/image_raw\"\nimage_format = \"jpeg\"\n\
         jpeg_quality = 90\nqueue_depth = 64\n\n\
         [[routes]]\ntopic = \"/**\"\nqueue_depth = 64\n",
    )
    .unwrap();
    let operator = write_operator_config(&dir.0, "realsense");

    let recorder = Process::spawn(&["record"], &operator, &server);
    assert!(recorder.wait_for("joined room", 1, Duration::from_secs(30)), "dtbridge record joins");
    let publisher = Process::spawn(&["run"], &robot, &server);
    let played = publisher.wait_for("end of the recording", 2, Duration::from_secs(60));
    assert!(played, "both recordings play to their end");
    // The tracks send what their queues hold (30 small frames each) within this.
    std::thread::sleep(Duration::from_secs(2));
    let (ok, run_log) = publisher.stop();
    assert!(ok, "dtbridge run: {run_log}");
    eprintln!("dtbridge run:\n{run_log}");
    std::thread::sleep(Duration::from_millis(500));
    let (ok, log) = recorder.stop();
    assert!(ok, "dtbridge record: {log}");
    let file = recorded_file(&dir.0.join("out"));
    let decode = |topic: &str| -> Vec<(u64, Image)> {
        let decoded = messages(&file, topic).into_iter();
        decoded.map(|(time, data)| (time, Image::from_cdr(&data).expect("an Image"))).collect()
    };

    // Depth: zstd on the way, stored decompressed: every frame once, in order, bit for bit,
    // stamped 1/30 s apart as recorded.
    let depth = decode("/camera/camera/depth/image_rect_raw");
    assert_eq!(depth.len() as u64, FRAMES, "depth frames recorded\n{run_log}");
    let images: Vec<Image> = depth.iter().map(|(_, image)| image.clone()).collect();
    let frames = consecutive_frames(&images, depth_pixels, "depth");
    assert_eq!(frames[0], 0, "depth: frames {frames:?}");
    let mut frame_at_stamp = std::collections::HashMap::new();
    for ((publish_time, image), frame) in depth.iter().zip(&frames) {
        let stamp = image.header.stamp.to_nanos() as u64;
        assert_eq!(*publish_time, stamp / 1_000_000 * 1_000_000, "publish time = stamp (ms)");
        frame_at_stamp.insert(stamp, *frame);
    }
    for (pair, frame) in depth.windows(2).zip(&frames[1..]) {
        let gap_ms =
            (pair[1].1.header.stamp.to_nanos() - pair[0].1.header.stamp.to_nanos()) as f64 / 1e6;
        assert!((gap_ms - 1000.0 / FPS as f64).abs() < 0.01, "{gap_ms} ms before frame {frame}");
    }

    // Color as JPEG q90: the frame of the depth image with the same stamp, within a few levels.
    let color = messages(&file, "/camera/camera/color/image_raw");
    assert_eq!(color.len() as u64, FRAMES, "JPEG color frames recorded\n{run_log}");
    let mut matched = 0;
    for (_, data) in &color {
        let jpeg = CompressedImage::from_cdr(data).expect("a CompressedImage");
        // image_transport names the JPEG pixel format bgr8 whatever the source order.
        assert_eq!(jpeg.format, "rgb8; jpeg compressed bgr8");
        let decoded = image::load_from_memory(&jpeg.data).expect("a JPEG").to_rgb8();
        assert_eq!(decoded.dimensions(), COLOR);
        let Some(&frame) = frame_at_stamp.get(&(jpeg.header.stamp.to_nanos() as u64)) else {
            continue;
        };
        let (mean, max) = difference(decoded.as_raw(), &color_rgb(frame));
        assert!(mean < 1.5 && max < 16, "color frame {frame}: mean {mean:.2}, max {max}");
        matched += 1;
    }
    assert_eq!(matched, color.len(), "color frames with a depth twin");

    // Raw color: exact, every frame once, in order.
    let raw = decode("/raw/color/image_raw");
    assert_eq!(raw.len() as u64, FRAMES, "raw color frames recorded\n{run_log}");
    assert!(raw.iter().all(|(_, image)| image.encoding == "bgr8"));
    let images: Vec<Image> = raw.into_iter().map(|(_, image)| image).collect();
    let frames = consecutive_frames(
        &images,
        |frame| {
            let mut bgr = color_rgb(frame);
            bgr.chunks_mut(3).for_each(|px| px.swap(0, 2));
            bgr
        },
        "raw color",
    );
    assert_eq!(frames[0], 0, "raw color: frames {frames:?}");

    // Camera infos: the recorded intrinsics.
    for (topic, stream, frame_id) in [
        ("/camera/camera/depth/camera_info", "depth", "camera_depth_optical_frame"),
        ("/camera/camera/color/camera_info", "color", "camera_color_optical_frame"),
    ] {
        let infos = messages(&file, topic);
        assert_eq!(infos.len() as u64, FRAMES, "{topic}");
        for (_, data) in infos {
            let info = CameraInfo::from_cdr(&data).expect("a CameraInfo");
            assert_info_matches(&info, &intrinsics[stream], "plumb_bob", frame_id);
        }
    }
}

#[test]
fn a_missing_camera_and_a_corrupt_recording_leave_other_sources_running() {
    let test = "a_missing_camera_and_a_corrupt_recording_leave_other_sources_running";
    let dir = TempDir::new();
    std::fs::write(dir.0.join("corrupt.db3"), b"SQLite format 3\0 but not really".repeat(100))
        .unwrap();
    let robot = dir.0.join("robot.toml");
    std::fs::write(
        &robot,
        "[livekit]\nbackend = \"loopback\"\n\n\
         [[sources]]\ntype = \"synthetic\"\nname = \"telemetry\"\nnamespace = \"/robot\"\n\
         depth = false\ncolor = false\nimu_hz = 50\n\n\
         [[sources]]\ntype = \"realsense\"\nname = \"front\"\nserial = \"000000000000\"\n\
         retry_interval_s = 1\n\n\
         [[sources]]\ntype = \"realsense\"\nname = \"replay\"\nfile = \"corrupt.db3\"\n\
         namespace = \"/replay\"\n\n\
         [[routes]]\ntopic = \"/**\"\n",
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dtbridge"));
    command
        .args(["run", "--summary-json"])
        .arg(dir.0.join("run-summary.json"))
        .arg("-c")
        .arg(&robot)
        .env_remove("LIVEKIT_URL")
        .env("RUST_LOG", "dtbridge=info")
        .env("NO_COLOR", "1");
    let process = Process::watch(command);
    std::thread::sleep(Duration::from_secs(5));
    let (ok, log) = process.stop();
    assert!(ok, "{test}: dtbridge run failed: {log}");

    // The missing camera: named, with the serial asked for, tried again and again.
    let missing = "source 'front': no RealSense camera with serial number '000000000000' is \
                   connected (connected: none); trying again in 1 s";
    let attempts = log.matches(missing).count();
    assert!(attempts >= 3, "{attempts} attempts to open the missing camera in 5 s:\n{log}");
    // The corrupt recording: named with its file, once (it would fail the same way again).
    let corrupt = log.lines().filter(|l| l.contains("source 'replay'")).collect::<Vec<_>>();
    assert_eq!(corrupt.len(), 1, "{log}");
    assert!(
        corrupt[0].contains("corrupt.db3") && corrupt[0].contains("the other sources keep running"),
        "{log}"
    );
    // The synthetic IMU kept its 50 Hz throughout: it made that many frames over the run
    // (the bridge's summary counts those sent and those its keep-latest queue replaced).
    let summary = run_summary(&dir.0.join("run-summary.json"));
    let imu = &summary.topics["/robot/imu"];
    let made = (imu.frames + imu.dropped) as f64;
    let elapsed_s = summary.elapsed_s;
    assert!(made >= 45.0 * elapsed_s, "{made} IMU frames in {elapsed_s} s:\n{log}");
}
