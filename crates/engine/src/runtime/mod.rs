//! The job runtime: jobs walking their task graphs, action tasks, child jobs, errors.
