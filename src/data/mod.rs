//! The data that flows between tasks: tuples (one row each, event mode), columns (a chunk
//! of rows, micro-batch mode), the field hashing that routes both, and due times.

pub mod columns;
pub mod due;
pub mod hash;
pub mod tuple;
