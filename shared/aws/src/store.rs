//! S3 report store (dated prefixes, previous report, presigned links).
