//! Cache-Control and CDN-Cache-Control parsing (RFC 9111 §5.2, RFC 9213).
