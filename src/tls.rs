//! TLS configuration: the listener's certificate (`--tls-cert`, `--tls-key`), and the client
//! configurations for `https://` targets (verified against the system roots or `--ca-file`,
//! or, with `tls_verify=off`, not verified). Loaded once at start-up; nothing here runs on
//! the reactor's hot path.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

/// Why a TLS configuration could not be built; names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Everything TLS the proxy runs with.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The listener's configuration, with `--tls-cert`/`--tls-key`.
    pub server: Option<Arc<ServerConfig>>,
    /// For https targets.
    pub clients: ClientConfigs,
}

impl Setup {
    /// Loads the files the command line names.
    pub fn load(config: &crate::cli::Config) -> Result<Setup, Error> {
        let server = match &config.tls {
            Some((cert, key)) => Some(server_config(cert, key)?),
            None => None,
        };
        Ok(Setup {
            server,
            clients: client_configs(config.ca_file.as_deref())?,
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The most of a PEM file read. CA bundles run to a few hundred KiB; the bound keeps
/// `/dev/zero`, or a huge file named by mistake, from filling memory: past it, a file reads
/// as one without PEM in it.
const MAX_PEM_BYTES: u64 = 16 * 1024 * 1024;

/// A PEM file, opened to be read up to `MAX_PEM_BYTES`.
fn pem_file(path: &Path) -> Result<io::Take<File>, pem::Error> {
    File::open(path)
        .map(|file| file.take(MAX_PEM_BYTES))
        .map_err(pem::Error::Io)
}

/// Whether `file` holds a PEM key that is encrypted (PKCS#8 `ENCRYPTED PRIVATE KEY`, or an
/// OpenSSL `Proc-Type: 4,ENCRYPTED` header), which rustls does not read.
fn holds_encrypted_key(file: &Path) -> bool {
    let mut text = Vec::new();
    pem_file(file).is_ok_and(|mut f| f.read_to_end(&mut text).is_ok())
        && [&b"ENCRYPTED PRIVATE KEY"[..], b"Proc-Type: 4,ENCRYPTED"]
            .iter()
            .any(|marker| text.windows(marker.len()).any(|w| w == *marker))
}

/// Why a PEM file could not be read, in words: the library's own name the end marker it
/// missed as a list of byte values (`[67, 69, 82, …]`).
fn pem_failure(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "no \"-----END {}-----\" line after its BEGIN line: the file is cut short",
            String::from_utf8_lossy(end_marker).trim()
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "a malformed BEGIN line: \"{}\"",
            crate::report::without_controls(&String::from_utf8_lossy(line))
        ),
        pem::Error::Base64Decode(why) => {
            format!("a PEM section that is not base64 ({why}); is a line missing or extra?")
        }
        pem::Error::Io(err) => err.to_string(),
        other => other.to_string(),
    }
}

/// The listener's configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, Error> {
    let certs = pem_file(cert_file)
        .and_then(|file| CertificateDer::pem_reader_iter(file).collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error(format!(
                "{}: cannot read certificates: {}",
                cert_file.display(),
                pem_failure(&e)
            ))
        })?;
    if certs.is_empty() {
        return Err(Error(format!(
            "{}: no PEM certificate in it",
            cert_file.display()
        )));
    }
    let key = pem_file(key_file)
        .and_then(PrivateKeyDer::from_pem_reader)
        .map_err(|e| {
            let why = match e {
                // OpenSSL's older form has header lines (`Proc-Type:`) inside the section,
                // which read as bad base64.
                pem::Error::NoItemsFound | pem::Error::Base64Decode(_)
                    if holds_encrypted_key(key_file) =>
                {
                    "the key is encrypted; trident needs it unencrypted (openssl pkey -in KEY \
                     -out PLAIN.key)"
                        .to_string()
                }
                pem::Error::NoItemsFound => "no PEM private key in it".to_string(),
                e => format!("cannot read a private key: {}", pem_failure(&e)),
            };
            Error(format!("{}: {why}", key_file.display()))
        })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            let why = match e {
                rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => {
                    "a certificate in it is not well-formed (a base64 line missing or changed?)"
                        .to_string()
                }
                rustls::Error::InconsistentKeys(_) => {
                    "the key is not the first certificate's (the file starts with the \
                     server's own certificate, then its intermediates)"
                        .to_string()
                }
                e => e.to_string(),
            };
            Error(format!(
                "{} / {}: {why}",
                cert_file.display(),
                key_file.display()
            ))
        })?;
    Ok(Arc::new(config))
}

/// Client configurations for https targets.
#[derive(Debug, Clone)]
pub struct ClientConfigs {
    /// Verifies the target's certificate and name.
    pub verified: Arc<ClientConfig>,
    /// `tls_verify=off`: accepts any certificate (handshake signatures are still checked).
    pub unverified: Arc<ClientConfig>,
}

/// Builds the https client configurations: trusted roots from `ca_file` if given, else the
/// system's. A system without roots gives a configuration that refuses every certificate,
/// and a warning: https targets then fail with a clear error on their leg.
pub fn client_configs(ca_file: Option<&Path>) -> Result<ClientConfigs, Error> {
    let mut roots = RootCertStore::empty();
    let mut listed = Vec::new();
    match ca_file {
        Some(path) => {
            let certs = pem_file(path)
                .and_then(|file| {
                    CertificateDer::pem_reader_iter(file).collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| {
                    Error(format!(
                        "{}: cannot read certificates: {}",
                        path.display(),
                        pem_failure(&e)
                    ))
                })?;
            listed.clone_from(&certs);
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error(format!(
                    "{}: no usable CA certificate in it",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                // Only https targets care; their legs then fail with a certificate error.
                log::debug!("no system CA certificates found");
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error(format!("TLS: {e}")))?;
    let verified = if listed.is_empty() {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| Error(format!("TLS: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaOrListed { webpki, listed }))
            .with_no_client_auth()
    };
    let unverified = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
        .with_no_client_auth();
    Ok(ClientConfigs {
        verified: Arc::new(verified),
        unverified: Arc::new(unverified),
    })
}

/// The server name a target is verified against (its host as written in the URL).
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_string()).map_err(|e| Error(format!("\"{host}\": {e}")))
}

/// `--ca-file`: a certificate issued by one of its CAs, as usual, or one it lists itself (a
/// self-signed service certificate, as `curl --cacert` takes it), for the names it holds.
/// webpki alone refuses the latter: no CA issued it (`UnknownIssuer`), or it is a CA's own
/// (`CaUsedAsEndEntity`, as `openssl req -x509` makes them).
#[derive(Debug)]
struct CaOrListed {
    webpki: Arc<WebPkiServerVerifier>,
    listed: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaOrListed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let by_ca = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        // Only a want of an issuer is made up for: an expired or misnamed certificate stays
        // refused, listed or not.
        match by_ca {
            Err(rustls::Error::InvalidCertificate(problem))
                if (problem == CertificateError::UnknownIssuer
                    || is_ca_used_as_end_entity(&problem))
                    && self
                        .listed
                        .iter()
                        .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// webpki refused a CA's certificate as a server's own (`openssl req -x509` makes them so).
/// rustls carries that reason only as text inside `CertificateError::Other`.
pub fn is_ca_used_as_end_entity(problem: &CertificateError) -> bool {
    matches!(problem, CertificateError::Other(other)
        if format!("{other:?}").contains("CaUsedAsEndEntity"))
}

/// `tls_verify=off`: any certificate is accepted, for test environments with self-signed
/// ones. The handshake signatures are still verified, so the peer holds the key it shows.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
