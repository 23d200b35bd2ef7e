"""Orbit preview videos of trained splatfacto models, rendered on the GPU and encoded in memory."""
