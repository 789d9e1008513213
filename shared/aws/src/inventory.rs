//! KMS inventory: ListKeys/DescribeKey/ListAliases/ListGrants with paging, rate limit and retries.
