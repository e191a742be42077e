"""The faces unmodified code sees: trio's socket interface and hooks (trio.py), the blocking
`socket`/`select`/`selectors` modules (blocking.py), and running scripts (runner.py). The
asyncio face is still to come.

Read first: DESIGN.md §5 ("Drop-in faces" and its traps), then trio.py, blocking.py,
runner.py in that order.
"""
