//! A raw-socket client: bytes written to the server as they are, and what it sends back split
//! into responses, for what a well-behaved HTTP client cannot send or would hide.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a raw exchange waits for the server to close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Writes `request` to `addr` as raw bytes and returns everything the server sends until it
/// closes the connection (the last request should say `Connection: close`), or what came
/// within 5 s. A failed write is ignored: the server may answer and close before reading all.
pub async fn exchange(addr: SocketAddr, request: impl AsRef<[u8]>) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request.as_ref()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(CLOSE_WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `request` (which should ask to close) and reads the answer to the end.
///
/// # Panics
///
/// When the write fails or the server does not close within 5 s.
pub async fn until_close(addr: SocketAddr, request: impl AsRef<[u8]>) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_ref()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(CLOSE_WAIT, stream.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` (lowercase) in the first head of a raw exchange, lowercased.
pub fn head_field(text: &str, name: &str) -> Option<String> {
    let text = text.to_ascii_lowercase();
    let head = text.split("\r\n\r\n").next()?;
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::to_owned)
}

/// One response read from a raw exchange.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The head, lowercased, without the status line.
    pub head: String,
    /// The body, after chunked coding is undone.
    pub body: String,
}

/// The responses in a raw exchange, in order, framed by `Content-Length` or chunked coding
/// (1xx heads have no body; anything else runs to the end).
pub fn responses(mut text: &str) -> Vec<RawResponse> {
    let mut out = Vec::new();
    while let Some((head, rest)) = text.split_once("\r\n\r\n") {
        let (line, fields) = head.split_once("\r\n").unwrap_or((head, ""));
        let Some(status) = line
            .strip_prefix("HTTP/1.")
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse::<u16>().ok())
        else {
            break;
        };
        let fields = fields.to_ascii_lowercase();
        let field = |name: &str| {
            fields
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
        };
        let (body, rest) = if (100..200).contains(&status) && status != 101 {
            (String::new(), rest)
        } else if let Some(len) = field("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let len = len.min(rest.len());
            (rest[..len].to_owned(), &rest[len..])
        } else if field("transfer-encoding") == Some("chunked") {
            dechunk(rest)
        } else {
            (rest.to_owned(), "")
        };
        out.push(RawResponse {
            status,
            head: fields,
            body,
        });
        text = rest;
    }
    out
}

/// A chunked body at the start of `rest`, and what follows it.
fn dechunk(mut rest: &str) -> (String, &str) {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            rest = after.strip_prefix("\r\n").unwrap_or(after);
            break;
        }
        let size = size.min(after.len());
        body.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
    (body, rest)
}

/// The status code on the first line of a raw exchange, even of an unfinished head; 0 when the
/// connection closed without one.
pub fn first_status(text: &str) -> u16 {
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The status codes of the responses in a raw exchange, in order.
pub fn statuses(text: &str) -> Vec<u16> {
    responses(text).iter().map(|r| r.status).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_split_by_their_framing() {
        let text = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
                    HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\
                    HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n\
                    HTTP/1.1 400 Bad Request\r\nX: y\r\n\r\nrest";
        let got = responses(text);
        let summary: Vec<(u16, &str)> = got.iter().map(|r| (r.status, r.body.as_str())).collect();
        assert_eq!(
            summary,
            [(103, ""), (200, "ok"), (200, "abcd"), (400, "rest")]
        );
        assert_eq!(statuses(text), [103, 200, 200, 400]);
        assert_eq!(first_status(text), 103);
        assert_eq!(first_status("HTTP/1.1 431 Request"), 431);
        assert_eq!(first_status(""), 0);
        assert_eq!(head_field(text, "link").as_deref(), Some("</a>"));
    }
}
