//! The dependency map: which journeys reach which hosts, and which hosts carry a
//! `dependency:` label, from each journey's latest run. Drawn as inline SVG in three columns
//! (journeys, hosts, dependencies) with edges between them; each node says its health in a
//! word and an icon as well as a colour, and the page repeats the graph as a table.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::format::truncate;
use crate::run::{RunResult, StepStatus};
use crate::svg::{self, element};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Unknown,
    Healthy,
    Failing,
}

impl Health {
    fn word(self) -> &'static str {
        match self {
            Health::Unknown => "no data",
            Health::Healthy => "healthy",
            Health::Failing => "failing",
        }
    }

    fn icon(self) -> &'static str {
        match self {
            Health::Unknown => "?",
            Health::Healthy => "✔",
            Health::Failing => "✖",
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Graph {
    pub journeys: BTreeMap<String, Health>,
    pub hosts: BTreeMap<String, Health>,
    pub dependencies: BTreeMap<String, Health>,
    pub journey_host: BTreeSet<(String, String)>,
    pub host_dependency: BTreeSet<(String, String)>,
}

/// `host:port` of a URL (the scheme's default port left out), or the text itself for a plain
/// `host:port` (TCP, TLS steps).
fn host_of(url: &str) -> Option<String> {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str()?;
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            })
        }
        Err(_) => (!url.is_empty()).then(|| url.to_string()),
    }
}

fn worsen(slot: &mut Health, h: Health) {
    *slot = (*slot).max(h);
}

/// The graph of `journeys` (all of them, with their latest run if they have one).
pub fn build<'a>(journeys: impl IntoIterator<Item = (&'a str, Option<&'a RunResult>)>) -> Graph {
    let mut g = Graph::default();
    for (name, run) in journeys {
        let journey = g
            .journeys
            .entry(name.to_string())
            .or_insert(Health::Unknown);
        let Some(run) = run else { continue };
        for s in &run.steps {
            let health = match s.status {
                StepStatus::Passed => Health::Healthy,
                StepStatus::Failed | StepStatus::Error => Health::Failing,
                StepStatus::Skipped => continue,
            };
            worsen(journey, health);
            let host = s.request.as_ref().and_then(|r| host_of(&r.url));
            if let Some(host) = &host {
                worsen(
                    g.hosts.entry(host.clone()).or_insert(Health::Unknown),
                    health,
                );
                g.journey_host.insert((name.to_string(), host.clone()));
            }
            if let Some(dep) = &s.dependency {
                worsen(
                    g.dependencies.entry(dep.clone()).or_insert(Health::Unknown),
                    health,
                );
                if let Some(host) = host {
                    g.host_dependency.insert((host, dep.clone()));
                }
            }
        }
    }
    g
}

const COL_X: [f64; 3] = [10.0, 330.0, 650.0];
const NODE_W: f64 = 240.0;
const NODE_H: f64 = 26.0;
const GAP: f64 = 10.0;

fn y(i: usize) -> f64 {
    10.0 + i as f64 * (NODE_H + GAP)
}

pub fn svg(g: &Graph) -> String {
    let columns: [Vec<(&String, Health)>; 3] = [
        g.journeys.iter().map(|(k, v)| (k, *v)).collect(),
        g.hosts.iter().map(|(k, v)| (k, *v)).collect(),
        g.dependencies.iter().map(|(k, v)| (k, *v)).collect(),
    ];
    let index = |col: usize, name: &str| columns[col].iter().position(|(n, _)| n.as_str() == name);
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let height = y(rows) + 4.0;
    let mut out = svg::figure(
        "depmap",
        900,
        format_args!("{height:.0}"),
        &format!(
            "Dependency map: {} journeys, {} hosts, {} dependencies",
            g.journeys.len(),
            g.hosts.len(),
            g.dependencies.len()
        ),
    );
    let edge = |from: (usize, usize), to: (usize, usize)| {
        let (x1, y1) = (COL_X[from.0] + NODE_W, y(from.1) + NODE_H / 2.0);
        let (x2, y2) = (COL_X[to.0], y(to.1) + NODE_H / 2.0);
        let mid = (x1 + x2) / 2.0;
        element("path").class("edge").attr(
            "d",
            format_args!("M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}"),
        )
    };
    for (j, h) in &g.journey_host {
        if let (Some(a), Some(b)) = (index(0, j), index(1, h)) {
            out.push(edge((0, a), (1, b)));
        }
    }
    for (h, d) in &g.host_dependency {
        if let (Some(a), Some(b)) = (index(1, h), index(2, d)) {
            out.push(edge((1, a), (2, b)));
        }
    }
    for (col, nodes) in columns.iter().enumerate() {
        for (i, (name, health)) in nodes.iter().enumerate() {
            let label = truncate(&format!("{} {}", health.icon(), name), 30);
            let class = serde_json::to_value(health)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push(
                element("g")
                    .class(&format!("node {class}"))
                    .title(&format!("{name}: {}", health.word()))
                    .child(
                        element("rect")
                            .attr("x", COL_X[col])
                            .attr("y", format_args!("{:.1}", y(i)))
                            .attr("width", NODE_W)
                            .attr("height", NODE_H)
                            .attr("rx", 5),
                    )
                    .child(svg::text(
                        "",
                        COL_X[col] + 8.0,
                        format_args!("{:.1}", y(i) + 17.0),
                        &label,
                    )),
            );
        }
    }
    out.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::testkit::{run, step};

    #[test]
    fn journeys_reach_hosts_which_carry_dependencies() {
        let get = |name: &str, url: &str| step(name).request("GET", url);
        let checkout = run("checkout")
            .step(get("login", "https://shop.example.com/login"))
            .step(
                get("pay", "https://api.pay.example:8443/charge?x=1")
                    .dependency("payments")
                    .failed(),
            )
            .build();
        let search = run("search")
            .step(get("find", "https://shop.example.com/search"))
            .build();
        let g = build([
            ("checkout", Some(&checkout)),
            ("search", Some(&search)),
            ("<new>", None),
        ]);
        assert_eq!(g.journeys["checkout"], Health::Failing);
        assert_eq!(g.journeys["search"], Health::Healthy);
        assert_eq!(g.journeys["<new>"], Health::Unknown);
        assert_eq!(g.hosts["shop.example.com"], Health::Healthy);
        assert_eq!(g.hosts["api.pay.example:8443"], Health::Failing);
        assert_eq!(g.dependencies["payments"], Health::Failing);
        assert!(
            g.host_dependency
                .contains(&("api.pay.example:8443".into(), "payments".into()))
        );
        assert_eq!(g.journey_host.len(), 3);
        let svg = svg(&g);
        assert_eq!(svg.matches("class=\"edge\"").count(), 4);
        assert!(svg.contains("&lt;new&gt;") && !svg.contains("<new>"));
        assert!(svg.contains("<title>payments: failing</title>") && svg.contains("✖ payments"));
    }
}
