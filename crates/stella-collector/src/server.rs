//! Serving a router on a listener, in plain TCP or TLS, HTTP/1.1 and HTTP/2 (h2c or ALPN h2): TCP_NODELAY
//! on every connection, TLS handshakes off the accept loop with a deadline, and graceful shutdown that
//! stops accepting and lets the requests in flight finish.
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::tls::ReloadingTls;

/// HTTP/2 flow-control window per stream and per connection, and the largest frame we accept.
const HTTP2_STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const HTTP2_CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
const HTTP2_MAX_FRAME: u32 = 1024 * 1024;

/// How long an API client may take to send a request's headers (HTTP/1.1).
pub const API_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest header block accepted.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Connections served at once per listener; more are closed on accept.
const MAX_CONNECTIONS: usize = 4096;

/// The first wait after a failed accept; it doubles up to [`MAX_ACCEPT_BACKOFF`] while accepts fail.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Descriptors kept open (on `/dev/null`) to be given up when the process runs out: one is enough to take
/// a waiting connection and answer or close it.
const RESERVED_DESCRIPTORS: usize = 4;

/// The process's reserve of descriptors.
static RESERVE: DescriptorReserve = DescriptorReserve { files: std::sync::Mutex::new(Vec::new()) };

struct DescriptorReserve {
    files: std::sync::Mutex<Vec<std::fs::File>>,
}

/// A descriptor taken from the reserve: its slot is refilled when this is dropped.
struct Reserved;

impl DescriptorReserve {
    /// Opens descriptors until the reserve is full (fewer if the process is out of them already).
    fn fill(&self) {
        let mut files = self.files.lock().unwrap_or_else(|poison| poison.into_inner());
        while files.len() < RESERVED_DESCRIPTORS {
            match std::fs::File::open("/dev/null") {
                Ok(file) => files.push(file),
                Err(_) => break,
            }
        }
    }

    /// Closes one reserved descriptor, so that one more can be opened now.
    fn take(&self) -> Option<Reserved> {
        let file = self.files.lock().unwrap_or_else(|poison| poison.into_inner()).pop()?;
        drop(file);
        Some(Reserved)
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        RESERVE.fill();
    }
}

fn out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(23 | 24))
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// The names a verified client certificate carries (DNS subject alternative names, then the subject's
/// common name), put into every request of its connection for mTLS tenant mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The names, SANs first.
    pub names: Vec<String>,
}

impl PeerIdentity {
    fn of(connection: &rustls::ServerConnection) -> Option<PeerIdentity> {
        let certificate = connection.peer_certificates()?.first()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
        let mut names: Vec<String> = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|extension| {
                extension
                    .value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.extend(parsed.subject().iter_common_name().filter_map(|cn| cn.as_str().ok().map(str::to_string)));
        Some(PeerIdentity { names })
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is set) until `stop`, then finishes the requests in
/// flight. `what` names the listener in logs; HTTP/1 request headers must arrive within `header_timeout`.
/// Out of file descriptors, a connection is taken with a descriptor of the process's reserve: served when
/// `serve_on_reserve` (the API: health stays reachable), else closed at once (receivers: refused, not
/// left hanging).
pub fn spawn_server(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<ReloadingTls>>,
    stop: CancellationToken,
    (what, serve_on_reserve): (&'static str, bool),
    header_timeout: Duration,
) -> JoinHandle<()> {
    RESERVE.fill();
    tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Slow or oversized headers (slowloris, header floods) are cut off; bodies have their own caps.
        builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(MAX_HEADER_BYTES);
        builder.http2().timer(TokioTimer::new()).max_header_list_size(MAX_HEADER_BYTES as u32);
        // OTLP requests are often larger than HTTP/2's 64 KiB default windows: larger windows and frames
        // spare a WINDOW_UPDATE round trip per request.
        builder
            .http2()
            .initial_stream_window_size(HTTP2_STREAM_WINDOW)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
            .max_frame_size(HTTP2_MAX_FRAME);
        let builder = Arc::new(builder);
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let accept_failures = crate::throttle::Throttle::new(crate::throttle::LOG_INTERVAL);
        let mut backoff = ACCEPT_BACKOFF;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.cancelled() => break,
            };
            let Ok(slot) = Arc::clone(&connections).try_acquire_owned() else {
                // At the connection cap: close at once rather than hold sockets we cannot serve.
                if let Some(suppressed) = accept_failures.allow() {
                    tracing::warn!(
                        limit = MAX_CONNECTIONS,
                        suppressed,
                        "{what}: connection cap reached; closing new connections"
                    );
                }
                drop(accepted);
                continue;
            };
            let (stream, peer, reserve) = match accepted {
                Ok((stream, peer)) => {
                    backoff = ACCEPT_BACKOFF;
                    (stream, peer, None)
                }
                Err(error) if out_of_descriptors(&error) => {
                    // The waiting client would hang until it timed out: take it with a descriptor of the
                    // reserve. A receiver closes it at once (the client fails fast and retries); the API
                    // serves it (health and readiness stay reachable), and the descriptor returns to the
                    // reserve when the connection ends.
                    let taken = RESERVE.take();
                    // The waiting connection may be gone by now: the next one is taken, unless the stop comes.
                    let retried = match taken {
                        Some(_) => tokio::select! {
                            accepted = listener.accept() => accepted,
                            _ = stop.cancelled() => break,
                        },
                        None => Err(error),
                    };
                    match (retried, taken) {
                        (Ok((stream, peer)), Some(taken)) if serve_on_reserve => (stream, peer, Some(taken)),
                        (Ok((stream, _)), taken) => {
                            drop(stream);
                            drop(taken);
                            if let Some(suppressed) = accept_failures.allow() {
                                tracing::error!(
                                    errno = "EMFILE",
                                    suppressed,
                                    "{what}: out of file descriptors; refusing new connections at once"
                                );
                            }
                            continue;
                        }
                        (Err(error), taken) => {
                            drop(taken);
                            if let Some(suppressed) = accept_failures.allow() {
                                tracing::error!(%error, suppressed, "{what}: out of file descriptors and none in reserve; new connections wait");
                            }
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                            continue;
                        }
                    }
                }
                Err(error) => {
                    if let Some(suppressed) = accept_failures.allow() {
                        tracing::warn!(%error, suppressed, "{what}: accept failed");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let router_for_peer = router.clone();
            let watcher = graceful.watcher();
            let builder = Arc::clone(&builder);
            let acceptor = tls.as_ref().map(|tls| tls.acceptor());
            tokio::spawn(async move {
                let _slot = slot;
                let _reserve = reserve;
                let served = match acceptor {
                    None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await,
                    Some(acceptor) => match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let service = match PeerIdentity::of(tls_stream.get_ref().1) {
                                Some(identity) => {
                                    TowerToHyperService::new(router_for_peer.layer(axum::Extension(identity)))
                                }
                                None => service,
                            };
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(tls_stream), service).into_owned())
                                .await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "{what}: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "{what}: TLS handshake timed out");
                            return;
                        }
                    },
                };
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "{what}: connection ended with an error");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
    })
}

