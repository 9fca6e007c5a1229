//! An HTTP client for OTLP/HTTP, shared by the tests and the benchmarks.

use std::sync::Arc;

/// An HTTP client (for OTLP/HTTP) that trusts `ca_pem`, if given, for
/// https; on rustls with the server's ring provider.
pub fn http_client(ca_pem: Option<&str>) -> reqwest::Client {
    http_client_builder(ca_pem).build().expect("an HTTP client")
}

/// `http_client`'s builder, for clients that need more settings.
pub fn http_client_builder(ca_pem: Option<&str>) -> reqwest::ClientBuilder {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in ca_pem.map(|pem| CertificateDer::pem_slice_iter(pem.as_bytes())).into_iter().flatten() {
        roots.add(certificate.expect("a PEM certificate")).expect("a root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder().use_preconfigured_tls(tls)
}
