//! State for micro-batch mode: a persistent store ([`store`]) and the transactional maps
//! and values bolts keep their state in ([`tx`]).

pub mod options;
pub mod store;
pub mod tx;

pub use options::StateOptions;
pub use store::{StateError, Store};
pub use tx::{TaskState, TxMap, TxValue};
