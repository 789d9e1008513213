//! Watch one grant event: ledger, judgement, alerts.
