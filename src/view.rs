//! The live view: a Foxglove WebSocket server (the official `foxglove` SDK) fed by the
//! operator's subscriptions, beside the recorder or alone (`dtbridge view`).
//!
//! Each remote track becomes a channel named and typed as the recorder names and types it
//! ([`track_topic`], [`ChannelSpec`]): same topic, same message encoding and schema, `+zstd`
//! frames decompressed, log time the receive time. A channel lives as long as its track: a
//! robot that reconnects keeps it, an unpublished track's channel is removed. The last message
//! of each channel goes to a client as soon as it subscribes, so a topic sent once (a robot
//! description, static transforms) does not leave its panel empty. The SDK queues messages
//! per client (bounded, oldest dropped): a slow client slows neither the others nor the
//! recorder.

use crate::codec::compress::zstd_decompress;
use crate::recorder::TrackMeta;
use crate::recorder::encoding::ChannelSpec;
use crate::recorder::naming::{Template, track_topic};
use crate::util::LatencySamples;
use foxglove::websocket::{ChannelView, Client, ServerListener};
use foxglove::{ChannelId, Context, PartialMetadata, RawChannel, Schema, WebSocketServerHandle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The default address of the live view: this machine only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8765";

/// Why the live view could not start.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The address is not `HOST:PORT`.
    #[error("{0:?} is not HOST:PORT (e.g. {DEFAULT_ADDRESS})")]
    Address(String),
    /// The topic template does not parse (checked with the configuration before).
    #[error("record.topic_template: {0}")]
    TopicTemplate(String),
    /// The server could not listen there (port in use, no such address).
    #[error("cannot serve the live view on {address}: {reason}")]
    Bind {
        /// The address asked for.
        address: String,
        /// The system's reason.
        reason: String,
    },
}

/// `HOST:PORT` split, or why not.
pub fn parse_address(address: &str) -> Result<(String, u16), ViewError> {
    let invalid = || ViewError::Address(address.to_string());
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().map_err(|_| invalid())?;
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host.to_string(), port))
}

/// `address` with its port replaced by `port` (the one the system picked for port 0).
pub fn with_port(address: &str, port: u16) -> String {
    match parse_address(address) {
        Ok((host, _)) if host.contains(':') => format!("[{host}]:{port}"),
        Ok((host, _)) => format!("{host}:{port}"),
        Err(_) => address.to_string(),
    }
}

/// A running live view.
pub struct LiveView {
    server: WebSocketServerHandle,
    context: Arc<Context>,
    channels: Arc<Channels>,
    topic_template: Template,
    /// The tracks seen, for topics of a track name several publishers share.
    tracks: Mutex<Vec<(String, String)>>,
    /// What each channel ever added received, in the order they were added.
    stats: Mutex<Vec<(String, Arc<ChannelStats>)>>,
}

/// What a live view sent of one channel.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChannelReport {
    /// The channel's topic.
    pub topic: String,
    /// Frames received for it (and sent to the clients subscribed then).
    pub frames: u64,
    /// The latency the view adds, p50 and p99 in ms: from a frame's arrival from LiveKit to
    /// its hand-off to the WebSocket server, decompression included (the server then writes
    /// it to each subscribed client's queue); `None` without frames.
    pub send_latency_ms: Option<(f64, f64)>,
}

/// A channel's frames and the latency the view added to them.
#[derive(Default)]
struct ChannelStats {
    frames: AtomicU64,
    send_latency: LatencySamples,
}

/// The channels of a view, by id: their latest message and how many clients watch them.
#[derive(Default)]
struct Channels(Mutex<HashMap<ChannelId, ChannelState>>);

struct ChannelState {
    channel: Arc<RawChannel>,
    latest: Option<(Arc<Vec<u8>>, u64)>,
    watchers: watch::Sender<usize>,
}

impl Channels {
    fn with<T>(&self, id: ChannelId, f: impl FnOnce(&mut ChannelState) -> T) -> Option<T> {
        crate::util::lock(&self.0).get_mut(&id).map(f)
    }
}

/// Counts each channel's subscribed clients and sends a new subscriber the channel's latest
/// message.
struct Listener(Arc<Channels>);

impl ServerListener for Listener {
    fn on_subscribe(&self, client: Client, channel: ChannelView) {
        let latest = self.0.with(channel.id(), |state| {
            state.watchers.send_modify(|n| *n += 1);
            state.latest.clone().map(|latest| (state.channel.clone(), latest))
        });
        if let Some((channel, (message, log_time))) = latest.flatten() {
            let meta = PartialMetadata::with_log_time(log_time);
            channel.log_with_meta_to_sink(&message, meta, client.sink_id());
        }
    }

    fn on_unsubscribe(&self, _client: Client, channel: ChannelView) {
        self.0.with(channel.id(), |state| {
            state.watchers.send_modify(|n| *n = n.saturating_sub(1));
        });
    }
}

