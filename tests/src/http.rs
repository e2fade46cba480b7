//! Scraping the admin listener: a minimal HTTP/1.0 GET over std `TcpStream` (no
//! HTTP client dependency) and a Prometheus text-format sample reader.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// Minimal HTTP/1.0 GET over a std `TcpStream`; returns the body of a 200 response.
///
/// # Errors
/// Connection failure, timeout, or a non-200 status.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to admin listener {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\nAccept: text/plain\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading GET {path} response"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response to GET {path}: {text:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET {path} answered {status:?}");
    }
    Ok(body.to_owned())
}

/// Minimal HTTP/1.0 request with an optional JSON body; returns (status, body) for
/// any status.
///
/// # Errors
/// Connection failure, timeout, or a malformed response.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to admin listener {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(70)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading {method} {path} response"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response to {method} {path}: {text:?}"))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no status in the response to {method} {path}: {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// Sum of all samples of metric `name` in Prometheus text `body` (any labels).
/// `None` if no sample line names it.
pub fn metric_value(body: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // Only `name value` or `name{labels} value`; not `name_suffix …`.
        let value = if let Some(labelled) = rest.strip_prefix('{') {
            labelled.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()) {
            if let Ok(x) = v.parse::<f64>() {
                *total.get_or_insert(0.0) += x;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_value_sums_labelled_series_and_ignores_prefix_matches() {
        let body = "# HELP x\n# TYPE brook_a counter\nbrook_a{api=\"fetch\"} 3\n\
                    brook_a{api=\"produce\"} 4.5\nbrook_a_total 100\nbrook_b 7\n";
        assert_eq!(metric_value(body, "brook_a"), Some(7.5));
        assert_eq!(metric_value(body, "brook_b"), Some(7.0));
        assert_eq!(metric_value(body, "brook_c"), None);
    }
}
