"""Parts of the app's pages: functions that draw one piece of a page from what they are given as arguments.

Each module serves one page (``<page>_parts.py``); like the pages, they reach the engine only through ``app_state``
and read the session only through ``app_session`` and ``ui``.
"""
