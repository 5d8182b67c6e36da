//! Tests against a small DNS server written here (hickory-proto encoding) on 127.0.0.1, over
//! UDP and TCP on the same port. No query ever leaves the machine: every step names its
//! `server`, and the system configuration is only parsed, never queried.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;

use super::nameservers;
use crate::journey::{DnsRecordType, DnsStep};
use crate::step::test_support::{
    Harness, assert_ended_at_300ms, assert_failed, assert_failed_with, assert_ok, closed_port, t,
};
use crate::step::{Attempt, FailureClass};

// ---------------------------------------------------------------------------------------------
// The server

/// Queries seen, by transport.
#[derive(Default)]
struct Seen {
    udp: AtomicUsize,
    tcp: AtomicUsize,
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The zone: `shop.test.` with every supported type, `www.shop.test.` a CNAME to it,
/// `broken.shop.test.` SERVFAIL, `big.shop.test.` a TXT answer too big for UDP; NXDOMAIN
/// otherwise.
fn answer(request: &Message, over_tcp: bool) -> Message {
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    let Some(q) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(q.clone());
    let owner = q.name().clone();
    let qtype = q.query_type();
    let record = |rdata: RData| Record::from_rdata(owner.clone(), 60, rdata);
    match owner.to_ascii().to_ascii_lowercase().as_str() {
        "shop.test." => {
            let records = match qtype {
                RecordType::A => vec![record(RData::A(A(Ipv4Addr::LOCALHOST)))],
                RecordType::AAAA => vec![record(RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)))],
                RecordType::MX => vec![record(RData::MX(MX::new(10, name("mail.shop.test."))))],
                RecordType::TXT => vec![record(RData::TXT(TXT::new(vec![
                    "v=spf1 ".into(),
                    "-all".into(),
                ])))],
                RecordType::NS => vec![
                    record(RData::NS(NS(name("ns1.shop.test.")))),
                    record(RData::NS(NS(name("ns2.shop.test.")))),
                ],
                _ => vec![],
            };
            response.add_answers(records);
        }
        "www.shop.test." => {
            response.add_answer(record(RData::CNAME(CNAME(name("shop.test.")))));
            if qtype == RecordType::A {
                let a = RData::A(A(Ipv4Addr::LOCALHOST));
                response.add_answer(Record::from_rdata(name("shop.test."), 60, a));
            }
        }
        "broken.shop.test." => response.metadata.response_code = ResponseCode::ServFail,
        "big.shop.test." if !over_tcp => response.metadata.truncation = true,
        "big.shop.test." => {
            let chunks = vec!["x".repeat(200); 10];
            response.add_answer(record(RData::TXT(TXT::new(chunks))));
        }
        _ => response.metadata.response_code = ResponseCode::NXDomain,
    }
    response
}

/// The zone over UDP and TCP on one port of 127.0.0.1.
async fn dns_server() -> (SocketAddr, Arc<Seen>) {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            counter.udp.fetch_add(1, Ordering::SeqCst);
            if let Ok(request) = Message::from_vec(&buf[..n]) {
                let bytes = answer(&request, false).to_vec().unwrap();
                let _ = udp.send_to(&bytes, from).await;
            }
        }
    });
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                while let Ok(len) = s.read_u16().await {
                    let mut buf = vec![0u8; usize::from(len)];
                    if s.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    counter.tcp.fetch_add(1, Ordering::SeqCst);
                    let Ok(request) = Message::from_vec(&buf) else {
                        return;
                    };
                    let bytes = answer(&request, true).to_vec().unwrap();
                    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&bytes);
                    let _ = s.write_all(&framed).await;
                }
            });
        }
    });
    (addr, seen)
}

/// A UDP server that answers each query with the datagrams `reply` makes from it.
async fn scripted_udp_server(reply: fn(&Message) -> Vec<Vec<u8>>) -> SocketAddr {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let request = Message::from_vec(&buf[..n]).unwrap();
            for datagram in reply(&request) {
                let _ = udp.send_to(&datagram, from).await;
            }
        }
    });
    addr
}

fn step(name: &str, record_type: DnsRecordType, server: SocketAddr) -> DnsStep {
    DnsStep {
        name: t(name),
        record_type,
        server: Some(server),
        tcp: false,
    }
}

/// Runs the query of `host` for `record_type` at `server`, asserting that it succeeded.
async fn query_ok(
    h: &Harness,
    host: &str,
    record_type: DnsRecordType,
    server: SocketAddr,
) -> Attempt {
    let a = h.run(&step(host, record_type, server), FIVE_S).await;
    assert_ok(&a);
    a
}

