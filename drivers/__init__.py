"""Device drivers: energy meters, the contactor relay and the control pilot.

Drivers report readings and faults; they never decide policy.
"""
