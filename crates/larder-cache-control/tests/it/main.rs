//! Integration tests of larder-cache-control's public API.

mod cases;
mod props;
mod targeted;
