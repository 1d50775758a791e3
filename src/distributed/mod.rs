//! Running one topology over several processes ("instances") with Kafka as the only
//! distributed system.
//!
//! - [`status`]: the status topic through which instances say what they hold.

pub mod status;
