//! Accounts x regions: STS AssumeRole into member accounts, AWS Organizations listing.
