"""Crash-test helpers: a stand-in runtime to kill, and checks for the journal it leaves behind."""
