//! Guessing dashboard passwords against the real `waymark serve`: many wrong logins at once
//! neither exhaust memory nor stall the service, guessing is throttled with 429 and
//! `Retry-After`, and the right password works once the throttle lifts.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::support::serve::{Serve, dashboard_user, eventually, setup};

const PASSWORD: &str = "a long and correct password";

/// Peak resident memory of a process (`VmHWM`), in MiB.
fn peak_rss_mib(pid: i32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// A client whose connections come from `source` (any 127.x address is this machine).
fn client_from(source: IpAddr) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .local_address(source)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn login(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("username", user)
        .append_pair("password", password)
        .finish();
    client
        .post(format!("{base}/app/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn parallel_wrong_logins_stay_bounded_and_are_throttled_until_the_throttle_lifts() {
    let dir = setup(&[(
        "ping.yaml",
        "name: ping\nschedule: { every: 1s }\nsteps:\n  - name: ping\n    wait: 5ms\n".to_string(),
    )]);
    dashboard_user(dir.path(), "ada", PASSWORD);
    let serve = Serve::start(dir.path(), 0);
    let pid = serve.pid();
    let before = peak_rss_mib(pid);

    // 200 wrong logins at once, each from its own address and for its own user name, so the
    // throttle lets every one through to Argon2: only the bound on verifications holds memory.
    // The clients are made first: making 200 TLS-capable clients costs this test seconds of CPU.
    let clients: Vec<reqwest::Client> = (0..200u32)
        .map(|i| client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 1, 2 + i as u8))))
        .collect();
    let started = Instant::now();
    let storm: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let base = serve.base.clone();
            tokio::spawn(async move {
                login(&client, &base, &format!("guess-{i}"), "wrong")
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // Meanwhile the service answers, and keeps running its journey.
    let mut slowest = Duration::ZERO;
    while !storm.iter().all(|t| t.is_finished()) {
        let t = Instant::now();
        assert_eq!(serve.get("/healthz").await.0, 200);
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut statuses = Vec::new();
    for t in storm {
        statuses.push(t.await.unwrap());
    }
    let took = started.elapsed();
    let peak = peak_rss_mib(pid);
    println!(
        "200 parallel wrong logins: {took:?}; peak RSS {before:.0} → {peak:.0} MiB; slowest /healthz {slowest:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200),
        "each refused with the form: {statuses:?}"
    );
    assert!(peak < 200.0, "peak RSS {peak:.0} MiB");
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?}"
    );

    // From one address: five guesses, then 429 with Retry-After, even for the right password.
    let me = client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
    for _ in 0..5 {
        assert_eq!(login(&me, &serve.base, "ada", "wrong").await.status(), 200);
    }
    let throttled = login(&me, &serve.base, "ada", PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "Retry-After {wait}");
    assert!(
        throttled
            .text()
            .await
            .unwrap()
            .contains("Too many attempts")
    );
    // The user name is throttled from another address as well.
    let other = client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10)));
    assert_eq!(
        login(&other, &serve.base, "ada", PASSWORD).await.status(),
        429
    );

    tokio::time::sleep(Duration::from_secs(wait)).await;
    let res = login(&me, &serve.base, "ada", PASSWORD).await;
    assert_eq!(
        res.status(),
        303,
        "the right password once the throttle lifted"
    );
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("waymark_session=")
    );
    eventually("runs went on", &serve, Duration::from_secs(5), || async {
        let v = serve.json("/api/v1/journeys/ping/runs?limit=100").await;
        (v["runs"].as_array()?.len() >= 5).then_some(())
    })
    .await;
}
