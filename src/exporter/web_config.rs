//! The web config file (`--web.config.file`): TLS, basic auth, response headers, HTTP/2 and
//! a rate limit, in the format of the Prometheus exporter-toolkit, every key of it.
//!
//! `parse` turns the YAML into `Settings` without touching the filesystem (unit-tested);
//! `Settings::build` reads the certificates and key and makes the TLS configuration. Every
//! refusal names the key at fault (`tls_server_config.cert_file: ...`), so one stderr line
//! says what to fix; unknown keys are refused by name. Where rustls cannot do exactly what
//! Go would, `WebConfig::notes` says what is done instead (`-v`). `web_reload` reloads it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::auth::Users;
use super::tls_policy;

/// What the exporter serves with: TLS or plain HTTP, basic auth or none, the headers added
/// to every response, and the rate limit.
#[derive(Default)]
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    pub users: Option<Arc<Users>>,
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    pub rate_limit: Option<RateLimit>,
    /// What is done instead of what the file asks, where rustls cannot do it exactly.
    pub notes: Vec<String>,
    /// The files it was made from (the config file's first), to watch for changes.
    pub files: Vec<PathBuf>,
}

/// `--web.config.file`, read and checked: no file is plain HTTP without auth. Errors read
/// `web config PATH: KEY: problem`. `previous` lends its users (and what they verified)
/// when they are unchanged.
pub fn load(path: Option<&Path>, previous: Option<&WebConfig>) -> Result<WebConfig> {
    let Some(path) = path else {
        return Ok(WebConfig::default());
    };
    let fail = |message: String| anyhow!("web config {}: {message}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    // The toolkit resolves relative file names against the config file's directory.
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut web = parse(&text, dir)
        .and_then(|settings| settings.build(previous))
        .map_err(|e| fail(e.to_string()))?;
    web.files.insert(0, path.to_owned());
    Ok(web)
}

/// A refusal: the key at fault (dotted, empty for the file as a whole) and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebConfigError {
    pub key: String,
    pub problem: String,
}

impl WebConfigError {
    fn new(key: &str, problem: impl Into<String>) -> Self {
        WebConfigError {
            key: key.to_owned(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line whatever the YAML parser said.
        let problem = self
            .problem
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if self.key.is_empty() {
            f.write_str(&problem)
        } else {
            write!(f, "{}: {problem}", self.key)
        }
    }
}

impl std::error::Error for WebConfigError {}

/// The file as checked: what `build` needs, nothing read from disk yet.
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    pub tls: Option<TlsSettings>,
    /// User name to bcrypt hash; empty means no authentication.
    pub users: BTreeMap<String, String>,
    /// `http_server_config.http2`: offer HTTP/2 in the TLS handshake (ALPN h2).
    pub http2: bool,
    /// `http_server_config.headers`, checked, blank ones left out.
    pub headers: Vec<(String, String)>,
    pub rate_limit: Option<RateLimit>,
}

/// `rate_limit`: a token bucket of `burst` requests refilled one per `interval`, shared by
/// all clients; a request over it gets 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: Pem,
    pub key: Pem,
    pub client_ca: Option<Pem>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// Go's names, checked; empty for the defaults.
    pub cipher_suites: Vec<String>,
    pub curve_preferences: Vec<String>,
    /// Whether the server's order of suites wins over the client's (the toolkit's default).
    pub prefer_server_cipher_suites: bool,
    /// SANs one of which a client certificate must have; None for any.
    pub client_allowed_sans: Option<Vec<String>>,
    pub http2: bool,
}

