//! End-to-end tests: the real kiln binary on temporary projects, with real shell commands and a
//! real C compiler. One module per part of the contract.

mod buildfile;
mod cache;
mod cache_damage;
mod cli;
mod configure;
mod constraints;
mod correctness;
mod docs;
mod edits;
mod example;
mod fuzzed;
mod generators;
mod http_cache;
mod install;
mod outputs;
mod ports;
mod property;
mod reliability;
mod remote;
mod scanner;
mod scheduling;
mod scriptlets;
mod signatures;
mod states;
mod subdirs;
mod support;
mod terminal;
mod timings;
mod toolchain;
mod traces;
mod variants;
mod watch;
