//! Configuration: one TOML file, then `DTBRIDGE_`-prefixed environment overrides, read with the
//! `config` crate into typed structs. Every error names the file and the key path; an unknown
//! key suggests the closest known one. The reference is `docs/config.md`.

use crate::livekit::{CaBundle, ConnectOptions, Grants, RoomError, SharedKeys};
use crate::scheduler::Priority;
use crate::source::{QosOverride, SourceConfig};
use crate::text::with_suggestion;
use crate::topic::{Pattern, Patterns};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The whole file.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Where to connect.
    pub livekit: LiveKitConfig,
    /// Where samples come from.
    pub sources: Vec<SourceConfig>,
    /// Which topics become which tracks.
    pub routes: Vec<RouteConfig>,
    /// The operator side: what `dtbridge record` records and where.
    pub record: RecordConfig,
    /// The operator's live view (`dtbridge view`, and `dtbridge record` when present).
    pub view: Option<ViewConfig>,
}

/// `[view]`: the live view, a Foxglove WebSocket server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// `HOST:PORT` to serve on.
    #[serde(default = "default_view_address")]
    pub address: String,
}

impl Default for ViewConfig {
    fn default() -> Self {
        Self { address: default_view_address() }
    }
}

fn default_view_address() -> String {
    crate::view::DEFAULT_ADDRESS.into()
}

impl BridgeConfig {
    /// The ROS domain the `ros2` sources ask for, if any (one per process, checked on load).
    pub fn ros_domain_id(&self) -> Option<u32> {
        self.ros_domains().next().map(|(_, id)| id)
    }

    fn ros_domains(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.sources.iter().enumerate().filter_map(|(i, source)| Some((i, source.ros_domain_id()?)))
    }

    /// A process joins one ROS domain: its one ROS context reads it once.
    fn check_ros_domains(&self) -> Result<(), (String, String)> {
        let mut domains = self.ros_domains();
        let Some((_, first)) = domains.next() else { return Ok(()) };
        match domains.find(|&(_, id)| id != first) {
            Some((i, id)) => Err((
                format!("sources[{i}].domain_id"),
                format!(
                    "{id}: another ros2 source asks for domain {first}, and one dtbridge process joins one ROS domain (run a second dtbridge for the other)"
                ),
            )),
            None => Ok(()),
        }
    }
}

/// `[record]`: what `dtbridge record` subscribes to and where it writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// Directory the MCAP files go to (relative to the config file).
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    /// File name template: `{date}`, `{room}`, `{identity}`, `{index}`.
    #[serde(default = "default_file_template")]
    pub file_template: String,
    /// Topic template: `{track}`, `{publisher}`.
    #[serde(default = "default_topic_template")]
    pub topic_template: String,
    /// Publisher identities to record (globs).
    #[serde(default = "default_all")]
    pub participants: Patterns,
    /// Track names to record (globs).
    #[serde(default = "default_all")]
    pub tracks: Patterns,
    /// Start a new file after this many megabytes.
    pub max_file_mb: Option<f64>,
    /// Start a new file after this many minutes.
    pub max_file_minutes: Option<f64>,
    /// Frames buffered per subscription while the writer thread catches up; beyond that the
    /// data track core drops the oldest, without telling.
    #[serde(default = "default_buffer_frames")]
    pub buffer_frames: usize,
    /// Tracks recorded at once; tracks published beyond it are counted and left out, so a
    /// room flooded with tracks cannot exhaust the recorder.
    #[serde(default = "default_max_tracks")]
    pub max_tracks: usize,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            output_dir: default_output_dir(),
            file_template: default_file_template(),
            topic_template: default_topic_template(),
            participants: default_all(),
            tracks: default_all(),
            max_file_mb: None,
            max_file_minutes: None,
            buffer_frames: default_buffer_frames(),
            max_tracks: default_max_tracks(),
        }
    }
}

fn default_max_tracks() -> usize {
    256
}

fn default_output_dir() -> PathBuf {
    "recordings".into()
}
fn default_file_template() -> String {
    "{date}_{room}_{identity}_{index}.mcap".into()
}
fn default_topic_template() -> String {
    "{track}".into()
}
fn default_all() -> Patterns {
    Patterns::new(&["**"]).expect("a valid pattern")
}
fn default_buffer_frames() -> usize {
    1024
}

