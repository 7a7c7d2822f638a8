//! A tower caching layer and the larder caching reverse proxy.
