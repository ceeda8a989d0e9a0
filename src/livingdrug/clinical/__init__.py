"""Clinical read-outs: pure functions on trajectories and observations."""

from .endpoints import Exposure, Response, ball_response, exposure

__all__ = ["Exposure", "Response", "ball_response", "exposure"]
