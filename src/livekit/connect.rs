//! Where to connect and as whom: the server URL and an access token, minted from an API key
//! and secret or given ready-made, with the usual `LIVEKIT_*` environment variables as defaults.

use super::{RoomError, SharedKeys};
use livekit_api::access_token::{AccessToken, VideoGrants};
use std::sync::Arc;
use std::time::Duration;

/// Environment variable holding the server URL (`ws://`, `wss://`, `http://` or `https://`).
pub const ENV_URL: &str = "LIVEKIT_URL";
/// Environment variable holding the API key used to mint tokens.
pub const ENV_API_KEY: &str = "LIVEKIT_API_KEY";
/// Environment variable holding the API secret used to mint tokens.
pub const ENV_API_SECRET: &str = "LIVEKIT_API_SECRET";
/// Environment variable holding a ready access token (takes precedence over key and secret).
pub const ENV_TOKEN: &str = "LIVEKIT_TOKEN";

/// How the client proves who it is to the server.
#[derive(Clone)]
pub enum Credentials {
    /// A ready access token (JWT); room and identity are inside it.
    Token(String),
    /// An API key and secret; a token is minted for the room and identity at connect time.
    ApiKey {
        /// API key (the JWT issuer).
        key: String,
        /// API secret (the JWT signing key).
        secret: String,
        /// Room to join.
        room: String,
        /// Participant identity to join as.
        identity: String,
        /// Grants to put in the token.
        grants: Grants,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and tokens never go to logs.
        match self {
            Self::Token(_) => f.write_str("Credentials::Token(<redacted>)"),
            Self::ApiKey { key, room, identity, grants, .. } => f
                .debug_struct("Credentials::ApiKey")
                .field("key", key)
                .field("room", room)
                .field("identity", identity)
                .field("grants", grants)
                .finish_non_exhaustive(),
        }
    }
}

/// The permissions a minted token carries; it never grants publishing audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    /// May publish data tracks (`canPublishData`).
    pub publish_data: bool,
    /// May subscribe to other participants' tracks (`canSubscribe`).
    pub subscribe: bool,
}

impl Grants {
    /// A participant that only publishes data tracks.
    pub const PUBLISHER: Self = Self { publish_data: true, subscribe: false };
    /// A participant that only subscribes.
    pub const SUBSCRIBER: Self = Self { publish_data: false, subscribe: true };
}

/// Both publishing and subscribing: for a participant that does both (tests, benchmarks);
/// dtbridge's commands ask for [`Grants::PUBLISHER`] or [`Grants::SUBSCRIBER`].
impl Default for Grants {
    fn default() -> Self {
        Self { publish_data: true, subscribe: true }
    }
}

/// Everything needed to join a room on a LiveKit server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Server URL, e.g. `ws://127.0.0.1:7880` or `wss://project.livekit.cloud`.
    pub url: String,
    /// Token or key/secret.
    pub credentials: Credentials,
    /// Upper bound for the whole join: signaling, ICE, DTLS and the data channels opening.
    pub connect_timeout: Duration,
    /// Local UDP addresses to gather ICE candidates on; empty (the default) binds every
    /// interface, and loopback too when the server's host resolves to a loopback address, so
    /// the same build reaches LiveKit Cloud and a server on 127.0.0.1 (a socket on loopback
    /// cannot send anywhere else, and every try would log an error).
    pub ice_udp_addrs: Vec<String>,
    /// Whether a session whose signal connection dropped is resumed (same participant, its
    /// tracks and subscriptions kept) before it is joined again in full. A participant that
    /// only subscribes is better off joining again: after a resume, what livekit-server sends
    /// it waits for the server's SCTP retransmission timer, which backs off to a minute
    /// (measured: frames 15 s after a 16 s cut ended, against 2 s with a new session).
    pub resume_session: bool,
    /// The room's shared end-to-end encryption keys: this participant's frames are sealed
    /// with them and remote frames opened; `None` sends in the clear and drops encrypted
    /// frames (counted), never passing them on as if they were the frame.
    pub e2ee: Option<Arc<SharedKeys>>,
    /// CA certificates the server's certificate may be signed by, besides the system's
    /// (`[livekit] ca_file`); `tls.rs` says whom the connection trusts, in which order.
    pub ca_bundle: Option<super::CaBundle>,
    /// How long a token minted from key and secret is valid. It is checked when joining and
    /// resuming only, and every reconnect mints a new one, so this bounds what a leaked token
    /// is worth, not how long a session may last. A ready token keeps its own expiry.
    pub token_ttl: Duration,
}

