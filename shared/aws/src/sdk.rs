//! Shared SDK configuration (one per process; honours AWS_ENDPOINT_URL).