/// The file as read: each source stays untyped until its `type` picks the struct, so that
/// errors inside a source can name their key (serde loses the path in tagged enums).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    livekit: LiveKitConfig,
    #[serde(default)]
    sources: Vec<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    routes: Vec<RouteConfig>,
    #[serde(default)]
    record: RecordConfig,
    view: Option<ViewConfig>,
}

/// `[livekit]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveKitConfig {
    /// `server` (the default) or `loopback`, the in-process room, which must be asked for:
    /// a robot that forgot its URL must not stream into a room nobody can join.
    pub backend: Option<Backend>,
    /// Server URL; `LIVEKIT_URL` otherwise.
    pub url: Option<String>,
    /// Room to join.
    pub room: Option<String>,
    /// Participant identity.
    pub identity: Option<String>,
    /// Give up joining after this many seconds.
    pub connect_timeout_s: Option<f64>,
    /// Lifetime of the tokens minted from `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET`, in
    /// seconds.
    pub token_ttl_s: Option<f64>,
    /// Cap on what `run` sends, all tracks together, in Mbit/s (data track packets, before
    /// SCTP, DTLS and UDP headers).
    pub max_bandwidth_mbps: Option<f64>,
    /// PEM file of CA certificates to trust besides the system's, for a server whose
    /// certificate a private CA signed; relative to the config file, resolved on load.
    pub ca_file: Option<PathBuf>,
    /// The certificates of `ca_file`, read when the file is loaded.
    #[serde(skip)]
    pub ca_bundle: Option<CaBundle>,
    /// File holding the room's shared end-to-end encryption key (one key per line, the first
    /// line being key index 0); `DTBRIDGE_E2EE_KEY` holds the same text instead.
    pub e2ee_key_file: Option<PathBuf>,
    /// The keys of `e2ee_key_file` or `DTBRIDGE_E2EE_KEY`, read and derived when the file is
    /// loaded.
    #[serde(skip)]
    pub e2ee: Option<Arc<SharedKeys>>,
}

/// Which room implementation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A LiveKit server.
    Server,
    /// The in-process loopback room.
    Loopback,
}

/// Who a command joins as: its default identity, and what a token minted for it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `dtbridge run`: publishes data tracks and subscribes to nothing (it only publishes).
    Robot,
    /// `dtbridge record` and `dtbridge view`: subscribe and publish nothing.
    Operator,
}

impl Role {
    /// The identity when `[livekit] identity` names none.
    pub fn default_identity(self) -> &'static str {
        match self {
            Self::Robot => "robot",
            Self::Operator => "operator",
        }
    }

    /// The grants of a token minted for this role: no more than it uses.
    pub fn grants(self) -> Grants {
        match self {
            Self::Robot => Grants::PUBLISHER,
            Self::Operator => Grants::SUBSCRIBER,
        }
    }
}

/// Where to connect, resolved against the environment.
#[derive(Debug, Clone)]
pub enum Connection {
    /// A LiveKit server.
    Server(ConnectOptions),
    /// The in-process loopback room with this room name and identity.
    Loopback {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
        /// End-to-end encryption keys.
        e2ee: Option<Arc<SharedKeys>>,
    },
}

impl LiveKitConfig {
    /// `connect_timeout_s` as a duration, if set; why it is none otherwise.
    pub fn connect_timeout(&self) -> Result<Option<Duration>, String> {
        self.connect_timeout_s.map(crate::duration::positive_seconds).transpose()
    }

    /// `token_ttl_s` as a duration, if set; why it is none otherwise.
    pub fn token_ttl(&self) -> Result<Option<Duration>, String> {
        self.token_ttl_s.map(crate::duration::positive_seconds).transpose()
    }

