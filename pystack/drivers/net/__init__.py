"""Network device drivers: loopback and the emulated Ethernet NIC."""
