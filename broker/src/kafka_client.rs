//! A minimal Kafka client: one connection, one request at a time, typed
//! requests and responses from brook-protocol. The admin CLI and the
//! replica fetchers (which talk to other brokers) use it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use brook_protocol::codec::{Encoder, Message, Request};
use brook_protocol::frame::FrameDecoder;
use brook_protocol::header::{
    request_header_version, response_header_version, RequestHeader, ResponseHeader,
};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Responses larger than this are refused.
const MAX_RESPONSE: usize = 256 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    stream: TcpStream,
    bootstrap: String,
    client_id: String,
    timeout: Duration,
    correlation: i32,
    buf: BytesMut,
    frames: FrameDecoder,
}

impl Client {
    /// Connect as the admin CLI.
    pub async fn connect(bootstrap: &str) -> anyhow::Result<Self> {
        Self::connect_as(bootstrap, "brook-cli", TIMEOUT, MAX_RESPONSE).await
    }

    /// Connect as `client_id`; each request (and the connect) must finish
    /// within `timeout`; responses above `max_response` bytes are refused.
    pub async fn connect_as(
        bootstrap: &str,
        client_id: &str,
        timeout: Duration,
        max_response: usize,
    ) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(bootstrap))
            .await
            .map_err(|_| anyhow!("connecting to {bootstrap} timed out"))?
            .with_context(|| format!("cannot connect to broker at {bootstrap}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            bootstrap: bootstrap.to_owned(),
            client_id: client_id.to_owned(),
            timeout,
            correlation: 0,
            buf: BytesMut::new(),
            frames: FrameDecoder::new(max_response),
        })
    }

    /// Send `req` in `version` and wait for its response.
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation += 1;
        let header = RequestHeader {
            api_key: R::KEY.as_i16(),
            api_version: version,
            correlation_id: self.correlation,
            client_id: Some(self.client_id.clone()),
            unknown_tagged_fields: Vec::new(),
        };
        debug_assert_eq!(
            header.header_version(),
            request_header_version(R::KEY, version)
        );
        let mut e = Encoder::new();
        let prefix = e.reserve_length_prefix();
        header.encode(&mut e)?;
        req.encode(&mut e, version)?;
        e.patch_length_prefix(prefix)?;
        let bytes = e.into_bytes()?;
        let bootstrap = self.bootstrap.clone();
        tokio::time::timeout(self.timeout, async {
            self.stream.write_all(&bytes).await?;
            loop {
                if let Some(mut frame) = self.frames.decode(&mut self.buf)? {
                    let rh = ResponseHeader::decode(&mut frame, response_header_version(R::KEY, version))?;
                    if rh.correlation_id != self.correlation {
                        bail!("broker answered correlation id {} to request {}", rh.correlation_id, self.correlation);
                    }
                    return Ok(R::Response::decode(&mut frame, version)?);
                }
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    bail!("broker at {bootstrap} closed the connection (does it support {} v{version}?)", R::KEY);
                }
            }
        })
        .await
        .map_err(|_| anyhow!("request to {} timed out", self.bootstrap))?
    }
}
