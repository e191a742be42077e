"""IPv4, as Linux's net/ipv4/."""