/// PEM text given inline (`cert`) or as a file (`cert_file`); the key names it for errors.
#[derive(Debug, PartialEq, Eq)]
pub enum Pem {
    Inline { key: &'static str, text: String },
    File { key: &'static str, path: PathBuf },
}

/// `client_auth_type`: Go's crypto/tls policies, as the toolkit names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// Asks for a certificate, accepts none, does not verify one.
    RequestClientCert,
    /// Requires a certificate but does not verify it.
    RequireAnyClientCert,
    /// Verifies a certificate against the client CA when one is sent.
    VerifyClientCertIfGiven,
    /// Requires a certificate that chains to the client CA: the one secure choice.
    RequireAndVerifyClientCert,
}

const CLIENT_AUTH_TYPES: &str = "NoClientCert, RequestClientCert, RequireAnyClientCert, \
    VerifyClientCertIfGiven, RequireAndVerifyClientCert";

impl ClientAuth {
    fn parse(name: &str) -> Option<ClientAuth> {
        Some(match name {
            "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // The toolkit keeps the old name as an alias.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn parse(key: &str, name: Option<&str>, default: TlsVersion) -> Result<Self, WebConfigError> {
        match name {
            None => Ok(default),
            Some("TLS12") => Ok(TlsVersion::Tls12),
            Some("TLS13") => Ok(TlsVersion::Tls13),
            Some(old @ ("TLS10" | "TLS11")) => Err(WebConfigError::new(
                key,
                format!("{old} is not supported (TLS12 or TLS13)"),
            )),
            Some(other) => Err(WebConfigError::new(
                key,
                format!("unknown TLS version {other:?} (TLS12 or TLS13)"),
            )),
        }
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

// The file as YAML.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a mapping of web settings")]
struct FileYaml {
    tls_server_config: Option<TlsYaml>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    http_server_config: Option<HttpYaml>,
    rate_limit: Option<RateLimitYaml>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a mapping of HTTP settings")]
struct HttpYaml {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a mapping with interval and burst")]
struct RateLimitYaml {
    /// A Go duration (`1s`, `250ms`), or nanoseconds as a number, as Go's YAML reads it.
    interval: Option<Value>,
    burst: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a mapping of TLS settings")]
struct TlsYaml {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

/// The headers the toolkit lets a file set, and the values it allows (any when empty).
const HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Checks the file's text; relative file names are taken from `dir`. An empty file is
/// plain HTTP without authentication, as in the toolkit.
pub fn parse(text: &str, dir: &Path) -> Result<Settings, WebConfigError> {
    let file: FileYaml = serde_yaml_ng::from_str::<Option<FileYaml>>(text)
        .map_err(|e| WebConfigError::new("", yaml_problem(&e)))?
        .unwrap_or_default();
    let http = file.http_server_config.unwrap_or_default();
    let http2 = http.http2.unwrap_or(true);
    let headers = headers(http.headers.unwrap_or_default())?;
    let rate_limit = rate_limit(file.rate_limit)?;
    let tls = match file.tls_server_config {
        Some(tls) => tls_settings(tls, dir, http2)?,
        None => None,
    };
    let users = file.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        let key = format!("basic_auth_users.{user}");
        if user.contains(':') {
            return Err(WebConfigError::new(
                &key,
                "a user name cannot contain ':' (basic auth splits at the first ':')",
            ));
        }
        super::auth::check_hash(hash).map_err(|problem| WebConfigError::new(&key, problem))?;
    }
    Ok(Settings {
        tls,
        users,
        http2,
        headers,
        rate_limit,
    })
}

/// `http_server_config.headers`, checked as the toolkit checks them; blank values unset.
fn headers(headers: BTreeMap<String, String>) -> Result<Vec<(String, String)>, WebConfigError> {
    let mut checked = Vec::new();
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = HEADERS.iter().find(|(h, _)| *h == name) else {
            let names: Vec<_> = HEADERS.iter().map(|(h, _)| *h).collect();
            return Err(WebConfigError::new(
                &key,
                format!("cannot be set (one of {})", names.join(", ")),
            ));
        };
        if value.is_empty() {
            continue;
        }
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(WebConfigError::new(
                &key,
                format!("{value:?} is not one of {}", allowed.join(", ")),
            ));
        }
        if hyper::header::HeaderValue::from_str(&value).is_err() {
            return Err(WebConfigError::new(&key, "not a valid header value"));
        }
        checked.push((name, value));
    }
    Ok(checked)
}

/// `rate_limit`: none when absent or with a zero interval, as in the toolkit.
fn rate_limit(yaml: Option<RateLimitYaml>) -> Result<Option<RateLimit>, WebConfigError> {
    let Some(yaml) = yaml else {
        return Ok(None);
    };
    let interval = match yaml.interval {
        None => Duration::ZERO,
        Some(Value::String(text)) => go_duration(&text).ok_or_else(|| {
            WebConfigError::new(
                "rate_limit.interval",
                format!("{text:?} is not a duration (like 1s, 250ms or 1m30s)"),
            )
        })?,
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            Duration::from_nanos(n.as_u64().unwrap_or_default())
        }
        Some(_) => {
            return Err(WebConfigError::new(
                "rate_limit.interval",
                "not a duration (like 1s, 250ms or 1m30s)",
            ))
        }
    };
    if interval.is_zero() {
        return Ok(None);
    }
    let burst = yaml.burst.unwrap_or(0);
    if burst == 0 {
        return Err(WebConfigError::new(
            "rate_limit.burst",
            "must be at least 1 (with 0 every request would be refused)",
        ));
    }
    Ok(Some(RateLimit { interval, burst }))
}

/// A Go duration (`time.ParseDuration`): numbers with units ns, us (or µs), ms, s, m, h,
/// fractions allowed (`1.5h`), `0` alone; no sign (a negative interval means nothing here).
pub fn go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * nanos;
    }
    (!text.is_empty()).then(|| Duration::from_nanos(total.round() as u64))
}

/// serde_yaml_ng says where in the file; keep its message, drop its `Error(...)` dressing.
fn yaml_problem(err: &serde_yaml_ng::Error) -> String {
    format!("invalid YAML: {err}")
}

fn tls_settings(
    tls: TlsYaml,
    dir: &Path,
    http2: bool,
) -> Result<Option<TlsSettings>, WebConfigError> {
    const T: &str = "tls_server_config";
    let cipher_suites = names(tls.cipher_suites, "cipher_suites", tls_policy::check_cipher)?;
    let curve_preferences = names(
        tls.curve_preferences,
        "curve_preferences",
        tls_policy::check_curve,
    )?;
    let cert = pem(tls.cert, tls.cert_file, ["cert", "cert_file"], dir)?;
    let key = pem(tls.key, tls.key_file, ["key", "key_file"], dir)?;
    let client_ca = pem(
        tls.client_ca,
        tls.client_ca_file,
        ["client_ca", "client_ca_file"],
        dir,
    )?;
    // As in the toolkit, TLS is on when any certificate, key, CA or client policy is given;
    // only versions (or nothing) leave plain HTTP.
    if cert.is_none() && key.is_none() && client_ca.is_none() && tls.client_auth_type.is_none() {
        return Ok(None);
    }
    let client_auth = client_auth(tls.client_auth_type.as_deref(), client_ca.is_some())?;
    let (min_version, max_version) = versions(tls.min_version, tls.max_version)?;
    let client_allowed_sans = allowed_sans(tls.client_allowed_sans, client_auth)?;
    Ok(Some(TlsSettings {
        cert: cert.ok_or_else(|| WebConfigError::new(T, "cert_file (or cert) is missing"))?,
        key: key.ok_or_else(|| WebConfigError::new(T, "key_file (or key) is missing"))?,
        client_ca,
        client_auth,
        min_version,
        max_version,
        cipher_suites,
        curve_preferences,
        prefer_server_cipher_suites: tls.prefer_server_cipher_suites.unwrap_or(true),
        client_allowed_sans,
        http2,
    }))
}

/// A list of Go names, each checked by `check`.
fn names(
    list: Option<Vec<String>>,
    key: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, WebConfigError> {
    let list = list.unwrap_or_default();
    for name in &list {
        check(name)
            .map_err(|problem| WebConfigError::new(&format!("tls_server_config.{key}"), problem))?;
    }
    Ok(list)
}

/// `client_allowed_sans`, enforced: it needs a policy that asks for client certificates.
fn allowed_sans(
    sans: Option<Vec<String>>,
    client_auth: ClientAuth,
) -> Result<Option<Vec<String>>, WebConfigError> {
    const KEY: &str = "tls_server_config.client_allowed_sans";
    let Some(sans) = sans else {
        return Ok(None);
    };
    if client_auth == ClientAuth::NoClientCert {
        return Err(WebConfigError::new(
            KEY,
            "needs a client_auth_type that asks for certificates \
             (RequireAndVerifyClientCert to require and verify them)",
        ));
    }
    if sans.is_empty() {
        return Err(WebConfigError::new(
            KEY,
            "is empty: no client certificate could match",
        ));
    }
    Ok(Some(sans))
}

/// A PEM given inline (`names[0]`) or as a file (`names[1]`, relative to `dir`), not both.
fn pem(
    inline: Option<String>,
    file: Option<String>,
    names: [&'static str; 2],
    dir: &Path,
) -> Result<Option<Pem>, WebConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(WebConfigError::new(
            "tls_server_config",
            format!("{} and {} are both given; use one", names[0], names[1]),
        )),
        (Some(text), None) => Ok(Some(Pem::Inline {
            key: names[0],
            text,
        })),
        (None, Some(path)) => Ok(Some(Pem::File {
            key: names[1],
            path: dir.join(path),
        })),
        (None, None) => Ok(None),
    }
}

/// The client certificate policy, checked against whether a client CA is given.
fn client_auth(name: Option<&str>, has_ca: bool) -> Result<ClientAuth, WebConfigError> {
    let client_auth = match name {
        None => ClientAuth::NoClientCert,
        Some(name) => ClientAuth::parse(name).ok_or_else(|| {
            WebConfigError::new(
                "tls_server_config.client_auth_type",
                format!("unknown value {name:?} (one of {CLIENT_AUTH_TYPES})"),
            )
        })?,
    };
    if has_ca && client_auth == ClientAuth::NoClientCert {
        return Err(WebConfigError::new(
            "tls_server_config.client_ca_file",
            "a client CA needs a client_auth_type that asks for certificates \
             (RequireAndVerifyClientCert to require and verify them)",
        ));
    }
    if !has_ca && client_auth.verifies() {
        return Err(WebConfigError::new(
            "tls_server_config.client_auth_type",
            format!("{client_auth:?} needs client_ca_file (or client_ca) to verify against"),
        ));
    }
    Ok(client_auth)
}

fn versions(
    min: Option<String>,
    max: Option<String>,
) -> Result<(TlsVersion, TlsVersion), WebConfigError> {
    let min = TlsVersion::parse(
        "tls_server_config.min_version",
        min.as_deref(),
        TlsVersion::Tls12,
    )?;
    let max = TlsVersion::parse(
        "tls_server_config.max_version",
        max.as_deref(),
        TlsVersion::Tls13,
    )?;
    if min > max {
        return Err(WebConfigError::new(
            "tls_server_config",
            "min_version is above max_version",
        ));
    }
    Ok((min, max))
}

impl Pem {
    fn key(&self) -> String {
        let key = match self {
            Pem::Inline { key, .. } | Pem::File { key, .. } => key,
        };
        format!("tls_server_config.{key}")
    }

    fn read(&self) -> Result<Vec<u8>, WebConfigError> {
        match self {
            Pem::Inline { text, .. } => Ok(text.as_bytes().to_vec()),
            Pem::File { path, .. } => std::fs::read(path).map_err(|e| {
                WebConfigError::new(&self.key(), format!("cannot read {}: {e}", path.display()))
            }),
        }
    }

    fn what(&self) -> String {
        match self {
            Pem::Inline { .. } => "the inline PEM".to_owned(),
            Pem::File { path, .. } => path.display().to_string(),
        }
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
        let pem = self.read()?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| WebConfigError::new(&self.key(), format!("{}: {e}", self.what())))?;
        if certs.is_empty() {
            return Err(WebConfigError::new(
                &self.key(),
                format!("no PEM certificate in {}", self.what()),
            ));
        }
        Ok(certs)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, WebConfigError> {
        let pem = self.read()?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            WebConfigError::new(
                &self.key(),
                format!("no PEM private key in {} ({e})", self.what()),
            )
        })
    }
}

impl Settings {
    /// Reads the certificates and key and makes the TLS configuration; checks that the key
    /// belongs to the certificate, and hashes the unknown-user stand-in for basic auth
    /// unless `previous` has the same users.
    pub fn build(self, previous: Option<&WebConfig>) -> Result<WebConfig, WebConfigError> {
        let mut notes = Vec::new();
        let tls = match &self.tls {
            Some(tls) => Some(tls.server_config(&mut notes)?),
            None => None,
        };
        let files = self.tls.iter().flat_map(TlsSettings::files).collect();
        let kept = previous
            .and_then(|p| p.users.as_ref())
            .filter(|users| *users.hashes() == self.users);
        let users = match kept {
            Some(users) => Some(users.clone()),
            None if self.users.is_empty() => None,
            None => Some(Arc::new(Users::new(self.users))),
        };
        let headers = self.headers.iter().map(|(name, value)| {
            let name = hyper::header::HeaderName::from_bytes(name.as_bytes());
            let value = hyper::header::HeaderValue::from_str(value);
            (
                name.expect("checked in parse"),
                value.expect("checked in parse"),
            )
        });
        Ok(WebConfig {
            tls,
            users,
            headers: headers.collect(),
            rate_limit: self.rate_limit,
            notes,
            files,
        })
    }
}

impl TlsSettings {
    /// The files it reads.
    fn files(&self) -> Vec<PathBuf> {
        let pems = [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()];
        let paths = pems.into_iter().flatten().filter_map(|pem| match pem {
            Pem::File { path, .. } => Some(path.clone()),
            Pem::Inline { .. } => None,
        });
        paths.collect()
    }

