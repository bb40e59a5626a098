//! Storage for the JobCenter engine: the store trait and its backends.
