"""The ``urja`` command line."""
