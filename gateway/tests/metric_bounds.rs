//! Requests cannot create time series: label values come from fixed sets (normalised methods,
//! the router's route templates), so 10,000 made-up methods and paths leave `/metrics` with the
//! series it had. The real `sluice` binary, so that no other test's gateway shares its metrics.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt as _;
use reqwest::{Method, StatusCode};
use sluice_tests::{GatewayProcess, Kafka, unique_name};

const BINARY: &str = env!("CARGO_BIN_EXE_sluice");

/// The series of an OpenMetrics text: each sample's name and labels, without its value.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_and_paths_create_no_time_series() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let kafka = Kafka::shared();
    let topic = unique_name("bounded");
    kafka.create_topic(&topic, 1, &[]).await?;
    let config = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\n\n[registry]\nurl = \"embedded\"\ntopic = \"{}\"\n\n\
         [delivery]\ntopic = \"{}\"\n\n[[topics]]\nname = \"{topic}\"\nformat = \"json\"\n",
        kafka.bootstrap_servers(),
        unique_name("_schemas"),
        unique_name("_subscriptions"),
    );
    let gateway = GatewayProcess::start("sluice-metrics", BINARY, &config).await?;
    let base = gateway.base().to_owned();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let scrape = || async { http.get(format!("{base}/metrics")).send().await?.text().await };
    // One of each kind first (unknown path, unknown method on a known path, a produce), and a
    // scrape, so that the series they rightly add exist before the count.
    let made_up = |i: usize| Method::from_bytes(format!("X{i:05}").as_bytes()).expect("a token");
    http.request(made_up(0), format!("{base}/nowhere")).send().await?;
    http.request(made_up(1), format!("{base}/v1/subscriptions")).send().await?;
    http.get(format!("{base}/not/{}", unique_name("p"))).send().await?;
    let stored =
        http.post(format!("{base}/v1/topics/{topic}/events")).json(&serde_json::json!({"n": 1})).send().await?;
    assert_eq!(stored.status(), StatusCode::OK);
    let unknown = format!("{base}/v1/topics/{}/events", unique_name("nowhere"));
    assert_eq!(http.post(unknown).json(&serde_json::json!({"n": 1})).send().await?.status(), StatusCode::NOT_FOUND);
    scrape().await?;
    let before = series(&scrape().await?);
    let requests = futures::stream::iter(0..10_000).map(|i| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let path = if i % 2 == 0 { format!("/{}/{i}", unique_name("p")) } else { "/v1/subscriptions".into() };
            http.request(made_up(i), format!("{base}{path}")).send().await.map(|r| r.status())
        }
    });
    let statuses: Vec<_> = requests.buffer_unordered(32).collect().await;
    for status in statuses {
        let status = status?;
        assert!(status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED, "{status}");
    }
    // Produce requests to topics no route serves are refused without a series of their own.
    for i in 0..100 {
        let refused = http
            .post(format!("{base}/v1/topics/{}/events", unique_name(&i.to_string())))
            .json(&serde_json::json!({"n": 1}))
            .send()
            .await?;
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    }
    let after = series(&scrape().await?);
    let added: Vec<&String> = after.difference(&before).collect();
    assert!(added.is_empty(), "new series: {added:?}");
    assert_eq!(before.len(), after.len());
    Ok(())
}
