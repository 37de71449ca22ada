// net/src/rate_limit.cpp (filled in by the next commits)
