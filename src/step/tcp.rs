//! `tcp` steps: connect (`net::connect`), optionally send bytes, optionally read until
//! expected bytes appear, all bounded by the attempt's deadline.

use std::io::ErrorKind;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::net::{self, Budget};
use super::{Attempt, Failure, FailureClass, StepContext, StepExecutor, failure, finish};
use crate::journey::template::Scope;
use crate::journey::{BytesTemplate, TcpStep};

#[cfg(test)]
mod tests;

/// Size of one read while looking for `expect`.
const READ_CHUNK: usize = 8 * 1024;

impl StepExecutor for TcpStep {
    async fn execute(&self, ctx: &StepContext<'_>) -> Attempt {
        let budget = Budget::new(ctx.deadline);
        let mut attempt = Attempt::default();
        if let Err(failure) = self.run(ctx, &budget, &mut attempt).await {
            attempt.failure = Some(failure);
        }
        finish(&mut attempt, budget.elapsed());
        attempt
    }
}

/// What a `tcp` step's templates render to.
#[derive(Debug)]
pub(crate) struct TcpTarget {
    pub host: String,
    pub send: Option<Vec<u8>>,
    pub expect: Option<Vec<u8>>,
}

impl TcpStep {
    /// Everything the journey supplies, rendered before any traffic.
    pub(crate) fn target(&self, scope: &Scope<'_>) -> Result<TcpTarget, Failure> {
        let bytes = |b: &Option<BytesTemplate>, what| match b {
            Some(b) => render_bytes(b, scope, what).map(Some),
            None => Ok(None),
        };
        Ok(TcpTarget {
            host: self.host.render(scope)?,
            send: bytes(&self.send, "send")?,
            expect: bytes(&self.expect, "expect")?,
        })
    }

    async fn run(
        &self,
        ctx: &StepContext<'_>,
        budget: &Budget,
        attempt: &mut Attempt,
    ) -> Result<(), Failure> {
        let TcpTarget { host, send, expect } = self.target(&ctx.scope)?;

        let (mut stream, peer) = net::connect(&host, self.port, budget, attempt).await?;
        if let Some(bytes) = &send {
            match timeout_at(ctx.deadline, stream.write_all(bytes)).await {
                Err(_) => {
                    return Err(failure(
                        FailureClass::Timeout,
                        format!("timed out sending {} bytes to {peer}", bytes.len()),
                    ));
                }
                Ok(Err(e)) => return Err(io_failure(&e, "sending to", peer, 0)),
                Ok(Ok(())) => {}
            }
        }
        let sent = Instant::now();
        if let (Some(expect), Some(source)) = (&expect, &self.expect) {
            let wanted = Expected {
                bytes: expect,
                source,
                peer,
            };
            let read = read_until(&mut stream, &wanted, self.max_bytes, ctx.deadline, sent).await;
            attempt.timings.ttfb = read.first_byte.map(|at| at - sent);
            attempt.facts.body = Some(read.bytes);
            read.outcome?;
        }
        // A FIN, not a reset: the peer sees a normal close.
        let _ = timeout_at(ctx.deadline, stream.shutdown()).await;
        Ok(())
    }
}

/// The rendered `expect` bytes and how the journey wrote them (for messages: the source form
/// never contains a secret's value).
struct Expected<'a> {
    bytes: &'a [u8],
    source: &'a BytesTemplate,
    peer: SocketAddr,
}

impl Expected<'_> {
    fn describe(&self) -> String {
        if self.source.hex {
            format!("expected bytes (hex `{}`)", self.source.template)
        } else {
            format!("expected bytes `{}`", self.source.template)
        }
    }
}

struct Read {
    bytes: Vec<u8>,
    first_byte: Option<Instant>,
    outcome: Result<(), Failure>,
}

/// Reads until `expect` appears, the peer closes, `max_bytes` have been read, or the deadline.
async fn read_until(
    stream: &mut TcpStream,
    expect: &Expected<'_>,
    max_bytes: u64,
    deadline: Instant,
    since: Instant,
) -> Read {
    let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let mut read = Read {
        bytes: Vec::new(),
        first_byte: None,
        outcome: Ok(()),
    };
    let mut chunk = vec![0u8; READ_CHUNK];
    // Where the next search starts: the match may straddle the previous chunk's end.
    let mut searched = 0usize;
    // Every way out of the loop but a match is a failure, said once below.
    let failed = loop {
        if contains(&read.bytes[searched..], expect.bytes) {
            return read;
        }
        searched = read
            .bytes
            .len()
            .saturating_sub(expect.bytes.len().saturating_sub(1));
        let total = read.bytes.len();
        if total >= cap {
            break failure(
                FailureClass::Protocol,
                format!(
                    "{} not found in the first {total} bytes from {} (max_bytes)",
                    expect.describe(),
                    expect.peer
                ),
            );
        }
        let want = chunk.len().min(cap - total);
        match timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Err(_) => {
                let waited = humantime::format_duration(round_ms(since.elapsed()));
                break failure(
                    FailureClass::Timeout,
                    format!(
                        "timed out reading from {}: {} not seen after {waited} ({total} bytes read)",
                        expect.peer,
                        expect.describe()
                    ),
                );
            }
            Ok(Err(e)) => break io_failure(&e, "reading from", expect.peer, total),
            Ok(Ok(0)) => {
                break failure(
                    FailureClass::ClosedByPeer,
                    format!(
                        "{} closed the connection after {total} bytes without sending the {}",
                        expect.peer,
                        expect.describe()
                    ),
                );
            }
            Ok(Ok(n)) => {
                read.first_byte.get_or_insert_with(Instant::now);
                read.bytes.extend_from_slice(&chunk[..n]);
            }
        }
    };
    read.outcome = Err(failed);
    read
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Renders `send`/`expect`; hex text may only turn out to be invalid once rendered.
fn render_bytes(b: &BytesTemplate, scope: &Scope<'_>, what: &str) -> Result<Vec<u8>, Failure> {
    let text = b.template.render(scope)?;
    if !b.hex {
        return Ok(text.into_bytes());
    }
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&digits).map_err(|e| {
        failure(
            FailureClass::Template,
            format!(
                "`tcp.{what}`: `{}` does not render to hex bytes: {e}",
                b.template
            ),
        )
    })
}

/// A read or write error on an established connection: the peer resetting or aborting it is
/// `closed_by_peer`; anything else (unreachable mid-stream, ...) is `connect`.
fn io_failure(e: &std::io::Error, doing: &str, peer: SocketAddr, read: usize) -> Failure {
    let class = match e.kind() {
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof => FailureClass::ClosedByPeer,
        _ => FailureClass::Connect,
    };
    let after = if read > 0 {
        format!(" after {read} bytes")
    } else {
        String::new()
    };
    let what = match class {
        FailureClass::ClosedByPeer => "the peer broke the connection",
        _ => "connection error",
    };
    failure(class, format!("{what} while {doing} {peer}{after}: {e}"))
}

fn round_ms(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
