//! End-to-end tests: the real kiln binary on temporary projects.