impl LiveView {
    /// Starts serving on `address` (`HOST:PORT`; port 0 picks a free one); channels get
    /// topics from `topic_template` (the recorder's).
    pub async fn start(address: &str, topic_template: &str) -> Result<LiveView, ViewError> {
        let (host, port) = parse_address(address)?;
        let topic_template = Template::parse(topic_template, crate::recorder::TOPIC_FIELDS)
            .map_err(ViewError::TopicTemplate)?;
        let context = Context::new();
        let channels = Arc::new(Channels::default());
        let server = foxglove::WebSocketServer::new()
            .name("dtbridge")
            .bind(host, port)
            .context(&context)
            .listener(Arc::new(Listener(channels.clone())))
            .start()
            .await
            .map_err(|err| ViewError::Bind {
                address: address.to_string(),
                reason: err.to_string(),
            })?;
        Ok(LiveView {
            server,
            context,
            channels,
            topic_template,
            tracks: Mutex::default(),
            stats: Mutex::default(),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// A channel for a track, advertised to every client until the returned handle is
    /// dropped.
    pub fn add_track(&self, meta: &TrackMeta) -> Result<ViewChannel, String> {
        let shared = {
            let mut tracks = crate::util::lock(&self.tracks);
            let key = (meta.publisher.clone(), meta.track.clone());
            if !tracks.contains(&key) {
                tracks.push(key);
            }
            tracks
                .iter()
                .any(|(publisher, track)| *track == meta.track && *publisher != meta.publisher)
        };
        let (topic, _) = track_topic(&self.topic_template, meta, shared);
        let spec = ChannelSpec::from_meta(meta);
        let schema =
            spec.schema.as_ref().filter(|schema| !schema.encoding.is_empty()).map(|schema| {
                Schema::new(schema.name.clone(), schema.encoding.clone(), schema.data.clone())
            });
        let channel = self
            .context
            .channel_builder(topic.clone())
            .message_encoding(spec.message_encoding.clone())
            .schema(schema)
            .metadata(spec.metadata.clone())
            .build_raw()
            .map_err(|err| format!("no live view channel for {topic:?}: {err}"))?;
        let (watchers, watching) = watch::channel(0);
        let state = ChannelState { channel: channel.clone(), latest: None, watchers };
        crate::util::lock(&self.channels.0).insert(channel.id(), state);
        let stats = Arc::new(ChannelStats::default());
        crate::util::lock(&self.stats).push((topic.clone(), stats.clone()));
        Ok(ViewChannel {
            channel,
            decompress: spec.decompress,
            channels: self.channels.clone(),
            watching,
            topic,
            stats,
            decompress_failures: AtomicU64::new(0),
        })
    }

    /// Frames and latency per channel so far, in the order the channels were added.
    pub fn report(&self) -> Vec<ChannelReport> {
        crate::util::lock(&self.stats)
            .iter()
            .map(|(topic, stats)| ChannelReport {
                topic: topic.clone(),
                frames: stats.frames.load(Ordering::Relaxed),
                send_latency_ms: stats.send_latency.p50_p99(),
            })
            .collect()
    }

    /// Stops serving; clients are disconnected.
    pub async fn stop(self) {
        self.server.stop().wait().await;
    }
}

/// One track's channel in a [`LiveView`]; removed from the view when dropped.
pub struct ViewChannel {
    channel: Arc<RawChannel>,
    decompress: bool,
    channels: Arc<Channels>,
    watching: watch::Receiver<usize>,
    topic: String,
    stats: Arc<ChannelStats>,
    decompress_failures: AtomicU64,
}

impl ViewChannel {
    /// The channel's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// How many clients subscribe to the channel, as it changes.
    pub fn watchers(&self) -> watch::Receiver<usize> {
        self.watching.clone()
    }

    /// Sends a frame received at `receive_ns` (UNIX ns) to the clients that subscribe, and
    /// keeps it for those that subscribe later. A frame that does not decompress is left
    /// out and counted.
    pub fn log(&self, payload: &[u8], receive_ns: u64) {
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        let message = match self.decompress {
            true => match zstd_decompress(payload, crate::recorder::MAX_DECOMPRESSED_BYTES) {
                Ok(data) => data,
                Err(err) => {
                    let failures = self.decompress_failures.fetch_add(1, Ordering::Relaxed) + 1;
                    if crate::recorder::should_log(failures) {
                        tracing::warn!(
                            "live view: a frame of {} did not decompress ({failures} so far): {err}",
                            crate::text::printable(&self.topic)
                        );
                    }
                    return;
                }
            },
            false => payload.to_vec(),
        };
        // Kept first: a client subscribing in between gets it (twice at worst), never misses it.
        let message = Arc::new(message);
        self.channels.with(self.channel.id(), |state| {
            state.latest = Some((message.clone(), receive_ns));
        });
        self.channel.log_with_meta(&message, PartialMetadata::with_log_time(receive_ns));
        let added_ns = crate::util::now_ns().saturating_sub(receive_ns);
        self.stats.send_latency.add(added_ns as f64 / 1e6);
    }
}

impl Drop for ViewChannel {
    fn drop(&mut self) {
        crate::util::lock(&self.channels.0).remove(&self.channel.id());
        self.channel.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(parse_address("127.0.0.1:8765").unwrap(), ("127.0.0.1".into(), 8765));
        assert_eq!(parse_address("[::1]:0").unwrap(), ("::1".into(), 0));
        for bad in ["8765", "localhost", ":8765", "host:port", "host:70000"] {
            assert!(matches!(parse_address(bad), Err(ViewError::Address(_))), "{bad}");
        }
    }
}
