//! JCL, the JobCenter workflow language: parse, compile to task graphs, evaluate, run jobs.
