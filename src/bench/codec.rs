//! `dtbridge bench codec`: what the publish pipeline's [`Encoder`] costs per camera frame,
//! in-process: a RealSense-sized 848x480 16UC1 depth frame as CDR, CDR + zstd and PNG, and a
//! 1280x720 rgb8 color frame as CDR, JPEG and PNG; each as the synthetic source draws it and
//! with camera-like noise added.
//!
//! Every operation runs once on each frame, in an order that rotates from frame to frame, next
//! to the anchor: a `memcpy` of the frame's pixels. The "x memcpy" column is the median over
//! frames of the operation's time divided by the `memcpy`'s on the same frame, which stays
//! meaningful when other work slows the machine.

use super::median;
use anyhow::Result;
use dtbridge::codec::compress::ZstdCompressor;
use dtbridge::codec::image::{ImageCodec, PngCompression};
use dtbridge::codec::ros::{CompressedImage, Header, Image};
use dtbridge::codec::{MESSAGE_ENCODING, RosMessage};
use dtbridge::pipeline::TrackPlan;
use dtbridge::pipeline::encode::Encoder;
use dtbridge::source::synthetic::{color_image, depth_image};
use dtbridge::source::{MessageType, Payload, Sample};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

/// Frames drawn and encoded before measuring (allocator and caches settle).
const WARMUP_FRAMES: u64 = 3;

/// One operation on one kind of frame.
#[derive(Debug, Clone)]
pub struct Row {
    /// The frame, e.g. `depth 848x480 16UC1`.
    pub frame: String,
    /// What was done to it.
    pub operation: &'static str,
    /// Median milliseconds per frame.
    pub ms: f64,
    /// Median over frames of this operation's time over the anchor's on the same frame.
    pub vs_anchor: f64,
    /// Median output size in bytes.
    pub bytes: usize,
    /// Size of the frame serialized as a raw `sensor_msgs/msg/Image`, for the ratio.
    pub cdr_bytes: usize,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct CodecReport {
    /// Frames measured per operation.
    pub frames: usize,
    /// Operations, the anchor first for each kind of frame.
    pub rows: Vec<Row>,
    /// Median milliseconds to draw one synthetic frame, per kind (the source's cost, not the
    /// encoder's).
    pub draw_ms: Vec<(String, f64)>,
}

/// A frame as the pipeline receives it, the image itself, and its CDR bytes for the
/// compress-only operations.
struct Frame {
    sample: Sample,
    image: Arc<Image>,
    cdr: Vec<u8>,
}

/// An operation: returns the size of what it produced.
type Op = (&'static str, Box<dyn FnMut(&Frame) -> Result<usize>>);

/// Measures every operation on `frames` frames of each kind.
pub fn run(frames: usize) -> Result<CodecReport> {
    let mut report = CodecReport { frames, rows: Vec::new(), draw_ms: Vec::new() };
    let depth = |n| depth_image(848, 480, n, header());
    let color = |n| color_image(1280, 720, n, header());
    measure(&mut report, "depth 848x480 16UC1", depth, depth_ops()?)?;
    measure(&mut report, "depth, noisy", |n| noisy(depth(n), n), depth_ops()?)?;
    measure(&mut report, "color 1280x720 rgb8", color, color_ops()?)?;
    measure(&mut report, "color, noisy", |n| noisy(color(n), n), color_ops()?)?;
    Ok(report)
}

fn depth_ops() -> Result<Vec<Op>> {
    Ok(vec![
        anchor(),
        ("CDR serialize (`to_cdr`)", Box::new(|f: &Frame| Ok(f.image.to_cdr().len()))),
        encoder("CDR + zstd 1 (pipeline `Encoder`)", Some(1), None)?,
        encoder("CDR + zstd 3 (pipeline `Encoder`)", Some(3), None)?,
        compressor("zstd 1 of the CDR bytes, reused `ZstdCompressor`")?,
        ("zstd 1 of the CDR bytes, one-shot `zstd::bulk::compress`", {
            Box::new(|f: &Frame| Ok(zstd::bulk::compress(&f.cdr, 1)?.len()))
        }),
        encoder("PNG fast (pipeline `Encoder`)", None, Some(png()))?,
    ])
}

fn color_ops() -> Result<Vec<Op>> {
    Ok(vec![
        anchor(),
        ("CDR serialize (`to_cdr`)", Box::new(|f: &Frame| Ok(f.image.to_cdr().len()))),
        encoder("JPEG q80 (pipeline `Encoder`)", None, Some(ImageCodec::Jpeg { quality: 80 }))?,
        encoder("PNG fast (pipeline `Encoder`)", None, Some(png()))?,
    ])
}

/// The synthetic frames are smooth and compress far better than a camera's; this adds
/// camera-like noise, seeded by the frame number: uniform within ±1% of each depth value (a
/// D435's depth RMS error is under 2% at 2 m), ±4 levels on each color channel.
fn noisy(mut image: Image, seed: u64) -> Image {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut random = move |range: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % range) as i64
    };
    if image.encoding == "16UC1" {
        for px in image.data.chunks_exact_mut(2) {
            let mm = i64::from(u16::from_le_bytes([px[0], px[1]]));
            let noise = random(2 * (mm / 100) as u64 + 1) - mm / 100;
            px.copy_from_slice(&((mm + noise) as u16).to_le_bytes());
        }
    } else {
        for value in &mut image.data {
            *value = (i64::from(*value) + random(9) - 4).clamp(0, 255) as u8;
        }
    }
    image
}

fn header() -> Header {
    Header { stamp: dtbridge::codec::ros::Time::now(), frame_id: "camera_optical_frame".into() }
}

fn png() -> ImageCodec {
    ImageCodec::Png { compression: PngCompression::Fast }
}

