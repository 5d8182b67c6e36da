//! `dns` steps: one query, one answer, the response code as a fact.
//!
//! Messages are encoded and decoded with `hickory-proto`; the transport is a few lines of
//! tokio here instead of `hickory-resolver`, because a monitor wants exactly one query to one
//! server with the raw response code: the resolver turns NXDOMAIN into an error, caches,
//! retries, walks search domains and hides which server answered.
//!
//! - The name is always absolute (`api.example.com` is queried as `api.example.com.`): no
//!   search domains, no `ndots`.
//! - `server: None` reads the `nameserver` lines of `/etc/resolv.conf`; the next one is tried
//!   only when one is unusable (refused, unreachable), never after a timeout.
//! - UDP answers with the truncation bit set are asked again over TCP, like a resolver would.
//! - Any response code is a successful attempt: `[DNS_RCODE]` says which. A server that does
//!   not answer by the deadline is a `timeout`; one that cannot be used (refused, unreachable,
//!   malformed answer, or only datagrams that are not the answer: another id, another
//!   question) is `dns`, and says what arrived.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use super::{Attempt, Failure, FailureClass, StepContext, StepExecutor, failure, finish};
use crate::journey::template::Scope;
use crate::journey::{DnsRecordType, DnsStep};

#[cfg(test)]
mod tests;

/// EDNS UDP payload size advertised: the DNS flag day 2020 value, safe from fragmentation.
const UDP_PAYLOAD: u16 = 1232;

const RESOLV_CONF: &str = "/etc/resolv.conf";

impl StepExecutor for DnsStep {
    async fn execute(&self, ctx: &StepContext<'_>) -> Attempt {
        let started = Instant::now();
        let mut attempt = Attempt::default();
        if let Err(failure) = self.run(ctx, &mut attempt).await {
            attempt.failure = Some(failure);
        }
        finish(&mut attempt, started.elapsed());
        attempt
    }
}

impl DnsStep {
    /// The name to query, rendered and made absolute.
    pub(crate) fn rendered_name(&self, scope: &Scope<'_>) -> Result<Name, Failure> {
        query_name(&self.name.render(scope)?)
    }

    async fn run(&self, ctx: &StepContext<'_>, attempt: &mut Attempt) -> Result<(), Failure> {
        let name = self.rendered_name(&ctx.scope)?;
        let servers = match self.server {
            Some(server) => vec![server],
            None => system_servers().await?,
        };
        let query = Query::query(name, record_type(self.record_type));
        let mut errors = Vec::new();
        for server in servers {
            let started = Instant::now();
            let exchange = Exchange {
                server,
                query: &query,
                deadline: ctx.deadline,
            };
            match exchange.run(self.tcp).await {
                Ok(response) => {
                    attempt.timings.dns = Some(started.elapsed());
                    attempt.facts.ip = Some(server.ip());
                    record_answer(&response, &query, attempt);
                    return Ok(());
                }
                Err(f) if f.class == FailureClass::Dns => errors.push(f.message),
                Err(f) => return Err(f),
            }
        }
        Err(failure(FailureClass::Dns, errors.join("; ")))
    }
}

fn record_type(t: DnsRecordType) -> RecordType {
    match t {
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Cname => RecordType::CNAME,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Txt => RecordType::TXT,
        DnsRecordType::Ns => RecordType::NS,
    }
}