    /// The connection to make for `role`.
    pub fn connection(&self, role: Role) -> Result<Connection, RoomError> {
        let room = self.room.clone().unwrap_or_else(|| "dtbridge".into());
        let identity = self.identity.clone().unwrap_or_else(|| role.default_identity().into());
        match self.backend.unwrap_or(Backend::Server) {
            Backend::Loopback => {
                Ok(Connection::Loopback { room, identity, e2ee: self.e2ee.clone() })
            }
            Backend::Server => {
                let mut options = ConnectOptions::from_env_with_url(
                    self.url.clone(),
                    &room,
                    &identity,
                    role.grants(),
                )?;
                if let Some(timeout) = self
                    .connect_timeout()
                    .map_err(|why| RoomError::Config(format!("livekit.connect_timeout_s: {why}")))?
                {
                    options.connect_timeout = timeout;
                }
                options.e2ee = self.e2ee.clone();
                options.ca_bundle = self.ca_bundle.clone();
                if let Some(ttl) = self
                    .token_ttl()
                    .map_err(|why| RoomError::Config(format!("livekit.token_ttl_s: {why}")))?
                {
                    options.token_ttl = ttl;
                }
                Ok(Connection::Server(options))
            }
        }
    }
}

/// `[[routes]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Exact topic name or glob.
    pub topic: Pattern,
    /// Track name template.
    #[serde(default = "default_track")]
    pub track: String,
    /// Frame compression.
    #[serde(default)]
    pub compression: Compression,
    /// zstd level.
    pub zstd_level: Option<i32>,
    /// Re-encode raw images.
    pub image_format: Option<ImageFormat>,
    /// JPEG quality.
    pub jpeg_quality: Option<i64>,
    /// Decimate to at most this rate.
    pub max_rate_hz: Option<f64>,
    /// Frames waiting per track before the oldest is dropped.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    /// Which tracks go first on a link that cannot carry everything; by default `low` for
    /// images and point clouds, `high` for everything else.
    pub priority: Option<Priority>,
    /// Longest a frame may wait inside dtbridge before it is dropped as stale; by default
    /// by priority (see `pipeline::plan::default_max_latency`).
    pub max_latency_ms: Option<f64>,
    /// `false` ignores matching topics.
    #[serde(default = "crate::util::default_true")]
    pub enabled: bool,
    /// QoS of the subscription to matching ROS 2 topics, where it should not follow the
    /// publishers.
    #[serde(default)]
    pub qos: QosOverride,
}

fn default_track() -> String {
    "{topic}".into()
}

fn default_queue_depth() -> usize {
    2
}

/// Frame compression of a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Frames as serialized.
    #[default]
    None,
    /// zstd; the frame encoding becomes `<base>+zstd`.
    Zstd,
}

/// Image re-encoding of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// JPEG (lossy).
    Jpeg,
    /// PNG (lossless).
    Png,
}

/// A configuration error: the file, the key path, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}{message}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// The key path (`routes[1].zstd_level`), with `: ` appended, or empty.
    pub key: String,
    /// What is wrong, and a hint where one helps.
    pub message: String,
}

impl ConfigError {
    /// An error at `key` (empty for the whole file).
    pub fn new(file: &Path, key: impl AsRef<str>, message: impl Into<String>) -> Self {
        let key = key.as_ref();
        Self {
            file: file.display().to_string(),
            key: if key.is_empty() { String::new() } else { format!("{key}: ") },
            message: message.into(),
        }
    }
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// Its contents with the environment overrides applied.
    pub config: BridgeConfig,
}

impl Loaded {
    /// The directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> &Path {
        base_dir(&self.path)
    }

    /// An error at `key` of this file.
    pub fn error(&self, key: impl AsRef<str>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.path, key, message)
    }
}

/// The directory relative paths in the configuration file at `path` are resolved against.
fn base_dir(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Reads `path`, applies `DTBRIDGE_*` overrides, and deserializes.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        let message = match err.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => format!("cannot read: {err}"),
        };
        ConfigError::new(path, "", message)
    })?;
    load_str(&text, path)
}

