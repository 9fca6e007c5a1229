//! TLS for the gRPC listener: rustls with a certificate chain and key from
//! PEM files, optional client-certificate verification (mTLS) against a CA
//! file, and reloading of all of them on SIGHUP or when the files change.
//! A reload swaps the configuration new handshakes use; established
//! connections keep theirs, so nothing is dropped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them, at most.
const ACCEPTED_BACKLOG: usize = 64;

/// Where the certificates are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// If set, clients must present a certificate this CA (PEM) signed.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path} holds no {what}")]
    Empty { path: String, what: &'static str },
    #[error("the TLS configuration is refused: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the client CA is refused: {0}")]
    ClientCa(String),
}

impl TlsFiles {
    /// Reads the files into a server configuration.
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certs = certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|error| unreadable(&self.key, error))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for certificate in certificates(path)? {
                    roots.add(certificate)?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|error| TlsError::ClientCa(error.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key)?;
        // HTTP/1.1 for OTLP/HTTP senders; gRPC clients choose h2.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The files' modification times, to notice a change.
    fn modified(&self) -> Vec<Option<SystemTime>> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|path| std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok())
            .collect()
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| unreadable(path, error))?;
    if certificates.is_empty() {
        return Err(TlsError::Empty { path: path.display().to_string(), what: "certificate" });
    }
    Ok(certificates)
}

fn unreadable(path: &Path, error: impl std::fmt::Display) -> TlsError {
    TlsError::Unreadable { path: path.display().to_string(), reason: error.to_string() }
}

/// The configuration new handshakes use, replaced on reload.
#[derive(Debug)]
pub struct ReloadableTls {
    files: TlsFiles,
    current: RwLock<(Arc<ServerConfig>, Vec<Option<SystemTime>>)>,
}

impl ReloadableTls {
    /// Loads the files; an error here stops the server from starting.
    pub fn new(files: TlsFiles) -> Result<ReloadableTls, TlsError> {
        let config = files.load()?;
        let modified = files.modified();
        Ok(ReloadableTls { files, current: RwLock::new((config, modified)) })
    }

    /// Reads the files again. On error the previous configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let modified = self.files.modified();
        let config = self.files.load()?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (config, modified);
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(PoisonError::into_inner).0.clone())
    }
}

impl crate::reload::Reloadable for ReloadableTls {
    fn what(&self) -> &'static str {
        "TLS certificates"
    }

    fn changed_on_disk(&self) -> bool {
        self.current.read().unwrap_or_else(PoisonError::into_inner).1 != self.files.modified()
    }

    fn reload(&self) -> Result<(), String> {
        ReloadableTls::reload(self).map_err(|error| error.to_string())
    }
}

/// Accepts connections on `listener` and completes their handshakes, each on
/// its own task so that a slow or silent client delays nobody; yields the
/// established streams until the receiving server goes away.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadableTls>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (sender, receiver) = mpsc::channel(ACCEPTED_BACKLOG);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = sender.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            let (acceptor, sender) = (tls.acceptor(), sender.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}
