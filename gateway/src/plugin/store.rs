//! Uploaded plugin versions kept in Kafka (to come).
