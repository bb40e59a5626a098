//! JobCenter client and worker library: create jobs, wait for results, serve actions.