    fn server_config(&self, notes: &mut Vec<String>) -> Result<Arc<ServerConfig>, WebConfigError> {
        let certs = self.cert.certificates()?;
        let key = self.key.private_key()?;
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = tls_policy::cipher_suites(&self.cipher_suites, &provider, notes);
        provider.kx_groups = tls_policy::kx_groups(&self.curve_preferences, &provider, notes);
        let provider = Arc::new(provider);
        let versions: Vec<_> = [TlsVersion::Tls12, TlsVersion::Tls13]
            .into_iter()
            .filter(|v| (self.min_version..=self.max_version).contains(v))
            .map(TlsVersion::rustls)
            .collect();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| WebConfigError::new("tls_server_config", e.to_string()))?;
        let verifier = self.client_verifier(&provider)?;
        let mut config = builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| {
                WebConfigError::new(
                    &self.key.key(),
                    format!("{} does not fit {}: {e}", self.key.what(), self.cert.what()),
                )
            })?;
        // As in Go, HTTP/2 only through ALPN (no h2c); without it a client offering h2
        // alone is refused in the handshake.
        config.alpn_protocols = if self.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        config.ignore_client_order = self.prefer_server_cipher_suites;
        Ok(Arc::new(config))
    }

    fn client_verifier(
        &self,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
        let roots = match &self.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in ca.certificates()? {
                    roots.add(cert).map_err(|e| {
                        WebConfigError::new(&ca.key(), format!("{}: {e}", ca.what()))
                    })?;
                }
                Some(Arc::new(roots))
            }
            None => None,
        };
        let verified = |roots: Option<Arc<RootCertStore>>, optional: bool| {
            let roots = roots.expect("checked in parse: verifying policies have a CA");
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let builder = if optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|e| WebConfigError::new("tls_server_config.client_ca_file", e.to_string()))
        };
        let verifier = match self.client_auth {
            ClientAuth::NoClientCert => rustls::server::WebPkiClientVerifier::no_client_auth(),
            ClientAuth::RequestClientCert => Arc::new(UnverifiedClientCert::new(provider, false)),
            ClientAuth::RequireAnyClientCert => Arc::new(UnverifiedClientCert::new(provider, true)),
            ClientAuth::VerifyClientCertIfGiven => verified(roots, true)?,
            ClientAuth::RequireAndVerifyClientCert => verified(roots, false)?,
        };
        Ok(match &self.client_allowed_sans {
            Some(sans) => Arc::new(tls_policy::AllowedSans {
                inner: verifier,
                sans: sans.clone(),
            }),
            None => verifier,
        })
    }
}

