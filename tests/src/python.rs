//! A Python venv with Confluent's Kafka client and its Avro, JSON Schema and
//! Protobuf serializers (independent clients to check Sluice's wire format and
//! registry API against) and schemathesis (an API fuzzer).

use std::path::PathBuf;
use std::process::Command;

use crate::{cache, process};

/// Pinned, so that a test failure means our change, not theirs.
const PACKAGES: &[&str] = &[
    "confluent-kafka[avro,json,protobuf,schemaregistry]==2.16.1",
    "protobuf==7.36.2",
    "googleapis-common-protos==1.76.0",
    // protoc as a Python module: the Protobuf tests compile .proto text into message classes.
    "grpcio-tools==1.85.1",
    "fastavro==1.13.1",
    "standardwebhooks==1.1.0",
    // The CloudEvents SDK's Kafka protocol binding reads the records CloudEvents requests make.
    "cloudevents==1.12.1",
    // The property-based API fuzzer run against the OpenAPI document.
    "schemathesis==4.32.5",
];

/// The interpreter of the harness's venv (`<cache>/venv/bin/python`),
/// created with [`PACKAGES`] on first use.
///
/// # Examples
/// ```no_run
/// # async fn example() -> anyhow::Result<()> {
/// let python = sluice_tests::python().await?;
/// let status = std::process::Command::new(python)
///     .args(["-c", "import confluent_kafka"])
///     .status()?;
/// assert!(status.success());
/// # Ok(())
/// # }
/// ```
pub async fn python() -> anyhow::Result<PathBuf> {
    tokio::task::spawn_blocking(|| {
        let venv = cache::ensure("venv", &PACKAGES.join(" "), |venv| {
            let mut create = Command::new("python3");
            create.args(["-m", "venv"]).arg(venv);
            process::run("python3 -m venv", create)?;
            let mut pip = Command::new(venv.join("bin").join("pip"));
            pip.args(["install", "-q", "--disable-pip-version-check"]).args(PACKAGES);
            process::run("pip install", pip)
        })?;
        Ok(venv.join("bin").join("python"))
    })
    .await?
}
