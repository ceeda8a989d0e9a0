"""Numeric engines: arrays in, arrays and per-patient status out.  No I/O, no printing."""
