//! The test kit's items under the paths the binary and fleet tests import.

pub(crate) use larder_testkit::{Got, Origin, get, metric, respond, send};
