//! Stopping a runner without leaving processes behind.

/// Resolves with the signal's name on SIGINT or SIGTERM. A runner races its work against it so
/// that the work is dropped, not killed: dropping a cluster (or a benchmark's peer) stops the
/// processes it started, which a killed runner would leave running.
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        // Without handlers the default actions stay: nothing to wait for here.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