impl ConnectOptions {
    /// Default for [`Self::connect_timeout`].
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default for [`Self::token_ttl`]: livekit-api's own default made explicit, long enough
    /// for a robot whose clock is off by an hour or two.
    pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

    /// Options with the default timeout and ICE addresses.
    pub fn new(url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            url: url.into(),
            credentials,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            ice_udp_addrs: Vec::new(),
            resume_session: true,
            e2ee: None,
            ca_bundle: None,
            token_ttl: Self::DEFAULT_TOKEN_TTL,
        }
    }

    /// Options from `LIVEKIT_URL` and either `LIVEKIT_TOKEN` or `LIVEKIT_API_KEY` +
    /// `LIVEKIT_API_SECRET` (a token with `grants` is then minted for `room` and `identity`).
    pub fn from_env(room: &str, identity: &str, grants: Grants) -> Result<Self, RoomError> {
        Self::from_env_with_url(None, room, identity, grants)
    }

    /// [`Self::from_env`], with `url` (when given) taking the place of `LIVEKIT_URL`.
    pub fn from_env_with_url(
        url: Option<String>,
        room: &str,
        identity: &str,
        grants: Grants,
    ) -> Result<Self, RoomError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url = url.or_else(|| var(ENV_URL)).ok_or_else(|| {
            RoomError::Config(format!(
                "no server URL: set {ENV_URL} (e.g. {ENV_URL}=wss://my-project.livekit.cloud) \
                     or `url` in [livekit]; `backend = \"loopback\"` in [livekit] runs the \
                     in-process room instead"
            ))
        })?;
        let credentials = match (var(ENV_TOKEN), var(ENV_API_KEY), var(ENV_API_SECRET)) {
            (Some(token), _, _) => Credentials::Token(token),
            (None, Some(key), Some(secret)) => Credentials::ApiKey {
                key,
                secret,
                room: room.to_string(),
                identity: identity.to_string(),
                grants,
            },
            _ => {
                return Err(RoomError::Config(format!(
                    "set {ENV_TOKEN}, or both {ENV_API_KEY} and {ENV_API_SECRET}"
                )));
            }
        };
        Ok(Self::new(url, credentials))
    }

    /// Host and TCP port the signal connection goes to, from the URL (the scheme's port when
    /// it names none).
    pub(crate) fn server_address(&self) -> Result<(String, u16), RoomError> {
        let invalid = |why: &str| RoomError::Config(format!("server URL {:?}: {why}", self.url));
        let url = url::Url::parse(&self.url).map_err(|err| invalid(&err.to_string()))?;
        let host = url.host_str().ok_or_else(|| invalid("no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| invalid("no port"))?;
        Ok((host.trim_matches(['[', ']']).to_string(), port))
    }

    /// The access token to present: the given one, or one minted from the key and secret.
    pub(crate) fn token(&self) -> Result<String, RoomError> {
        match &self.credentials {
            Credentials::Token(token) => Ok(token.clone()),
            Credentials::ApiKey { key, secret, room, identity, grants } => {
                AccessToken::with_api_key(key, secret)
                    .with_ttl(self.token_ttl)
                    .with_identity(identity)
                    .with_name(identity)
                    .with_grants(VideoGrants {
                        room_join: true,
                        room: room.clone(),
                        can_publish: Some(false),
                        can_publish_data: Some(grants.publish_data),
                        can_subscribe: Some(grants.subscribe),
                        ..Default::default()
                    })
                    .to_jwt()
                    .map_err(|err| RoomError::Config(format!("cannot mint access token: {err}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(url: &str) -> Result<(String, u16), RoomError> {
        ConnectOptions::new(url, Credentials::Token(String::new())).server_address()
    }

    #[test]
    fn the_server_address_comes_from_the_url() {
        assert_eq!(address("ws://10.0.0.2:7880").unwrap(), ("10.0.0.2".into(), 7880));
        assert_eq!(
            address("wss://example.livekit.cloud").unwrap(),
            ("example.livekit.cloud".into(), 443)
        );
        assert_eq!(address("http://[::1]:7880/").unwrap(), ("::1".into(), 7880));
        assert_eq!(address("https://lk.example.org/base").unwrap(), ("lk.example.org".into(), 443));
        let err = address("not a url").unwrap_err().to_string();
        assert!(err.contains("server URL \"not a url\""), "{err}");
    }

    const KEY: &str = "unit-key";
    const SECRET: &str = "unit-secret-0123456789abcdef0123456789";

    /// The claims of the token minted for `grants` with `ttl`, its signature checked.
    fn minted(grants: Grants, ttl: Duration) -> livekit_api::access_token::Claims {
        let credentials = Credentials::ApiKey {
            key: KEY.into(),
            secret: SECRET.into(),
            room: "yard".into(),
            identity: "robot-7".into(),
            grants,
        };
        let mut options = ConnectOptions::new("ws://127.0.0.1:7880", credentials);
        options.token_ttl = ttl;
        let token = options.token().unwrap();
        livekit_api::access_token::TokenVerifier::with_api_key(KEY, SECRET).verify(&token).unwrap()
    }

    #[test]
    fn a_minted_token_grants_what_was_asked_and_no_more() {
        for grants in [Grants::PUBLISHER, Grants::SUBSCRIBER, Grants::default()] {
            let video = minted(grants, ConnectOptions::DEFAULT_TOKEN_TTL).video;
            assert_eq!(video.can_publish_data, Some(grants.publish_data), "{grants:?}");
            assert_eq!(video.can_subscribe, Some(grants.subscribe), "{grants:?}");
            assert_eq!(video.can_publish, Some(false), "no audio or video: {grants:?}");
            assert!(video.room_join && video.room == "yard", "{video:?}");
            assert!(!(video.room_admin || video.room_create || video.room_list), "{video:?}");
            assert!(!(video.room_record || video.hidden), "{video:?}");
        }
    }

    #[test]
    fn a_minted_token_expires_after_its_ttl() {
        for ttl in [Duration::from_secs(60), ConnectOptions::DEFAULT_TOKEN_TTL] {
            let claims = minted(Grants::PUBLISHER, ttl);
            // Minted within the same second or the next: whole seconds on both ends.
            let lifetime = claims.exp.saturating_sub(claims.nbf) as u64;
            assert!((ttl.as_secs()..=ttl.as_secs() + 1).contains(&lifetime), "{lifetime}");
            assert_eq!(claims.sub, "robot-7");
        }
        assert_eq!(
            ConnectOptions::new("ws://h", Credentials::Token(String::new())).token_ttl,
            ConnectOptions::DEFAULT_TOKEN_TTL
        );
    }

    #[test]
    fn debug_output_shows_no_secret_and_no_token() {
        let token = Credentials::Token("eyJ.the-ready-token.sig".into());
        let minted = Credentials::ApiKey {
            key: KEY.into(),
            secret: SECRET.into(),
            room: "yard".into(),
            identity: "robot-7".into(),
            grants: Grants::PUBLISHER,
        };
        for credentials in [token, minted] {
            let options = format!("{:?}", ConnectOptions::new("ws://h", credentials));
            assert!(!options.contains("the-ready-token") && !options.contains(SECRET), "{options}");
        }
    }
}
