//! `dtbridge bench e2ee`: what end-to-end encryption costs per frame, in-process: a frame
//! sealed as `run` seals it before packetizing and opened as `record` opens it, for 1 KB,
//! 64 KB and 1 MB frames and for one second of the RealSense-like load (BENCHMARKS.md, 5).
//!
//! The unencrypted path does neither, so the anchor measured next to each operation, on the
//! same frame in the same round, is a `memcpy` of the frame (sealing copies the payload
//! once): the "x memcpy" column stays meaningful when other work slows the machine.

use super::median;
use anyhow::Result;
use dtbridge::livekit::{Decryptor, Encryptor, SharedKeys};
use livekit_datatrack::backend::{DecryptionProvider, EncryptionProvider};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

/// One second of the RealSense-like load of the link benchmark: (what, bytes, frames per
/// second), the frames' sizes on the wire (depth after zstd 1, color as JPEG q80).
const LOAD: [(&str, usize, usize); 6] = [
    ("depth", 11_100, 30),
    ("color", 37_900, 30),
    ("camera infos", 380, 60),
    ("imu", 340, 200),
    ("tf", 310, 100),
    ("odom", 720, 50),
];

/// Frame sizes measured one by one.
const SIZES: [(usize, &str); 3] = [(1 << 10, "1 KB"), (64 << 10, "64 KB"), (1 << 20, "1 MB")];

/// One measured row: a frame size, or one second of the load.
#[derive(Debug, Clone)]
pub struct Row {
    /// The frame, e.g. `64 KB`.
    pub frame: String,
    /// Bytes of the frame (of the second of load).
    pub bytes: usize,
    /// Median milliseconds to seal it (what `run` adds).
    pub seal_ms: f64,
    /// Median milliseconds to open it (what `record` and `view` add).
    pub open_ms: f64,
    /// Median milliseconds of the anchor, a copy of it.
    pub memcpy_ms: f64,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct E2eeReport {
    /// Rounds measured (medians over them).
    pub rounds: usize,
    /// The frame sizes, then one second of the load.
    pub rows: Vec<Row>,
}

/// What one row measures: frames of these (size, count), and how many of them one reported
/// unit is (1 for a frame size; the whole second for the load).
struct Workload {
    name: String,
    frames: Vec<(usize, usize)>,
    frames_per_unit: usize,
}

/// Measures `rounds` rounds; each seals, opens and copies every workload (a frame size about
/// 8 MB worth of times, at least once).
pub fn run(rounds: usize) -> Result<E2eeReport> {
    anyhow::ensure!(rounds > 0, "--runs must be at least 1");
    let keys = Arc::new(SharedKeys::parse(b"dtbridge bench key").map_err(anyhow::Error::msg)?);
    let (sealer, opener) = (Encryptor::new(keys.clone()), Decryptor::new(Some(keys)));
    let mut workloads: Vec<Workload> = SIZES
        .iter()
        .map(|&(size, name)| Workload {
            name: name.into(),
            frames: vec![(size, ((8 << 20) / size).max(1))],
            frames_per_unit: 1,
        })
        .collect();
    workloads.push(Workload {
        name: "1 s of the RealSense-like load".into(),
        frames: LOAD.iter().map(|&(_, size, rate)| (size, rate)).collect(),
        frames_per_unit: LOAD.iter().map(|&(_, _, rate)| rate).sum(),
    });
    let mut samples = vec![(Vec::new(), Vec::new(), Vec::new()); workloads.len()];
    for _ in 0..rounds {
        for (workload, (seal, open, copy)) in workloads.iter().zip(samples.iter_mut()) {
            let payloads: Vec<bytes::Bytes> = workload
                .frames
                .iter()
                .flat_map(|&(size, n)| std::iter::repeat_n(size, n))
                .map(|size| (0..size).map(|i| (i * 31) as u8).collect::<Vec<u8>>().into())
                .collect();
            let per_unit = |started: Instant| {
                started.elapsed().as_secs_f64() * 1e3 / payloads.len() as f64
                    * workload.frames_per_unit as f64
            };
            let started = Instant::now();
            for payload in &payloads {
                black_box(payload.to_vec());
            }
            copy.push(per_unit(started));
            let started = Instant::now();
            let sealed: Vec<_> = payloads
                .iter()
                .map(|payload| sealer.encrypt(payload.clone()))
                .collect::<Result<_, _>>()?;
            seal.push(per_unit(started));
            let started = Instant::now();
            for payload in sealed {
                black_box(opener.decrypt(payload, "robot".into())?);
            }
            open.push(per_unit(started));
        }
    }
    let rows = workloads
        .into_iter()
        .zip(samples)
        .map(|(workload, (seal, open, copy))| Row {
            bytes: workload.frames.iter().map(|&(size, n)| size * n).sum::<usize>()
                / workload.frames.iter().map(|&(_, n)| n).sum::<usize>()
                * workload.frames_per_unit,
            frame: workload.name,
            seal_ms: median(seal),
            open_ms: median(open),
            memcpy_ms: median(copy),
        })
        .collect();
    Ok(E2eeReport { rounds, rows })
}

impl E2eeReport {
    /// The report as a Markdown table.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Medians over {} rounds. The last row is one second of the load: its ms are \
             thousandths of one core.\n\n\
             | frame | bytes | seal ms | open ms | memcpy ms (anchor) | seal x memcpy | \
             open x memcpy | MB/s sealed |\n|---|---|---|---|---|---|---|---|\n",
            self.rounds
        );
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {:.4} | {:.4} | {:.4} | {:.1} | {:.1} | {:.0} |\n",
                row.frame,
                row.bytes,
                row.seal_ms,
                row.open_ms,
                row.memcpy_ms,
                row.seal_ms / row.memcpy_ms,
                row.open_ms / row.memcpy_ms,
                row.bytes as f64 / 1e3 / row.seal_ms
            ));
        }
        out
    }
}
