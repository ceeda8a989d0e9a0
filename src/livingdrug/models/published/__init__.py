"""Published models, one module each, with the reference and a reproduction test."""

from . import cartmath, kimmel2021, stein2019

__all__ = ["stein2019", "kimmel2021", "cartmath"]
