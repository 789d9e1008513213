//! The grant ledger port (idempotency, removal context, provenance).
