//! What stands between the login form and Argon2: a throttle on guessing and a bound on the
//! memory verification takes.
//!
//! Each verification needs the hash's memory cost (19 MiB for the defaults); unbounded, 60
//! parallel wrong logins took the service to 4 GB, and the allocator kept half of it. So at
//! most [`VERIFYING`] verifications run at once, each in a block buffer kept for the next one,
//! and every attempt first takes a token from its client address's bucket and its user
//! name's: [`BURST`] attempts at once, then one per [`REFILL`]. An empty bucket answers 429
//! with `Retry-After` before any hashing; a successful login fills both buckets again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHash as Phc;

use crate::auth::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// Verifications running at once (each holds one block buffer).
pub const VERIFYING: usize = 2;
/// Attempts a client address or a user name may make at once.
pub const BURST: u32 = 5;
/// After the burst, one more attempt per this long.
pub const REFILL: Duration = Duration::from_secs(12);
/// Buckets kept at most; full ones are forgotten first (a full bucket is the default).
const MAX_BUCKETS: usize = 10_000;

/// Why an attempt is not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// When a token will be there again.
    pub retry_after: Duration,
}

pub struct LoginGuard {
    buckets: Mutex<HashMap<Key, Bucket>>,
    permits: Semaphore,
    /// Block buffers of finished verifications, for the next ones.
    buffers: Mutex<Vec<Vec<Block>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Client(Option<IpAddr>),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant) -> Bucket {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        Bucket {
            tokens: (self.tokens + gained).min(f64::from(BURST)),
            at: now,
        }
    }
}

impl Default for LoginGuard {
    fn default() -> LoginGuard {
        LoginGuard::new()
    }
}

impl LoginGuard {
    pub fn new() -> LoginGuard {
        LoginGuard {
            buckets: Mutex::default(),
            permits: Semaphore::new(VERIFYING),
            buffers: Mutex::default(),
        }
    }

    /// Takes a token for `client` and one for `user`, or says how long until both have one.
    pub fn admit(&self, client: Option<IpAddr>, user: &str, now: Instant) -> Result<(), Throttled> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let keys = [Key::Client(client), Key::User(user.to_string())];
        let full = Bucket {
            tokens: f64::from(BURST),
            at: now,
        };
        let current: Vec<Bucket> = keys
            .iter()
            .map(|k| buckets.get(k).map_or(full, |b| b.refilled(now)))
            .collect();
        let short = current.iter().map(|b| 1.0 - b.tokens).fold(0.0, f64::max);
        if short > 0.0 {
            return Err(Throttled {
                retry_after: Duration::from_secs_f64(short * REFILL.as_secs_f64())
                    .max(Duration::from_secs(1)),
            });
        }
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| b.refilled(now).tokens < f64::from(BURST));
        }
        for (key, bucket) in keys.into_iter().zip(current) {
            buckets.insert(
                key,
                Bucket {
                    tokens: bucket.tokens - 1.0,
                    at: now,
                },
            );
        }
        Ok(())
    }

    /// A successful login: its client and user start afresh.
    pub fn succeeded(&self, client: Option<IpAddr>, user: &str) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.remove(&Key::Client(client));
        buckets.remove(&Key::User(user.to_string()));
    }

    /// Whether `password` matches `hash`, computed off the async workers, at most
    /// [`VERIFYING`] at a time.
    pub async fn verify(&self, hash: &PasswordHash, password: &str) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let buffer = self
            .buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let (hash, password) = (hash.as_str().to_owned(), password.to_owned());
        let done = tokio::task::spawn_blocking(move || {
            let mut buffer = buffer;
            let ok = verify_in(&hash, password.as_bytes(), &mut buffer);
            (ok, buffer)
        })
        .await;
        match done {
            Ok((ok, buffer)) => {
                self.buffers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(buffer);
                ok
            }
            Err(_) => false,
        }
    }
}

/// Verifies against a PHC string, hashing in `blocks` (grown to the hash's memory cost once).
fn verify_in(hash: &str, password: &[u8], blocks: &mut Vec<Block>) -> bool {
    let Ok(parsed) = Phc::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    if blocks.len() != params.block_count() {
        blocks.clear();
        blocks.resize(params.block_count(), Block::new());
        blocks.shrink_to_fit();
    }
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut out,
        &mut blocks[..],
    );
    // `Output`'s equality is constant-time.
    hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_with_a_reused_buffer_as_argon2_itself_does() {
        let guard = LoginGuard::new();
        let hash = PasswordHash::of("right horse battery");
        assert!(guard.verify(&hash, "right horse battery").await);
        assert!(!guard.verify(&hash, "wrong horse battery").await);
        assert!(
            guard.verify(&hash, "right horse battery").await,
            "buffer reused"
        );
        assert_eq!(guard.buffers.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_burst_then_one_attempt_per_refill_for_each_client_and_each_user() {
        let guard = LoginGuard::new();
        let t0 = Instant::now();
        let a: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let b: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        for _ in 0..BURST {
            guard.admit(a, "ann", t0).unwrap();
        }
        let refused = guard.admit(a, "bob", t0).unwrap_err();
        assert_eq!(refused.retry_after, REFILL, "the client's bucket is empty");
        // Another client guessing the same user is refused too: the user's bucket is empty.
        assert!(guard.admit(b, "ann", t0).is_err());
        guard.admit(b, "bob", t0).unwrap();
        // One refill later, one more attempt, not two.
        let later = t0 + REFILL;
        guard.admit(a, "cid", later).unwrap();
        assert!(guard.admit(a, "cid", later).is_err());
        // A login that works starts its client and user afresh.
        guard.succeeded(a, "cid");
        for _ in 0..BURST {
            guard.admit(a, "cid", later).unwrap();
        }
    }
}
