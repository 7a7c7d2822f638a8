//! MemoryCache and the read-through RTCache: an async in-memory cache with stampede protection.
