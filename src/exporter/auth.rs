//! Basic authentication against the web config's bcrypt hashes.
//!
//! bcrypt is slow on purpose (about 50 ms at cost 10), so it runs on the blocking pool, one
//! at a time (as in the exporter-toolkit), never on the workers that serve connections.
//! Credentials that verified are remembered by an HMAC under a key made at startup, not
//! as text, in a small table, so a scraper's repeated requests cost one bcrypt in all. An
//! unknown user costs a bcrypt too (against a stand-in hash of the same cost), so timing
//! does not tell which users exist.

use std::collections::{BTreeMap, VecDeque};
use std::str::FromStr;
use std::sync::Mutex;

use base64::Engine;
use ring::hmac;
use tokio::sync::Semaphore;

/// Verified credentials remembered; the oldest is forgotten first.
pub const CACHE_ENTRIES: usize = 64;

/// HMAC-SHA256 of a user and password.
type Digest = [u8; 32];

/// The realm sent with 401.
pub const REALM: &str = "tcptools-exporter";

/// Why a configured hash is refused, or nothing.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let parts = bcrypt::HashParts::from_str(hash).map_err(|e| match e {
        bcrypt::BcryptError::InvalidHash(why) => format!("not a bcrypt hash ({why})"),
        other => format!("not a bcrypt hash ({other})"),
    })?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!(
            "not a bcrypt hash (cost {cost} is outside 4 to 31)"
        ));
    }
    Ok(())
}

/// The users of `basic_auth_users` and what was verified of them.
pub struct Users {
    hashes: BTreeMap<String, String>,
    /// Compared against when the user is unknown: a hash of nothing anyone sends, at the
    /// highest cost of the configured ones.
    stand_in: String,
    key: hmac::Key,
    verified: Mutex<VecDeque<Digest>>,
    bcrypt: Semaphore,
}

impl Users {
    /// `hashes` must have passed `check_hash`. Hashes the stand-in once (one bcrypt).
    pub fn new(hashes: BTreeMap<String, String>) -> Users {
        let cost = hashes
            .values()
            .filter_map(|h| bcrypt::HashParts::from_str(h).ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(10);
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system's random source");
        let mut salt = [0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut salt).expect("the system's random source");
        let stand_in = bcrypt::hash_with_salt(b"\0tcptools-exporter stand-in\0", cost, salt)
            .expect("cost checked")
            .to_string();
        Users {
            hashes,
            stand_in,
            key,
            verified: Mutex::new(VecDeque::with_capacity(CACHE_ENTRIES)),
            bcrypt: Semaphore::new(1),
        }
    }

    /// The user names and their bcrypt hashes, as configured.
    pub fn hashes(&self) -> &BTreeMap<String, String> {
        &self.hashes
    }

    /// Whether the `Authorization` header names a user with its password.
    pub async fn allow(&self, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let digest = self.digest(&user, &password);
        if self.remembers(&digest) {
            return true;
        }
        let (known, hash) = match self.hashes.get(&user) {
            Some(hash) => (true, hash.clone()),
            None => (false, self.stand_in.clone()),
        };
        let Ok(_turn) = self.bcrypt.acquire().await else {
            return false;
        };
        // A second request with the same credentials may have verified them meanwhile.
        if self.remembers(&digest) {
            return true;
        }
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if matches && known {
            self.remember(digest);
        }
        matches && known
    }

    fn remember(&self, digest: Digest) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() == CACHE_ENTRIES {
            verified.pop_front();
        }
        verified.push_back(digest);
    }

    fn digest(&self, user: &str, password: &str) -> Digest {
        let mut context = hmac::Context::with_key(&self.key);
        // The length keeps ("ab", "c") and ("a", "bc") apart.
        context.update(&(user.len() as u64).to_le_bytes());
        context.update(user.as_bytes());
        context.update(password.as_bytes());
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.sign().as_ref());
        digest
    }

    fn remembers(&self, digest: &Digest) -> bool {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        // A plain comparison: without the key, timing tells nothing about other entries.
        verified.iter().any(|t| t == digest)
    }
}

/// `Basic BASE64(user:password)`: the user and the password, or None when malformed.
pub fn parse_basic(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
        .into_bytes()
    }

    #[test]
    fn basic_headers() {
        assert_eq!(
            parse_basic(&basic("alice:s3:cr:et")),
            Some(("alice".into(), "s3:cr:et".into()))
        );
        assert_eq!(
            parse_basic(&basic(":")),
            Some((String::new(), String::new()))
        );
        assert_eq!(
            parse_basic(b"basic YWxpY2U6eA=="),
            Some(("alice".into(), "x".into()))
        );
        assert_eq!(parse_basic(&basic("no colon")), None);
        assert_eq!(parse_basic(b"Bearer YWxpY2U6eA=="), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic"), None);
        assert_eq!(parse_basic(b"Basic /w=="), None); // not UTF-8
    }

    #[test]
    fn hashes() {
        let good = bcrypt::hash("x", 4).unwrap();
        assert_eq!(check_hash(&good), Ok(()));
        assert_eq!(
            check_hash("$2y$10$short"),
            Err("not a bcrypt hash (the hash format is malformed; expected 60 ASCII bytes)".into())
        );
        let cost_99 = good.replacen("$04$", "$99$", 1);
        assert_eq!(
            check_hash(&cost_99),
            Err("not a bcrypt hash (cost 99 is outside 4 to 31)".into())
        );
        let wrong_prefix = good.replacen("$2b$", "$3b$", 1);
        assert_eq!(
            check_hash(&wrong_prefix),
            Err("not a bcrypt hash (the hash prefix is not a bcrypt prefix)".into())
        );
    }

    #[tokio::test]
    async fn verifies_and_remembers() {
        let users = Users::new(BTreeMap::from([(
            "alice".to_owned(),
            bcrypt::hash("secret", 4).unwrap(),
        )]));
        assert!(users.stand_in.starts_with("$2b$04$"));
        assert!(!users.allow(None).await);
        assert!(!users.allow(Some(&basic("alice:wrong"))).await);
        assert!(!users.allow(Some(&basic("bob:secret"))).await);
        assert_eq!(users.verified.lock().unwrap().len(), 0);
        assert!(users.allow(Some(&basic("alice:secret"))).await);
        assert!(users.allow(Some(&basic("alice:secret"))).await);
        assert_eq!(users.verified.lock().unwrap().len(), 1);
        // The table is bounded: fill it with other (forged) entries, the oldest goes.
        for i in 0..CACHE_ENTRIES {
            users.remember(users.digest("x", &i.to_string()));
        }
        assert!(!users.remembers(&users.digest("alice", "secret")));
        assert!(users.allow(Some(&basic("alice:secret"))).await);
        assert_eq!(users.verified.lock().unwrap().len(), CACHE_ENTRIES);
        // Same bytes, split differently, are different credentials.
        assert!(!users.remembers(&users.digest("alices", "ecret")));
    }
}
