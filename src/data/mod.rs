//! Task data: generators and readers that produce batches.
