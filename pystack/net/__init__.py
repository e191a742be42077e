"""The network stack, laid out as Linux's net/ tree."""
