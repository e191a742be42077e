"""Library helpers that Linux keeps under lib/."""
