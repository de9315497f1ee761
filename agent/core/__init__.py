"""The portable charging core: session state machine, safety gate, authorization, tariffs, quotes.

Everything in this folder runs under MicroPython too (the test runner copies this folder and
nothing else): plain classes and ints, no dataclasses, typing, enum, decimal or datetime, and
imports from this folder only. Time is integer milliseconds handed in with each event.
"""
