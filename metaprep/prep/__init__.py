"""Embedding files -> the aligned store: readers, vocabulary, OOV filling, align, the HDF5 store.
No torch here."""
