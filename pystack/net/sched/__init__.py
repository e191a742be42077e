"""Packet schedulers (qdiscs), as net/sched/."""
