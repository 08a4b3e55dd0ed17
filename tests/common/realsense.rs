//! RealSense recordings for the tests: written by librealsense itself (the pyrealsense2 wheel's
//! software device, tests/peers/make_realsense_recording.py), and the pixels it draws.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Frames in each test recording, and their rate.
pub const FRAMES: u64 = 30;
pub const FPS: u64 = 30;
pub const DEPTH: (u32, u32) = (64, 48);
pub const COLOR: (u32, u32) = (96, 72);

/// The venv python with pyrealsense2, or `None` after a loud skip (a failure in CI).
pub fn python(test: &str) -> Option<PathBuf> {
    super::venv_python(
        test,
        "DTBRIDGE_REALSENSE_PYTHON",
        "realsense-2.59.1/venv",
        "scripts/setup-realsense.sh",
    )
}

/// Writes a recording of `FRAMES` frames with color in `color_format`; returns the intrinsics
/// the writer gave each stream (`depth`, `color`).
pub fn make_recording(python: &Path, path: &Path, color_format: &str, extra: &[&str]) -> Value {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/make_realsense_recording.py");
    let output = Command::new(python)
        .arg(script)
        .arg(path)
        .args(["--depth", &format!("{}x{}", DEPTH.0, DEPTH.1)])
        .args(["--color", &format!("{}x{}", COLOR.0, COLOR.1)])
        .args(["--fps", &FPS.to_string(), "--frames", &FRAMES.to_string()])
        .args(["--color-format", color_format])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "make_realsense_recording.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("intrinsics as JSON")
}

/// Depth pixels of frame `frame` (from 0), as the recording writer draws them.
pub fn depth_pixels(frame: u64) -> Vec<u8> {
    let (w, h) = (DEPTH.0 as u64, DEPTH.1 as u64);
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            out.extend_from_slice(
                &((300 + (x * 7 + y * 13 + frame * 17) % 4000) as u16).to_le_bytes(),
            );
        }
    }
    out
}

/// Color pixels of frame `frame`, in RGB order.
pub fn color_rgb(frame: u64) -> Vec<u8> {
    let (w, h) = (COLOR.0 as u64, COLOR.1 as u64);
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let rgb =
                [x * 160 / w + frame, y * 160 / h + frame, (x + y) * 80 / (w + h) + 2 * frame];
            out.extend(rgb.map(|v| v as u8));
        }
    }
    out
}