/// Queries `shop.test` for A records at `server` (no variables) within `timeout`: the attempt,
/// and how long the step took.
async fn timed_query(server: SocketAddr, timeout: Duration) -> (Attempt, Duration) {
    let h = Harness::new(&[]);
    let started = Instant::now();
    let a = h
        .run(&step("shop.test", DnsRecordType::A, server), timeout)
        .await;
    (a, started.elapsed())
}

fn body(a: &Attempt) -> Value {
    serde_json::from_slice(a.facts.body.as_deref().expect("a body")).expect("JSON")
}

const FIVE_S: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn every_record_type_over_udp() {
    let (server, seen) = dns_server().await;
    let h = Harness::new(&[]);
    let cases = [
        (DnsRecordType::A, json!(["127.0.0.1"])),
        (DnsRecordType::Aaaa, json!(["::1"])),
        (DnsRecordType::Mx, json!(["10 mail.shop.test."])),
        (DnsRecordType::Txt, json!(["v=spf1 -all"])),
        (
            DnsRecordType::Ns,
            json!(["ns1.shop.test.", "ns2.shop.test."]),
        ),
        (DnsRecordType::Cname, json!([])),
    ];
    for (record_type, expected) in cases {
        let a = query_ok(&h, "shop.test", record_type, server).await;
        assert_eq!(a.facts.dns_rcode.as_deref(), Some("NOERROR"));
        assert_eq!(body(&a), expected, "{record_type:?}");
        assert_eq!(a.facts.ip, Some(server.ip()));
        assert!(a.timings.dns.is_some());
    }
    assert_eq!(seen.udp.load(Ordering::SeqCst), 6, "one query per attempt");
    assert_eq!(seen.tcp.load(Ordering::SeqCst), 0);

    let a = h
        .run(&step("shop.test.", DnsRecordType::A, server), FIVE_S)
        .await;
    assert!(h.check("[DNS_RCODE] == NOERROR", &a).0);
    assert!(h.check("[BODY][0] == 127.0.0.1", &a).0);
    assert!(h.check("len([BODY]) == 1", &a).0);
}

#[tokio::test]
async fn cname_answers_and_only_the_asked_type_in_the_body() {
    let (server, _) = dns_server().await;
    let h = Harness::new(&[("host", Value::from("WWW.shop.test"))]);
    let a = query_ok(&h, "{{ host }}", DnsRecordType::Cname, server).await;
    assert_eq!(body(&a), json!(["shop.test."]));
    // An A query gets the CNAME and the address; the body lists the addresses.
    let a = query_ok(&h, "{{ host }}", DnsRecordType::A, server).await;
    assert_eq!(body(&a), json!(["127.0.0.1"]));
}

#[tokio::test]
async fn nxdomain_and_servfail_are_facts_not_failures() {
    let (server, _) = dns_server().await;
    let h = Harness::new(&[]);
    let a = query_ok(&h, "nope.shop.test", DnsRecordType::A, server).await;
    assert_eq!(a.facts.dns_rcode.as_deref(), Some("NXDOMAIN"));
    assert_eq!(body(&a), json!([]));
    assert_eq!(
        h.check("[DNS_RCODE] == NOERROR", &a),
        (false, "NXDOMAIN".into())
    );
    assert!(h.check("len([BODY]) == 0", &a).0);

    let a = query_ok(&h, "broken.shop.test", DnsRecordType::A, server).await;
    assert_eq!(a.facts.dns_rcode.as_deref(), Some("SERVFAIL"));
}

