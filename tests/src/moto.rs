//! moto
