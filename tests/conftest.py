"""Test-suite root: its presence puts tests/ on sys.path, so test modules can import shared
helpers such as ``ode_models``."""
