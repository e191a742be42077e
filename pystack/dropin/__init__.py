"""The faces unmodified code sees: trio's socket interface (trio.py), and later asyncio and the
blocking socket module."""