/// `memcpy` of the pixels into a buffer reused from frame to frame (no allocation, no page
/// faults: a memory bandwidth reference).
fn anchor() -> Op {
    let mut copy = Vec::new();
    let op = move |f: &Frame| {
        copy.clear();
        copy.extend_from_slice(&f.image.data);
        Ok(black_box(&copy).len())
    };
    ("`memcpy` of the pixels (anchor)", Box::new(op))
}

/// The pipeline's encoder for a route with these settings.
fn encoder(name: &'static str, zstd_level: Option<i32>, image: Option<ImageCodec>) -> Result<Op> {
    let message_type = match image {
        Some(_) => MessageType::of::<CompressedImage>(),
        None => MessageType::of::<Image>(),
    };
    let mut encoder = Encoder::new(TrackPlan {
        source: "bench".into(),
        topic: "/bench".into(),
        route: 0,
        track: "bench".into(),
        message_type,
        base_encoding: MESSAGE_ENCODING.into(),
        zstd_level,
        image,
        max_rate_hz: None,
        policy: dtbridge::scheduler::TrackPolicy {
            priority: dtbridge::scheduler::Priority::Low,
            max_latency: dtbridge::pipeline::plan::default_max_latency(
                dtbridge::scheduler::Priority::Low,
            ),
            queue_depth: 1,
        },
    })?;
    Ok((name, Box::new(move |f: &Frame| Ok(encoder.encode(&f.sample)?.len()))))
}

fn compressor(name: &'static str) -> Result<Op> {
    let mut zstd = ZstdCompressor::new(1)?;
    Ok((name, Box::new(move |f: &Frame| Ok(zstd.compress(&f.cdr)?.len()))))
}

/// Runs `ops` (the anchor first) on frames `draw` makes and adds their rows to `report`.
fn measure(
    report: &mut CodecReport,
    frame: &str,
    draw: impl Fn(u64) -> Image,
    mut ops: Vec<Op>,
) -> Result<()> {
    let mut ms = vec![Vec::new(); ops.len()];
    let mut bytes = vec![Vec::new(); ops.len()];
    let mut draw_ms = Vec::new();
    let mut cdr_bytes = 0;
    for n in 0..WARMUP_FRAMES + report.frames as u64 {
        let start = Instant::now();
        let image = draw(n);
        let drawn = elapsed_ms(start);
        let cdr = image.to_cdr();
        cdr_bytes = cdr.len();
        let image = Arc::new(image);
        let sample = Sample {
            source: "bench".into(),
            topic: "/bench".into(),
            message_type: MessageType::of::<Image>(),
            encoding: MESSAGE_ENCODING.into(),
            payload: Payload::Image(image.clone()),
            stamp_ns: 0,
        };
        let frame = Frame { sample, image, cdr };
        let mut times = vec![0.0; ops.len()];
        let mut sizes = vec![0; ops.len()];
        for k in 0..ops.len() {
            let i = (k + n as usize) % ops.len();
            let start = Instant::now();
            sizes[i] = (ops[i].1)(&frame)?;
            times[i] = elapsed_ms(start);
        }
        if n >= WARMUP_FRAMES {
            draw_ms.push(drawn);
            for i in 0..ops.len() {
                ms[i].push(times[i]);
                bytes[i].push(sizes[i] as f64);
            }
        }
    }
    let anchor = ms[0].clone();
    for (i, (operation, _)) in ops.iter().enumerate() {
        let ratios = ms[i].iter().zip(&anchor).map(|(t, a)| t / a).collect();
        report.rows.push(Row {
            frame: frame.into(),
            operation,
            ms: median(ms[i].clone()),
            vs_anchor: median(ratios),
            bytes: median(bytes[i].clone()) as usize,
            cdr_bytes,
        });
    }
    report.draw_ms.push((frame.into(), median(draw_ms)));
    Ok(())
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

impl CodecReport {
    /// The report as a Markdown table, as pasted into BENCHMARKS.md.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Medians over {} frames per row.\n\n\
             | frame | operation | ms/frame | x memcpy | bytes out | raw CDR / out | one core at 30 fps |\n\
             |---|---|---|---|---|---|---|\n",
            self.frames
        );
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {:.2} | {:.1} | {} | {:.2} | {:.0}% |\n",
                row.frame,
                row.operation,
                row.ms,
                row.vs_anchor,
                row.bytes,
                row.cdr_bytes as f64 / row.bytes.max(1) as f64,
                row.ms * 30.0 / 10.0
            ));
        }
        let draws: Vec<String> =
            self.draw_ms.iter().map(|(frame, ms)| format!("{frame} {ms:.2} ms")).collect();
        out.push_str(&format!(
            "\nDrawing one frame (the synthetic source's cost, not the encoder's; noisy: with the \
             noise): {}.\n",
            draws.join(", ")
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_stays_within_bounds_and_is_seeded() {
        let depth = depth_image(64, 48, 1, Header::default());
        let noisy_depth = noisy(depth.clone(), 1);
        assert_eq!(noisy_depth, noisy(depth.clone(), 1));
        assert_ne!(noisy_depth.data, depth.data);
        let mm = |image: &Image| -> Vec<i64> {
            image.data.chunks(2).map(|px| i64::from(u16::from_le_bytes([px[0], px[1]]))).collect()
        };
        for (clean, noisy) in mm(&depth).into_iter().zip(mm(&noisy_depth)) {
            assert!((noisy - clean).abs() <= clean / 100, "{clean} -> {noisy}");
        }
        let color = color_image(64, 48, 1, Header::default());
        let noisy_color = noisy(color.clone(), 1);
        for (clean, noisy) in color.data.iter().zip(&noisy_color.data) {
            assert!((i16::from(*noisy) - i16::from(*clean)).abs() <= 4);
        }
    }
}
