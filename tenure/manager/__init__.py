"""The Checkpointer that joins retention policies and I/O."""