/// The rendered name as an absolute DNS name (IDNA for non-ASCII labels).
fn query_name(text: &str) -> Result<Name, Failure> {
    let text = text.trim();
    if text.is_empty() {
        return Err(failure(FailureClass::Template, "the DNS name is empty"));
    }
    let mut name = Name::from_utf8(text).map_err(|e| {
        failure(
            FailureClass::Template,
            format!("`{text}` is not a valid DNS name: {e}"),
        )
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// `[DNS_RCODE]`, `[BODY]` (answers of the asked type, as a JSON array of strings).
fn record_answer(response: &Message, query: &Query, attempt: &mut Attempt) {
    attempt.facts.dns_rcode = Some(rcode_name(response.metadata.response_code));
    let answers: Vec<String> = response
        .answers
        .iter()
        .filter(|r| r.record_type() == query.query_type())
        .map(answer_text)
        .collect();
    attempt.facts.body = serde_json::to_vec(&answers).ok();
}

/// Answers as `dig +short` shows them; TXT strings are joined without separators.
fn answer_text(record: &Record) -> String {
    match &record.data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::CNAME(n) => n.0.to_ascii(),
        RData::NS(n) => n.0.to_ascii(),
        RData::MX(mx) => format!("{} {}", mx.preference, mx.exchange.to_ascii()),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect(),
        other => other.to_string(),
    }
}

/// Response code names as `dig` prints them.
fn rcode_name(code: ResponseCode) -> String {
    let name = match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        ResponseCode::BADVERS => "BADVERS",
        ResponseCode::BADSIG => "BADSIG",
        ResponseCode::BADKEY => "BADKEY",
        ResponseCode::BADTIME => "BADTIME",
        ResponseCode::BADMODE => "BADMODE",
        ResponseCode::BADNAME => "BADNAME",
        ResponseCode::BADALG => "BADALG",
        ResponseCode::BADTRUNC => "BADTRUNC",
        ResponseCode::BADCOOKIE => "BADCOOKIE",
        ResponseCode::Unknown(n) => return format!("RCODE{n}"),
    };
    name.to_string()
}

/// The system's name servers, from `/etc/resolv.conf`.
async fn system_servers() -> Result<Vec<SocketAddr>, Failure> {
    let text = tokio::fs::read_to_string(RESOLV_CONF).await.map_err(|e| {
        failure(
            FailureClass::Dns,
            format!("no `server` given and {RESOLV_CONF} is unreadable: {e}"),
        )
    })?;
    let servers = nameservers(&text);
    if servers.is_empty() {
        return Err(failure(
            FailureClass::Dns,
            format!("no `server` given and {RESOLV_CONF} names no usable nameserver"),
        ));
    }
    Ok(servers)
}

/// `nameserver <ip>` lines, in order; scoped IPv6 addresses (`fe80::1%eth0`) are skipped.
fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// One query to one server.
struct Exchange<'a> {
    server: SocketAddr,
    query: &'a Query,
    deadline: Instant,
}

