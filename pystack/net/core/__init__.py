"""Protocol-independent networking core, as net/core/."""
