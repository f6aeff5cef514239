"""Storage of (sharded) pytrees with tensorstore; knows nothing about policies."""
