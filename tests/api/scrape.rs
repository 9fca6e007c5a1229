//! Reads one metric from a logwell metrics endpoint, as Prometheus would.
//! Shared by the tests and the benchmarks.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The value of metric `name` served at `address` now.
pub async fn metric(address: impl tokio::net::ToSocketAddrs, name: &str) -> f64 {
    let mut connection = tokio::net::TcpStream::connect(address).await.expect("connect to metrics");
    connection.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.expect("request metrics");
    let mut response = String::new();
    connection.read_to_string(&mut response).await.expect("read metrics");
    response
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {response}"))
}