impl Exchange<'_> {
    async fn run(&self, tcp: bool) -> Result<Message, Failure> {
        if tcp {
            return self.tcp().await;
        }
        let response = self.udp().await?;
        if response.metadata.truncation {
            return self.tcp().await;
        }
        Ok(response)
    }

    fn request(&self) -> Result<(u16, Vec<u8>), Failure> {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(self.query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        message.set_edns(edns);
        let bytes = message.to_vec().map_err(|e| {
            failure(
                FailureClass::Template,
                format!("cannot encode the query: {e}"),
            )
        })?;
        Ok((message.metadata.id, bytes))
    }

    async fn udp(&self) -> Result<Message, Failure> {
        let (id, request) = self.request()?;
        let local: SocketAddr = match self.server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| self.unusable("UDP", e))?;
        // Connected: only the server's datagrams arrive, and ICMP errors (port unreachable)
        // are reported instead of silently waiting for the deadline.
        socket
            .connect(self.server)
            .await
            .map_err(|e| self.unusable("UDP", e))?;
        self.limit("UDP", socket.send(&request))
            .await?
            .map_err(|e| self.unusable("UDP", e))?;
        let mut buf = vec![0u8; 65_535];
        let mut strays = Strays::default();
        loop {
            let Ok(received) = timeout_at(self.deadline, socket.recv(&mut buf)).await else {
                // Something answered: say what, rather than "no answer".
                return Err(match strays.summary() {
                    Some(summary) => self.unusable("UDP", summary),
                    None => self.timed_out("UDP"),
                });
            };
            let n = received.map_err(|e| self.unusable("UDP", e))?;
            // Stray datagrams (another ID, not a response) are ignored, as resolvers do.
            match self.accept(id, &buf[..n], "UDP")? {
                Ok(response) => return Ok(response),
                Err(mismatch) => strays.0.push(mismatch),
            }
        }
    }

    async fn tcp(&self) -> Result<Message, Failure> {
        let (id, request) = self.request()?;
        let mut stream = self
            .limit("TCP", TcpStream::connect(self.server))
            .await?
            .map_err(|e| self.unusable("TCP", e))?;
        let _ = stream.set_nodelay(true);
        let len = u16::try_from(request.len()).unwrap_or(u16::MAX);
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&request);
        self.limit("TCP", stream.write_all(&framed))
            .await?
            .map_err(|e| self.unusable("TCP", e))?;
        let read = async {
            let len = stream.read_u16().await?;
            let mut buf = vec![0u8; usize::from(len)];
            stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let buf = self
            .limit("TCP", read)
            .await?
            .map_err(|e| self.unusable("TCP", e))?;
        match self.accept(id, &buf, "TCP")? {
            Ok(response) => Ok(response),
            Err(mismatch) => Err(self.unusable(
                "TCP",
                format!(
                    "the answer does not match the query ({})",
                    mismatch.reason()
                ),
            )),
        }
    }

    /// Parses a datagram or TCP message: `Err` says why it is not the answer to this query.
    fn accept(
        &self,
        id: u16,
        bytes: &[u8],
        transport: &str,
    ) -> Result<Result<Message, Mismatch>, Failure> {
        // The ID is the first two bytes; a message that is not ours is not this server's fault.
        if bytes.len() < 2 {
            return Ok(Err(Mismatch::TooShort));
        }
        if u16::from_be_bytes([bytes[0], bytes[1]]) != id {
            return Ok(Err(Mismatch::WrongId));
        }
        let message = Message::from_vec(bytes)
            .map_err(|e| self.unusable(transport, format!("malformed answer: {e}")))?;
        if message.metadata.message_type != MessageType::Response {
            return Ok(Err(Mismatch::NotAResponse));
        }
        let same_question = message
            .queries
            .iter()
            .all(|q| q.name() == self.query.name() && q.query_type() == self.query.query_type());
        Ok(if same_question {
            Ok(message)
        } else {
            Err(Mismatch::OtherQuestion)
        })
    }

    async fn limit<F: Future>(&self, transport: &str, f: F) -> Result<F::Output, Failure> {
        timeout_at(self.deadline, f)
            .await
            .map_err(|_| self.timed_out(transport))
    }

    fn timed_out(&self, transport: &str) -> Failure {
        failure(
            FailureClass::Timeout,
            format!(
                "no answer from {} ({transport}) for {} {} by the deadline",
                self.server,
                self.query.name(),
                self.query.query_type()
            ),
        )
    }

    fn unusable(&self, transport: &str, reason: impl std::fmt::Display) -> Failure {
        failure(
            FailureClass::Dns,
            format!("DNS server {} ({transport}): {reason}", self.server),
        )
    }
}

/// Why a message from the server is not the answer to this query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mismatch {
    TooShort,
    WrongId,
    NotAResponse,
    OtherQuestion,
}

impl Mismatch {
    fn reason(self) -> &'static str {
        match self {
            Mismatch::TooShort => "too short to be DNS",
            Mismatch::WrongId => "wrong id",
            Mismatch::NotAResponse => "a query, not a response",
            Mismatch::OtherQuestion => "answers another question",
        }
    }
}

/// The UDP datagrams that arrived and were not the answer, in arrival order.
#[derive(Debug, Default)]
struct Strays(Vec<Mismatch>);

impl Strays {
    /// `3 answers arrived but none matched the query (wrong id)`; `None` if none arrived.
    fn summary(&self) -> Option<String> {
        let count = self.0.len();
        if count == 0 {
            return None;
        }
        let mut kinds: Vec<(Mismatch, usize)> = Vec::new();
        for m in &self.0 {
            match kinds.iter_mut().find(|(k, _)| k == m) {
                Some((_, n)) => *n += 1,
                None => kinds.push((*m, 1)),
            }
        }
        let reasons = match kinds.as_slice() {
            [(only, _)] => only.reason().to_string(),
            many => many
                .iter()
                .map(|(m, n)| format!("{n} {}", m.reason()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let (noun, verb) = if count == 1 {
            ("answer", "arrived but did not match")
        } else {
            ("answers", "arrived but none matched")
        };
        Some(format!(
            "{count} {noun} {verb} the query ({reasons}) by the deadline"
        ))
    }
}
