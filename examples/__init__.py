"""Runnable example clients for apps that follow aidtrail's events (each file stands alone; see its docstring)."""
