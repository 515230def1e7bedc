"""The PKCS#11 token model: library state, slots, tokens, sessions, objects, operations."""