/// The process that listens on `address`'s port, as `pid N (name)`, found through `/proc` (Linux; `None`
/// elsewhere or when it is not visible to this user).
pub fn port_holder(address: std::net::SocketAddr) -> Option<String> {
    let tables = ["/proc/net/tcp", "/proc/net/tcp6"];
    let port = format!(":{:04X}", address.port());
    let inode = tables.iter().filter_map(|table| std::fs::read_to_string(table).ok()).find_map(|text| {
        text.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, ..., st (0A = LISTEN), ..., inode
            let listening = fields.get(3) == Some(&"0A");
            (listening && fields.get(1).is_some_and(|local| local.ends_with(&port)))
                .then(|| fields.get(9).map(|inode| inode.to_string()))?
        })
    })?;
    let socket = format!("socket:[{inode}]");
    for process in std::fs::read_dir("/proc").ok()?.filter_map(Result::ok) {
        let Ok(pid) = process.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else { continue };
        let holds = fds
            .filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy() == socket));
        if holds {
            let name = std::fs::read_to_string(process.path().join("comm")).unwrap_or_default();
            return Some(format!("pid {pid} ({})", name.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Notify;

    /// A router whose `/slow` route tells `arrived` and answers once `release` is notified.
    fn router(arrived: Arc<Notify>, release: Arc<Notify>) -> axum::Router {
        axum::Router::new().route(
            "/slow",
            axum::routing::get(move || {
                let (arrived, release) = (Arc::clone(&arrived), Arc::clone(&release));
                async move {
                    arrived.notify_one();
                    release.notified().await;
                    "done"
                }
            }),
        )
    }

    async fn started(router: axum::Router) -> (std::net::SocketAddr, CancellationToken, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        // An hour of header timeout: only the shutdown itself can close an idle connection here.
        let server = spawn_server(listener, router, None, stop.clone(), ("test", false), Duration::from_secs(3600));
        (address, stop, server)
    }

    #[tokio::test]
    async fn a_connection_that_never_sent_a_request_does_not_hold_up_the_stop() {
        let (address, stop, server) = started(router(Arc::default(), Arc::default())).await;
        let mut idle = tokio::net::TcpStream::connect(address).await.unwrap();
        // Served: a request on a later connection proves the idle one has been accepted before the stop.
        let mut other = tokio::net::TcpStream::connect(address).await.unwrap();
        other.write_all(b"GET /missing HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut answer = [0u8; 12];
        other.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 404");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(60), server).await.expect("the server stops").unwrap();
        let mut rest = Vec::new();
        assert_eq!(idle.read_to_end(&mut rest).await.unwrap(), 0, "the idle connection is closed");
    }

    #[tokio::test]
    async fn a_request_in_flight_at_the_stop_is_answered_before_the_server_ends() {
        let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (address, stop, server) = started(router(Arc::clone(&arrived), Arc::clone(&release))).await;
        let mut busy = tokio::net::TcpStream::connect(address).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        arrived.notified().await;
        stop.cancel();
        release.notify_one();
        let mut answer = Vec::new();
        busy.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(60), server).await.expect("the server stops").unwrap();
    }
}
