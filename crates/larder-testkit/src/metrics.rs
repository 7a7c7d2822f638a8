//! Reading `/metrics` and this process's memory.

use std::fmt::Display;

use crate::client::get;

/// The sample `name` (with its labels, as written: `larder_x_total{reason="a"}`) in Prometheus
/// text, when present and an integer.
pub fn sample(text: &str, name: &str) -> Option<u64> {
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// The sample `name` from the Prometheus text an admin listener at `admin` (`host:port`) serves
/// on `/metrics`.
///
/// # Panics
///
/// When the sample is missing; the message shows the whole text.
pub async fn metric(admin: impl Display, name: &str) -> u64 {
    let text = get(&format!("http://{admin}/metrics")).await.text();
    sample(&text, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// This process's resident set size in bytes, from `/proc/self/status` (Linux).
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_are_found_by_their_whole_name() {
        let text = "# TYPE larder_requests_total counter\nlarder_requests_total 3\n\
                    larder_requests_total_x 9\nlarder_not_stored_total{reason=\"Private\"} 2\n";
        assert_eq!(sample(text, "larder_requests_total"), Some(3));
        assert_eq!(
            sample(text, "larder_not_stored_total{reason=\"Private\"}"),
            Some(2)
        );
        assert_eq!(sample(text, "larder_requests"), None);
    }
}
