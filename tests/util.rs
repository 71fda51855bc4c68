//! Test helpers: real docker-registry processes, a paging proxy, image pushing.
