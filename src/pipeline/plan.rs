//! Routing: which topic goes to which track, and how. A plan is resolved from the routes for
//! every topic a source announces (and, for sources that discover topics while running, when
//! a topic first appears); `dtbridge check` prints it.

use crate::codec::compress;
use crate::codec::image::{ImageCodec, PngCompression};
use crate::codec::ros::CompressedImage;
use crate::config::{Compression, ConfigError, ImageFormat, Loaded, RouteConfig};
use crate::livekit::MAX_TRACK_NAME_CHARS;
use crate::scheduler::{Priority, TrackPolicy};
use crate::source::{MessageType, TopicInfo};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// zstd level when a route asks for zstd without one.
const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// JPEG quality when a route asks for JPEG without one.
const DEFAULT_JPEG_QUALITY: u8 = 80;

/// How one topic is published.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackPlan {
    /// Source name.
    pub source: String,
    /// Source topic.
    pub topic: String,
    /// Index of the route in the file.
    pub route: usize,
    /// Track name.
    pub track: String,
    /// The type of the frames on the track (after any image re-encoding).
    pub message_type: Arc<MessageType>,
    /// Message encoding before compression (`cdr`).
    pub base_encoding: String,
    /// zstd level, if compressed.
    pub zstd_level: Option<i32>,
    /// Image re-encoding, if any.
    pub image: Option<ImageCodec>,
    /// Decimation.
    pub max_rate_hz: Option<f64>,
    /// Priority and deadline on the link.
    pub policy: TrackPolicy,
}

impl TrackPlan {
    /// The frame encoding on the track: the base encoding, `+zstd` when compressed.
    pub fn frame_encoding(&self) -> String {
        match self.zstd_level {
            Some(_) => compress::zstd_encoding(&self.base_encoding),
            None => self.base_encoding.clone(),
        }
    }
}

/// What happens to a topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Published on a track.
    Track(Box<TrackPlan>),
    /// Not published: no route matches, or the matching route is disabled.
    Ignored(String),
}

/// The compiled routes of a configuration.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<RouteConfig>,
}

impl crate::source::TopicPolicy for Router {
    fn route(&self, topic: &str) -> Result<crate::source::QosOverride, String> {
        match self.route_for(topic) {
            Some((_, route)) if route.enabled => Ok(route.qos),
            Some((index, _)) => Err(format!("route {index} is disabled")),
            None => Err("no route matches".into()),
        }
    }
}

impl Router {
    /// Checks the routes; errors name `routes[i].key`.
    pub fn new(loaded: &Loaded) -> Result<Router, ConfigError> {
        for (i, route) in loaded.config.routes.iter().enumerate() {
            check_route(route)
                .map_err(|(key, message)| loaded.error(format!("routes[{i}].{key}"), message))?;
        }
        Ok(Router { routes: loaded.config.routes.clone() })
    }

    /// The route deciding a topic's fate, with its index: the first one matching it.
    pub fn route_for(&self, topic: &str) -> Option<(usize, &RouteConfig)> {
        self.routes.iter().enumerate().find(|(_, route)| route.topic.is_match(topic))
    }

    /// Resolves one topic against the first matching route.
    pub fn resolve(
        &self,
        source: &str,
        topic: &TopicInfo,
    ) -> Result<Resolution, (usize, String, String)> {
        let Some((index, route)) = self.route_for(&topic.topic) else {
            return Ok(Resolution::Ignored("no route matches".into()));
        };
        if !route.enabled {
            return Ok(Resolution::Ignored(format!("route {index} is disabled")));
        }
        let reject = |key: &str, message: String| (index, key.to_string(), message);
        let image = match route.image_format {
            None => None,
            Some(_) if !topic.message_type.is_raw_image() => {
                return Err(reject(
                    "image_format",
                    format!(
                        "topic '{}' is {}, not sensor_msgs/msg/Image; image options apply to raw images only",
                        topic.topic, topic.message_type.name
                    ),
                ));
            }
            Some(ImageFormat::Jpeg) => Some(ImageCodec::Jpeg {
                quality: route.jpeg_quality.map_or(DEFAULT_JPEG_QUALITY, |q| q as u8),
            }),
            Some(ImageFormat::Png) => Some(ImageCodec::Png { compression: PngCompression::Fast }),
        };
        let message_type = match image {
            Some(_) => MessageType::of::<CompressedImage>(),
            None => topic.message_type.clone(),
        };
        let track = route
            .track
            .replace("{topic}", &topic.topic)
            .replace("{source}", source)
            .replace("{type}", &topic.message_type.name);
        let chars = track.chars().count();
        if chars == 0 || chars > MAX_TRACK_NAME_CHARS {
            return Err(reject(
                "track",
                format!(
                    "track name for topic '{}' has {chars} characters; 1 to {MAX_TRACK_NAME_CHARS} are allowed",
                    topic.topic
                ),
            ));
        }
        let base_encoding = if image.is_some() {
            crate::codec::MESSAGE_ENCODING.to_string()
        } else {
            topic.encoding.clone()
        };
        Ok(Resolution::Track(Box::new(TrackPlan {
            source: source.to_string(),
            topic: topic.topic.clone(),
            route: index,
            track,
            message_type,
            base_encoding,
            zstd_level: (route.compression == Compression::Zstd)
                .then(|| route.zstd_level.unwrap_or(DEFAULT_ZSTD_LEVEL)),
            image,
            max_rate_hz: route.max_rate_hz,
            policy: policy(route, &topic.message_type, image.is_some()),
        })))
    }
}

