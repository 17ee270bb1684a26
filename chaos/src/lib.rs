//! The chaos runner and history checker (issue 3).
//!
//! It will start real clusters of `boxoffice node` processes, drive a booking workload through
//! the gateways while injecting faults (kills, pauses, partitions, clock skew), record every
//! request and answer into a history, and check that history and the final state: no seat sold
//! twice, nothing acknowledged lost, every replica identical at the same applied index.
//!
//! Like `tests/`, it sees the system only as clients and operators do: it depends on `model`
//! for the shapes of the data and on nothing else of the workspace.
