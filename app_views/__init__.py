"""Parts of the app's pages: functions that draw one piece of a page from what they are given as arguments.

Each module serves one page and is named after it (``home_parts``, ``model_*``, ``sweeps_*``, ``fault_lab_*``,
``relevance_parts``, the Fault lab's ``teaching_corner``); like the pages, they reach the engine only through
``app_state`` and read the session only through ``app_session`` and ``ui``.
"""
