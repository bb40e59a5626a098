//! Compile-time checks and lowering of workflows to task graphs.
