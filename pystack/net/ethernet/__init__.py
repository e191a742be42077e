"""Ethernet, as net/ethernet/."""