/// Message types that are bulk data: large, and worth less than the small control and
/// telemetry messages beside them when the link cannot carry everything.
const BULK_TYPES: [&str; 4] = [
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/PointCloud2",
    "sensor_msgs/msg/PointCloud",
];

/// Longest a frame of each priority waits inside dtbridge by default: long enough that
/// high-priority frames survive a link's hiccup whole, short enough that a camera frame
/// arrives in time to be worth showing.
pub fn default_max_latency(priority: Priority) -> Duration {
    Duration::from_millis(match priority {
        Priority::High => 500,
        Priority::Normal => 300,
        Priority::Low => 150,
    })
}

/// A route's priority and deadline for a topic: as configured, else `low` for images and
/// point clouds and `high` for everything else.
fn policy(route: &RouteConfig, message_type: &MessageType, reencoded: bool) -> TrackPolicy {
    let bulk = reencoded || BULK_TYPES.contains(&message_type.name.as_str());
    let priority = route.priority.unwrap_or(if bulk { Priority::Low } else { Priority::High });
    let max_latency = route
        .max_latency_ms
        .map_or(default_max_latency(priority), |ms| Duration::from_secs_f64(ms / 1000.0));
    TrackPolicy { priority, max_latency, queue_depth: route.queue_depth }
}

/// Longest `max_latency_ms` accepted: a frame older than a minute is no longer live data.
const MAX_LATENCY_MS: f64 = 60_000.0;

/// Checks a route's values that do not depend on topics; returns `(key, message)`.
fn check_route(route: &RouteConfig) -> Result<(), (&'static str, String)> {
    if let Some(level) = route.zstd_level {
        if route.compression != Compression::Zstd {
            return Err(("zstd_level", "set only with compression = \"zstd\"".into()));
        }
        compress::validate_zstd_level(level).map_err(|_| {
            ("zstd_level", format!("{level} is out of range: zstd levels are 1 to 22"))
        })?;
    }
    if let Some(quality) = route.jpeg_quality {
        if route.image_format != Some(ImageFormat::Jpeg) {
            return Err(("jpeg_quality", "set only with image_format = \"jpeg\"".into()));
        }
        if !(1..=100).contains(&quality) {
            return Err(("jpeg_quality", format!("{quality} is out of range: 1 to 100")));
        }
    }
    if let Some(rate) = route.max_rate_hz
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(("max_rate_hz", format!("{rate} Hz: a rate must be greater than 0")));
    }
    if route.queue_depth == 0 {
        return Err(("queue_depth", "must be at least 1".into()));
    }
    if let Some(ms) = route.max_latency_ms
        && !(ms.is_finite() && ms > 0.0 && ms <= MAX_LATENCY_MS)
    {
        return Err((
            "max_latency_ms",
            format!("{ms}: a deadline must be greater than 0 and at most {MAX_LATENCY_MS} ms"),
        ));
    }
    if route.qos.depth == Some(0) {
        return Err(("qos.depth", "must be at least 1".into()));
    }
    Ok(())
}

/// The resolved routing of every known topic.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Topics published, in source order.
    pub tracks: Vec<TrackPlan>,
    /// Topics not published, and why.
    pub ignored: Vec<(String, String, String)>,
}

impl Plan {
    /// Resolves the topics of every source; errors name the route key at fault, and two
    /// topics producing one track name is an error.
    pub fn resolve(
        loaded: &Loaded,
        router: &Router,
        topics: &[(String, TopicInfo)],
    ) -> Result<Plan, ConfigError> {
        let mut plan = Plan::default();
        let mut owners: HashMap<String, (String, usize)> = HashMap::new();
        for (source, topic) in topics {
            match router.resolve(source, topic) {
                Err((route, key, message)) => {
                    return Err(loaded.error(format!("routes[{route}].{key}"), message));
                }
                Ok(Resolution::Ignored(why)) => {
                    plan.ignored.push((source.clone(), topic.topic.clone(), why))
                }
                Ok(Resolution::Track(track)) => {
                    if let Some((other, other_route)) = owners.get(&track.track) {
                        return Err(loaded.error(
                            format!("routes[{}].track", track.route),
                            format!(
                                "topics '{other}' (route {other_route}) and '{}' (route {}) both produce track '{}'; make the track template tell them apart, e.g. \"{{topic}}\"",
                                topic.topic, track.route, track.track
                            ),
                        ));
                    }
                    owners.insert(track.track.clone(), (topic.topic.clone(), track.route));
                    plan.tracks.push(*track);
                }
            }
        }
        Ok(plan)
    }

    /// A table for `dtbridge check`.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "source topic -> track | type | encoding | compression | rate | priority, deadline\n",
        );
        for t in &self.tracks {
            let compression = match (&t.image, t.zstd_level) {
                (Some(ImageCodec::Jpeg { quality }), _) => format!("jpeg q{quality}"),
                (Some(ImageCodec::Png { .. }), _) => "png".into(),
                (None, Some(level)) => format!("zstd {level}"),
                (None, None) => "none".into(),
            };
            let rate = t.max_rate_hz.map_or("source rate".into(), |hz| format!("<= {hz} Hz"));
            out.push_str(&format!(
                "{}:{} -> {} | {} | {} | {} | {} | {}, {} ms\n",
                t.source,
                t.topic,
                t.track,
                t.message_type.name,
                t.frame_encoding(),
                compression,
                rate,
                t.policy.priority.name(),
                t.policy.max_latency.as_millis()
            ));
        }
        for (source, topic, why) in &self.ignored {
            out.push_str(&format!("{source}:{topic} ignored: {why}\n"));
        }
        out
    }
}
