// net/src/buffer.cpp (filled in by the next commits)
