//! Dashboard credentials at rest: [`PasswordHash`], an Argon2 PHC string that is checked when
//! it is read, so a `Config` cannot hold a hash the login could not verify.

#![deny(clippy::disallowed_methods)]

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use rand::RngCore;
use serde::Deserialize;

/// An Argon2 PHC string (`$argon2id$v=19$…`) as `waymark hash-password` prints it; read
/// through [`PasswordHash::parse`], so a configuration cannot hold anything else.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PasswordHash(String);

/// A `password_hash` that is not an Argon2 PHC string this build can verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password_hash must be an Argon2id PHC string (make one with `waymark hash-password`)")]
pub struct NotAPasswordHash;

impl PasswordHash {
    /// Checks `phc` is an Argon2 PHC string.
    pub fn parse(phc: &str) -> Result<PasswordHash, NotAPasswordHash> {
        argon2::password_hash::PasswordHash::new(phc)
            .ok()
            .filter(|h| h.algorithm.as_str().starts_with("argon2"))
            .map(|_| PasswordHash(phc.to_owned()))
            .ok_or(NotAPasswordHash)
    }

    /// The Argon2id hash of `password` with a random salt.
    pub fn of(password: &str) -> PasswordHash {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
        let phc = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .expect("Argon2 with default parameters hashes any password")
            .to_string();
        PasswordHash(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PasswordHash {
    type Error = NotAPasswordHash;

    fn try_from(phc: String) -> Result<PasswordHash, NotAPasswordHash> {
        PasswordHash::parse(&phc)
    }
}

/// Not secret, but not worth a log line either.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_argon2_phc_strings_are_hashes() {
        let hash = PasswordHash::of("correct horse");
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert_eq!(PasswordHash::parse(hash.as_str()), Ok(hash));
        assert_eq!(PasswordHash::parse("correct horse"), Err(NotAPasswordHash));
        assert_eq!(
            PasswordHash::parse("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA"),
            Err(NotAPasswordHash)
        );
        #[derive(Deserialize, Debug)]
        struct User {
            #[allow(dead_code)]
            password_hash: PasswordHash,
        }
        let e = toml::from_str::<User>("password_hash = \"plain\"").unwrap_err();
        assert!(e.to_string().contains("waymark hash-password"), "{e}");
    }
}
