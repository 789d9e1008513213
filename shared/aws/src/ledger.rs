//! DynamoDB grant ledger.
