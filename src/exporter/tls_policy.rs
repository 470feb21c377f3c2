//! The web config's TLS choices in Go's names (cipher suites, curves, allowed client SANs)
//! mapped onto rustls: which suites and key exchange groups the ring provider offers, and a
//! client certificate verifier that also checks the certificate's SANs.
//!
//! Go's names are checked against the lists the toolkit accepts (`tls.CipherSuites()` and
//! its four curves), so a file node_exporter takes is taken here. What rustls does not offer
//! (CBC and RSA key exchange suites, P-521) is left out with a note for `-v`.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, CipherSuite, DistinguishedName, NamedGroup, SupportedCipherSuite};

/// Go's `tls.CipherSuites()` (the secure ones, which the toolkit accepts): TLS 1.3 first,
/// then TLS 1.0-1.2; rustls' name of each.
const GO_CIPHER_SUITES: &[(&str, CipherSuite)] = &[
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA,
    ),
    (
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        CipherSuite::TLS_RSA_WITH_AES_256_CBC_SHA,
    ),
    (
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The toolkit's curve names and the TLS group of each.
const GO_CURVES: &[(&str, NamedGroup)] = &[
    ("CurveP256", NamedGroup::secp256r1),
    ("CurveP384", NamedGroup::secp384r1),
    ("CurveP521", NamedGroup::secp521r1),
    ("X25519", NamedGroup::X25519),
];

fn go_cipher(name: &str) -> Option<CipherSuite> {
    GO_CIPHER_SUITES
        .iter()
        .find(|(go, _)| *go == name)
        .map(|(_, suite)| *suite)
}

fn go_curve(name: &str) -> Option<NamedGroup> {
    GO_CURVES
        .iter()
        .find(|(go, _)| *go == name)
        .map(|(_, group)| *group)
}

/// Why a `cipher_suites` entry is refused (as the toolkit refuses it), or nothing.
pub fn check_cipher(name: &str) -> Result<(), String> {
    match go_cipher(name) {
        Some(_) => Ok(()),
        None => Err(format!(
            "unknown cipher suite {name:?} (Go's tls.CipherSuites() names)"
        )),
    }
}

/// Why a `curve_preferences` entry is refused, or nothing.
pub fn check_curve(name: &str) -> Result<(), String> {
    match go_curve(name) {
        Some(_) => Ok(()),
        None => Err(format!(
            "unknown curve {name:?} (CurveP256, CurveP384, CurveP521 or X25519)"
        )),
    }
}

/// The provider's suites for `cipher_suites` (Go's names, checked): as in Go, the list
/// chooses and orders the TLS 1.2 suites, and TLS 1.3's stay rustls' own. Notes say what
/// is left out or used instead.
pub fn cipher_suites(
    names: &[String],
    provider: &CryptoProvider,
    notes: &mut Vec<String>,
) -> Vec<SupportedCipherSuite> {
    const KEY: &str = "tls_server_config.cipher_suites";
    let tls13 = provider
        .cipher_suites
        .iter()
        .filter(|s| s.tls13().is_some())
        .copied();
    let mut chosen: Vec<SupportedCipherSuite> = tls13.collect();
    let mut missing = Vec::new();
    let mut ignored = Vec::new();
    for name in names {
        let suite = go_cipher(name).expect("checked in parse");
        if name.starts_with("TLS_AES_") || name.starts_with("TLS_CHACHA20_") {
            ignored.push(name.as_str());
            continue;
        }
        match provider.cipher_suites.iter().find(|s| s.suite() == suite) {
            Some(s) if !chosen.contains(s) => chosen.push(*s),
            Some(_) => {}
            None => missing.push(name.as_str()),
        }
    }
    if !ignored.is_empty() {
        notes.push(format!(
            "{KEY}: TLS 1.3 suites are not configurable (as in Go); {} ignored",
            ignored.join(", ")
        ));
    }
    let tls12 = chosen.iter().filter(|s| s.tls13().is_none()).count();
    if !missing.is_empty() {
        notes.push(format!(
            "{KEY}: rustls does not offer {}; left out",
            missing.join(", ")
        ));
    }
    if tls12 == 0 && names.len() > ignored.len() {
        notes.push(format!(
            "{KEY}: none of the TLS 1.2 suites is offered by rustls; rustls' own are used"
        ));
        chosen = provider.cipher_suites.clone();
    } else if tls12 == 0 {
        chosen = provider.cipher_suites.clone();
    }
    chosen
}

/// The provider's key exchange groups for `curve_preferences` (checked), in its order;
/// rustls' own when the list is empty or none of it is offered.
pub fn kx_groups(
    names: &[String],
    provider: &CryptoProvider,
    notes: &mut Vec<String>,
) -> Vec<&'static dyn SupportedKxGroup> {
    const KEY: &str = "tls_server_config.curve_preferences";
    let mut chosen: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        let group = go_curve(name).expect("checked in parse");
        match provider.kx_groups.iter().find(|g| g.name() == group) {
            Some(g) if !chosen.iter().any(|c| c.name() == group) => chosen.push(*g),
            Some(_) => {}
            None => missing.push(name.as_str()),
        }
    }
    if !missing.is_empty() {
        notes.push(format!(
            "{KEY}: rustls does not offer {}; left out",
            missing.join(", ")
        ));
    }
    if chosen.is_empty() {
        if !names.is_empty() {
            notes.push(format!(
                "{KEY}: none of the curves is offered by rustls; rustls' own are used"
            ));
        }
        return provider.kx_groups.clone();
    }
    chosen
}

