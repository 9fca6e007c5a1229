//! How a client command reaches the server: its address, TLS, the token it
//! presents, and how long it waits.

use std::path::PathBuf;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::CliError;

/// The connection flags every client command takes, before or after its
/// subcommand (`logwell runs list --server …`).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The server: HOST:PORT, http://HOST:PORT, or https://HOST:PORT for TLS.
    #[arg(long, global = true, env = "LOGWELL_SERVER", default_value = "127.0.0.1:50051")]
    pub server: String,
    /// A bearer token (better from the environment than on a command line
    /// that other users can see).
    #[arg(long, global = true, env = "LOGWELL_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long, global = true, env = "LOGWELL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The CA certificate (PEM) that signed the server's, for https.
    #[arg(long, global = true, env = "LOGWELL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM), for servers that require one.
    #[arg(long, global = true, env = "LOGWELL_CERT_FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "LOGWELL_KEY_FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// How long one call may take (e.g. 30s, 2m).
    #[arg(long, global = true, env = "LOGWELL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// A connection to the server, and what every call on it carries.
#[derive(Clone)]
pub struct Client {
    pub channel: Channel,
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    timeout: Duration,
}

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl ClientArgs {
    /// Connects now: an unreachable server is an error at once.
    pub async fn connect(&self) -> Result<Client, CliError> {
        let channel = self
            .endpoint()?
            .connect()
            .await
            .map_err(|error| CliError::Unreachable { server: self.server.clone(), reason: cause(&error) })?;
        Ok(Client { channel, authorization: self.authorization()?, timeout: self.timeout })
    }

    /// Connects at the first call, and again after the connection fails:
    /// for writers that keep going while the server is away.
    pub fn connect_lazily(&self) -> Result<Client, CliError> {
        let channel = self.endpoint()?.connect_lazy();
        Ok(Client { channel, authorization: self.authorization()?, timeout: self.timeout })
    }

    fn endpoint(&self) -> Result<Endpoint, CliError> {
        let secure = self.server.starts_with("https://");
        let uri = if self.server.contains("://") { self.server.clone() } else { format!("http://{}", self.server) };
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|error| CliError::Usage(format!("--server {:?} is not an address: {error}", self.server)))?
            .connect_timeout(CONNECT_TIMEOUT);
        if secure {
            endpoint = endpoint.tls_config(self.tls()?).map_err(|error| CliError::Usage(format!("TLS: {error}")))?;
        }
        Ok(endpoint)
    }

    fn tls(&self) -> Result<ClientTlsConfig, CliError> {
        let mut tls = ClientTlsConfig::new();
        match &self.ca_file {
            Some(path) => tls = tls.ca_certificate(Certificate::from_pem(read(path, "--ca-file")?)),
            None => return Err(CliError::Usage("an https:// server needs --ca-file, the CA that signed it".into())),
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            tls = tls.identity(Identity::from_pem(read(cert, "--cert-file")?, read(key, "--key-file")?));
        }
        Ok(tls)
    }

    fn authorization(&self) -> Result<Option<MetadataValue<tonic::metadata::Ascii>>, CliError> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(path)) => String::from_utf8_lossy(&read(path, "--token-file")?).trim().to_string(),
            (None, None) => return Ok(None),
        };
        MetadataValue::try_from(format!("Bearer {token}"))
            .map(Some)
            .map_err(|_| CliError::Usage("the token holds characters a header cannot carry".into()))
    }
}

impl Client {
    /// `message` as a call: with the token, and the time it may take.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = self.streaming_request(message);
        request.set_timeout(self.timeout);
        request
    }

    /// `message` as a stream that lasts as long as it has to (a follow, an
    /// export): with the token, without a deadline.
    pub fn streaming_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(authorization) = &self.authorization {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        request
    }
}

fn read(path: &std::path::Path, flag: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|error| CliError::Usage(format!("{flag} {}: {error}", path.display())))
}

/// The innermost reason of a connection failure ("Connection refused"), not
/// the transport's layers of wrapping.
fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}