#[tokio::test]
async fn tcp_option_queries_over_tcp() {
    let (server, seen) = dns_server().await;
    let h = Harness::new(&[]);
    let mut s = step("shop.test", DnsRecordType::Mx, server);
    s.tcp = true;
    let a = h.run(&s, FIVE_S).await;
    assert_ok(&a);
    assert_eq!(body(&a), json!(["10 mail.shop.test."]));
    assert_eq!(seen.tcp.load(Ordering::SeqCst), 1);
    assert_eq!(seen.udp.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn truncated_udp_answer_is_asked_again_over_tcp() {
    let (server, seen) = dns_server().await;
    let h = Harness::new(&[]);
    let a = query_ok(&h, "big.shop.test", DnsRecordType::Txt, server).await;
    assert_eq!(body(&a), json!(["x".repeat(2000)]));
    assert_eq!(seen.udp.load(Ordering::SeqCst), 1);
    assert_eq!(seen.tcp.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn silent_server_times_out_by_the_deadline_after_one_query() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = socket.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while socket.recv_from(&mut buf).await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let (a, elapsed) = timed_query(server, Duration::from_millis(300)).await;
    let msg = assert_failed(&a, FailureClass::Timeout);
    assert!(
        msg.contains(&server.to_string()) && msg.contains("UDP"),
        "{msg}"
    );
    assert_ended_at_300ms(elapsed);
    assert_eq!(received.load(Ordering::SeqCst), 1, "no retries");
    assert_eq!(a.facts.dns_rcode, None);
}

/// Linux reports the ICMP port-unreachable to the connected UDP socket: `dns` at once, not a
/// wait for the deadline.
#[tokio::test]
async fn closed_udp_port_is_a_dns_failure() {
    let server = {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.local_addr().unwrap()
    };
    let (a, elapsed) = timed_query(server, FIVE_S).await;
    assert_failed_with(&a, FailureClass::Dns, "refused");
    assert!(elapsed < Duration::from_secs(1));
}

#[tokio::test]
async fn closed_tcp_port_is_a_dns_failure() {
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, closed_port().await));
    let h = Harness::new(&[]);
    let mut s = step("shop.test", DnsRecordType::A, server);
    s.tcp = true;
    let msg = assert_failed(&h.run(&s, FIVE_S).await, FailureClass::Dns).to_string();
    assert!(msg.contains("TCP") && msg.contains("refused"), "{msg}");
}

#[tokio::test]
async fn stray_datagrams_are_ignored() {
    let server = scripted_udp_server(|request| {
        let mut stray = answer(request, false);
        stray.metadata.id = request.metadata.id.wrapping_add(1);
        let real = answer(request, false);
        vec![
            b"\x00".to_vec(),
            stray.to_vec().unwrap(),
            real.to_vec().unwrap(),
        ]
    })
    .await;
    let h = Harness::new(&[]);
    let a = query_ok(&h, "shop.test", DnsRecordType::A, server).await;
    assert_eq!(body(&a), json!(["127.0.0.1"]));
}

/// Issue #19: a server answering only with the wrong id was reported as "no answer".
#[tokio::test]
async fn answers_with_a_wrong_id_are_reported_not_called_no_answer() {
    let server = scripted_udp_server(|request| {
        let mut stray = answer(request, false);
        stray.metadata.id = request.metadata.id.wrapping_add(1);
        vec![stray.to_vec().unwrap(); 3]
    })
    .await;
    let (a, elapsed) = timed_query(server, Duration::from_millis(300)).await;
    let msg = assert_failed_with(
        &a,
        FailureClass::Dns,
        "3 answers arrived but none matched the query (wrong id)",
    );
    assert!(msg.contains(&server.to_string()), "{msg}");
    assert!(elapsed < Duration::from_secs(1));
    assert_eq!(a.facts.dns_rcode, None);
}

#[tokio::test]
async fn mixed_strays_are_counted_by_reason() {
    let server = scripted_udp_server(|request| {
        let mut stray = answer(request, false);
        stray.metadata.id = request.metadata.id.wrapping_add(1);
        vec![b"\x00".to_vec(), stray.to_vec().unwrap()]
    })
    .await;
    let (a, _) = timed_query(server, Duration::from_millis(300)).await;
    let msg = assert_failed(&a, FailureClass::Dns);
    assert!(
        msg.contains(
            "2 answers arrived but none matched the query (1 too short to be DNS, 1 wrong id)"
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn malformed_answer_is_a_dns_failure() {
    let server = scripted_udp_server(|request| {
        let mut garbage = request.metadata.id.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0, 0xff]);
        vec![garbage]
    })
    .await;
    let h = Harness::new(&[]);
    let a = h
        .run(&step("shop.test", DnsRecordType::A, server), FIVE_S)
        .await;
    assert_failed_with(&a, FailureClass::Dns, "malformed answer");
}

#[tokio::test]
async fn invalid_names_are_template_errors() {
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    let h = Harness::new(&[("long", Value::from("x".repeat(64)))]);
    for bad in ["{{ long }}.shop.test", "a..b", "  ", "{{ missing }}"] {
        let a = h.run(&step(bad, DnsRecordType::A, server), FIVE_S).await;
        assert_failed(&a, FailureClass::Template);
    }
}

#[test]
fn resolv_conf_nameservers() {
    let conf = "# generated\nsearch corp.example\nnameserver 10.0.0.2\n  nameserver   ::1  \n\
                nameserver fe80::1%eth0\nnameserver\noptions ndots:5\n";
    assert_eq!(
        nameservers(conf),
        [
            SocketAddr::from(([10, 0, 0, 2], 53)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, 53)),
        ]
    );
    assert!(nameservers("").is_empty());
}
