//! Task data: generators and readers that produce batches.

pub mod slots;
