//! ARNs, account ids, service principals, unique ids, key ids.