/// `client_allowed_sans`: a client certificate that the policy's verifier accepts must also
/// have a SAN (DNS name, e-mail, IP address or URI) equal to one of `sans`, else the
/// handshake fails, as in the toolkit.
#[derive(Debug)]
pub struct AllowedSans {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub sans: Vec<String>,
}

/// A certificate's SANs as Go's crypto/x509 spells them; None if it cannot be parsed.
pub fn subject_alt_names(der: &[u8]) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let Some(extension) = cert.subject_alternative_name().ok()? else {
        return Some(Vec::new());
    };
    let names = extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some((*s).to_owned())
            }
            GeneralName::IPAddress(bytes) => ip_text(bytes),
            _ => None,
        });
    Some(names.collect())
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_canonical().to_string())
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        if sans.iter().any(|san| self.sans.contains(san)) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_suites_map_onto_rustls() {
        let provider = rustls::crypto::ring::default_provider();
        let mut notes = Vec::new();
        let suites = cipher_suites(
            &names(&[
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_128_CBC_SHA",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ]),
            &provider,
            &mut notes,
        );
        let tls12: Vec<_> = suites
            .iter()
            .filter(|s| s.tls13().is_none())
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            tls12,
            [
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            ]
        );
        assert_eq!(suites.iter().filter(|s| s.tls13().is_some()).count(), 3);
        assert_eq!(
            notes,
            [
                "tls_server_config.cipher_suites: TLS 1.3 suites are not configurable (as in Go); TLS_AES_128_GCM_SHA256 ignored",
                "tls_server_config.cipher_suites: rustls does not offer TLS_RSA_WITH_AES_128_CBC_SHA; left out",
            ]
        );
        let mut notes = Vec::new();
        let all = cipher_suites(
            &names(&["TLS_RSA_WITH_AES_128_CBC_SHA"]),
            &provider,
            &mut notes,
        );
        assert_eq!(all.len(), provider.cipher_suites.len());
        assert_eq!(notes.len(), 2, "{notes:?}");
    }

    #[test]
    fn go_curves_map_onto_rustls() {
        let provider = rustls::crypto::ring::default_provider();
        let mut notes = Vec::new();
        let groups = kx_groups(
            &names(&["CurveP521", "CurveP384", "X25519"]),
            &provider,
            &mut notes,
        );
        let groups: Vec<_> = groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, [NamedGroup::secp384r1, NamedGroup::X25519]);
        assert_eq!(
            notes,
            ["tls_server_config.curve_preferences: rustls does not offer CurveP521; left out"]
        );
        assert_eq!(
            check_curve("P256"),
            Err("unknown curve \"P256\" (CurveP256, CurveP384, CurveP521 or X25519)".into())
        );
        assert!(check_cipher("TLS_RSA_WITH_RC4_128_SHA").is_err());
        assert_eq!(ip_text(&[127, 0, 0, 1]).as_deref(), Some("127.0.0.1"));
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(ip_text(&v6).as_deref(), Some("::1"));
    }
}
