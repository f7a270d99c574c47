"""Calls os._exit on import: no exception, the process would just end. altlearn must survive it."""

import os

os._exit(4)
