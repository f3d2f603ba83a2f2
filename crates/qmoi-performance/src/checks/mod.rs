//! The monitor's concerns, one module each, run in turn by [`crate::PerfMonitor`]'s run:
//! each adds its checks, metrics and `details` section to the run's `Collected`.

mod access_logs;
mod baselines;
mod commands;
mod predictions;
mod processes;
mod recommendations;
mod system;
