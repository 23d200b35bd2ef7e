"""Test scenes built like real captures, real captures thinned into fixtures, and judges of frames."""