/// Go's RequestClientCert and RequireAnyClientCert: the client proves it holds the key
/// of the certificate it sends, but the certificate itself is not checked against any CA.
/// The toolkit calls these insecure; they exist so its files keep their meaning here.
#[derive(Debug)]
struct UnverifiedClientCert {
    mandatory: bool,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl UnverifiedClientCert {
    fn new(provider: &rustls::crypto::CryptoProvider, mandatory: bool) -> Self {
        UnverifiedClientCert {
            mandatory,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for UnverifiedClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real bcrypt hash (cost 4) of "secret".
    const HASH: &str = "$2y$04$4Nm0Ds0hAqxJTXUjlRXKA.4sSs1Z3Gw0uwE4dGaT6yQDpq1KpbVoa";

    fn parse_in(text: &str) -> Result<Settings, WebConfigError> {
        parse(text, Path::new("/etc/tcpt"))
    }

    fn refusal(text: &str) -> String {
        parse_in(text).expect_err(text).to_string()
    }

    #[test]
    fn empty_files_are_plain_http() {
        for text in [
            "",
            "\n",
            "# nothing\n",
            "---\n",
            "tls_server_config:\nbasic_auth_users:\n",
        ] {
            let s = parse_in(text).expect(text);
            assert_eq!(s.tls, None, "{text:?}");
            assert!(s.users.is_empty(), "{text:?}");
        }
        // Versions alone do not turn TLS on (the toolkit's IsEnabled).
        let s = parse_in("tls_server_config:\n  min_version: TLS13\n").unwrap();
        assert_eq!(s.tls, None);
    }

    #[test]
    fn tls_files_relative_to_the_config() {
        let s = parse_in(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: /k/server.key\n\
             basic_auth_users:\n  alice: \"$2y$04$4Nm0Ds0hAqxJTXUjlRXKA.4sSs1Z3Gw0uwE4dGaT6yQDpq1KpbVoa\"\n",
        )
        .unwrap();
        assert_eq!(
            s.tls,
            Some(TlsSettings {
                cert: Pem::File {
                    key: "cert_file",
                    path: "/etc/tcpt/server.crt".into()
                },
                key: Pem::File {
                    key: "key_file",
                    path: "/k/server.key".into()
                },
                client_ca: None,
                client_auth: ClientAuth::NoClientCert,
                min_version: TlsVersion::Tls12,
                max_version: TlsVersion::Tls13,
                cipher_suites: Vec::new(),
                curve_preferences: Vec::new(),
                prefer_server_cipher_suites: true,
                client_allowed_sans: None,
                http2: true,
            })
        );
        assert_eq!(s.users.get("alice").map(String::as_str), Some(HASH));
    }

    #[test]
    fn client_auth_types() {
        let with = |policy: &str, ca: bool| {
            let mut text =
                format!("tls_server_config:\n  cert: x\n  key: y\n  client_auth_type: {policy}\n");
            if ca {
                text.push_str("  client_ca_file: ca.crt\n");
            }
            parse_in(&text).map(|s| s.tls.unwrap().client_auth)
        };
        for (policy, ca, auth) in [
            (
                "RequireAndVerifyClientCert",
                true,
                ClientAuth::RequireAndVerifyClientCert,
            ),
            (
                "VerifyClientCertIfGiven",
                true,
                ClientAuth::VerifyClientCertIfGiven,
            ),
            ("RequireClientCert", false, ClientAuth::RequireAnyClientCert),
            ("RequestClientCert", true, ClientAuth::RequestClientCert),
        ] {
            assert_eq!(with(policy, ca), Ok(auth), "{policy}");
        }
        assert_eq!(
            with("RequireAndVerifyClientCert", false)
                .unwrap_err()
                .to_string(),
            "tls_server_config.client_auth_type: RequireAndVerifyClientCert needs \
             client_ca_file (or client_ca) to verify against"
        );
        assert_eq!(
            with("Sometimes", true).unwrap_err().to_string(),
            format!(
                "tls_server_config.client_auth_type: unknown value \"Sometimes\" (one of {})",
                CLIENT_AUTH_TYPES
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        );
        // The toolkit's default policy is NoClientCert, which a client CA contradicts.
        let err = refusal("tls_server_config:\n  cert: x\n  key: y\n  client_ca_file: ca.crt\n");
        assert!(
            err.starts_with(
                "tls_server_config.client_ca_file: a client CA needs a client_auth_type"
            ),
            "{err}"
        );
    }

    #[test]
    fn refusals_name_the_key() {
        let cases = [
            (
                "tls_server_config:\n  cert_file: a\n",
                "tls_server_config: key_file (or key) is missing",
            ),
            (
                "tls_server_config:\n  key_file: a\n",
                "tls_server_config: cert_file (or cert) is missing",
            ),
            (
                "tls_server_config:\n  cert: a\n  cert_file: a\n  key: b\n",
                "tls_server_config: cert and cert_file are both given; use one",
            ),
            (
                "tls_server_config:\n  cert: a\n  key: b\n  min_version: TLS11\n",
                "tls_server_config.min_version: TLS11 is not supported (TLS12 or TLS13)",
            ),
            (
                "tls_server_config:\n  cert: a\n  key: b\n  max_version: TLS14\n",
                "tls_server_config.max_version: unknown TLS version \"TLS14\" (TLS12 or TLS13)",
            ),
            (
                "tls_server_config:\n  cert: a\n  key: b\n  min_version: TLS13\n  max_version: TLS12\n",
                "tls_server_config: min_version is above max_version",
            ),
            (
                "basic_auth_users:\n  bob: plaintext\n",
                "basic_auth_users.bob: not a bcrypt hash (the hash format is malformed; expected 60 ASCII bytes)",
            ),
            (
                "basic_auth_users:\n  \"a:b\": \"$2y$04$4Nm0Ds0hAqxJTXUjlRXKA.4sSs1Z3Gw0uwE4dGaT6yQDpq1KpbVoa\"\n",
                "basic_auth_users.a:b: a user name cannot contain ':' (basic auth splits at the first ':')",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(refusal(text), want, "{text:?}");
        }
    }

    #[test]
    fn refusals_of_tls_choices_headers_and_rate_limit() {
        let cases = [
            (
                "tls_server_config:\n  cert: a\n  key: b\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
                "tls_server_config.cipher_suites: unknown cipher suite \"TLS_RSA_WITH_RC4_128_SHA\" (Go's tls.CipherSuites() names)",
            ),
            (
                "tls_server_config:\n  curve_preferences: [P256]\n",
                "tls_server_config.curve_preferences: unknown curve \"P256\" (CurveP256, CurveP384, CurveP521 or X25519)",
            ),
            (
                "tls_server_config:\n  cert: a\n  key: b\n  client_allowed_sans: [a]\n",
                "tls_server_config.client_allowed_sans: needs a client_auth_type that asks for certificates (RequireAndVerifyClientCert to require and verify them)",
            ),
            (
                "tls_server_config:\n  cert: a\n  key: b\n  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: []\n",
                "tls_server_config.client_allowed_sans: is empty: no client certificate could match",
            ),
            (
                "http_server_config:\n  headers:\n    Server: x\n",
                "http_server_config.headers.Server: cannot be set (one of Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy)",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "http_server_config.headers.X-Frame-Options: \"allow\" is not one of deny, sameorigin",
            ),
            (
                "rate_limit:\n  interval: 1s\n",
                "rate_limit.burst: must be at least 1 (with 0 every request would be refused)",
            ),
            (
                "rate_limit:\n  interval: 1 second\n  burst: 2\n",
                "rate_limit.interval: \"1 second\" is not a duration (like 1s, 250ms or 1m30s)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(refusal(text), want, "{text:?}");
        }
    }

    #[test]
    fn http_settings_and_rate_limit() {
        let s = parse_in(
            "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    \
             Content-Security-Policy: ''\n    X-Content-Type-Options: nosniff\n\
             rate_limit:\n  interval: 1m30s\n  burst: 20\n",
        )
        .unwrap();
        assert!(!s.http2);
        assert_eq!(
            s.headers,
            [
                ("X-Content-Type-Options".to_owned(), "nosniff".to_owned()),
                ("X-Frame-Options".to_owned(), "deny".to_owned())
            ]
        );
        assert_eq!(
            s.rate_limit,
            Some(RateLimit {
                interval: Duration::from_secs(90),
                burst: 20
            })
        );
        let defaults = parse_in("").unwrap();
        assert!(defaults.http2);
        assert_eq!(defaults.rate_limit, None);
        let off = parse_in("rate_limit:\n  interval: 0\n  burst: 0\n").unwrap();
        assert_eq!(off.rate_limit, None, "a zero interval turns it off");
        let nanos = parse_in("rate_limit:\n  interval: 250000000\n  burst: 1\n").unwrap();
        assert_eq!(
            nanos.rate_limit.unwrap().interval,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("0", Some(ms(0))),
            ("1s", Some(ms(1000))),
            ("250ms", Some(ms(250))),
            ("1.5h", Some(Duration::from_secs(5400))),
            ("1h2m3s4ms", Some(ms(3_723_004))),
            ("10us", Some(Duration::from_micros(10))),
            ("10µs", Some(Duration::from_micros(10))),
            ("", None),
            ("1", None),
            ("s", None),
            ("1d", None),
            ("-1s", None),
        ] {
            assert_eq!(go_duration(text), want, "{text:?}");
        }
    }

    #[test]
    fn yaml_errors_are_one_line_and_say_where() {
        let err = refusal("tls_server_config:\n  cert_fil: a\n");
        assert!(
            err.starts_with("invalid YAML: tls_server_config: unknown field `cert_fil`"),
            "{err}"
        );
        assert!(err.contains("line 2"), "{err}");
        let err = refusal("bogus: 1\n");
        assert!(
            err.starts_with("invalid YAML: unknown field `bogus`"),
            "{err}"
        );
        let err = refusal("tls_server_config: [\n");
        assert!(err.starts_with("invalid YAML: "), "{err}");
        let err = refusal("tls_server_config: []\n");
        assert!(
            err.starts_with(
                "invalid YAML: tls_server_config: invalid type: sequence, expected a mapping of TLS settings"
            ),
            "{err}"
        );
        let err = refusal("- a\n");
        assert!(
            err.starts_with(
                "invalid YAML: invalid type: sequence, expected a mapping of web settings"
            ),
            "{err}"
        );
        let err = refusal("basic_auth_users: 3\n");
        assert!(
            err.starts_with("invalid YAML: basic_auth_users: invalid type"),
            "{err}"
        );
        for text in ["a: [\n\n\n", "\t- x\n  y: :\n"] {
            assert_eq!(refusal(text).lines().count(), 1, "{text:?}");
        }
    }
}
