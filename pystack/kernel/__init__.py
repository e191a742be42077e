"""The parts of a kernel that are not networking: CPUs, softirqs, timers, tasks."""