/// Like [`load`], for a configuration already in memory; `path` names it in errors and is
/// where relative paths in it resolve from.
pub fn load_str(text: &str, path: &Path) -> Result<Loaded, ConfigError> {
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("DTBRIDGE")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides())),
        )
        .build()
        .map_err(|err| ConfigError::new(path, "", syntax_message(&err)))?;
    let raw: RawConfig = serde_path_to_error::deserialize(built).map_err(|err| {
        let key = err.path().to_string();
        let key = if key == "." { String::new() } else { key };
        ConfigError::new(path, key, with_suggestion(&err.inner().to_string()))
    })?;
    let sources = raw
        .sources
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            SourceConfig::from_table(table).map_err(|(key, message)| {
                let key = if key == "." { String::new() } else { format!(".{key}") };
                ConfigError::new(path, format!("sources[{i}]{key}"), message)
            })
        })
        .collect::<Result<_, _>>()?;
    if let Some(view) = &raw.view {
        crate::view::parse_address(&view.address)
            .map_err(|err| ConfigError::new(path, "view.address", err.to_string()))?;
    }
    let mut livekit = raw.livekit;
    if let Some(file) = &mut livekit.ca_file {
        *file = base_dir(path).join(&*file);
        let bundle =
            CaBundle::load(file).map_err(|why| ConfigError::new(path, "livekit.ca_file", why))?;
        livekit.ca_bundle = Some(bundle);
    }
    livekit.e2ee = e2ee_keys(&livekit, path)?;
    let config =
        BridgeConfig { livekit, sources, routes: raw.routes, record: raw.record, view: raw.view };
    config.check_ros_domains().map_err(|(key, message)| ConfigError::new(path, key, message))?;
    config.livekit.token_ttl().map_err(|why| ConfigError::new(path, "livekit.token_ttl_s", why))?;
    Ok(Loaded { path: path.to_path_buf(), config })
}

/// Environment variable holding the text of an end-to-end encryption key file, for a key
/// that must not be written to disk (a container's secret).
pub const ENV_E2EE_KEY: &str = "DTBRIDGE_E2EE_KEY";

/// The shared keys from `livekit.e2ee_key_file` (relative to the configuration's directory)
/// or [`ENV_E2EE_KEY`]; one place only, so that which key is used is never a guess.
fn e2ee_keys(livekit: &LiveKitConfig, path: &Path) -> Result<Option<Arc<SharedKeys>>, ConfigError> {
    let key = "livekit.e2ee_key_file";
    let from_env = std::env::var_os(ENV_E2EE_KEY).filter(|value| !value.is_empty());
    let text = match (&livekit.e2ee_key_file, from_env) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                path,
                key,
                format!("set either this or {ENV_E2EE_KEY}, not both"),
            ));
        }
        (None, Some(value)) => std::os::unix::ffi::OsStringExt::into_vec(value),
        (Some(file), None) => {
            let file = base_dir(path).join(file);
            std::fs::read(&file).map_err(|err| {
                ConfigError::new(path, key, format!("cannot read {}: {err}", file.display()))
            })?
        }
    };
    let keys = SharedKeys::parse(&text).map_err(|why| {
        let key = if livekit.e2ee_key_file.is_some() { key } else { ENV_E2EE_KEY };
        ConfigError::new(path, key, why)
    })?;
    Ok(Some(Arc::new(keys)))
}

/// The `DTBRIDGE_` variables that address a key in a table (`DTBRIDGE_LIVEKIT__ROOM`). Every
/// top-level key is a table or a list, so a variable without `__` is not an override but some
/// other tool's setting (`DTBRIDGE_CACHE`, ...) and is left alone.
fn overrides() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(name, _)| name.starts_with("DTBRIDGE_") && name.contains("__"))
        .collect()
}

