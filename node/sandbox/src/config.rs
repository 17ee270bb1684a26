//! How the sandbox behaves: [`SandboxConfig`], checked and resolved before it serves, and
//! [`SandboxArgs`], `boxoffice sandbox`'s flags that make one.

use std::fmt;
use std::net::SocketAddr;

use crate::error::SandboxError;

/// How the sandbox behaves. [`Default`] gives the documented defaults, with empty secrets and no
/// webhook URL (which [`crate::serve`] refuses and tolerates, respectively).
#[derive(Clone)]
pub struct SandboxConfig {
    /// The key the gateway sends as `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// The secret webhooks are signed with.
    pub webhook_secret: String,
    /// Where events are POSTed, tried in order: a URL that fails is skipped for the next one.
    pub webhook_urls: Vec<String>,
    /// The chance, in thousandths, that an acknowledged webhook is delivered once more.
    pub duplicate_per_mille: u32,
    /// The longest random wait before an event's first delivery, so that events can arrive out
    /// of order.
    pub delay_max_ms: u64,
    /// The longest wait between two attempts (the wait starts at 100 ms and doubles).
    pub retry_backoff_max_ms: u64,
    /// Attempts before an event is marked failed.
    pub delivery_attempts_max: u32,
    /// The base URL fans' browsers use for checkout pages; empty: `http://<bound address>`.
    pub public_url: String,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            api_key: String::new(),
            webhook_secret: String::new(),
            webhook_urls: Vec::new(),
            duplicate_per_mille: 100,
            delay_max_ms: 1_500,
            retry_backoff_max_ms: 30_000,
            delivery_attempts_max: 50,
            public_url: String::new(),
        }
    }
}

/// Shows everything but the secrets.
impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("api_key", &"…")
            .field("webhook_secret", &"…")
            .field("webhook_urls", &self.webhook_urls)
            .field("duplicate_per_mille", &self.duplicate_per_mille)
            .field("delay_max_ms", &self.delay_max_ms)
            .field("retry_backoff_max_ms", &self.retry_backoff_max_ms)
            .field("delivery_attempts_max", &self.delivery_attempts_max)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl SandboxConfig {
    pub fn check(&self) -> Result<(), SandboxError> {
        if self.api_key.is_empty() {
            return Err(SandboxError::NoApiKey);
        }
        if self.webhook_secret.is_empty() {
            return Err(SandboxError::NoWebhookSecret);
        }
        if self.duplicate_per_mille > 1000 {
            return Err(SandboxError::DuplicateChance(self.duplicate_per_mille));
        }
        for url in &self.webhook_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(SandboxError::WebhookUrl(url.clone()));
            }
        }
        Ok(())
    }

    /// Fills in the public URL from the bound address (`localhost` for an unspecified one such
    /// as 0.0.0.0, which browsers cannot open), without a trailing slash.
    pub fn resolve(mut self, addr: SocketAddr) -> Self {
        if self.public_url.is_empty() && addr.ip().is_unspecified() {
            self.public_url = format!("http://localhost:{}", addr.port());
        } else if self.public_url.is_empty() {
            self.public_url = format!("http://{addr}");
        }
        self.public_url = self.public_url.trim_end_matches('/').to_string();
        self.delivery_attempts_max = self.delivery_attempts_max.max(1);
        self
    }
}

/// `boxoffice sandbox`'s flags.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Where the API, the checkout pages and the dashboard listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub(crate) http: String,
    /// The API key gateways send as `Authorization: Bearer <KEY>`.
    #[arg(long)]
    api_key: String,
    /// The secret webhooks are signed with.
    #[arg(long)]
    webhook_secret: String,
    /// A URL events are POSTed to; repeat for fallbacks, tried in order.
    #[arg(long = "webhook", value_name = "URL", required = true)]
    webhooks: Vec<String>,
    /// The chance, in thousandths, that an acknowledged webhook is delivered once more.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1000))]
    duplicate_per_mille: u32,
    /// The longest random wait before an event's first delivery, in milliseconds.
    #[arg(long, default_value_t = 1_500)]
    delay_max_ms: u64,
    /// The longest wait between two delivery attempts, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    retry_backoff_max_ms: u64,
    /// Delivery attempts before an event is marked failed.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    delivery_attempts_max: u32,
    /// The base URL fans' browsers use for checkout pages [default: http://<bound address>].
    #[arg(long)]
    public_url: Option<String>,
}

impl SandboxArgs {
    pub fn config(self) -> SandboxConfig {
        SandboxConfig {
            api_key: self.api_key,
            webhook_secret: self.webhook_secret,
            webhook_urls: self.webhooks,
            duplicate_per_mille: self.duplicate_per_mille,
            delay_max_ms: self.delay_max_ms,
            retry_backoff_max_ms: self.retry_backoff_max_ms,
            delivery_attempts_max: self.delivery_attempts_max,
            public_url: self.public_url.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SandboxConfig {
        SandboxConfig { api_key: "sk".into(), webhook_secret: "wh".into(), ..SandboxConfig::default() }
    }

    #[test]
    fn a_config_needs_its_secrets_and_http_urls() {
        assert!(valid().check().is_ok());
        assert!(matches!(SandboxConfig { api_key: String::new(), ..valid() }.check(), Err(SandboxError::NoApiKey)));
        let secretless = SandboxConfig { webhook_secret: String::new(), ..valid() };
        assert!(matches!(secretless.check(), Err(SandboxError::NoWebhookSecret)));
        let often = SandboxConfig { duplicate_per_mille: 1001, ..valid() };
        assert!(matches!(often.check(), Err(SandboxError::DuplicateChance(1001))));
        let ftp = SandboxConfig { webhook_urls: vec!["ftp://x".into()], ..valid() };
        assert!(matches!(ftp.check(), Err(SandboxError::WebhookUrl(_))));
    }

    #[test]
    fn the_public_url_defaults_to_an_address_browsers_open() {
        let resolved = valid().resolve("0.0.0.0:8090".parse().unwrap());
        assert_eq!(resolved.public_url, "http://localhost:8090");
        assert_eq!(valid().resolve("127.0.0.1:9".parse().unwrap()).public_url, "http://127.0.0.1:9");
        let given = SandboxConfig { public_url: "https://pay.test/".into(), ..valid() };
        assert_eq!(given.resolve("127.0.0.1:9".parse().unwrap()).public_url, "https://pay.test");
    }
}
