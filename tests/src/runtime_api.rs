//! runtime_api