/// The parse error without the file name, which [`ConfigError`] adds.
fn syntax_message(err: &config::ConfigError) -> String {
    let text = err.to_string();
    format!("not valid TOML: {}", text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_field() {
        let message = "unknown field `compresion`, expected one of `topic`, `compression`";
        assert!(with_suggestion(message).ends_with("(did you mean `compression`?)"));
        let far = "unknown field `zzz`, expected one of `topic`, `compression`";
        assert_eq!(with_suggestion(far), far);
    }

    #[test]
    fn a_bad_pattern_is_an_error_at_its_key() {
        let path = Path::new("robot.toml");
        let err = load_str("[[routes]]\ntopic = \"/cam**\"\n", path).unwrap_err().to_string();
        assert!(err.contains("routes[0].topic") && err.contains("whole segment"), "{err}");
        let err = load_str("[record]\ntracks = [\"/a\", \"/b/[x\"]\n", path).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("record.tracks") && err.contains("[1]: '/b/[x'"), "{err}");
        let err = load_str(
            "[[sources]]\ntype = \"mcap\"\nname = \"m\"\npath = \"x.mcap\"\ntopics = [\"/a**\"]\n",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sources[0].topics") && err.contains("'/a**'"), "{err}");
    }

    #[test]
    fn the_e2ee_key_file_is_read_at_load_next_to_the_configuration() {
        let dir = std::env::temp_dir().join(format!("dtbridge-e2ee-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("robot.toml");
        let config = "[livekit]\nbackend = \"loopback\"\ne2ee_key_file = \"room.key\"\n";
        let err = load_str(config, &path).unwrap_err().to_string();
        assert!(err.contains("livekit.e2ee_key_file") && err.contains("room.key"), "{err}");
        std::fs::write(dir.join("room.key"), "old\nnew\n").unwrap();
        let loaded = load_str(config, &path).unwrap();
        let keys = loaded.config.livekit.e2ee.clone().expect("keys");
        assert_eq!(keys.current_index(), 1);
        let Connection::Loopback { e2ee, .. } =
            loaded.config.livekit.connection(Role::Robot).unwrap()
        else {
            panic!("a loopback connection");
        };
        assert!(e2ee.is_some_and(|e2ee| Arc::ptr_eq(&e2ee, &keys)));
        std::fs::write(dir.join("room.key"), "old\n\nnew\n").unwrap();
        let err = load_str(config, &path).unwrap_err().to_string();
        assert!(err.contains("livekit.e2ee_key_file") && err.contains("line 2 is empty"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_ca_file_is_checked_on_load_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("dtbridge-ca-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
        let path = dir.join("robot.toml");
        let loaded = load_str("[livekit]\nca_file = \"ca.pem\"\n", &path).unwrap();
        assert_eq!(loaded.config.livekit.ca_file, Some(dir.join("ca.pem")));
        assert!(loaded.config.livekit.ca_bundle.is_some());
        let err = load_str("[livekit]\nca_file = \"nope.pem\"\n", &path).unwrap_err().to_string();
        assert!(
            err.contains("livekit.ca_file: ") && err.contains("nope.pem: no such file"),
            "{err}"
        );
        _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_role_is_granted_only_what_it_does() {
        assert_eq!(Role::Robot.grants(), Grants { publish_data: true, subscribe: false });
        assert_eq!(Role::Operator.grants(), Grants { publish_data: false, subscribe: true });
        assert_eq!(Role::Robot.default_identity(), "robot");
        assert_eq!(Role::Operator.default_identity(), "operator");
    }

    #[test]
    fn the_token_ttl_is_checked_at_load() {
        let path = Path::new("robot.toml");
        let loaded = load_str("[livekit]\ntoken_ttl_s = 3600\n", path).unwrap();
        assert_eq!(loaded.config.livekit.token_ttl(), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(load_str("", path).unwrap().config.livekit.token_ttl(), Ok(None));
        for bad in ["0", "-5", "1e300", "nan"] {
            let err = load_str(&format!("[livekit]\ntoken_ttl_s = {bad}\n"), path).unwrap_err();
            let err = err.to_string();
            assert!(err.starts_with("robot.toml: livekit.token_ttl_s: "), "{err}");
        }
    }

    #[cfg(feature = "ros2")]
    #[test]
    fn one_ros_domain_per_process() {
        let ros = |name: &str, domain: &str| {
            format!("[[sources]]\ntype = \"ros2\"\nname = \"{name}\"\n{domain}\n")
        };
        let path = Path::new("robot.toml");
        let one = format!("{}{}", ros("a", "domain_id = 7"), ros("b", ""));
        assert_eq!(load_str(&one, path).unwrap().config.ros_domain_id(), Some(7));
        let same = format!("{}{}", ros("a", "domain_id = 7"), ros("b", "domain_id = 7"));
        assert_eq!(load_str(&same, path).unwrap().config.ros_domain_id(), Some(7));
        let two = format!("{}{}", ros("a", "domain_id = 7"), ros("b", "domain_id = 8"));
        let err = load_str(&two, path).unwrap_err().to_string();
        assert!(err.contains("sources[1].domain_id") && err.contains("domain 7"), "{err}");
        assert_eq!(load_str(&ros("a", ""), path).unwrap().config.ros_domain_id(), None);
    }
}
