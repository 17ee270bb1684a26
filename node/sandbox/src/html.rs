//! The pieces of the sandbox's pages: escaping, amounts, dates, and the page around a body.
//! Pages are self-contained: inline style, no script, no external resource.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// No script, no external resource, forms posting to the sandbox only, no framing.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1a1f36; }
main { max-width: 980px; margin: 2rem auto; padding: 0 1rem; }
.card { background: #fff; border-radius: 10px; box-shadow: 0 1px 4px rgba(0,0,0,.12); padding: 1.5rem; margin-bottom: 1.5rem; }
.narrow { max-width: 420px; }
.badge { display: inline-block; background: #ffe8b0; color: #7a4a00; border-radius: 4px; padding: 0 .4rem; font-size: .8rem; }
.amount { font-size: 2rem; font-weight: 600; margin: .5rem 0; }
.muted { color: #697386; font-size: .9rem; }
.ok { color: #0a7a3a; } .bad { color: #b3261e; }
label { display: block; margin: 1rem 0 .3rem; }
input[type=text] { width: 100%; box-sizing: border-box; font-size: 1.1rem; padding: .5rem; border: 1px solid #c1c9d2; border-radius: 6px; }
button { margin-top: 1rem; width: 100%; font-size: 1.1rem; padding: .6rem; border: 0; border-radius: 6px; background: #635bff; color: #fff; cursor: pointer; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e3e8ee; }
code { font-size: .85rem; }
";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Currencies without a minor unit, whose amounts are whole units.
const ZERO_DECIMAL: [&str; 16] =
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"];

/// `1250, "usd"` → `12.50 USD`.
pub fn money(amount: u64, currency: &str) -> String {
    let code = escape(&currency.to_ascii_uppercase());
    if ZERO_DECIMAL.contains(&currency) {
        return format!("{amount} {code}");
    }
    format!("{}.{:02} {code}", amount / 100, amount % 100)
}

/// Unix seconds as a UTC date and time.
pub fn date(unix_s: i64) -> String {
    chrono::DateTime::from_timestamp(unix_s, 0)
        .map_or_else(|| unix_s.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// A whole page around `body`, which must already be escaped.
pub fn page(status: StatusCode, title: &str, body: &str, head_extra: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{head_extra}\
         <title>{}</title><style>{STYLE}</style></head>\n<body><main>\n{body}\n</main></body></html>\n",
        escape(title)
    );
    let headers = [(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY), (header::CACHE_CONTROL, "no-store")];
    (status, headers, Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_amounts_formatted() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(money(1_250, "usd"), "12.50 USD");
        assert_eq!(money(5, "eur"), "0.05 EUR");
        assert_eq!(money(500, "jpy"), "500 JPY");
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
    }
}
