// net/src/stream_pair.cpp (filled in by the next commits)
