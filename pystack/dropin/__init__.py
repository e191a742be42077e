"""The faces unmodified code sees: trio's socket interface and hooks (trio.py), the blocking
`socket`/`select`/`selectors` modules (blocking.py), an asyncio event loop inside the trio run
(asyncio.py), and running scripts (runner.py).

Read first: DESIGN.md §5 ("Drop-in faces" and its traps), then trio.py, blocking.py,
asyncio.py, runner.py in that order.
"""
