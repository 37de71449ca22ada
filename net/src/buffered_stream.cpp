// net/src/buffered_stream.cpp (filled in by the next commits)
