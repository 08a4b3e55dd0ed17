//! The camera driver's side of a `realsense` source, run by `dtbridge-realsense` in a process
//! of its own (see [`super`] for why): it reads its [`DriverRequest`] from stdin, streams one
//! session with the camera or recording, and writes each sample to stdout as a
//! [`DriverMessage`], then one last message saying how the session ended. Closing stdin stops
//! it (the bridge stopping, or gone).

use super::protocol::{DriverMessage, DriverRequest};
use super::session::{Failure, Session};
use crate::source::Sample;
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Samples that may wait for the pipe: a set of frames and their IMU samples. When the bridge
/// reads slower than the camera delivers, the session waits here, and librealsense keeps
/// only the newest frames meanwhile.
const PIPE_BACKLOG: usize = 8;

/// Serves one session as the driver process; an error is a request that could not be read
/// or a stdout that is gone.
pub fn serve() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|err| format!("stdin: {err}"))?;
    let request: DriverRequest = serde_json::from_str(&line)
        .map_err(|err| format!("a request that does not parse: {err}"))?;
    let topics: HashMap<Arc<str>, u16> = (request.config.outputs().topics().into_iter())
        .enumerate()
        .map(|(index, (topic, _))| (topic, index as u16))
        .collect();
    let session = Session::new(request.config, request.file);

    let (stop, stopped) = watch::channel(false);
    std::thread::spawn(move || {
        // Whatever arrives after the request is ignored; the end of stdin is the stop.
        _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        stop.send_replace(true);
    });
    let (samples, mut to_write) = mpsc::channel::<Sample>(PIPE_BACKLOG);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = BufWriter::new(std::io::stdout().lock());
        while let Some(sample) = to_write.blocking_recv() {
            let message = DriverMessage::Sample {
                topic: topics[&sample.topic],
                stamp_ns: sample.stamp_ns,
                payload: sample.payload,
            };
            message.write_to(&mut out)?;
            if to_write.is_empty() {
                out.flush()?;
            }
        }
        out.flush()
    });
    let ended = session.stream(&samples, &stopped);
    drop(samples);
    let written = writer.join().map_err(|_| "the stdout writer failed".to_string())?;
    written.map_err(|err| format!("stdout: {err}"))?;
    let last = match ended {
        Ok(()) => DriverMessage::Ended,
        Err(Failure::Fatal(message)) => DriverMessage::Failed { fatal: true, message },
        Err(Failure::Retry(message)) => DriverMessage::Failed { fatal: false, message },
    };
    let mut out = std::io::stdout().lock();
    last.write_to(&mut out).and_then(|()| out.flush()).map_err(|err| format!("stdout: {err}"))
}
